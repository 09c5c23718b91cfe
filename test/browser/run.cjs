'use strict';
// What the browser scripts share: Debian's Chromium with a page that
// records its errors, a screenshot of how the page ended, and the outcome
// printed as one JSON line.

const { chromium } = require('playwright-core');

// fail stops a script with a message of its own (no stack trace).
function fail(msg) {
  const err = new Error(msg);
  err.expected = true;
  throw err;
}

// session launches Chromium ($CHROMIUM, default /usr/bin/chromium), opens
// a page of the viewport that records page errors and console errors in
// out.errors, and runs steps(page). Then it saves a full-page screenshot
// to shot (also after a failure, when the page got that far), fails on a
// page error, and sets out.ok.
async function session(out, shot, viewport, steps) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  });
  let page = null;
  try {
    const context = await browser.newContext({ viewport });
    page = await context.newPage();
    page.on('pageerror', (e) => out.errors.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') out.errors.push('console: ' + m.text());
    });
    page.setDefaultTimeout(15000);
    await steps(page);
    out.screenshot = shot;
    await page.screenshot({ path: shot, fullPage: true });
    const pageErrors = out.errors.filter((e) => e.startsWith('page error'));
    if (pageErrors.length) fail(pageErrors[0]);
    out.ok = true;
  } finally {
    if (page && !out.screenshot) {
      // A failure leaves a picture of where the page stood.
      if (await page.screenshot({ path: shot, fullPage: true }).then(() => true, () => false)) out.screenshot = shot;
    }
    await browser.close().catch(() => {});
  }
}

// run runs main, prints out as one JSON line and exits: 0 on success, 1
// on a failure (listed first in out.errors) or after timeoutMs.
function run(out, main, timeoutMs) {
  const finish = (code) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(code);
  };
  const guard = setTimeout(() => {
    out.errors.push('timed out after ' + timeoutMs + ' ms');
    finish(1);
  }, timeoutMs);
  main().then(() => {
    clearTimeout(guard);
    finish(0);
  }, (e) => {
    clearTimeout(guard);
    out.errors.unshift(e.expected ? e.message : (e.stack || String(e)));
    finish(1);
  });
}

module.exports = { fail, session, run };
