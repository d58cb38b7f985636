#!/usr/bin/env node
// dashboard.js — drives keywatch's web UI in headless Chromium against a running server
// (keywatch serve, or mock_api.js) and checks it against the JSON API.
//
//   node dashboard.js --base URL --viewer TOKEN --responder TOKEN --hostile-ua UA
//                     --out DIR [--hours N] [--timeout SECONDS]
//
// Steps: open the UI without a token (it must ask for one), enter the responder token;
// the alert queue lists what GET /api/v1/alerts returns (open ones, then every state);
// a selection survives the 5 s live refresh; ack one alert and see its state change
// through the API; a key page draws one bar per hour (some non-zero) and marks an alert;
// the revoke dialog is in the page and needs the prefix typed; with the viewer token an
// ack is refused (a message, the actions disabled, the state unchanged through the API);
// the hostile user agent shows as text in an alert's sample calls.  Throughout: no
// dialog (alert/confirm/prompt), no pageerror, no console error (bar the HTTP 401 before
// the token and the HTTP 403 of the refused ack), no request outside the server's origin.
// Screenshots of every page go to DIR.  Prints a JSON summary; exits 0 when every check
// passed, 1 on any failure (the message says which), 2 on a usage error.
// The server's data must hold at least one open alert with a key and an alert whose
// samples carry the hostile user agent; the key page range (--hours, default 48) must
// cover one of the alerts.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.KW_CHROMIUM || '/usr/bin/chromium';

function usage(msg) {
  process.stderr.write('dashboard: ' + msg + '\nusage: node dashboard.js --base URL --viewer TOKEN ' +
    '--responder TOKEN --hostile-ua UA --out DIR [--hours N] [--timeout SECONDS]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { base: null, viewer: null, responder: null, ua: null, out: null, hours: 48, timeout: 150 };
  const names = { '--base': 'base', '--viewer': 'viewer', '--responder': 'responder', '--hostile-ua': 'ua',
    '--out': 'out', '--hours': 'hours', '--timeout': 'timeout' };
  for (let i = 0; i < argv.length; i++) {
    const k = names[argv[i]];
    if (!k) usage('unknown argument ' + argv[i]);
    if (i + 1 >= argv.length) usage(argv[i] + ' needs a value');
    o[k] = argv[++i];
  }
  for (const k of ['base', 'viewer', 'responder', 'ua', 'out'])
    if (!o[k]) usage('--' + (k === 'ua' ? 'hostile-ua' : k) + ' is required');
  o.base = o.base.replace(/\/+$/, '');
  o.hours = Number(o.hours);
  o.timeout = Number(o.timeout);
  if (!(o.hours >= 1 && o.hours <= 720)) usage('--hours: 1 to 720');
  try {
    o.origin = new URL(o.base).origin;
  } catch (e) {
    usage('--base: not a URL');
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const summary = {
  ok: false, base: opts.base, checks: [], screenshots: [], console_errors: [], expected_http_errors: [],
  page_errors: [], dialogs: [], foreign_requests: [],
};
let phase = 'start';

class Failure extends Error {}
function check(name, cond, detail) {
  summary.checks.push(Object.assign({ check: name, ok: !!cond }, detail === undefined ? {} : { detail }));
  if (!cond) throw new Failure(name + (detail === undefined ? '' : ': ' + JSON.stringify(detail)));
}

// ---- the API, directly ------------------------------------------------------------------

async function api(method, p, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(opts.base + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  return { status: r.status, data };
}
async function apiOk(p, token) {
  const r = await api('GET', p, token);
  if (r.status !== 200) throw new Failure('GET ' + p + ' → ' + r.status + ' ' + JSON.stringify(r.data));
  return r.data;
}
async function apiAll(p, query, token) {
  let items = [], cursor = null;
  for (let i = 0; i < 100; i++) {
    const q = new URLSearchParams(Object.assign({ limit: '500' }, query, cursor ? { cursor } : {}));
    const d = await apiOk(p + '?' + q, token);
    items = items.concat(d.items || []);
    cursor = d.next_cursor;
    if (!cursor) return items;
  }
  throw new Failure('GET ' + p + ': more than 100 pages');
}

// ---- the page ---------------------------------------------------------------------------

async function shot(page, name) {
  const file = path.join(opts.out, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  summary.screenshots.push(file);
}

async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

// Ids of the alert rows once the queue view is loaded (following "Load more").
async function queueIds(page) {
  await page.waitForFunction(() => {
    const c = document.querySelector('#alert-count');
    return c && c.textContent !== '';
  }, null, { timeout: 10000 });
  for (let i = 0; i < 50; i++) {
    const more = await page.$('#load-more');
    if (!more) break;
    const n = await page.$$eval('#alerts-table tr[data-alert-id]', (r) => r.length);
    await more.click();
    await page.waitForFunction((k) => document.querySelectorAll('#alerts-table tr[data-alert-id]').length > k, n, { timeout: 10000 });
  }
  return page.$$eval('#alerts-table tr[data-alert-id]', (rs) => rs.map((r) => Number(r.getAttribute('data-alert-id'))));
}

async function setStateFilter(page, value) {
  const old = await page.$('#alerts-table');
  await page.selectOption('select[data-filter="state"]', value);
  if (old) await old.waitForElementState('hidden', { timeout: 10000 }).catch(() => {});
}

const sameSet = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

async function confirmDialog(page, note) {
  await page.waitForSelector('dialog.dlg[open]', { timeout: 5000 });
  if (note !== null) await page.fill('dialog.dlg .dlg-note', note);
  await page.click('dialog.dlg .dlg-ok');
  await page.waitForSelector('dialog.dlg', { state: 'detached', timeout: 5000 });
}

async function bannerText(page, kind) {
  await page.waitForSelector('#banner[data-kind="' + kind + '"]:not([hidden])', { timeout: 8000 });
  return page.textContent('#banner');
}

async function run(browser) {
  fs.mkdirSync(opts.out, { recursive: true });
  const R = opts.responder, V = opts.viewer;

  // The server must want tokens, or the role checks below mean nothing.
  const anon = await api('GET', '/api/v1/alerts');
  check('API without a token answers 401', anon.status === 401, { status: anon.status });

  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    const http = /Failed to load resource: the server responded with a status of (\d+)/.exec(m.text());
    const isApi = url.startsWith(opts.origin + '/api/v1/');
    if (http && isApi && ((http[1] === '401' && phase === 'before-token') || (http[1] === '403' && phase === 'viewer-ack')))
      summary.expected_http_errors.push(phase + ': ' + http[1] + ' ' + url);
    else summary.console_errors.push(phase + ': ' + m.text() + (url ? ' (' + url + ')' : ''));
  });
  page.on('pageerror', (e) => summary.page_errors.push(phase + ': ' + String((e && e.message) || e)));
  page.on('dialog', (d) => {
    summary.dialogs.push(phase + ': ' + d.type() + ': ' + d.message());
    d.dismiss().catch(() => {});
  });
  let alertPolls = 0;
  context.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(opts.origin + '/') && !u.startsWith('data:')) summary.foreign_requests.push(phase + ': ' + u);
    if (u.startsWith(opts.origin + '/api/v1/alerts?')) alertPolls++;
  });

  // 1. Without a token the UI asks for one.
  phase = 'before-token';
  const resp = await page.goto(opts.base + '/', { waitUntil: 'load', timeout: 20000 });
  check('GET / answers 200 text/html', resp.status() === 200 && /^text\/html/.test(resp.headers()['content-type'] || ''),
    { status: resp.status(), type: resp.headers()['content-type'] });
  const csp = resp.headers()['content-security-policy'] || '';
  check('GET / carries the CSP', /default-src 'none'/.test(csp) && /script-src 'self'/.test(csp), csp);
  const ask = await bannerText(page, 'error');
  check('the UI asks for a token on 401', /token/i.test(ask) && /401/.test(ask), ask);

  // 2. The responder token; the queue (open alerts by default) matches the API.
  await page.fill('#token-input', R);
  await page.press('#token-input', 'Enter');
  phase = 'responder';
  const apiOpen = (await apiAll('/api/v1/alerts', { state: 'open' }, R)).map((a) => a.id);
  const uiOpen = await queueIds(page);
  check('queue lists the open alerts of the API', sameSet(uiOpen, apiOpen), { ui: uiOpen.length, api: apiOpen.length });
  await shot(page, 'alerts');

  await setStateFilter(page, 'any');
  const apiAny = await apiAll('/api/v1/alerts', {}, R);
  const uiAny = await queueIds(page);
  check('queue with state "any" lists every alert of the API', sameSet(uiAny, apiAny.map((a) => a.id)),
    { ui: uiAny.length, api: apiAny.length });
  await setStateFilter(page, 'open');
  await queueIds(page);
  check('there is an open alert to work with', apiOpen.length > 0, { open: apiOpen.length });

  // 3. A selection survives the live refresh.
  const selId = apiOpen[apiOpen.length - 1];
  await page.check('#alerts-table tr[data-alert-id="' + selId + '"] input.sel');
  const polls0 = alertPolls;
  await page.waitForTimeout(5800);
  const stillChecked = await page.isChecked('#alerts-table tr[data-alert-id="' + selId + '"] input.sel');
  check('the queue refreshes itself (polling)', alertPolls > polls0, { requests: alertPolls - polls0 });
  check('the selection survives a refresh', stillChecked);
  const bulkLabel = await page.textContent('#bulk-ack');
  check('bulk ack counts the selection', /\(1\)/.test(bulkLabel), bulkLabel);
  await page.uncheck('#alerts-table tr[data-alert-id="' + selId + '"] input.sel');

  // 4. Ack one alert; the API says it changed.
  const ackId = apiOpen[0];
  const note = 'checked by dashboard.js <b>not bold</b>';
  await page.click('#alerts-table tr[data-alert-id="' + ackId + '"] button[data-action="ack"]');
  await confirmDialog(page, note);
  const okMsg = await bannerText(page, 'ok');
  check('ack confirmed in the page', /acknowledged/.test(okMsg), okMsg);
  const acked = (await apiOk('/api/v1/alerts/' + ackId, R)).alert;
  check('API shows the alert acknowledged with the note', acked.state === 'acknowledged' && acked.note === note && !!acked.state_by,
    { state: acked.state, note: acked.note, state_by: acked.state_by });
  await page.waitForSelector('#alerts-table tr[data-alert-id="' + ackId + '"]', { state: 'detached', timeout: 8000 });
  check('the acknowledged alert left the open queue', true);

  // 5. A key page: bars per hour, an alert marker, the revoke dialog.
  const since = Date.now() - opts.hours * 3600e3;
  const withKey = apiAny.filter((a) => a.key_prefix || a.fingerprint);
  // The key with the most alerts in the range (the newest alert's key on a tie).
  const inRange = withKey.filter((a) => Date.parse(a.last_seen) >= since);
  const perKey = (a) => inRange.filter((b) => b.fingerprint === a.fingerprint).length;
  const target = inRange.reduce((best, a) => (!best || perKey(a) > perKey(best) ? a : best), null);
  check('an alert with a key falls within the last ' + opts.hours + ' hours', !!target, { alerts_with_key: withKey.length });
  const keyId = target.key_prefix && !target.key_prefix.includes('/') ? target.key_prefix : target.fingerprint;
  const keyDoc = await apiOk('/api/v1/keys/' + encodeURIComponent(keyId) + '?hours=' + opts.hours, R);
  await go(page, '#/keys/' + encodeURIComponent(keyId) + '?hours=' + opts.hours);
  await page.waitForSelector('svg#key-chart', { timeout: 10000 });
  const chart = await page.$eval('svg#key-chart', (svg) => ({
    bars: svg.querySelectorAll('rect.bar').length,
    nonzero: [...svg.querySelectorAll('rect.bar')].filter((r) => parseFloat(r.getAttribute('height')) > 0).length,
    alert_markers: svg.querySelectorAll('.marker-alert').length,
    revocation_markers: svg.querySelectorAll('.marker-revocation').length,
    marked_ids: [...svg.querySelectorAll('.marker-alert')].map((m) => Number(m.getAttribute('data-alert-id'))),
  }));
  summary.chart = Object.assign({ key: keyId, hours: keyDoc.hours.length }, chart);
  check('chart has one bar per hour', chart.bars === keyDoc.hours.length && chart.bars > 0, { bars: chart.bars, hours: keyDoc.hours.length });
  check('chart has a bar with a height', chart.nonzero > 0, { nonzero: chart.nonzero });
  check('chart marks the alert', chart.marked_ids.includes(target.id), { alert: target.id, marked: chart.marked_ids });
  const revsIn = (keyDoc.revocations || []).filter((v) => Date.parse(v.decided) >= Date.parse(keyDoc.hours[0].t));
  if (revsIn.length) check('chart marks the revocations', chart.revocation_markers === revsIn.length,
    { marked: chart.revocation_markers, api: revsIn.length });
  const ep = await page.$$eval('h2', (hs) => hs.map((x) => x.textContent));
  check('key page has endpoints, clients, grants, alerts, revocations',
    ['Endpoints', 'Clients', 'Grants vs use'].every((t) => ep.some((x) => x.startsWith(t))) &&
    ep.some((x) => x.startsWith('Alerts')) && ep.some((x) => x.startsWith('Revocations')), ep);
  const h1 = (await page.textContent('main h1')).trim();
  check('key page names the key', h1 === (target.key_prefix || target.fingerprint),
    { shown: h1, alert_key: target.key_prefix, api_key_prefix: keyDoc.key && keyDoc.key.key_prefix });
  await shot(page, 'key');
  await page.click('#revoke');
  await page.waitForSelector('dialog.dlg[open]', { timeout: 5000 });
  const okDisabled = await page.isDisabled('dialog.dlg .dlg-ok');
  await page.fill('dialog.dlg .dlg-confirm', await page.textContent('dialog.dlg label[for="dlg-confirm"] code'));
  const okEnabled = !(await page.isDisabled('dialog.dlg .dlg-ok'));
  await shot(page, 'revoke-dialog');
  await page.click('dialog.dlg .dlg-cancel');
  await page.waitForSelector('dialog.dlg', { state: 'detached', timeout: 5000 });
  check('revoke asks in the page and needs the prefix typed', okDisabled && okEnabled);

  // 6. The viewer token: an ack is refused, said so, and nothing changes.
  await go(page, '#/alerts');
  await page.fill('#token-input', V);
  await page.press('#token-input', 'Enter');
  await queueIds(page);
  const open2 = (await apiAll('/api/v1/alerts', { state: 'open' }, V)).map((a) => a.id);
  let victim, action, before;
  if (open2.length) {
    victim = open2[0]; action = 'ack'; before = 'open';
  } else {
    await setStateFilter(page, 'acknowledged');
    await queueIds(page);
    victim = ackId; action = 'resolve'; before = 'acknowledged';
  }
  await page.click('#alerts-table tr[data-alert-id="' + victim + '"] button[data-action="' + action + '"]');
  phase = 'viewer-ack';
  await confirmDialog(page, 'must be refused');
  const refused = await bannerText(page, 'error');
  phase = 'viewer';
  check('viewer: refusal shown', /403/.test(refused) && /read-only|viewer/i.test(refused), refused);
  const role = await page.textContent('#role');
  check('viewer: role shown', /viewer/.test(role), role);
  await page.waitForFunction(() => [...document.querySelectorAll('button.responder')].every((b) => b.disabled || b.offsetParent === null),
    null, { timeout: 8000 });
  check('viewer: responder actions disabled or hidden', true);
  const after = (await apiOk('/api/v1/alerts/' + victim, V)).alert;
  check('viewer: state unchanged in the API', after.state === before, { id: victim, state: after.state, expected: before });
  await shot(page, 'alerts-viewer');

  // 7. The hostile user agent is text in the sample calls.
  let hostile = null;
  for (const a of apiAny.slice(0, 100)) {
    const d = await apiOk('/api/v1/alerts/' + a.id, V);
    if ((d.samples || []).some((c) => c.user_agent === opts.ua)) { hostile = a.id; break; }
  }
  check('an alert sample carries the hostile user agent (server data)', hostile !== null);
  await go(page, '#/alerts/' + hostile);
  await page.waitForSelector('table.samples', { timeout: 10000 });
  const ua = await page.$$eval('table.samples td.ua', (tds, want) => tds.some((t) => t.textContent === want), opts.ua);
  check('hostile user agent shown as text in the sample calls', ua);
  const dom = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('script')) if (!/^\/ui\/[a-z]+\.js$/.test(el.getAttribute('src') || '')) bad.push('<script>');
    for (const el of document.querySelectorAll('img')) if (el.getAttribute('src') !== '/ui/favicon.svg') bad.push('<img ' + el.getAttribute('src') + '>');
    for (const el of document.querySelectorAll('iframe,object,embed,base')) bad.push('<' + el.tagName.toLowerCase() + '>');
    for (const el of document.querySelectorAll('*'))
      for (const at of el.attributes) if (/^on/i.test(at.name) || (at.name === 'style' && at.value !== '')) bad.push(el.outerHTML.slice(0, 160));
    return bad;
  });
  check('no injected element or attribute in the page', dom.length === 0, dom);
  const details = await page.textContent('#alert-details');
  check('details shown as pretty-printed JSON text', /\n  "/.test(details));
  await shot(page, 'alert');

  // 8. The other pages.
  await go(page, '#/keys');
  await page.waitForSelector('table.keys, main .empty', { timeout: 10000 });
  const apiKeys = await apiAll('/api/v1/keys', {}, V);
  for (let i = 0; i < 20 && await page.$('#load-more'); i++) {
    const n = await page.$$eval('table.keys tbody tr', (r) => r.length);
    await page.click('#load-more');
    await page.waitForFunction((k) => document.querySelectorAll('table.keys tbody tr').length > k, n, { timeout: 10000 });
  }
  const uiKeys = await page.$$eval('table.keys tbody tr', (r) => r.length);
  check('keys page lists the keys of the API', uiKeys === apiKeys.length, { ui: uiKeys, api: apiKeys.length });
  await shot(page, 'keys');
  await go(page, '#/review');
  await page.waitForSelector('#review-summary, main .empty', { timeout: 10000 });
  await shot(page, 'review');
  await go(page, '#/health');
  await page.waitForSelector('#daemon-state', { timeout: 10000 });
  const srcRows = await page.$$eval('table.sources tbody tr', (r) => r.length);
  const st = await apiOk('/api/v1/status', V);
  check('health page lists the sources', srcRows === (st.sources || []).length, { ui: srcRows, api: (st.sources || []).length });
  await shot(page, 'health');
  await page.waitForTimeout(300);
  await context.close();

  check('no dialog fired', summary.dialogs.length === 0, summary.dialogs);
  check('no pageerror', summary.page_errors.length === 0, summary.page_errors);
  check('no console error', summary.console_errors.length === 0, summary.console_errors);
  check('no request left the origin', summary.foreign_requests.length === 0, summary.foreign_requests);
}

async function main() {
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    summary.error = 'cannot launch ' + CHROMIUM + ': ' + e.message;
    process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
    process.exit(1);
  }
  try {
    await run(browser);
    summary.ok = true;
  } catch (e) {
    summary.error = (e instanceof Failure ? '' : 'during ' + phase + ': ') + (e.message || String(e)).split('\n')[0];
  } finally {
    await browser.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
  if (!summary.ok) process.stderr.write('dashboard: FAILED: ' + summary.error + '\n');
  process.exit(summary.ok ? 0 : 1);
}

const guard = setTimeout(() => {
  summary.error = 'timed out after ' + opts.timeout + ' s (during ' + phase + ')';
  process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
  process.stderr.write('dashboard: FAILED: ' + summary.error + '\n');
  process.exit(1);
}, opts.timeout * 1000);
guard.unref();
main();
