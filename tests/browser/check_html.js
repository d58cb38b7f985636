#!/usr/bin/env node
// check_html.js — opens a keywatch HTML report in headless Chromium and says whether
// anything in it tried to run or load.
//
//   node check_html.js FILE.html [--expect TEXT]... [--screenshot OUT.png]
//
// The page is loaded twice, with JavaScript enabled both times:
//   1. as shipped, its Content-Security-Policy honoured: any CSP violation (an inline
//      handler, a script, an image) shows up as a console error;
//   2. with the CSP bypassed, so that the HTML escaping alone must keep a hostile key name
//      from running (a CSP only hides an escaping bug).
// Each load fails on: a console message of type error, a pageerror, a dialog (alert), a
// network request other than the file itself, a <script>/<iframe>/<object>/<embed>/<img>
// element, an on* attribute, or an expected text missing from the page's textContent.
// It also checks that the CSP meta tag is there.  Prints one JSON verdict on stdout;
// exits 0 when clean, 1 on any finding, 2 on a usage or launch error.
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.KW_CHROMIUM || '/usr/bin/chromium';
const CSP = "default-src 'none'; style-src 'unsafe-inline'";

function usage(msg) {
  process.stderr.write(`check_html: ${msg}\n` +
    'usage: node check_html.js FILE.html [--expect TEXT]... [--screenshot OUT.png]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { file: null, expect: [], screenshot: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--expect' || a === '--screenshot') {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      if (a === '--expect') opts.expect.push(argv[++i]);
      else opts.screenshot = argv[++i];
    } else if (opts.file === null) {
      opts.file = a;
    } else {
      usage(`unexpected argument ${a}`);
    }
  }
  if (opts.file === null) usage('no file');
  return opts;
}

async function load(browser, url, bypassCSP, opts) {
  const context = await browser.newContext({ javaScriptEnabled: true, bypassCSP });
  const page = await context.newPage();
  const v = { bypassCSP, console_errors: [], page_errors: [], dialogs: [], requests: [],
              elements: [], missing_text: [], csp: null };

  page.on('console', (m) => { if (m.type() === 'error') v.console_errors.push(m.text()); });
  page.on('pageerror', (e) => v.page_errors.push(String(e && e.message || e)));
  page.on('dialog', (d) => { v.dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  context.on('request', (r) => { if (r.url() !== url) v.requests.push(r.url()); });

  await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  await page.waitForTimeout(300); // late timers, lazy loads

  const dom = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('script,iframe,object,embed,img,link,base,form')) {
      bad.push(`<${el.tagName.toLowerCase()}>`);
    }
    for (const el of document.querySelectorAll('*')) {
      for (const at of el.attributes) {
        if (/^on/i.test(at.name)) bad.push(`${el.tagName.toLowerCase()}[${at.name}]`);
      }
    }
    const meta = document.querySelector('meta[http-equiv="Content-Security-Policy"]');
    return { bad, csp: meta ? meta.getAttribute('content') : null,
             text: document.body ? document.body.textContent : '' };
  });
  v.elements = dom.bad;
  v.csp = dom.csp;
  for (const t of opts.expect) if (!dom.text.includes(t)) v.missing_text.push(t);

  if (opts.screenshot && !bypassCSP) await page.screenshot({ path: opts.screenshot, fullPage: true });
  await context.close();
  v.ok = v.console_errors.length + v.page_errors.length + v.dialogs.length +
         v.requests.length + v.elements.length + v.missing_text.length === 0 && v.csp === CSP;
  return v;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const url = 'file://' + path.resolve(opts.file);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // No background traffic: this machine has no network besides the registries.
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: `launch ${CHROMIUM}: ${e.message}` }) + '\n');
    process.exit(2);
  }
  const verdict = { ok: false, file: url, loads: [] };
  try {
    verdict.loads.push(await load(browser, url, false, opts));
    verdict.loads.push(await load(browser, url, true, opts));
    verdict.ok = verdict.loads.every((l) => l.ok);
  } catch (e) {
    verdict.error = e.message;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(verdict, null, 1) + '\n');
  process.exit(verdict.ok ? 0 : 1);
}

const guard = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, error: 'timed out after 90 s' }) + '\n');
  process.exit(1);
}, 90000);
guard.unref();
main();
