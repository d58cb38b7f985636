#!/usr/bin/env node
// mock_api.js — a stand-in for `keywatch serve`: serves dashboards/ui and canned JSON that
// follows docs/api.md (auth, roles, CSRF rules, paging, security headers), so that the UI
// and tests/browser/dashboard.js can be exercised without the C server.
//
//   node mock_api.js [--port N] [--viewer TOKEN] [--responder TOKEN] [--hostile-ua UA]
//                    [--ui DIR] [--open]
//
// Prints one line, {"url": "http://127.0.0.1:PORT"}, once listening.  Defaults: port 0
// (any), tokens "viewer-token" and "responder-token", the UI from ../../dashboards/ui.
// --open: no tokens configured (GETs open, every POST 403), as the server does then.
// The data is made up around the current time; alert #1's samples carry the hostile user
// agent and key mb_h0st's name is hostile too.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json',
  '.png': 'image/png', '.ico': 'image/x-icon',
};

function parseArgs(argv) {
  const o = {
    port: 0, viewer: 'viewer-token', responder: 'responder-token', open: false,
    ua: '<script>alert("ua")</script><img src=x onerror=alert(1)> Mozilla/5.0',
    ui: path.resolve(__dirname, '../../dashboards/ui'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => {
      if (i + 1 >= argv.length) throw new Error(a + ' needs a value');
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--viewer') o.viewer = v();
    else if (a === '--responder') o.responder = v();
    else if (a === '--hostile-ua') o.ua = v();
    else if (a === '--ui') o.ui = path.resolve(v());
    else if (a === '--open') o.open = true;
    else throw new Error('unknown argument ' + a);
  }
  return o;
}

// ---- made-up data ------------------------------------------------------------------------

const H = 3600e3;
const iso = (ms) => new Date(ms).toISOString();
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

function makeData(opts) {
  const now = Date.now(), hourNow = Math.floor(now / H) * H;
  const fp = (i) => (i.toString(16).padStart(2, '0') + 'a1b2c3d4e5f60718293a4b5c6d7e8f').slice(0, 32);
  const keys = [
    { key_prefix: 'mb_AbCd', name: 'reporting-exporter', store: 'metabase', group: 'Administrators', permission: null, rate: 40 },
    { key_prefix: 'mb_+QQD', name: 'etl nightly', store: 'metabase', group: 'Analysts', permission: null, rate: 12 },
    { key_prefix: 'mb_h0st', name: '<img src=x onerror=alert("name")>', store: 'metabase', group: 'All Users', permission: null, rate: 3 },
    { key_prefix: 'st_9xYz', name: 'seatable sync', store: 'seatable', group: null, permission: 'rw', rate: 7 },
    { key_prefix: 'kg_Q1w2', name: null, store: 'kong', group: null, permission: null, rate: 1 },
    { key_prefix: 'mb_idle', name: 'old dashboard', store: 'metabase', group: 'Analysts', permission: null, rate: 0 },
  ].map((k, i) => Object.assign(k, { fingerprint: fp(i + 1) }));

  const hoursOf = new Map();
  for (const k of keys) {
    const arr = [];
    for (let t = hourNow - 719 * H; t <= hourNow; t += H) {
      const hr = new Date(t).getUTCHours();
      const day = hr >= 7 && hr <= 19 ? 1 : 0.25;
      let c = Math.round(k.rate * day * (0.5 + rnd()));
      if (k.key_prefix === 'mb_AbCd' && t >= hourNow - 5 * H && t <= hourNow - 3 * H) c += 600;
      const e = Math.round(c * (k.key_prefix === 'kg_Q1w2' ? 0.5 : 0.02 * rnd()));
      arr.push({ t: iso(t), calls: c, errors: e });
    }
    hoursOf.set(k.key_prefix, arr);
  }
  for (const k of keys) {
    const hs = hoursOf.get(k.key_prefix);
    k.calls = hs.reduce((s, x) => s + x.calls, 0);
    k.errors = hs.reduce((s, x) => s + x.errors, 0);
    const used = hs.filter((x) => x.calls > 0);
    k.first_seen = used.length ? used[0].t : null;
    k.last_seen = used.length ? used[used.length - 1].t : null;
    k.endpoints = k.calls ? 3 : 0;
    k.clients = k.calls ? 2 : 0;
  }
  const key = (p) => keys.find((k) => k.key_prefix === p);

  const mk = (id, p, rule, type, severity, state, ago0, ago1, count, summary, details) => {
    const k = key(p);
    return {
      id, rule, type, severity, action: 'alert', state, key_prefix: p, fingerprint: k.fingerprint, name: k.name,
      first_seen: iso(now - ago0), last_seen: iso(now - ago1), count, summary,
      details: Object.assign({ at: iso(now - ago1), rule_source: 'builtin:default:1' }, details),
    };
  };
  const alerts = [
    mk(1, 'mb_AbCd', 'leaked-key-fanout', 'ip_fanout', 'high', 'open', 4.5 * H, 3.2 * H, 31,
      'used from 25 distinct addresses in 1h vs at most 10',
      { observed: 25, threshold: 11, window: '1h', client: '203.0.113.9', method: 'POST', path: '/api/dataset', user_agent: opts.ua }),
    mk(2, 'mb_AbCd', 'rate-spike', 'rate_spike', 'critical', 'open', 4 * H, 3.5 * H, 12,
      '640 calls/min vs baseline 38 (k=5)', { observed: 640, baseline: 38, threshold: 190, window: '1m' }),
    mk(3, 'kg_Q1w2', 'auth-failure-burst', 'auth_failures', 'medium', 'open', 20 * H, 19 * H, 3,
      '10 failed calls (401…) in 5m vs threshold 10', { observed: 10, threshold: 10, window: '5m', by: 'key' }),
    mk(4, 'mb_h0st', 'suspicious-agent', 'match', 'low', 'open', 30 * H, 30 * H, 1,
      'user agent matches a scanner signature', { user_agent: opts.ua, note: '</pre><script>alert("details")</script>' }),
    mk(5, 'mb_+QQD', 'new-endpoint', 'new_endpoint', 'info', 'acknowledged', 40 * H, 39 * H, 2,
      'first call of GET /api/user/{id} (not seen while learning)', { endpoint: '/api/user/{id}' }),
    mk(6, 'st_9xYz', 'off-hours', 'off_hours', 'medium', 'resolved', 60 * H, 58 * H, 4,
      '4 calls outside Mon–Fri 07:00–20:00 Europe/Berlin', { observed: 4 }),
  ];
  alerts[4].state_by = 'alice'; alerts[4].state_at = iso(now - 30 * H); alerts[4].note = 'expected: new report';
  alerts[5].state_by = 'bob'; alerts[5].state_at = iso(now - 50 * H); alerts[5].note = 'maintenance window';

  const call = (p, ago, client, method, pth, endpoint, status, ua) => ({
    time: iso(now - ago), key_prefix: p, fingerprint: key(p).fingerprint, client, method, path: pth, endpoint, status,
    user_agent: ua, host: 'metabase.example.com', source: 'nginx', resp_bytes: 1834, req_bytes: 212, latency_ms: 41,
  });
  const samples = new Map();
  samples.set(1, [
    call('mb_AbCd', 4.5 * H, '203.0.113.9', 'POST', '/api/dataset', '/api/dataset', 202, opts.ua),
    call('mb_AbCd', 4.4 * H, '198.51.100.23', 'GET', '/api/card/12/query?api_key=[redacted]', '/api/card/{id}/query', 200, 'python-requests/2.31'),
    call('mb_AbCd', 4.3 * H, '2001:db8::17', 'GET', '/api/user/1', '/api/user/{id}', 403, 'curl/8.5.0'),
  ]);
  samples.set(4, [call('mb_h0st', 30 * H, '192.0.2.66', 'GET', '/api/<svg onload=alert(1)>', '/api/{x}', 404, opts.ua)]);
  for (const a of alerts) if (!samples.has(a.id))
    samples.set(a.id, [call(a.key_prefix, KW_AGO(a, now), '10.0.0.' + a.id, 'GET', '/api/card/7', '/api/card/{id}', 200, 'keywatch-mock')]);

  const revocations = [{
    id: 1, alert_id: 2, key_prefix: 'mb_AbCd', fingerprint: key('mb_AbCd').fingerprint, name: key('mb_AbCd').name,
    rule: 'rate-spike', severity: 'critical', origin: 'rule', decided_by: 'rule:rate-spike', store: 'metabase',
    reason: 'rate spike', decided: iso(now - 3.4 * H), event_time: iso(now - 3.5 * H), state: 'dry_run', dry_run: true,
    attempts: 0, next_try: null, give_up_at: null, store_ref: '17', result: 'dry run: would DELETE /api/api-key/17', updated: iso(now - 3.4 * H),
  }];

  const row = (k, findings, reco, why, granted, used, unused, outside) => ({
    key_prefix: k.key_prefix, fingerprint: k.fingerprint, name: k.name, store: k.store, store_id: '17', group: k.group,
    permission: k.permission, created: iso(now - 400 * 24 * H), first_seen: k.first_seen, last_seen: k.last_seen,
    calls: k.calls, clients: k.clients, grant_known: granted !== null, granted: granted || [],
    used: used.map(([scope, calls]) => ({ scope, calls, last_use: k.last_seen })), unused,
    outside_grant: outside || { calls: 0, succeeded: 0, example: null }, findings, recommendation: reco, why,
  });
  const F = (finding, severity, text) => ({ finding, severity, text });
  const review = {
    generated: iso(now - 2 * H), since: iso(now - 30 * 24 * H), until: iso(now - 2 * H), previous: iso(now - 7 * 24 * H - 2 * H),
    summary: { keys: keys.length, findings: { unused: 1, dormant_woke: 0, over_privileged: 2, outside_grant: 1, rotation_due: 2, many_sources: 1 } },
    changes: { new_keys: ['mb_h0st'], new_findings: [{ key_prefix: 'mb_AbCd', finding: 'many_sources' }],
      resolved: [{ key_prefix: 'st_9xYz', finding: 'unused' }], still_open: 5 },
    keys: [
      row(key('mb_AbCd'), [F('over_privileged', 'high', 'group Administrators grants 14 scopes, 3 used'), F('many_sources', 'medium', '25 client addresses (max 10)'),
        F('rotation_due', 'low', '400 days old; rotate it')], 'group Analysts', 'covers every endpoint it called with 4 scopes instead of 14',
      ['card:read', 'card:write', 'dataset:query', 'user:read', 'setting:write'], [['card:read', 1200], ['dataset:query', 3400], ['user:read', 4]],
      ['card:write', 'setting:write']),
      row(key('mb_+QQD'), [F('over_privileged', 'medium', 'write grant, read-only behaviour')], 'permission r', 'read-only use for 30 days',
        ['table:read', 'table:write'], [['table:read', 800]], ['table:write']),
      row(key('mb_h0st'), [F('outside_grant', 'high', '3 calls outside the grant, 1 succeeded')], 'keep', 'scopes match; investigate the calls outside the grant',
        ['card:read'], [['card:read', 30]], [], { calls: 3, succeeded: 1, example: 'GET /api/<svg onload=alert(1)>' }),
      row(key('mb_idle'), [F('unused', 'medium', 'no call for 30 days'), F('rotation_due', 'low', '400 days old; rotate it')], 'delete', 'not used within the unused period',
        ['card:read'], [], ['card:read']),
      row(key('kg_Q1w2'), [], 'keep', 'no grant known', null, [['/anything', 20]], []),
    ],
  };
  const reviews = [{ id: 2, created: review.generated, since: review.since, until: review.until, keys: 6, findings: 7 },
    { id: 1, created: review.previous, since: review.since, until: review.previous, keys: 5, findings: 6 }];

  const status = {
    daemon: { pid: 4242, running: true, started: iso(now - 50 * H), heartbeat: iso(now - 3000) },
    sources: [
      { name: '/var/log/nginx/api.log', kind: 'file', state: 'following', lines: 1832211, calls: 1830001, malformed: 12, backlog: 0, rate: 41.5, lag_p50_ms: 180, lag_p99_ms: 950, drops: 0, gaps: 0 },
      { name: 'udp://0.0.0.0:5514', kind: 'syslog', state: 'listening', lines: 99120, calls: 99020, malformed: 0, backlog: 0, rate: 3.2, lag_p50_ms: 12, lag_p99_ms: 40, drops: 17, gaps: 0 },
      { name: '/var/log/caddy/<b>access</b>.json', kind: 'file', state: 'reading', lines: 5000, calls: 4990, malformed: 0, backlog: 3 << 20, rate: 900, lag_p50_ms: 8000, lag_p99_ms: 21000, drops: 0, gaps: 1 },
    ],
    outbox_backlog: 2, store_bytes: 187654321, version: '0.1.0-mock',
  };
  return { keys, hoursOf, alerts, samples, revocations, review, reviews, status };
}
function KW_AGO(a, now) {
  return now - Date.parse(a.last_seen);
}

// ---- HTTP ----------------------------------------------------------------------------

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('mock_api: ' + e.message + '\n');
    process.exit(2);
  }
  const D = makeData(opts);
  const tokens = opts.open ? {} : { [opts.viewer]: { role: 'viewer', name: 'viewer' }, [opts.responder]: { role: 'responder', name: 'responder' } };
  const uiFiles = new Map();
  for (const f of fs.readdirSync(opts.ui)) uiFiles.set('/' + f, path.join(opts.ui, f));

  function send(res, status, type, body, extra) {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    res.writeHead(status, Object.assign({
      'Content-Type': type, 'Content-Length': buf.length, 'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy': CSP,
    }, extra || {}));
    res.end(buf);
  }
  const json = (res, status, obj, extra) => send(res, status, 'application/json', JSON.stringify(obj), extra);
  const fail = (res, status, msg, extra) => json(res, status, { error: msg }, extra);

  function page(items, q) {
    const limit = Math.min(500, Math.max(1, Number(q.get('limit')) || 50));
    let off = 0;
    if (q.get('cursor')) off = Number(Buffer.from(q.get('cursor'), 'base64url').toString()) || 0;
    const slice = items.slice(off, off + limit);
    const next = off + limit < items.length ? Buffer.from(String(off + limit)).toString('base64url') : null;
    return { items: slice, next_cursor: next };
  }
  const findKey = (id) => {
    const m = D.keys.filter((k) => k.fingerprint === id || k.key_prefix.startsWith(id));
    const exact = D.keys.find((k) => k.key_prefix === id || k.fingerprint === id);
    return exact ? { k: exact } : m.length === 1 ? { k: m[0] } : m.length ? { err: 400 } : { err: 404 };
  };
  const sevRank = (s) => ['info', 'low', 'medium', 'high', 'critical'].indexOf(s);
  const setState = (a, state, who, note) => {
    a.state = state;
    a.state_by = who.name;
    a.state_at = new Date().toISOString();
    a.note = note || null;
  };

  async function api(req, res, u, body, who) {
    const p = u.pathname, q = u.searchParams, m = req.method;
    let mm;
    if (m === 'GET' && p === '/api/v1/alerts') {
      let xs = D.alerts.slice().sort((a, b) => b.id - a.id);
      if (q.get('state')) xs = xs.filter((a) => a.state === q.get('state'));
      if (q.get('severity')) {
        if (sevRank(q.get('severity')) < 0) return fail(res, 400, 'severity: one of info, low, medium, high, critical');
        xs = xs.filter((a) => sevRank(a.severity) >= sevRank(q.get('severity')));
      }
      if (q.get('rule')) xs = xs.filter((a) => a.rule === q.get('rule'));
      if (q.get('key')) xs = xs.filter((a) => a.key_prefix.startsWith(q.get('key')) || a.fingerprint === q.get('key'));
      return json(res, 200, page(xs, q));
    }
    if (m === 'GET' && (mm = p.match(/^\/api\/v1\/alerts\/(\d+)$/))) {
      const a = D.alerts.find((x) => x.id === Number(mm[1]));
      if (!a) return fail(res, 404, 'no alert ' + mm[1]);
      return json(res, 200, { alert: a, samples: D.samples.get(a.id) || [] });
    }
    if (m === 'POST' && p === '/api/v1/alerts/ack') {
      if (!body || !Array.isArray(body.ids)) return fail(res, 400, 'body: {"ids": [N…], "note": "…"}');
      let n = 0;
      for (const id of body.ids) {
        const a = D.alerts.find((x) => x.id === id);
        if (a) { setState(a, 'acknowledged', who, body.note); n++; }
      }
      return json(res, 200, { updated: n });
    }
    if (m === 'POST' && (mm = p.match(/^\/api\/v1\/alerts\/(\d+)\/(ack|resolve|reopen)$/))) {
      const a = D.alerts.find((x) => x.id === Number(mm[1]));
      if (!a) return fail(res, 404, 'no alert ' + mm[1]);
      setState(a, { ack: 'acknowledged', resolve: 'resolved', reopen: 'open' }[mm[2]], who, body && body.note);
      return json(res, 200, { alert: a });
    }
    if (m === 'GET' && p === '/api/v1/keys') {
      const xs = D.keys.slice().sort((a, b) => b.calls - a.calls).map(({ rate, ...k }) => k);
      return json(res, 200, page(xs, q));
    }
    if ((mm = p.match(/^\/api\/v1\/keys\/([^/]+)(\/revoke)?$/)) && (m === 'GET' ? !mm[2] : mm[2])) {
      const f = findKey(decodeURIComponent(mm[1]));
      if (f.err) return fail(res, f.err, f.err === 400 ? 'ambiguous: ' + mm[1] + ' names several keys' : 'no key ' + mm[1]);
      const k = f.k;
      if (m === 'POST') {
        const id = D.revocations.length + 1;
        D.revocations.unshift({ id, alert_id: null, key_prefix: k.key_prefix, fingerprint: k.fingerprint, name: k.name, rule: null,
          severity: null, origin: 'api', decided_by: who.name, store: k.store, reason: (body && body.reason) || null,
          decided: new Date().toISOString(), state: 'queued', dry_run: !!(body && body.dry_run), attempts: 0, result: null,
          updated: new Date().toISOString() });
        return json(res, 202, { revocation_id: id });
      }
      const n = q.get('hours') ? Number(q.get('hours')) : 48;
      if (!(n >= 1 && n <= 720)) return fail(res, 400, 'hours: 1 to 720');
      const { rate, ...key } = k;
      const ep = k.calls ? [
        { method: 'POST', template: '/api/dataset', calls: Math.round(k.calls * 0.6), errors: 3, last_seen: k.last_seen },
        { method: 'GET', template: '/api/card/{id}/query', calls: Math.round(k.calls * 0.3), errors: 1, last_seen: k.last_seen },
        { method: 'GET', template: '/api/<svg onload=alert(1)>', calls: 1, errors: 1, last_seen: k.last_seen },
      ] : [];
      const cl = k.calls ? [{ address: '10.1.2.3', calls: Math.round(k.calls * 0.9), last_seen: k.last_seen },
        { address: '2001:db8::17', calls: Math.round(k.calls * 0.1), last_seen: k.last_seen }] : [];
      return json(res, 200, {
        key, hours: D.hoursOf.get(k.key_prefix).slice(-n), endpoints: ep, clients: cl,
        alerts: D.alerts.filter((a) => a.key_prefix === k.key_prefix).sort((a, b) => b.id - a.id),
        revocations: D.revocations.filter((r) => r.key_prefix === k.key_prefix),
        review: D.review.keys.find((r) => r.key_prefix === k.key_prefix) || null,
      });
    }
    if (m === 'GET' && p === '/api/v1/calls') {
      const xs = [].concat(...D.samples.values()).filter((c) => !q.get('key') || c.key_prefix.startsWith(q.get('key')));
      return json(res, 200, page(xs.sort((a, b) => (a.time < b.time ? 1 : -1)), q));
    }
    if (m === 'GET' && p === '/api/v1/review') {
      if (q.get('id') && !['1', '2'].includes(q.get('id'))) return fail(res, 404, 'no review ' + q.get('id'));
      return json(res, 200, D.review);
    }
    if (m === 'GET' && p === '/api/v1/reviews') return json(res, 200, { items: D.reviews });
    if (m === 'GET' && p === '/api/v1/revocations') return json(res, 200, page(D.revocations, q));
    if (m === 'GET' && p === '/api/v1/status') return json(res, 200, D.status);
    if (m !== 'GET' && m !== 'POST') return fail(res, 405, 'method ' + m + ' not allowed');
    return fail(res, 404, 'no such endpoint: ' + m + ' ' + p);
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= 65536) chunks.push(c);
    });
    req.on('end', () => {
      const u = new URL(req.url, 'http://' + (req.headers.host || 'localhost'));
      const p = u.pathname;
      if (req.method === 'GET' && (p === '/' || p === '/ui' || p === '/ui/' || p.startsWith('/ui/'))) {
        const name = p === '/' || p === '/ui' || p === '/ui/' ? '/index.html' : p.slice(3);
        const file = uiFiles.get(name);
        if (!file) return fail(res, 404, 'no such file: ' + p);
        return send(res, 200, TYPES[path.extname(file)] || 'application/octet-stream', fs.readFileSync(file));
      }
      if (p === '/metrics') return send(res, 200, 'text/plain; version=0.0.4', 'keywatch_up 1\n');
      if (!p.startsWith('/api/v1/')) return fail(res, 404, 'no such path: ' + p);
      if (size > 65536) return fail(res, 413, 'body larger than 64 KiB');
      const auth = req.headers.authorization || '';
      const tok = auth.startsWith('Bearer ') ? auth.slice(7) : null;
      const noTokens = Object.keys(tokens).length === 0;
      const who = tok && tokens[tok];
      if (!noTokens && !who)
        return fail(res, 401, tok ? 'unknown token' : 'a bearer token is needed (Authorization: Bearer …)', { 'WWW-Authenticate': 'Bearer' });
      let body = null;
      if (req.method === 'POST') {
        if (noTokens) return fail(res, 403, 'no tokens configured: the API is read-only');
        if (who.role !== 'responder') return fail(res, 403, 'token "' + who.name + '" is a viewer: POST needs a responder token');
        if (!/^application\/json\b/i.test(req.headers['content-type'] || ''))
          return fail(res, 403, 'Content-Type: application/json is required');
        if (req.headers.origin && req.headers.origin !== 'http://' + req.headers.host)
          return fail(res, 403, 'cross-origin request refused (Origin ' + req.headers.origin + ')');
        const raw = Buffer.concat(chunks).toString();
        if (raw) {
          try { body = JSON.parse(raw); } catch (e) { return fail(res, 400, 'body: not JSON'); }
        }
      }
      api(req, res, u, body, who || { name: 'anonymous', role: 'viewer' }).catch((e) => fail(res, 500, String(e)));
    });
  });
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ url: 'http://127.0.0.1:' + server.address().port }) + '\n');
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
