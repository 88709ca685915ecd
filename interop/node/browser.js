#!/usr/bin/env node
// Opens a page in Debian's headless Chromium (driven by playwright-core) and
// waits for the page's own verdict.
//
// Usage: node browser.js PAGE_URL
//
// The page (served by the Go test) runs the client side of the interop
// scenario with the browser's `new WebSocket()` and, when done, sets
// window.interopResult = {ok: true} or {ok: false, error: "..."}.
// Exit status 0 when the page reports ok; otherwise the page's error (and its
// console output) on stderr and status 1.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium'; // Debian's package
const TIMEOUT_MS = 280 * 1000; // below the Go test's 5 min

// The machine may have no network: keep Chromium from reaching out.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node browser.js PAGE_URL\n');
    return 2;
  }
  const pageURL = argv[0];
  // A fresh, temporary profile (playwright passes it as --user-data-dir).
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'duplex-interop-chromium-'));
  let context;
  const t0 = Date.now();
  const log = (line) => process.stderr.write(`browser +${((Date.now() - t0) / 1000).toFixed(1)}s: ${line}\n`);
  const watchdog = setTimeout(() => {
    log(`timed out after ${TIMEOUT_MS / 1000}s`);
    process.exit(1);
  }, TIMEOUT_MS);
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 60 * 1000,
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (msg) => log(`console.${msg.type()}: ${msg.text()}`));
    page.on('pageerror', (err) => log(`page error: ${err.message}`));
    await page.goto(pageURL, { timeout: 60 * 1000 });
    await page.waitForFunction(() => window.interopResult !== undefined, null, {
      timeout: TIMEOUT_MS - 30 * 1000,
      polling: 100,
    });
    const result = await page.evaluate(() => window.interopResult);
    if (!result || result.ok !== true) {
      log(`MISMATCH: ${result && result.error ? result.error : JSON.stringify(result)}`);
      return 1;
    }
    log(`ok (${await page.evaluate(() => navigator.userAgent)})`);
    return 0;
  } catch (err) {
    log(`ERROR: ${err && err.stack ? err.stack : err}`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
