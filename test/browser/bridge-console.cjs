'use strict';
// Drives the fleet page's topic bridge console in headless Chromium: signs
// in, opens the console, switches the IoT node's relay with its toggle and
// with a typed frame, and sees the node's readings arrive. Then runs seed
// 003's client (seed-003.js) in the page as a user pasting it into the
// browser console would: wsConnect() with credentials in the URL of
// /auth/<bridge-name>, and the seed's relay frame.
// Prints one JSON line with the outcome; exits non-zero on failure.
// The environment it reads is described in README.md.

const fs = require('node:fs');
const path = require('node:path');
const { fail, session, run } = require('./run.cjs');

const env = process.env;
const BASE = (env.FLEETWIRE_URL || '').replace(/\/+$/, '');
const LOGIN = env.FLEETWIRE_LOGIN || '';
const PASSWORD = env.FLEETWIRE_PASSWORD || '';
const NODE = env.FLEETWIRE_NODE || '';
const BRIDGE_NAME = env.FLEETWIRE_BRIDGE_NAME || 'clown-talk-server_nodes_bridge_0';
const ARTIFACTS = env.FLEETWIRE_ARTIFACTS || path.join(__dirname, '..', 'artifacts');
const TOTAL_TIMEOUT_MS = Number(env.TOTAL_TIMEOUT_MS || 90000);
const RELAY = 'relay/i2c0-3b';

const out = {
  ok: false,
  node: null,
  toggled: false,
  typed: false,
  readings: false,
  seed: { config: null, relay: null, url: null },
  screenshot: null,
  errors: []
};

async function main() {
  for (const [k, v] of Object.entries({ FLEETWIRE_URL: BASE, FLEETWIRE_LOGIN: LOGIN, FLEETWIRE_NODE: NODE })) {
    if (!v) fail(k + ' is not set');
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const seedCode = fs.readFileSync(path.join(__dirname, 'seed-003.js'), 'utf8');

  await session(out, path.join(ARTIFACTS, 'bridge-console.png'), { width: 1280, height: 1100 }, async (page) => {
    // The seed's onMessage logs (rawData, topic, payload).
    const seedFrames = [];
    page.on('console', async (m) => {
      const args = m.args();
      if (m.type() !== 'log' || args.length !== 3) return;
      try {
        const [raw, topic, payload] = await Promise.all(args.map((a) => a.jsonValue()));
        if (Array.isArray(raw) && typeof topic === 'string') seedFrames.push({ topic, payload });
      } catch (e) { /* not one of the seed's lines */ }
    });

    await page.goto(BASE + '/', { waitUntil: 'load' });
    await page.fill('#login', LOGIN);
    await page.fill('#password', PASSWORD);
    await page.click('#signin');
    await page.locator('#fleet-view').waitFor({ state: 'visible' });

    await page.click('#bridge-console summary');
    await page.waitForFunction(() => document.getElementById('bridge-status').dataset.state === 'open')
      .catch(() => fail('the console did not connect'));
    await page.waitForFunction((node) => document.getElementById('bridge-node').textContent === node, NODE)
      .catch(async () => fail('default node shows ' + (await page.textContent('#bridge-node')) + ', not ' + NODE));
    out.node = NODE;

    const toggle = page.locator('#bridge-relays input[data-topic="' + RELAY + '"]');
    await toggle.waitFor({ state: 'attached' }).catch(() => fail('no toggle for ' + RELAY));
    const relayIs = (want, what) => page.waitForFunction(({ sel, want }) => {
      const t = document.querySelector(sel);
      return t && t.dataset.state === String(want) && t.checked === want;
    }, { sel: '#bridge-relays input[data-topic="' + RELAY + '"]', want }).catch(() => fail(what));

    await relayIs(false, 'the relay did not report off at first');
    await toggle.click();
    await relayIs(true, 'the toggle did not switch the relay on');
    out.toggled = true;

    await page.fill('#bridge-frame', '["' + RELAY + '/set", {"state": false}]');
    await page.click('#bridge-send button');
    await relayIs(false, 'the typed frame did not switch the relay off');
    out.typed = true;

    await page.waitForFunction(() => Array.from(document.querySelectorAll('#bridge-frames li.in'))
      .some((li) => li.textContent.startsWith('["thermometer/0:1/temperature",')))
      .catch(() => fail('no thermometer frame arrived'));
    out.readings = true;

    // Seed 003's client, pasted into the console as written.
    const host = new URL(BASE).host;
    out.seed.url = 'ws://' + encodeURIComponent(LOGIN) + ':' + encodeURIComponent(PASSWORD) + '@' + host + '/auth/' + BRIDGE_NAME;
    await page.evaluate(seedCode);
    await page.evaluate((u) => { wsConnect(u); }, out.seed.url); // eslint-disable-line no-undef
    const seen = async (pred, what) => {
      for (let i = 0; i < 150; i++) {
        const f = seedFrames.find(pred);
        if (f) return f;
        await new Promise((r) => setTimeout(r, 100));
      }
      fail('the seed client did not see ' + what + ' (saw ' + JSON.stringify(seedFrames.slice(-5)) + ')');
    };
    const cfg = await seen((f) => f.topic === 'clown.talk/-/config', 'its config answer');
    out.seed.config = cfg.payload;
    if (!cfg.payload || cfg.payload.node !== NODE) fail('the seed client got default node ' + JSON.stringify(cfg.payload));

    // Switch on with the console, then the seed's frame switches it off.
    await toggle.click();
    await relayIs(true, 'the toggle did not switch the relay on again');
    const before = seedFrames.length;
    await page.evaluate(() => { websocket.send("[\"relay/i2c0-3b/set\", {\"state\": false}]"); }); // eslint-disable-line no-undef
    const ack = await seen((f, i) => i >= before && f.topic === RELAY && f.payload && f.payload.state === false,
      'the relay report after its command');
    out.seed.relay = ack.payload;
    await relayIs(false, 'the console did not see the seed client switch the relay off');
  });
}

run(out, main, TOTAL_TIMEOUT_MS);
