// views.js — the pages of the keywatch UI: alert queue, alert, keys, key, review, health.
'use strict';
(function () {
  const KW = window.KW;
  const h = KW.h;
  const views = (KW.views = {});
  const POLL_MS = 5000;

  // ---- building blocks ---------------------------------------------------------------

  const card = (title, ...body) => h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...body);
  const empty = (msg) => h('p', { class: 'empty' }, msg);
  const loading = () => h('p', { class: 'muted' }, 'Loading…');

  // cols: [label | [label, class]]; rows: <tr> nodes or arrays of cells.
  function table(cols, rows, cls) {
    const th = cols.map((c) => (Array.isArray(c) ? h('th', { class: c[1] }, c[0]) : h('th', null, c)));
    return h('div', { class: 'table-wrap' }, h('table', { class: cls || null },
      h('thead', null, h('tr', null, th)),
      h('tbody', null, rows.map((r) => (r instanceof Node ? r : h('tr', null,
        r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', null, c)))))))));
  }
  const td = (cls, ...c) => h('td', { class: cls }, ...c);
  const num = (v) => td('num', KW.num(v));

  KW.errorBox = function (e) {
    const s = e && e.status;
    const hint = s === 401 ? 'A token is needed: paste one in the box at the top.'
      : s === 503 ? 'The database is busy; try again in a moment.' : '';
    return h('div', { class: 'error-box' }, h('strong', null, s ? 'Error ' + s + ': ' : 'Error: '),
      (e && e.message) || String(e), hint ? h('div', { class: 'muted' }, hint) : null);
  };

  function statusCell(st) {
    const n = Number(st);
    return td('num', h('span', { class: ['http', n >= 500 ? 'http-5' : n >= 400 ? 'http-4' : n >= 300 ? 'http-3' : 'http-2'] },
      st === null || st === undefined ? '—' : String(st)));
  }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs.filter((p) => p).map(([k, v]) =>
      [h('dt', null, k), h('dd', null, v === null || v === undefined || v === '' ? '—' : v)]));
  }

  function chips(list, cls) {
    if (!list || !list.length) return h('span', { class: 'muted' }, 'none');
    return h('span', { class: 'chips' }, list.map((x) => h('span', { class: ['chip', cls] }, String(x))));
  }

  // ---- alert actions -------------------------------------------------------------------

  const ACTIONS = {
    ack: { label: 'Ack', verb: 'Acknowledge', done: 'acknowledged' },
    resolve: { label: 'Resolve', verb: 'Resolve', done: 'resolved' },
    reopen: { label: 'Reopen', verb: 'Reopen', done: 'reopened' },
  };

  async function alertAction(a, action, after) {
    const A = ACTIONS[action];
    const r = await KW.dialog({
      title: A.verb + ' alert #' + a.id,
      intro: [h('p', null, KW.sev(a.severity), ' ', h('strong', null, a.rule), ' — ', a.summary || '')],
      note: 'Note (optional)', multiline: true, placeholder: 'what you found, ticket, next step…',
      ok: A.verb,
    });
    if (!r) return;
    try {
      await KW.api('POST', '/api/v1/alerts/' + encodeURIComponent(a.id) + '/' + action, r.note ? { note: r.note } : {});
      KW.onPostOk();
      KW.flash('Alert #' + a.id + ' ' + A.done + '.', 'ok');
    } catch (e) {
      if (e.status !== 403 && e.status !== 401) KW.flash(A.verb + ' failed: ' + e.message, 'error');
    }
    if (after) after();
  }

  function actionButtons(a, after) {
    const ro = KW.isViewer();
    const list = [];
    if (a.state === 'open') list.push('ack');
    if (a.state !== 'resolved') list.push('resolve');
    if (a.state !== 'open') list.push('reopen');
    return h('span', { class: 'actions' }, list.map((act) => h('button', {
      type: 'button', class: ['small', 'responder', act === 'ack' && 'primary'], 'data-action': act,
      disabled: ro, title: ro ? 'read-only token (viewer)' : ACTIONS[act].verb + ' alert #' + a.id,
      on: { click: () => alertAction(a, act, after) },
    }, ACTIONS[act].label)));
  }

  // ---- #/alerts ------------------------------------------------------------------------

  const selected = new Set();   // alert ids, kept across refreshes
  const rulesSeen = new Set();

  views.alerts = async function (ctx, q) {
    const f = {
      state: q.get('state') || 'open', severity: q.get('severity') || '',
      rule: q.get('rule') || '', key: q.get('key') || '',
    };
    let pages = 1, sig = '', items = [], more = null;

    const setFilter = (k, v) => {
      const n = new URLSearchParams();
      const nf = Object.assign({}, f, { [k]: v });
      for (const x of Object.keys(nf)) if (nf[x] && !(x === 'state' && nf[x] === 'open')) n.set(x, nf[x]);
      const s = n.toString();
      KW.go('#/alerts' + (s ? '?' + s : ''));
    };
    const select = (name, label, opts, val) => h('label', { class: 'field' }, label,
      h('select', { name, 'data-filter': name, on: { change: (e) => setFilter(name, e.target.value) } },
        opts.map(([v, t]) => h('option', { value: v, selected: v === val }, t))));
    const text = (name, label, val, list) => h('label', { class: 'field' }, label,
      h('input', { type: 'search', name, 'data-filter': name, value: val, list: list || null, placeholder: 'any',
        spellcheck: 'false', on: { change: (e) => setFilter(name, e.target.value.trim()) } }));
    const datalist = h('datalist', { id: 'rules-seen' }, [...rulesSeen].sort().map((r) => h('option', { value: r })));

    const tbody = h('tbody');
    const all = h('input', { type: 'checkbox', class: 'sel-all', 'aria-label': 'select all shown',
      on: { change: (e) => {
        for (const a of items) e.target.checked ? selected.add(a.id) : selected.delete(a.id);
        render();
      } } });
    const bulkBtn = h('button', { type: 'button', class: 'primary responder', id: 'bulk-ack',
      on: { click: bulkAck } }, 'Acknowledge selected');
    const clearBtn = h('button', { type: 'button', class: 'secondary', on: { click: () => { selected.clear(); render(); } } }, 'Clear selection');
    const selCount = h('span', { class: 'sel-count' });
    const countEl = h('span', { class: 'count', id: 'alert-count' });
    const moreBox = h('div', { class: 'more' });

    KW.replace(ctx.el,
      h('div', { class: 'page-head' }, h('h1', null, 'Alert queue'), countEl),
      h('form', { class: 'filters', on: { submit: (e) => e.preventDefault() } },
        select('state', 'State', [['open', 'open'], ['acknowledged', 'acknowledged'], ['resolved', 'resolved'], ['any', 'any state']], f.state),
        select('severity', 'Severity at least', [['', 'any']].concat(KW.SEVS.map((s) => [s, s])), f.severity),
        text('rule', 'Rule', f.rule, 'rules-seen'), text('key', 'Key prefix', f.key), datalist),
      h('div', { class: 'bulk' }, selCount, bulkBtn, clearBtn),
      h('div', { class: 'table-wrap' }, h('table', { class: 'alerts', id: 'alerts-table' },
        h('thead', null, h('tr', null, h('th', { class: 'c-sel' }, all), h('th', null, 'Severity'),
          h('th', null, 'Alert — observed vs expected'), h('th', null, 'Key'), h('th', { class: 'num' }, 'Count'),
          h('th', null, 'Last seen'), h('th', null, 'State'), h('th', null, 'Actions'))),
        tbody)),
      moreBox);

    function render() {
      const focus = document.activeElement;
      const fid = focus && focus.closest && focus.closest('tr[data-alert-id]') ? focus.closest('tr').getAttribute('data-alert-id') : null;
      const fsel = fid ? (focus.getAttribute('data-action') ? '[data-action="' + focus.getAttribute('data-action') + '"]' : '.sel') : null;
      const visible = new Set(items.map((a) => a.id));
      for (const id of [...selected]) if (!visible.has(id)) selected.delete(id);
      KW.replace(tbody, items.length ? items.map(row)
        : h('tr', null, h('td', { colspan: 8, class: 'empty' }, 'No alerts match these filters.')));
      const n = selected.size, ro = KW.isViewer();
      selCount.textContent = n ? n + ' selected' : 'Select alerts to acknowledge them together';
      bulkBtn.textContent = 'Acknowledge selected' + (n ? ' (' + n + ')' : '');
      bulkBtn.disabled = ro || n === 0;
      bulkBtn.title = ro ? 'read-only token (viewer)' : '';
      clearBtn.disabled = n === 0;
      all.checked = items.length > 0 && n === items.length;
      all.indeterminate = n > 0 && n < items.length;
      countEl.textContent = items.length + (more ? '+' : '') + ' alert' + (items.length === 1 ? '' : 's');
      KW.replace(moreBox, more ? h('button', { type: 'button', class: 'secondary', id: 'load-more',
        on: { click: () => { pages++; load(false); } } }, 'Load more') : null);
      if (fid) {
        const el = tbody.querySelector('tr[data-alert-id="' + fid + '"] ' + fsel);
        if (el) el.focus();
      }
    }

    function row(a) {
      const cb = h('input', { type: 'checkbox', class: 'sel', 'aria-label': 'select alert ' + a.id,
        checked: selected.has(a.id), on: { change: (e) => {
          if (e.target.checked) selected.add(a.id); else selected.delete(a.id);
          render();
        } } });
      return h('tr', { 'data-alert-id': a.id, 'data-state': a.state, class: ['sevline-' + a.severity, a.state !== 'open' && 'dim'] },
        td('c-sel', cb),
        td(null, KW.sev(a.severity)),
        td('c-main', h('a', { href: '#/alerts/' + encodeURIComponent(a.id), class: 'alert-link' },
          h('span', { class: 'muted mono' }, '#' + a.id + ' '), a.rule || '?'),
        h('div', { class: 'summary' }, a.summary || '')),
        td(null, KW.keyLink(a.key_prefix, a.fingerprint, a.name)),
        num(a.count),
        td('nowrap', h('span', { title: a.last_seen || '' }, KW.ago(a.last_seen)), h('div', { class: 'muted small' }, KW.time(a.last_seen, true))),
        td(null, KW.stateBadge(a.state), a.state_by ? h('div', { class: 'muted small', title: a.note || '' }, 'by ' + a.state_by) : null),
        td('c-act', actionButtons(a, () => load(false))));
    }

    async function bulkAck() {
      const ids = items.filter((a) => selected.has(a.id)).map((a) => a.id);
      if (!ids.length) return;
      const r = await KW.dialog({ title: 'Acknowledge ' + ids.length + ' alert' + (ids.length > 1 ? 's' : ''),
        intro: ['Alerts ' + ids.map((i) => '#' + i).join(', ') + '.'], note: 'Note (optional)', multiline: true, ok: 'Acknowledge' });
      if (!r) return;
      try {
        const res = await KW.api('POST', '/api/v1/alerts/ack', r.note ? { ids, note: r.note } : { ids });
        KW.onPostOk();
        selected.clear();
        KW.flash((res && res.updated !== undefined ? res.updated : ids.length) + ' alert(s) acknowledged.', 'ok');
      } catch (e) {
        if (e.status !== 403 && e.status !== 401) KW.flash('Acknowledge failed: ' + e.message, 'error');
      }
      load(false);
    }

    async function load(fromPoll) {
      const query = { state: f.state === 'any' ? '' : f.state, severity: f.severity, rule: f.rule, key: f.key, limit: 100 };
      let r;
      try {
        r = await KW.pages('/api/v1/alerts', query, pages);
      } catch (e) {
        if (!ctx.alive()) return;
        if (!fromPoll) KW.replace(tbody, h('tr', null, h('td', { colspan: 8 }, KW.errorBox(e))));
        return;
      }
      if (!ctx.alive()) return;
      KW.stamp('Live · updated');
      const s = JSON.stringify(r);
      if (s === sig) return;
      sig = s;
      items = r.items;
      more = r.next_cursor;
      for (const a of items) if (a.rule && !rulesSeen.has(a.rule)) {
        rulesSeen.add(a.rule);
        datalist.appendChild(h('option', { value: a.rule }));
      }
      render();
    }
    KW.replace(tbody, h('tr', null, h('td', { colspan: 8 }, loading())));
    await load(false);
    ctx.poll(() => load(true), POLL_MS);
  };

  // ---- #/alerts/ID ---------------------------------------------------------------------

  const METRICS = [['observed', 'Observed'], ['threshold', 'Threshold'], ['baseline', 'Baseline'],
    ['expected', 'Expected'], ['window', 'Window'], ['by', 'Counted by']];

  views.alert = async function (ctx, id) {
    KW.replace(ctx.el, loading());
    const r = await KW.api('GET', '/api/v1/alerts/' + encodeURIComponent(id));
    if (!ctx.alive()) return;
    const a = r.alert || {}, samples = r.samples || [], d = a.details && typeof a.details === 'object' ? a.details : {};
    const metrics = METRICS.filter(([k]) => d[k] !== undefined && d[k] !== null && typeof d[k] !== 'object');
    const hasEp = samples.some((c) => c.endpoint), hasHost = samples.some((c) => c.host);
    KW.replace(ctx.el,
      h('p', { class: 'crumbs' }, h('a', { href: '#/alerts' }, '← Alert queue')),
      h('div', { class: 'page-head' }, KW.sev(a.severity), h('h1', null, h('span', { class: 'muted mono' }, '#' + a.id + ' '), a.rule || '?'),
        KW.stateBadge(a.state), h('span', { class: 'grow' }), actionButtons(a, () => KW.rerender())),
      h('div', { class: 'grid2' },
        card('Observed vs expected',
          h('p', { class: 'big-summary', id: 'alert-summary' }, a.summary || '—'),
          metrics.length ? h('div', { class: 'metrics' }, metrics.map(([k, l]) =>
            h('div', { class: ['metric', k === 'observed' && 'metric-obs'] }, h('div', { class: 'metric-l' }, l), h('div', { class: 'metric-v' }, String(d[k]))))) : null,
          h('h3', null, 'Details'),
          h('pre', { class: 'json', id: 'alert-details' }, JSON.stringify(d, null, 2))),
        card('Alert',
          facts([
            ['Key', KW.keyLink(a.key_prefix, a.fingerprint, a.name)],
            a.fingerprint ? ['Fingerprint', h('span', { class: 'mono small' }, a.fingerprint)] : null,
            ['Rule', h('span', null, a.rule || '—', h('span', { class: 'muted' }, a.type ? ' (' + a.type + ')' : ''))],
            ['Action', a.action], ['Firings', KW.num(a.count)],
            ['First seen', KW.when(a.first_seen)], ['Last seen', KW.when(a.last_seen)],
            ['State', h('span', null, KW.stateBadge(a.state), a.state_by ? ' by ' + a.state_by : '', a.state_at ? ', ' : '', a.state_at ? KW.when(a.state_at) : '')],
            a.note ? ['Note', h('span', { class: 'note' }, a.note)] : null,
          ]),
          a.key_prefix || a.fingerprint ? h('p', null, h('a', { href: KW.keyHref(a.key_prefix, a.fingerprint), class: 'button-link' }, 'Open the key →')) : null)),
      card('Sample calls (' + samples.length + ')',
        samples.length ? table(['Time', 'Client', 'Method', 'Path', hasEp ? 'Endpoint' : null, ['Status', 'num'], hasHost ? 'Host' : null, 'User agent'].filter(Boolean),
          samples.map((c) => h('tr', null, td('nowrap', KW.when(c.time)), td('mono', c.client || '—'), td('mono', c.method || ''),
            td('mono wrap', c.path || ''), hasEp ? td('mono wrap', c.endpoint || '') : null, statusCell(c.status),
            hasHost ? td('mono', c.host || '') : null, td('ua', c.user_agent || '—'))), 'samples')
          : empty('No sample calls were kept for this alert.')));
  };

  // ---- #/keys --------------------------------------------------------------------------

  views.keys = async function (ctx) {
    let pages = 1, items = [], more = null, filter = '';
    const body = h('div');
    const countEl = h('span', { class: 'count' });
    KW.replace(ctx.el, h('div', { class: 'page-head' }, h('h1', null, 'Keys'), countEl, h('span', { class: 'grow' }),
      h('input', { type: 'search', class: 'key-filter', placeholder: 'filter by prefix or name', 'aria-label': 'filter keys',
        on: { input: (e) => { filter = e.target.value.trim().toLowerCase(); render(); } } })), body);
    function render() {
      const shown = filter ? items.filter((k) => (k.key_prefix || '').toLowerCase().includes(filter) ||
        (k.name || '').toLowerCase().includes(filter) || (k.fingerprint || '').startsWith(filter)) : items;
      countEl.textContent = items.length + (more ? '+' : '') + ' keys';
      KW.replace(body, shown.length ? table(['Key', ['Calls', 'num'], ['Errors', 'num'], ['Endpoints', 'num'], ['Clients', 'num'],
        'First seen', 'Last seen', 'Store · group · permission'],
      shown.map((k) => h('tr', null, td(null, KW.keyLink(k.key_prefix, k.fingerprint, k.name)), num(k.calls),
        td('num', KW.num(k.errors), h('span', { class: 'muted small' }, ' ' + KW.pct(k.errors || 0, k.calls || 0))),
        num(k.endpoints), num(k.clients), td('nowrap', KW.when(k.first_seen, true)), td('nowrap', KW.when(k.last_seen, true)),
        td('small', [k.store, k.group, k.permission].filter(Boolean).join(' · ') || '—'))), 'keys')
        : empty(items.length ? 'No key matches the filter.' : 'No keys seen yet.'),
      more ? h('div', { class: 'more' }, h('button', { type: 'button', class: 'secondary', id: 'load-more',
        on: { click: () => { pages++; load(); } } }, 'Load more')) : null);
    }
    async function load() {
      const r = await KW.pages('/api/v1/keys', { limit: 200 }, pages);
      if (!ctx.alive()) return;
      items = r.items;
      more = r.next_cursor;
      render();
    }
    KW.replace(body, loading());
    await load();
  };

  // ---- #/keys/PREFIX -------------------------------------------------------------------

  const RANGES = [[24, '24 h'], [48, '48 h'], [168, '7 days'], [720, '30 days']];

  views.key = async function (ctx, id, q) {
    const hours = Math.min(720, Math.max(1, parseInt(q.get('hours'), 10) || 48));
    KW.replace(ctx.el, loading());
    const r = await KW.api('GET', '/api/v1/keys/' + encodeURIComponent(id), null, { hours });
    if (!ctx.alive()) return;
    const k = r.key || {}, alerts = r.alerts || [], revs = r.revocations || [];
    const label = k.key_prefix || k.fingerprint || id;
    const ro = KW.isViewer();
    const range = h('span', { class: 'seg' }, RANGES.map(([n, t]) => h('a', {
      href: '#/keys/' + encodeURIComponent(id) + '?hours=' + n, class: n === hours ? 'on' : null }, t)));
    const totals = (r.hours || []).reduce((s, x) => [s[0] + (x.calls || 0), s[1] + (x.errors || 0)], [0, 0]);

    KW.replace(ctx.el,
      h('p', { class: 'crumbs' }, h('a', { href: '#/keys' }, '← Keys')),
      h('div', { class: 'page-head' }, h('h1', { class: 'mono' }, label), k.name ? h('span', { class: 'keyname-big' }, k.name) : null,
        h('span', { class: 'grow' }),
        h('button', { type: 'button', class: 'danger responder', id: 'revoke', disabled: ro,
          title: ro ? 'read-only token (viewer)' : 'Revoke this key at its key store', on: { click: () => revoke(k, id) } }, 'Revoke key…')),
      card(null, facts([
        ['Fingerprint', h('span', { class: 'mono small' }, k.fingerprint || '—')],
        ['Calls', KW.num(k.calls)], ['Errors', KW.num(k.errors) + ' (' + KW.pct(k.errors || 0, k.calls || 0) + ')'],
        ['Endpoints', KW.num(k.endpoints)], ['Clients', KW.num(k.clients)],
        ['First seen', KW.when(k.first_seen)], ['Last seen', KW.when(k.last_seen)],
        ['Store', [k.store, k.group, k.permission].filter(Boolean).join(' · ') || '—'],
      ])),
      card(null, h('div', { class: 'card-head' }, h('h2', null, 'Calls per hour'),
        h('span', { class: 'muted' }, KW.num(totals[0]) + ' calls, ' + KW.num(totals[1]) + ' errors'), h('span', { class: 'grow' }), range),
      KW.chart(r.hours || [], alerts, revs),
      h('div', { class: 'legend' }, h('span', { class: 'sw sw-calls' }), 'calls ', h('span', { class: 'sw sw-err' }), 'errors ',
        h('span', { class: 'sw sw-alert' }), 'alert ', h('span', { class: 'sw sw-rev' }), 'revocation',
        h('span', { class: 'muted' }, ' · hours in UTC'))),
      h('div', { class: 'grid2' },
        card('Endpoints', (r.endpoints || []).length ? table(['Method', 'Endpoint', ['Calls', 'num'], ['Errors', 'num'], 'Last seen'],
          r.endpoints.map((e) => [td('mono', e.method || ''), td('mono wrap', e.template || ''), num(e.calls), num(e.errors), td('nowrap', KW.when(e.last_seen, true))]))
          : empty('No calls.')),
        card('Clients', (r.clients || []).length ? table(['Address', ['Calls', 'num'], 'Last seen'],
          r.clients.map((c) => [td('mono', c.address || '—'), num(c.calls), td('nowrap', KW.when(c.last_seen, true))]))
          : empty('No calls.'))),
      card('Grants vs use (latest review)', reviewRow(r.review)),
      card('Alerts (' + alerts.length + ')', alerts.length ? table(['Severity', 'Alert', 'State', 'Last seen'],
        alerts.map((a) => [td(null, KW.sev(a.severity)), td(null, h('a', { href: '#/alerts/' + encodeURIComponent(a.id) }, '#' + a.id + ' ' + (a.rule || '')),
          h('div', { class: 'summary' }, a.summary || '')), td(null, KW.stateBadge(a.state)), td('nowrap', KW.when(a.last_seen, true))]))
        : empty('No alerts for this key.')),
      card('Revocations (' + revs.length + ')', revs.length ? table(['#', 'State', 'Decided', 'By', 'Reason', 'Result'],
        revs.map((v) => [td('mono', '#' + v.id), td(null, h('span', { class: ['badge', 'rv-' + v.state] }, v.state || '?'), v.dry_run && v.state !== 'dry_run' ? h('span', { class: 'badge st-other' }, 'dry run') : null),
          td('nowrap', KW.when(v.decided, true)), td(null, v.decided_by || v.origin || '—'), td('wrap', v.reason || '—'), td('wrap small', v.result || '—')]))
        : empty('This key was never revoked.')));
  };

  function reviewRow(rv) {
    if (!rv) return empty('This key is not in the latest stored review (run keywatch review, or wait for the scheduled one).');
    const used = rv.used || [];
    const usedSet = new Set(used.map((u) => u.scope));
    const og = rv.outside_grant || {};
    return h('div', null,
      h('p', { class: 'reco' }, 'Recommendation: ', h('strong', { class: 'reco-' + String(rv.recommendation || '').split(/\W/)[0] }, rv.recommendation || '—'),
        rv.why ? h('span', { class: 'muted' }, ' — ' + rv.why) : null),
      findingsList(rv.findings),
      facts([
        ['Granted', rv.grant_known === false ? h('span', { class: 'muted' }, 'unknown (no grant configured for this key)')
          : (rv.granted || []).length ? h('span', { class: 'chips' }, rv.granted.map((g) => h('span', { class: ['chip', usedSet.has(g) ? 'chip-used' : 'chip-unused'] }, g))) : chips([])],
        ['Unused', chips(rv.unused, 'chip-unused')],
        ['Outside the grant', og.calls ? h('span', null, KW.num(og.calls) + ' calls (' + KW.num(og.succeeded) + ' succeeded)',
          og.example ? h('span', { class: 'mono small' }, ' e.g. ' + og.example) : null) : 'none'],
      ]),
      used.length ? table(['Scope used', ['Calls', 'num'], 'Last use'], used.map((u) => [td('mono', u.scope), num(u.calls), td('nowrap', KW.when(u.last_use, true))])) : null);
  }

  function findingsList(fs) {
    if (!fs || !fs.length) return h('p', { class: 'muted' }, 'No findings.');
    return h('ul', { class: 'findings' }, fs.map((x) => h('li', null, KW.sev(x.severity), ' ', h('strong', null, x.finding), ' — ', x.text || '')));
  }

  async function revoke(k, id) {
    const label = k.key_prefix || k.fingerprint || id;
    const r = await KW.dialog({
      title: 'Revoke key ' + label, danger: true,
      intro: ['keywatch will ask the key store to revoke this key. Every client still using it will ' +
        'start failing. The request is queued for the responder and recorded with your token\'s name.'],
      note: 'Reason', multiline: true, placeholder: 'why this key is revoked (kept in the audit trail)',
      dryRun: 'Dry run only (record what would be done, revoke nothing)',
      confirmText: label, ok: 'Revoke',
    });
    if (!r) return;
    try {
      const res = await KW.api('POST', '/api/v1/keys/' + encodeURIComponent(id) + '/revoke',
        { reason: r.note || 'revoked from the dashboard', dry_run: r.dry_run });
      KW.onPostOk();
      KW.flash('Revocation ' + (res && res.revocation_id !== undefined ? '#' + res.revocation_id + ' ' : '') +
        'queued' + (r.dry_run ? ' (dry run)' : '') + ' for ' + label + '.', 'ok', true);
    } catch (e) {
      if (e.status !== 403 && e.status !== 401) KW.flash('Revocation failed: ' + e.message, 'error', true);
    }
    KW.rerender();
  }

  // ---- the chart: calls per hour, alerts and revocations marked ------------------------

  KW.chart = function (hours, alerts, revs) {
    const s = KW.s;
    const W = 960, H = 250, ml = 50, mr = 12, mt = 22, mb = 30, pw = W - ml - mr, ph = H - mt - mb;
    const svg = s('svg', { class: 'chart', id: 'key-chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img',
      'aria-label': 'calls per hour over ' + hours.length + ' hours' });
    const n = hours.length;
    if (!n) {
      svg.appendChild(s('text', { x: W / 2, y: H / 2, class: 'axis', 'text-anchor': 'middle' }, 'no data'));
      return svg;
    }
    const step = 3600e3, t0 = KW.ms(hours[0].t), t1 = t0 + n * step;
    const max = Math.max(1, ...hours.map((x) => x.calls || 0));
    const mag = Math.pow(10, Math.floor(Math.log10(max)));
    const top = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= max) || max;
    const bw = pw / n, gap = bw > 4 ? Math.min(2, bw * 0.15) : 0;
    const r2 = (v) => Math.round(v * 100) / 100;
    const xOf = (t) => ml + ((t - t0) / step) * bw;
    const yOf = (v) => mt + ph - (v / top) * ph;

    const grid = s('g', { class: 'grid' });
    for (const v of [0, top / 2, top]) {
      grid.appendChild(s('line', { x1: ml, x2: W - mr, y1: r2(yOf(v)), y2: r2(yOf(v)) }));
      grid.appendChild(s('text', { x: ml - 6, y: r2(yOf(v)) + 4, class: 'axis', 'text-anchor': 'end' }, KW.num(v)));
    }
    svg.appendChild(grid);

    const every = n <= 24 ? 3 : n <= 48 ? 6 : n <= 168 ? 24 : 72;
    const ticks = s('g', { class: 'ticks' });
    hours.forEach((x, i) => {
      const d = new Date(KW.ms(x.t)), hr = d.getUTCHours();
      if (hr % Math.min(every, 24) || (every > 24 && Math.floor(KW.ms(x.t) / 864e5) % (every / 24))) return;
      const xx = r2(ml + i * bw);
      ticks.appendChild(s('line', { x1: xx, x2: xx, y1: mt + ph, y2: mt + ph + 4 }));
      const lbl = hr === 0 ? (d.getUTCMonth() + 1 + '').padStart(2, '0') + '-' + (d.getUTCDate() + '').padStart(2, '0')
        : (hr + '').padStart(2, '0') + ':00';
      ticks.appendChild(s('text', { x: xx, y: H - 10, class: ['axis', hr === 0 && 'axis-day'], 'text-anchor': 'middle' }, lbl));
    });
    svg.appendChild(ticks);

    // Spans of alerts first, so that bars stay on top of the shading.
    const marks = s('g', { class: 'marks' });
    const inRange = (a, b) => isFinite(a) && b >= t0 && a < t1;
    const clampX = (t) => Math.max(ml, Math.min(W - mr, xOf(t)));
    for (const a of alerts) {
      const a0 = KW.ms(a.first_seen), a1 = isFinite(KW.ms(a.last_seen)) ? KW.ms(a.last_seen) : a0;
      if (!inRange(a0, a1)) continue;
      const x0 = r2(clampX(a0)), x1 = r2(Math.max(clampX(a1), x0 + 1));
      const sev = KW.SEVS.includes(a.severity) ? a.severity : 'info';
      svg.appendChild(s('rect', { class: ['span', 'span-' + sev], x: x0, y: mt, width: r2(x1 - x0), height: ph }));
      marks.appendChild(s('g', { class: ['marker', 'marker-alert', 'mk-' + sev], 'data-alert-id': a.id },
        s('title', null, 'Alert #' + a.id + ' ' + (a.rule || '') + ' (' + a.severity + '), ' + KW.time(a.first_seen) +
          ' – ' + KW.time(a.last_seen) + ' UTC: ' + (a.summary || '')),
        s('line', { x1: x0, x2: x0, y1: mt - 6, y2: mt + ph }),
        s('path', { d: 'M' + x0 + ' ' + (mt - 2) + 'l-5 -9h10z' })));
    }
    for (const v of revs) {
      const t = KW.ms(v.decided || v.updated);
      if (!inRange(t, t)) continue;
      const x = r2(clampX(t));
      marks.appendChild(s('g', { class: ['marker', 'marker-revocation'], 'data-revocation-id': v.id },
        s('title', null, 'Revocation #' + v.id + ' (' + (v.state || '?') + (v.dry_run ? ', dry run' : '') + ') ' +
          KW.time(v.decided) + ' UTC by ' + (v.decided_by || v.origin || '?') + (v.reason ? ': ' + v.reason : '')),
        s('line', { x1: x, x2: x, y1: mt - 6, y2: mt + ph }),
        s('rect', { x: x - 4, y: mt - 14, width: 8, height: 8 })));
    }

    const bars = s('g', { class: 'bars' });
    hours.forEach((x, i) => {
      const c = x.calls || 0, e = Math.min(x.errors || 0, c);
      const bx = r2(ml + i * bw + gap / 2), w = r2(Math.max(bw - gap, 0.5));
      const tip = KW.time(x.t, true) + ' UTC — ' + KW.num(c) + ' calls, ' + KW.num(x.errors || 0) + ' errors';
      const hc = r2((c / top) * ph);
      bars.appendChild(s('rect', { class: 'bar', x: bx, y: r2(mt + ph - hc), width: w, height: hc, 'data-t': x.t }, s('title', null, tip)));
      if (e > 0) {
        const he = Math.max(r2((e / top) * ph), 1);
        bars.appendChild(s('rect', { class: 'bar-err', x: bx, y: r2(mt + ph - he), width: w, height: he }, s('title', null, tip)));
      }
    });
    svg.appendChild(bars);
    svg.appendChild(marks);
    svg.appendChild(s('line', { class: 'baseline', x1: ml, x2: W - mr, y1: mt + ph, y2: mt + ph }));
    return svg;
  };

  // ---- #/review ------------------------------------------------------------------------

  const FINDINGS = {
    unused: 'Unused', dormant_woke: 'Dormant, woke up', over_privileged: 'Over-privileged',
    outside_grant: 'Outside grant', rotation_due: 'Rotation due', many_sources: 'Many sources',
  };

  views.review = async function (ctx, q) {
    KW.replace(ctx.el, loading());
    const id = q.get('id');
    // The list first: with no stored review, no request for one (a 404 is noise).
    let rv, list = null;
    try {
      list = ((await KW.api('GET', '/api/v1/reviews')) || {}).items || [];
    } catch (e) {
      if (e.status === 401) throw e;
    }
    try {
      if (list && !list.length && !id) throw new KW.ApiError(404, 'no review stored');
      rv = await KW.api('GET', '/api/v1/review', null, id ? { id } : null);
    } catch (e) {
      if (e.status !== 404) throw e;
      if (!ctx.alive()) return;
      KW.replace(ctx.el, h('div', { class: 'page-head' }, h('h1', null, 'Permission review')),
        card(null, empty(id ? 'There is no review #' + id + '.' : 'No review is stored yet. Run keywatch review, or configure scheduled reviews.')));
      return;
    }
    if (!ctx.alive()) return;
    const sum = rv.summary || {}, fc = sum.findings || {}, ch = rv.changes, keys = rv.keys || [];
    list = list || [];
    const picker = list.length > 1 ? h('select', { 'aria-label': 'stored reviews', on: { change: (e) => KW.go('#/review' + (e.target.value ? '?id=' + encodeURIComponent(e.target.value) : '')) } },
      h('option', { value: '' }, 'latest'),
      list.map((x) => h('option', { value: x.id, selected: String(x.id) === id }, '#' + x.id + ' — ' + KW.time(x.created, true)))) : null;
    const changeItems = (xs) => (xs && xs.length ? h('ul', { class: 'plain' }, xs.map((c) => h('li', null, KW.keyLink(c.key_prefix), ' ',
      h('span', { class: 'chip' }, FINDINGS[c.finding] || c.finding)))) : h('span', { class: 'muted' }, 'none'));

    KW.replace(ctx.el,
      h('div', { class: 'page-head' }, h('h1', null, 'Permission review'), h('span', { class: 'muted' },
        'generated ', KW.when(rv.generated, true), ' · period ', KW.when(rv.since, true), ' – ', KW.when(rv.until, true)),
      h('span', { class: 'grow' }), picker),
      h('div', { class: 'tiles', id: 'review-summary' },
        h('div', { class: 'tile' }, h('div', { class: 'tile-v' }, KW.num(sum.keys)), h('div', { class: 'tile-l' }, 'keys reviewed')),
        Object.keys(fc).map((k) => h('div', { class: ['tile', fc[k] > 0 && 'tile-hot'] },
          h('div', { class: 'tile-v' }, KW.num(fc[k])), h('div', { class: 'tile-l' }, FINDINGS[k] || k)))),
      card('Changes since the previous review',
        ch ? h('div', null, h('p', { class: 'muted' }, 'Previous review: ', KW.when(rv.previous, true), ' · ', KW.num(ch.still_open), ' finding(s) still open'),
          facts([
            ['New keys', (ch.new_keys || []).length ? h('span', { class: 'chips' }, ch.new_keys.map((p) => KW.keyLink(p))) : h('span', { class: 'muted' }, 'none')],
            ['New findings', changeItems(ch.new_findings)],
            ['Resolved', changeItems(ch.resolved)],
          ])) : empty('This is the first stored review: nothing to compare with yet.')),
      card('Keys (' + keys.length + ')', keys.length ? table(['Key', 'Store · group · permission', ['Calls', 'num'], 'Last seen', 'Findings', 'Recommendation'],
        keys.map((k) => [td(null, KW.keyLink(k.key_prefix, k.fingerprint, k.name)),
          td('small', [k.store, k.group, k.permission].filter(Boolean).join(' · ') || '—'),
          num(k.calls), td('nowrap', KW.when(k.last_seen, true)),
          td('findings-cell', (k.findings || []).length ? (k.findings || []).map((x) => h('div', { class: 'finding' },
            h('span', { class: ['badge', 'sev-' + (KW.SEVS.includes(x.severity) ? x.severity : 'info')] }, FINDINGS[x.finding] || x.finding),
            ' ', h('span', { class: 'small' }, x.text || ''))) : h('span', { class: 'muted' }, 'none')),
          td(null, h('strong', null, k.recommendation || '—'), k.why ? h('div', { class: 'muted small' }, k.why) : null)]), 'review')
        : empty('No keys in this review.')));
  };

  // ---- #/health ------------------------------------------------------------------------

  const GOOD_STATES = ['following', 'listening', 'capturing', 'reading', 'idle'];

  views.health = async function (ctx) {
    const body = h('div');
    KW.replace(ctx.el, h('div', { class: 'page-head' }, h('h1', null, 'Health')), body);
    let sig = '';
    async function load(fromPoll) {
      let st;
      try {
        st = await KW.api('GET', '/api/v1/status');
      } catch (e) {
        if (ctx.alive() && !fromPoll) KW.replace(body, KW.errorBox(e));
        return;
      }
      if (!ctx.alive()) return;
      KW.stamp('Live · updated');
      const s = JSON.stringify(st);
      if (s === sig) return;
      sig = s;
      const d = st.daemon || {}, src = st.sources || [];
      const hbAge = d.heartbeat ? (Date.now() - KW.ms(d.heartbeat)) / 1000 : null;
      const warn = (bad, v) => h('span', { class: bad ? 'warn' : null }, v);
      KW.replace(body,
        h('div', { class: 'tiles' },
          h('div', { class: ['tile', d.running ? 'tile-ok' : 'tile-bad'], id: 'daemon-state' },
            h('div', { class: 'tile-v' }, d.running ? 'running' : 'not running'), h('div', { class: 'tile-l' }, 'daemon' + (d.pid ? ' · pid ' + d.pid : ''))),
          h('div', { class: ['tile', hbAge !== null && hbAge > 60 && 'tile-bad'] }, h('div', { class: 'tile-v' }, d.heartbeat ? KW.ago(d.heartbeat) : '—'), h('div', { class: 'tile-l' }, 'last heartbeat')),
          h('div', { class: ['tile', st.outbox_backlog > 0 && 'tile-hot'], id: 'outbox' }, h('div', { class: 'tile-v' }, KW.num(st.outbox_backlog || 0)), h('div', { class: 'tile-l' }, 'alerts waiting for a sink')),
          h('div', { class: 'tile' }, h('div', { class: 'tile-v' }, KW.bytes(st.store_bytes)), h('div', { class: 'tile-l' }, 'database')),
          h('div', { class: 'tile' }, h('div', { class: 'tile-v' }, st.version || '—'), h('div', { class: 'tile-l' }, 'version'))),
        d.started ? h('p', { class: 'muted' }, 'Daemon started ', KW.when(d.started), ' UTC.') : null,
        card('Sources (' + src.length + ')', src.length ? table(['Source', 'Kind', 'State', ['Lines', 'num'], ['Calls', 'num'], ['Malformed', 'num'],
          ['Backlog', 'num'], ['Rate', 'num'], ['Lag p50', 'num'], ['Lag p99', 'num'], ['Drops', 'num'], ['Gaps', 'num']],
        src.map((x) => [td('mono wrap', x.name || '—'), td(null, x.kind || '—'),
          td(null, h('span', { class: ['badge', !x.state ? 'st-other' : GOOD_STATES.includes(x.state) ? 'ok' : 'bad'] }, x.state || 'stopped')),
          num(x.lines), num(x.calls), td('num', warn(x.malformed > 0, KW.num(x.malformed))),
          td('num', warn(x.backlog > 1 << 20, KW.bytes(x.backlog))), td('num', x.rate !== undefined && x.rate !== null ? KW.num(x.rate) + '/s' : '—'),
          td('num', KW.dur(x.lag_p50_ms)), td('num', warn(x.lag_p99_ms > 5000, KW.dur(x.lag_p99_ms))),
          td('num', warn(x.drops > 0, KW.num(x.drops))), td('num', warn(x.gaps > 0, KW.num(x.gaps)))]), 'sources')
          : empty('No sources recorded yet.')));
    }
    body.appendChild(loading());
    await load(false);
    ctx.poll(() => load(true), POLL_MS);
  };
})();
