// Drives fleetwire's event API with the current atmosphere.js 5.x client
// in Node over one transport: sign in, subscribe, receive the states a
// device reports over OsmAnd, unsubscribe, close. Environment as for
// events-legacy.cjs. Prints one JSON line; exits non-zero on failure.
'use strict';

globalThis.WebSocket = globalThis.WebSocket || require('ws');
globalThis.EventSource = globalThis.EventSource || require('eventsource');
const { Atmosphere } = require('atmosphere5');

const base = process.env.FLEETWIRE_URL;
const osmand = process.env.FLEETWIRE_OSMAND_URL;
const transport = process.env.TRANSPORT || 'websocket';
const trackerId = Number(process.env.FLEETWIRE_TRACKER);
const device = process.env.FLEETWIRE_DEVICE;

const outcome = { client: 'atmosphere.js 5', transport, opened: false, transportUsed: null, response: null, states: [], errors: [], unsubscribed: false };
function finish(code, why) {
  if (why) outcome.failure = why;
  process.stdout.write(JSON.stringify(outcome) + '\n');
  setTimeout(() => process.exit(code), 50);
}
setTimeout(() => finish(1, 'overall timeout'), 30000);

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
  const waitFor = (what, pred, ms = 8000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + what)), ms);
    waiters.push((m) => { if (pred(m)) { clearTimeout(t); resolve(m); return true; } return false; });
  });
  const onMessage = (m) => { waiters = waiters.filter((w) => !w(m)); };

  const atmosphere = new Atmosphere({ logLevel: 'silent' });
  let opened;
  const openedP = new Promise((r) => { opened = r; });
  let sub;
  try {
    sub = await atmosphere.subscribe({
      url: base + '/v2/event/subscription',
      contentType: 'application/json',
      transport,
      trackMessageLength: true,
      enableProtocol: true,
      reconnectInterval: 500,
      maxReconnectOnClose: 3,
    }, {
      open: (r) => { outcome.opened = true; outcome.transportUsed = r.transport; opened(); },
      error: (e) => { outcome.errors.push('error ' + (e && e.message || e)); },
      message: (r) => {
        const body = r.responseBody;
        if (typeof body !== 'string' || !body.trim()) return;
        let m;
        try { m = JSON.parse(body); } catch (e) { outcome.errors.push('not JSON: ' + body.slice(0, 80)); return; }
        if (m.type === 'error') outcome.errors.push('error message ' + JSON.stringify(m));
        onMessage(m);
      },
    });
    await Promise.race([openedP, sleep(8000).then(() => { throw new Error('never opened'); })]);
    const respP = waitFor('subscribe response', (m) => m.type === 'response' && m.action === 'subscription/subscribe');
    sub.push(JSON.stringify({ action: 'subscribe', hash, requests: [{ type: 'state', trackers: [trackerId] }] }));
    const resp = await respP;
    outcome.response = resp.data && resp.data.state && resp.data.state.value;
    if (!outcome.response || outcome.response[String(trackerId)] !== 'normal') throw new Error('bad response ' + JSON.stringify(resp));
    for (let i = 1; i <= 3; i++) {
      const lat = 40 + i / 100;
      const got = waitFor('state ' + i, (m) => m.type === 'event' && m.event === 'state' && m.data.gps.location && Math.abs(m.data.gps.location.lat - lat) < 1e-9);
      await fix(lat, 10);
      outcome.states.push((await got).data.gps.location.lat);
    }
    const unsubP = waitFor('unsubscribe response', (m) => m.type === 'response' && m.action === 'subscription/unsubscribe');
    sub.push(JSON.stringify({ action: 'unsubscribe', hash, requests: [{ type: 'state', trackers: [trackerId] }] }));
    await unsubP;
    outcome.unsubscribed = true;
    await sub.close();
    if (outcome.errors.length) return finish(1, 'errors seen');
    finish(0);
  } catch (e) {
    finish(1, String(e && e.message || e));
  }
})();
