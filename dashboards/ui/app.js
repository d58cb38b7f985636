// app.js — keywatch UI shell: the token box, the role, messages, dialogs, the router.
//
// Role: the API has no "who am I"; a POST refused with 403 means the token is a viewer's
// (or the server takes no POSTs at all), a POST that succeeds means a responder's.  The
// role is remembered for the tab (sessionStorage) with the token, and responder actions
// are disabled once the token is known to be read-only.
'use strict';
(function () {
  const KW = window.KW;
  const h = KW.h;
  const TOKEN = 'kw.token', ROLE = 'kw.role';

  KW.token = () => sessionStorage.getItem(TOKEN) || '';
  KW.role = () => sessionStorage.getItem(ROLE) || '';
  KW.isViewer = () => KW.role() === 'viewer';

  // ---- messages --------------------------------------------------------------------

  let bannerTimer = null;
  // kind: ok | warn | error; sticky messages stay until replaced or dismissed.
  KW.flash = function (msg, kind, sticky) {
    const b = document.getElementById('banner');
    clearTimeout(bannerTimer);
    b.setAttribute('class', 'banner banner-' + (kind || 'ok'));
    b.setAttribute('data-kind', kind || 'ok');
    KW.replace(b, h('span', { class: 'banner-text' }, msg),
      h('button', { type: 'button', class: 'banner-x', 'aria-label': 'dismiss',
        on: { click: () => { b.hidden = true; } } }, '×'));
    b.hidden = false;
    if (!sticky) bannerTimer = setTimeout(() => { b.hidden = true; }, kind === 'error' ? 12000 : 5000);
  };

  function showRole() {
    const el = document.getElementById('role');
    const r = KW.role();
    el.hidden = !r && !KW.token();
    el.setAttribute('class', 'role role-' + (r || 'unknown'));
    el.textContent = r === 'viewer' ? 'viewer · read-only' : r === 'responder' ? 'responder'
      : KW.token() ? 'token set' : '';
    el.setAttribute('title', r === 'viewer'
      ? 'This token may only read: acknowledging, resolving and revoking need a responder token.'
      : r === 'responder' ? 'This token may acknowledge, resolve and revoke.'
        : 'The role is learnt from the first action you take.');
    document.body.classList.toggle('viewer', r === 'viewer');
  }

  KW.onUnauthorized = function (err) {
    KW.authWanted = true; // no polling until a token is given
    document.getElementById('token-form').classList.add('attention');
    KW.flash((KW.token() ? 'The server refused this token (401): ' : 'This server needs an API token (401): ') +
      err.message + ' — paste a viewer or responder token in the box above.', 'error', true);
    document.getElementById('token-input').focus();
  };
  KW.onForbidden = function (err) {
    sessionStorage.setItem(ROLE, 'viewer');
    showRole();
    KW.flash((KW.token() ? 'Refused (403): this token is read-only (viewer) — acknowledging, resolving and ' +
      'revoking need a responder token.' : 'Refused (403): acknowledging, resolving and revoking need a ' +
      'responder token — paste one above.') + ' The server said: ' + err.message, 'error', true);
    KW.rerender();
  };
  KW.onPostOk = function () {
    if (KW.role() !== 'responder') {
      sessionStorage.setItem(ROLE, 'responder');
      showRole();
    }
  };

  // ---- dialogs (in the page: never window.confirm) ---------------------------------

  // opts: {title, intro: [nodes|strings], note: label|null, multiline, dryRun: label|null,
  //        confirmText: string the user must type, ok: label, danger: bool}
  // → Promise of {note, dry_run} or null when cancelled.
  KW.dialog = function (opts) {
    return new Promise((resolve) => {
      const dlg = h('dialog', { class: ['dlg', opts.danger && 'dlg-danger'], 'aria-label': opts.title });
      const note = opts.note ? h(opts.multiline ? 'textarea' : 'input',
        { class: 'dlg-note', id: 'dlg-note', rows: opts.multiline ? 3 : null, maxlength: 1000,
          type: opts.multiline ? null : 'text', placeholder: opts.placeholder || '' }) : null;
      const dry = opts.dryRun ? h('input', { type: 'checkbox', id: 'dlg-dry', class: 'dlg-dry' }) : null;
      const typed = opts.confirmText ? h('input', { type: 'text', id: 'dlg-confirm', class: 'dlg-confirm mono',
        autocomplete: 'off', spellcheck: 'false' }) : null;
      const ok = h('button', { type: 'submit', class: ['dlg-ok', opts.danger ? 'danger' : 'primary'],
        disabled: !!typed }, opts.ok || 'OK');
      let done = false;
      const finish = (v) => {
        if (done) return;
        done = true;
        if (dlg.open) dlg.close();
        dlg.remove();
        resolve(v);
      };
      if (typed) typed.addEventListener('input', () => { ok.disabled = typed.value.trim() !== opts.confirmText; });
      const form = h('form', { class: 'dlg-form', on: {
        submit: (e) => {
          e.preventDefault();
          if (ok.disabled) return;
          finish({ note: note ? note.value.trim() : '', dry_run: dry ? dry.checked : false });
        } } },
      h('h3', null, opts.title),
      (opts.intro || []).map((p) => (p instanceof Node ? p : h('p', null, p))),
      note ? h('label', { for: 'dlg-note' }, opts.note) : null, note,
      dry ? h('label', { class: 'check' }, dry, ' ' + opts.dryRun) : null,
      typed ? h('label', { for: 'dlg-confirm' }, 'Type ', h('code', null, opts.confirmText), ' to confirm') : null, typed,
      h('div', { class: 'dlg-buttons' },
        h('button', { type: 'button', class: 'secondary dlg-cancel', on: { click: () => finish(null) } }, 'Cancel'),
        ok));
      dlg.appendChild(form);
      dlg.addEventListener('cancel', (e) => { e.preventDefault(); finish(null); });
      document.body.appendChild(dlg);
      dlg.showModal();
      (typed || note || ok).focus();
    });
  };

  // ---- router ------------------------------------------------------------------------

  let gen = 0, timer = null;
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    const query = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
    let parts;
    try {
      parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      parts = [];
    }
    return { parts, query };
  }

  async function route(keepScroll) {
    const { parts, query } = parseHash();
    const my = ++gen;
    clearInterval(timer);
    timer = null;
    const el = document.getElementById('view');
    const ctx = {
      el,
      alive: () => my === gen,
      // Calls fn every ms while this view is shown (and the tab visible).
      poll: (fn, ms) => {
        clearInterval(timer);
        timer = setInterval(() => {
          if (my === gen && !document.hidden && !KW.authWanted) fn();
        }, ms);
      },
    };
    const top = parts[0] || '';
    for (const a of document.querySelectorAll('#nav a'))
      a.classList.toggle('active', a.getAttribute('data-route') === top);
    if (!keepScroll) window.scrollTo(0, 0);
    KW.clear(document.getElementById('foot-status'));
    const v = KW.views;
    try {
      if (top === 'alerts' && parts.length === 1) await v.alerts(ctx, query);
      else if (top === 'alerts' && parts.length === 2) await v.alert(ctx, parts[1]);
      else if (top === 'keys' && parts.length === 1) await v.keys(ctx, query);
      else if (top === 'keys' && parts.length === 2) await v.key(ctx, parts[1], query);
      else if (top === 'review') await v.review(ctx, query);
      else if (top === 'health') await v.health(ctx, query);
      else location.replace('#/alerts');
    } catch (e) {
      if (!ctx.alive()) return;
      KW.replace(el, KW.errorBox(e));
      if (!(e instanceof KW.ApiError)) throw e;
    }
  }
  KW.rerender = () => route(true);
  KW.go = (hash) => {
    if (location.hash === hash) route(true);
    else location.hash = hash;
  };
  KW.stamp = function (what) {
    KW.replace(document.getElementById('foot-status'),
      h('span', { class: 'live' }), (what || 'Updated') + ' ' + new Date().toISOString().slice(11, 19) + ' UTC');
  };

  // ---- start -------------------------------------------------------------------------

  function start() {
    const form = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN, t);
      sessionStorage.removeItem(ROLE);
      input.value = '';
      input.placeholder = 'token set — paste another to switch';
      form.classList.remove('attention');
      KW.authWanted = false;
      document.getElementById('banner').hidden = true;
      showRole();
      KW.rerender();
    });
    document.getElementById('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN);
      sessionStorage.removeItem(ROLE);
      input.value = '';
      input.placeholder = 'paste a bearer token';
      showRole();
      KW.flash('Token forgotten for this tab.', 'ok');
      KW.rerender();
    });
    if (KW.token()) input.placeholder = 'token set — paste another to switch';
    showRole();
    window.addEventListener('hashchange', () => route(false));
    route(false);
  }
  document.addEventListener('DOMContentLoaded', start);
})();
