// Drives fleetwire's event API with the published atmosphere.js 2.3.x client
// in Node, the way a fleet web app does: sign in over REST, open
// /v2/event/subscription on the transport given, subscribe, receive the
// states a device reports over OsmAnd, stay idle long enough that only the
// server's heartbeats keep the client from timing out, unsubscribe, close.
//
// Environment: FLEETWIRE_URL, FLEETWIRE_OSMAND_URL, FLEETWIRE_LOGIN,
// FLEETWIRE_PASSWORD, FLEETWIRE_TRACKER (id), FLEETWIRE_DEVICE,
// TRANSPORT (websocket|long-polling|streaming|sse), IDLE_MS, CLIENT_TIMEOUT_MS.
// Prints one JSON line with the outcome; exits non-zero on failure.
'use strict';

const atmosphere = require(process.env.ATMOSPHERE_MODULE || 'atmosphere.js');

const base = process.env.FLEETWIRE_URL;
const osmand = process.env.FLEETWIRE_OSMAND_URL;
const transport = process.env.TRANSPORT || 'websocket';
const trackerId = Number(process.env.FLEETWIRE_TRACKER);
const device = process.env.FLEETWIRE_DEVICE;
const idleMs = Number(process.env.IDLE_MS || 2500);
const clientTimeout = Number(process.env.CLIENT_TIMEOUT_MS || 1500);

const outcome = { transport, opened: false, transportUsed: null, response: null, states: [], errors: [], timeouts: 0, unsubscribed: false };

function finish(code, why) {
  if (why) outcome.failure = why;
  process.stdout.write(JSON.stringify(outcome) + '\n');
  setTimeout(() => process.exit(code), 50);
}

const overall = setTimeout(() => finish(1, 'overall timeout'), 30000);

async function post(path, body) {
  const r = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return r.json();
}

async function fix(lat, lon) {
  const q = new URLSearchParams({ id: device, lat: String(lat), lon: String(lon), timestamp: String(Math.floor(Date.now() / 1000)), speed: '5' });
  const r = await fetch(osmand + '/?' + q);
  if (r.status !== 200) throw new Error('osmand answered ' + r.status);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const auth = await post('/v2/user/auth', { login: process.env.FLEETWIRE_LOGIN, password: process.env.FLEETWIRE_PASSWORD });
  if (!auth.success) return finish(1, 'auth failed: ' + JSON.stringify(auth));
  const hash = auth.hash;

  let waiters = [];
  const onMessage = (m) => { waiters = waiters.filter((w) => !w(m)); };
  const waitFor = (what, pred, ms = 8000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + what)), ms);
    waiters.push((m) => { if (pred(m)) { clearTimeout(t); resolve(m); return true; } return false; });
  });

  let opened;
  const openedP = new Promise((r) => { opened = r; });
  const socket = atmosphere.subscribe({
    url: base + '/v2/event/subscription',
    contentType: 'application/json',
    transport,
    fallbackTransport: transport === 'websocket' ? 'long-polling' : transport,
    trackMessageLength: true,
    enableProtocol: true,
    reconnectInterval: 500,
    maxWebsocketErrorRetries: process.env.MAX_WS_ERROR_RETRIES === undefined ? 1 : Number(process.env.MAX_WS_ERROR_RETRIES),
    maxReconnectOnClose: 3,
    timeout: clientTimeout,
    logLevel: process.env.LOG_LEVEL || 'error',
    onOpen: (r) => { outcome.opened = true; outcome.transportUsed = r.transport; opened(); },
    onClientTimeout: () => { outcome.timeouts++; },
    onError: (r) => { outcome.errors.push('onError ' + (r && r.status)); },
    onMessage: (r) => {
      const body = r.responseBody;
      if (!body || !body.trim()) return;
      let m;
      try { m = JSON.parse(body); } catch (e) { outcome.errors.push('not JSON: ' + body.slice(0, 80)); return; }
      if (m.type === 'error') outcome.errors.push('error message ' + JSON.stringify(m));
      onMessage(m);
    },
  });

  try {
    await Promise.race([openedP, sleep(8000).then(() => { throw new Error('never opened'); })]);
    const respP = waitFor('subscribe response', (m) => m.type === 'response' && m.action === 'subscription/subscribe');
    socket.push(JSON.stringify({ action: 'subscribe', hash, requests: [{ type: 'state', trackers: [trackerId] }] }));
    const resp = await respP;
    outcome.response = resp.data && resp.data.state && resp.data.state.value;
    if (!outcome.response || outcome.response[String(trackerId)] !== 'normal') throw new Error('bad response ' + JSON.stringify(resp));

    for (let i = 1; i <= 3; i++) {
      const lat = 50 + i / 100;
      const got = waitFor('state ' + i, (m) => m.type === 'event' && m.event === 'state' && m.data.gps && m.data.gps.location && Math.abs(m.data.gps.location.lat - lat) < 1e-9);
      await fix(lat, 10);
      const m = await got;
      outcome.states.push(m.data.gps.location.lat);
    }

    // Idle: only heartbeats reach the client; its timeout must not fire.
    await sleep(idleMs);
    if (outcome.timeouts > 0) throw new Error('client timed out while idle: no heartbeats');

    // Still alive after the idle period.
    const after = waitFor('state after idle', (m) => m.type === 'event' && m.event === 'state' && m.data.gps.location.lat === 51);
    await fix(51, 10);
    await after;
    outcome.states.push(51);

    const unsubP = waitFor('unsubscribe response', (m) => m.type === 'response' && m.action === 'subscription/unsubscribe');
    socket.push(JSON.stringify({ action: 'unsubscribe', hash, requests: [{ type: 'state', trackers: [trackerId] }] }));
    await unsubP;
    outcome.unsubscribed = true;

    atmosphere.unsubscribe();
    clearTimeout(overall);
    if (outcome.errors.length) return finish(1, 'errors seen');
    finish(0);
  } catch (e) {
    finish(1, String(e && e.message || e));
  }
})();
