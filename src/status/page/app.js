'use strict';
// The status page: one EventSource; each message is the whole document (see src/status/view.rs).
const $ = (s, e = document) => e.querySelector(s);
let writable = new Set();
let user = null;
let es = null;
let layout = '';

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}
function set(node, text, cls) {
  if (!node) return;
  if (node.textContent !== text) node.textContent = text;
  if (cls !== undefined && node.className !== cls) node.className = cls;
}
function age(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return 'now';
  const s = ms / 1000;
  return s < 60 ? s.toFixed(0) + ' s ago' : s < 3600 ? (s / 60).toFixed(0) + ' min ago' : (s / 3600).toFixed(1) + ' h ago';
}
function since(now, t) { return t ? age(now - t) : '–'; }
function fmt(v) { return v === null || v === undefined ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v); }

async function start() {
  const r = await fetch('/session', { cache: 'no-store' });
  const s = await r.json();
  if (s.login_required && !s.user) showLogin(); else connect();
}
function showLogin(msg) {
  if (es) { es.close(); es = null; }
  $('#login').hidden = false; $('#main').hidden = true; $('#logout').hidden = true;
  $('#login-error').textContent = msg || '';
}
$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = 'checking…';
  const r = await fetch('/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: $('#user').value, password: $('#password').value }),
  });
  const b = await r.json().catch(() => ({}));
  if (r.ok) { $('#login-error').textContent = ''; $('#password').value = ''; connect(); }
  else $('#login-error').textContent = b.error || ('login failed (' + r.status + ')');
});
$('#logout').addEventListener('click', async () => {
  await fetch('/logout', { method: 'POST' });
  showLogin('logged out');
});

function connect() {
  $('#login').hidden = true; $('#main').hidden = false;
  es = new EventSource('/events');
  es.addEventListener('hello', (e) => {
    const h = JSON.parse(e.data);
    user = h.user;
    writable = new Set(h.writable.map((w) => w[0] + '/' + w[1]));
    set($('#who'), user ? 'user ' + user : 'anonymous (loopback)');
    $('#logout').hidden = !user;
    layout = '';
  });
  es.onopen = () => set($('#conn'), 'live', 'good');
  es.onmessage = (e) => render(JSON.parse(e.data));
  es.onerror = () => {
    set($('#conn'), 'disconnected: retrying', 'bad');
    if (es && es.readyState === EventSource.CLOSED) {
      es = null;
      fetch('/session', { cache: 'no-store' }).then((r) => r.json()).then((s) => {
        if (s.login_required && !s.user) showLogin('please log in'); else setTimeout(connect, 2000);
      }, () => setTimeout(connect, 2000));
    }
  };
}

function build(doc) {
  const root = $('#devices');
  root.replaceChildren();
  for (const d of doc.devices) {
    const body = el('tbody');
    for (const p of d.points) {
      const key = d.name + '/' + p.name;
      const w = el('td', { class: 'write' });
      if (p.writable && writable.has(key)) {
        const input = el('input', { class: 'write-value', type: 'text', 'aria-label': 'new value for ' + key });
        const btn = el('button', { class: 'write-btn', type: 'button' }, 'set');
        const res = el('span', { class: 'write-result' });
        btn.addEventListener('click', () => send(d.name, p.name, input.value, res, btn));
        w.append(input, ' ', btn, ' ', res);
      } else if (p.writable) {
        w.append(el('span', { class: 'raw', title: 'your ACL does not allow writing here' }, 'read only for you'));
      }
      const rawRow = el('tr', { class: 'raw-row', 'data-device': d.name, 'data-point': p.name, hidden: true },
        el('td', { colSpan: 5 }, el('div', { class: 'raw-view', role: 'status' })));
      const rawBtn = el('button', { class: 'raw-btn', type: 'button', title: 'read the registers from the device now' }, 'raw');
      rawBtn.addEventListener('click', () => showRaw(d.name, p.name, rawBtn, rawRow));
      body.append(el('tr', { class: 'point', 'data-device': d.name, 'data-point': p.name },
        el('td', {}, p.name, ' ', el('span', { class: 'raw' }, p.register), ' ', rawBtn),
        el('td', { class: 'value' }), el('td', { class: 'quality' }), el('td', { class: 'age' }), w), rawRow);
    }
    root.append(el('div', { class: 'device', 'data-device': d.name },
      el('h3', {}, d.name, el('span', { class: 'state' }), el('span', { class: 'raw' }, d.line + ' unit ' + d.unit)),
      el('div', { class: 'meta' }),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'point'), el('th', {}, 'value'), el('th', {}, 'quality'), el('th', {}, 'updated'), el('th', {}, ''))), body)));
  }
}

function render(doc) {
  set($('#site'), doc.site);
  const key = JSON.stringify(doc.devices.map((d) => [d.name, d.points.map((p) => p.name)]));
  if (key !== layout) { build(doc); layout = key; }
  for (const d of doc.devices) {
    const card = document.querySelector('.device[data-device="' + CSS.escape(d.name) + '"]');
    if (!card) continue;
    set($('.state', card), d.state || 'unknown', 'state ' + (d.state || 'unknown'));
    const errs = Object.entries(d.errors).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n).join(', ') || 'none';
    const req = d.observed_requests === null ? '' : d.observed_requests.toFixed(1) + ' seen / ';
    set($('.meta', card), 'last answer ' + since(doc.now, d.last_answer) +
      ' · latency ' + (d.latency_ms === null ? '–' : d.latency_ms.toFixed(1) + ' ms') +
      ' (avg ' + (d.avg_latency_ms === null ? '–' : d.avg_latency_ms.toFixed(1)) + ' ms)' +
      ' · breaker ' + d.breaker + ' · requests/cycle ' + req + d.planned_requests + ' planned' +
      ' · errors: ' + errs);
    for (const p of d.points) {
      const row = card.querySelector('tr.point[data-point="' + CSS.escape(p.name) + '"]');
      if (!row) continue;
      const v = p.quality === 'bad' ? fmt(p.error) : fmt(p.value) + (p.unit && p.value !== null ? ' ' + p.unit : '');
      set($('.value', row), v);
      set($('.quality', row), p.quality, 'quality ' + p.quality);
      set($('.age', row), age(p.age_ms));
    }
  }
  const b = doc.broker;
  set($('#broker-rates'), (b.connected ?? 0) + ' clients · ' + b.messages_in_per_s.toFixed(1) + ' msg/s in · ' + b.messages_out_per_s.toFixed(1) + ' msg/s out');
  const cb = $('#clients tbody');
  cb.replaceChildren(...b.clients.map((c) => el('tr', {}, el('td', {}, c.id), el('td', {}, fmt(c.addr)), el('td', {}, fmt(c.user)), el('td', {}, c.protocol), el('td', {}, c.subscriptions.join(' ')))));
  const u = doc.uplink;
  const dl = $('#uplink');
  if (!u) dl.replaceChildren(el('dt', {}, 'uplink'), el('dd', {}, 'off'));
  else {
    const drops = Object.entries(u.drops).map(([k, n]) => k + ' ' + n).join(', ') || 'none';
    const rows = [['link', fmt(u.state) + ' since ' + fmt(u.since)], ['url', fmt(u.url)], ['last error', fmt(u.last_error)],
      ['backlog', fmt(u.backlog) + ' messages, ' + fmt(u.backlog_bytes) + ' bytes'], ['oldest', u.oldest_age_s === null ? '–' : u.oldest_age_s + ' s'],
      ['drain', u.drain_per_s.toFixed(1) + ' msg/s'], ['drops', drops]];
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: k === 'link' ? String(u.state) : '' }, v)]));
  }
  $('#events').replaceChildren(...doc.events.map((e) => el('li', { class: e.kind }, new Date(e.ts).toISOString().slice(11, 23) + ' ' + e.kind + ' ' + e.text)));
}

async function send(device, point, text, res, btn) {
  let value = text.trim();
  try { value = JSON.parse(value); } catch (_) { /* a plain string (an enum name) */ }
  btn.disabled = true;
  res.removeAttribute('data-ok');
  res.textContent = 'sending…';
  try {
    const r = await fetch('/write', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ device, point, value }) });
    const b = await r.json().catch(() => ({ ok: false, error: 'HTTP ' + r.status }));
    if (b.pending) { res.dataset.ok = 'pending'; res.textContent = 'held: confirm on ' + b.confirm_topic; }
    else if (b.ok) { res.dataset.ok = 'true'; res.textContent = 'written, read back ' + fmt(b.value); }
    else { res.dataset.ok = 'false'; res.textContent = (b.code ? b.code + ': ' : '') + (b.error || 'refused'); }
  } catch (e) { res.dataset.ok = 'false'; res.textContent = String(e); }
  btn.disabled = false;
}

// Raw registers: read from the device now (through its line, one read per device at a time);
// a second click hides them, a third reads again.
async function showRaw(device, point, btn, row) {
  if (!row.hidden) { row.hidden = true; btn.textContent = 'raw'; return; }
  const view = $('.raw-view', row);
  row.hidden = false; btn.textContent = 'hide raw'; btn.disabled = true;
  view.removeAttribute('data-ok');
  view.textContent = 'reading ' + device + '/' + point + ' from the device…';
  try {
    const r = await fetch('/raw', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ device, point }) });
    const b = await r.json().catch(() => ({ error: 'HTTP ' + r.status }));
    if (r.ok) { view.dataset.ok = 'true'; view.replaceChildren(...rawTable(b)); }
    else { view.dataset.ok = 'false'; view.textContent = 'raw read failed (HTTP ' + r.status + '): ' + (b.error || 'no reason given'); }
  } catch (e) { view.dataset.ok = 'false'; view.textContent = 'raw read failed: ' + String(e); }
  btn.disabled = false;
}
function rawTable(b) {
  const when = new Date(b.ts).toISOString().replace('T', ' ').slice(0, 23) + ' UTC';
  const head = el('p', { class: 'raw-head' }, b.kind + ' ' + b.address + ' · unit ' + b.unit + ' · read ' + when);
  const bits = b.registers.length === 0;
  const cols = bits ? ['address', 'bit'] : ['address', 'hex', 'decimal'];
  const rows = bits ? b.bits.map((x) => el('tr', {}, el('td', {}, x.address), el('td', {}, x.bit)))
    : b.registers.map((x) => el('tr', {}, el('td', {}, x.address), el('td', {}, x.hex), el('td', {}, x.dec)));
  return [head, el('table', { class: 'raw-table' }, el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {}, c)))), el('tbody', {}, ...rows))];
}

start();
