'use strict';
// Drives the live fleet page in headless Chromium: signs in, waits for the
// tracker table, moves one device over the OsmAnd ingest and checks that
// the page follows, opens the tracker's details and saves a screenshot.
// Prints one JSON line with the outcome; exits non-zero on failure.
// The environment it reads is described in README.md.

const fs = require('node:fs');
const path = require('node:path');
const { fail, session, run } = require('./run.cjs');

const env = process.env;
const BASE = (env.FLEETWIRE_URL || '').replace(/\/+$/, '');
const OSMAND = (env.FLEETWIRE_OSMAND_URL || '').replace(/\/+$/, '');
const LOGIN = env.FLEETWIRE_LOGIN || '';
const PASSWORD = env.FLEETWIRE_PASSWORD || '';
const TRACKER = env.FLEETWIRE_TRACKER || '';
const DEVICE = env.FLEETWIRE_DEVICE || '';
const TRANSPORT = env.TRANSPORT || 'websocket';
const ARTIFACTS = env.FLEETWIRE_ARTIFACTS || path.join(__dirname, '..', 'artifacts');
const TRAIL_TRACKER = env.FLEETWIRE_TRAIL_TRACKER || '';
const TRAIL_PROTOCOL = env.FLEETWIRE_TRAIL_PROTOCOL || '';
const MOVES = Math.max(1, Number(env.MOVES || 3));
const MOVE_TIMEOUT_MS = Number(env.MOVE_TIMEOUT_MS || 10000);
const TOTAL_TIMEOUT_MS = Number(env.TOTAL_TIMEOUT_MS || 90000);
const EPS = 1e-6;

const out = {
  ok: false,
  transport: TRANSPORT,
  transportUsed: null,
  status: null,
  tracker: TRACKER,
  start: null,
  moves: [],
  details: false,
  dotClicked: false,
  protocol: null,
  trail: null,
  screenshot: null,
  errors: []
};

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function report(lat, lon, ts) {
  const url = OSMAND + '/?id=' + encodeURIComponent(DEVICE) +
    '&lat=' + lat.toFixed(6) + '&lon=' + lon.toFixed(6) +
    '&speed=20&sat=9&timestamp=' + ts;
  const resp = await fetch(url);
  if (!resp.ok) fail('OsmAnd report answered HTTP ' + resp.status + ': ' + (await resp.text()).slice(0, 200));
}

async function main() {
  for (const [k, v] of Object.entries({ FLEETWIRE_URL: BASE, FLEETWIRE_OSMAND_URL: OSMAND, FLEETWIRE_LOGIN: LOGIN, FLEETWIRE_TRACKER: TRACKER, FLEETWIRE_DEVICE: DEVICE })) {
    if (!v) fail(k + ' is not set');
  }
  if (!['websocket', 'long-polling', 'streaming', 'sse'].includes(TRANSPORT)) fail('unknown TRANSPORT ' + TRANSPORT);
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  await session(out, path.join(ARTIFACTS, 'fleet-page-' + TRANSPORT + '.png'), { width: 1280, height: 900 }, async (page) => {
    await page.goto(BASE + '/', { waitUntil: 'load' });
    if (TRANSPORT) await page.selectOption('#transport', TRANSPORT);
    await page.fill('#login', LOGIN);
    await page.fill('#password', PASSWORD);
    await page.click('#signin');

    const row = page.locator('table#trackers tbody tr[data-tracker-id="' + TRACKER + '"]');
    try {
      // Sign-in runs bcrypt, which takes seconds under the race detector
      // on a loaded machine: wait longer than for anything else.
      await row.waitFor({ state: 'visible', timeout: 40000 });
    } catch (e) {
      const loginError = await page.locator('#login-error').textContent().catch(() => '');
      fail('tracker row ' + TRACKER + ' did not appear' + (loginError ? ': ' + loginError : ''));
    }
    // The subscription is up once the badge says open.
    await page.waitForFunction(() => {
      const s = document.getElementById('status');
      return s && s.dataset.state === 'open';
    }, null, { timeout: 15000 }).catch(() => fail('status never became open'));
    out.status = (await page.textContent('#status')).trim();
    out.transportUsed = await page.getAttribute('#status', 'data-transport');
    if (!out.status.includes(TRANSPORT) || out.transportUsed !== TRANSPORT) {
      fail('status shows "' + out.status + '", not the ' + TRANSPORT + ' transport');
    }

    const lat0 = Number(await row.getAttribute('data-lat'));
    const lng0 = Number(await row.getAttribute('data-lng'));
    const hasStart = (await row.getAttribute('data-lat')) !== null;
    out.start = hasStart ? { lat: lat0, lng: lng0 } : null;
    const base = hasStart ? { lat: lat0, lng: lng0 } : { lat: 52.52, lng: 13.405 };

    let ts = Math.floor(Date.now() / 1000);
    let last = null;
    for (let i = 1; i <= MOVES; i++) {
      const lat = base.lat + 0.0013 * i;
      const lng = base.lng + 0.0021 * i;
      ts = Math.max(ts + 1, Math.floor(Date.now() / 1000));
      const t0 = Date.now();
      await report(lat, lng, ts);
      const moved = await page.waitForFunction(({ id, lat, lng, eps }) => {
        const r = document.querySelector('table#trackers tbody tr[data-tracker-id="' + id + '"]');
        const d = document.querySelector('#map g.tracker[data-tracker-id="' + id + '"]');
        const near = (e) => e && Math.abs(Number(e.dataset.lat) - lat) < eps && Math.abs(Number(e.dataset.lng) - lng) < eps;
        const cells = r && r.querySelector('td.lat') && Math.abs(Number(r.querySelector('td.lat').textContent) - lat) < eps;
        return near(r) && near(d) && cells;
      }, { id: TRACKER, lat, lng, eps: EPS }, { timeout: MOVE_TIMEOUT_MS, polling: 50 }).then(() => true, () => false);
      const ms = Date.now() - t0;
      out.moves.push({ lat: +lat.toFixed(6), lng: +lng.toFixed(6), ms, seen: moved });
      if (!moved) {
        const seen = { lat: await row.getAttribute('data-lat'), lng: await row.getAttribute('data-lng') };
        fail('tracker did not move to ' + lat.toFixed(6) + ',' + lng.toFixed(6) + ' within ' + MOVE_TIMEOUT_MS + ' ms (row shows ' + seen.lat + ',' + seen.lng + ')');
      }
      last = { lat, lng };
    }

    // Let the dot's move animation end before clicking it.
    await sleep(900);
    const dot = page.locator('#map g.tracker[data-tracker-id="' + TRACKER + '"] circle.body');
    await dot.dispatchEvent('click');
    out.dotClicked = await page.locator('#details[data-tracker-id="' + TRACKER + '"]').isVisible();

    await row.click();
    const details = page.locator('#details');
    await details.waitFor({ state: 'visible' });
    const shown = await page.evaluate(() => {
      const d = document.getElementById('details');
      const pre = d.querySelector('pre.state-json');
      let state = null;
      try { state = JSON.parse(pre.textContent); } catch (e) { /* reported below */ }
      const labels = Array.from(d.querySelectorAll('dl.fields dt')).map((dt) => dt.textContent);
      const signal = d.querySelector('dd[data-field="gps_signal"]');
      return { id: d.dataset.trackerId, state, text: d.textContent, labels, signal: signal && signal.textContent };
    });
    if (shown.id !== TRACKER) fail('details show tracker ' + shown.id + ', not ' + TRACKER);
    if (!shown.state || !shown.state.gps || !shown.state.gps.location) fail('details hold no state JSON with a location');
    const loc = shown.state.gps.location;
    if (Math.abs(loc.lat - last.lat) > EPS || Math.abs(loc.lng - last.lng) > EPS) {
      fail('details show ' + loc.lat + ',' + loc.lng + ', not the last position ' + last.lat + ',' + last.lng);
    }
    // gps.signal_level is a percentage (9 satellites of 12), not a count.
    if (shown.labels.includes('Satellites')) fail('details label a field "Satellites"');
    if (shown.signal !== shown.state.gps.signal_level + ' %' || shown.state.gps.signal_level !== 75) {
      fail('details show GPS signal ' + JSON.stringify(shown.signal) + ' for signal_level ' + shown.state.gps.signal_level);
    }
    for (const field of ['connection_status', 'movement_status', 'last_update']) {
      if (!(field in shown.state)) fail('details state lacks ' + field);
    }
    out.details = true;
    out.protocol = await page.textContent('#details dd[data-field="protocol"]').catch(() => null);
    if (out.protocol !== 'osmand') fail('details show protocol ' + out.protocol + ', not osmand');
    if (!(await page.textContent('#details dd[data-field="last_packet"]').catch(() => ''))) fail('details show no last packet time');

    // The trail of the last hour: the moves just made, drawn on the map.
    out.trail = await showTrail(page, TRACKER, '1', 2);

    if (TRAIL_TRACKER) {
      // A Teltonika tracker's drive of the last hours, with its protocol.
      await page.locator('table#trackers tbody tr[data-tracker-id="' + TRAIL_TRACKER + '"]').click();
      await page.locator('#details[data-tracker-id="' + TRAIL_TRACKER + '"]').waitFor({ state: 'visible' });
      const proto = await page.textContent('#details dd[data-field="protocol"]').catch(() => null);
      if (proto !== TRAIL_PROTOCOL) fail('tracker ' + TRAIL_TRACKER + ' shows protocol ' + proto + ', not ' + TRAIL_PROTOCOL);
      out.trailTracker = await showTrail(page, TRAIL_TRACKER, '6', 3);
      out.trailTracker.protocol = proto;
      // Let the map settle on the trail before the picture.
      await sleep(1200);
      out.trailScreenshot = path.join(ARTIFACTS, 'fleet-page-trail.png');
      await page.screenshot({ path: out.trailScreenshot, fullPage: true });
    }
  });
}

// showTrail picks a period in the details panel, asks for the trail and
// waits until the map draws it with at least min points.
async function showTrail(page, id, hours, min) {
  await page.selectOption('#details form.trail select.trail-period', hours);
  await page.click('#details form.trail button.trail-show');
  const drawn = await page.waitForFunction(({ id, min }) => {
    const line = document.querySelector('#map polyline.trail[data-tracker-id="' + id + '"]');
    const info = document.querySelector('#details .trail-info');
    return line && Number(line.dataset.points) >= min && line.getAttribute('points').split(' ').length >= min &&
      info && Number(info.dataset.points) >= min ? { points: Number(line.dataset.points), info: info.textContent } : false;
  }, { id, min }, { timeout: 10000 }).then((h) => h.jsonValue(), () => null);
  if (!drawn) {
    const info = await page.textContent('#details .trail-info').catch(() => '');
    fail('no trail of tracker ' + id + ' on the map (' + info + ')');
  }
  return drawn;
}

run(out, main, TOTAL_TIMEOUT_MS);
