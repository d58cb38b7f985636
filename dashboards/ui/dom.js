// dom.js — keywatch UI helpers: safe element builders, formatting, the API client.
//
// Every string that comes from the API reaches the page through createTextNode or
// setAttribute (never innerHTML & co.): traffic is attacker-controlled (user agents,
// paths, key names), so it must only ever be text.
'use strict';
(function () {
  const KW = (window.KW = window.KW || {});
  const SVGNS = 'http://www.w3.org/2000/svg';

  // Attributes that may carry a URL are only ever given same-document or same-origin
  // paths; event handler and style attributes are never set (CSP: no inline anything).
  function setAttrs(el, attrs) {
    for (const k of Object.keys(attrs || {})) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === 'on') {
        for (const ev of Object.keys(v)) el.addEventListener(ev, v[ev]);
        continue;
      }
      if (/^on/i.test(k) || k === 'style') throw new Error('refused attribute ' + k);
      if ((k === 'href' || k === 'src') && !/^[#/]/.test(String(v)))
        throw new Error('refused URL ' + v);
      if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
      else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected')
        el[k] = !!v;
      else if (k === 'value') el.value = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  }

  // h('a', {href: '#/keys', class: 'x'}, 'text', child…)
  KW.h = function (tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, children);
  };
  KW.s = function (tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    return append(el, children);
  };
  KW.clear = function (el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  };
  KW.replace = function (el, ...children) {
    return append(KW.clear(el), children);
  };

  // ---- formatting ------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, '0');
  KW.ms = (iso) => (iso ? Date.parse(iso) : NaN);
  // "2025-11-04 14:58:49" (UTC: the whole UI speaks UTC, as the API and the logs do)
  KW.time = function (iso, short) {
    const t = KW.ms(iso);
    if (!isFinite(t)) return '—';
    const d = new Date(t);
    const s = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
      ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    return short ? s : s + ':' + pad(d.getUTCSeconds());
  };
  KW.ago = function (iso) {
    const t = KW.ms(iso);
    if (!isFinite(t)) return '—';
    let s = Math.round((Date.now() - t) / 1000);
    const fut = s < 0;
    s = Math.abs(s);
    let r;
    if (s < 60) r = s + ' s';
    else if (s < 3600) r = Math.floor(s / 60) + ' min';
    else if (s < 86400) r = Math.floor(s / 3600) + ' h';
    else r = Math.floor(s / 86400) + ' d';
    return fut ? 'in ' + r : r + ' ago';
  };
  // A time cell: UTC time, the exact value as a tooltip.
  KW.when = function (iso, short) {
    return KW.h('time', { datetime: iso || null, title: iso ? iso + ' (' + KW.ago(iso) + ')' : null },
      KW.time(iso, short));
  };
  KW.num = function (n) {
    if (n === null || n === undefined || n === '') return '—';
    const v = Number(n);
    return isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: 1 }) : String(n);
  };
  KW.bytes = function (n) {
    if (n === null || n === undefined) return '—';
    let v = Number(n), i = 0;
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
  };
  KW.dur = function (ms) {
    if (ms === null || ms === undefined) return '—';
    const v = Number(ms);
    if (v < 1000) return Math.round(v) + ' ms';
    if (v < 60000) return (v / 1000).toFixed(1) + ' s';
    return (v / 60000).toFixed(1) + ' min';
  };
  KW.pct = (a, b) => (b > 0 ? ((100 * a) / b).toFixed(a && a * 1000 < b ? 2 : 1) + ' %' : '—');

  const SEVS = ['info', 'low', 'medium', 'high', 'critical'];
  KW.SEVS = SEVS;
  KW.sev = function (s) {
    const k = SEVS.includes(s) ? s : 'info';
    return KW.h('span', { class: ['badge', 'sev-' + k] }, s || '?');
  };
  KW.stateBadge = function (s) {
    const cls = { open: 'st-open', acknowledged: 'st-ack', resolved: 'st-resolved' }[s] || 'st-other';
    return KW.h('span', { class: ['badge', cls] }, s || '?');
  };
  // A link to a key page; prefixes may hold '+' or '/': the hash carries it encoded.
  KW.keyHref = function (prefix, fp) {
    const id = prefix && !prefix.includes('/') ? prefix : fp || prefix || '';
    return '#/keys/' + encodeURIComponent(id);
  };
  KW.keyLink = function (prefix, fp, name) {
    if (!prefix && !fp) return KW.h('span', { class: 'muted' }, '(anonymous)');
    return KW.h('span', { class: 'keyref' },
      KW.h('a', { href: KW.keyHref(prefix, fp), class: 'mono' }, prefix || fp),
      name ? KW.h('span', { class: 'muted keyname' }, ' ' + name) : null);
  };

  // ---- the API client ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  KW.ApiError = ApiError;

  // KW.api('GET', '/api/v1/alerts', null, {state: 'open'}) → parsed JSON; throws ApiError.
  KW.api = async function (method, path, body, query) {
    let url = path;
    if (query) {
      const q = new URLSearchParams();
      for (const k of Object.keys(query))
        if (query[k] !== null && query[k] !== undefined && query[k] !== '') q.set(k, query[k]);
      const qs = q.toString();
      if (qs) url += '?' + qs;
    }
    const headers = { Accept: 'application/json' };
    const tok = KW.token();
    if (tok) headers.Authorization = 'Bearer ' + tok;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body || {});
    }
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, 'cannot reach the keywatch server (' + e.message + ')');
    }
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!resp.ok) {
      const msg = data && typeof data.error === 'string' ? data.error : 'HTTP ' + resp.status;
      const err = new ApiError(resp.status, msg);
      if (resp.status === 401) KW.onUnauthorized && KW.onUnauthorized(err);
      if (resp.status === 403 && method !== 'GET') KW.onForbidden && KW.onForbidden(err);
      throw err;
    }
    return data;
  };

  // Follows next_cursor for up to `pages` pages; → {items, next_cursor}.
  KW.pages = async function (path, query, pages) {
    let items = [], cursor = null;
    for (let i = 0; i < pages; i++) {
      const q = Object.assign({}, query, cursor ? { cursor } : {});
      const r = await KW.api('GET', path, null, q);
      items = items.concat((r && r.items) || []);
      cursor = r ? r.next_cursor : null;
      if (!cursor) break;
    }
    return { items, next_cursor: cursor };
  };
})();
