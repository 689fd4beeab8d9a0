// Small DOM and formatting helpers. Every piece of data reaches the page as
// a text node or an attribute value, never through innerHTML.

/** Creates an element: h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A table with a header row; `rows` are arrays of cells (text or nodes). */
export function table(headers, rows, attrs) {
  return h('table', attrs,
    h('thead', null, h('tr', null, headers.map((text) => h('th', null, text)))),
    h('tbody', null, rows));
}

/** A coloured badge for a job state. */
export function stateBadge(state) {
  return h('span', { class: `badge state-${state}`, 'data-state': state }, state.replaceAll('_', ' '));
}

/** A `#/...` link with query parameters (empty values dropped). */
export function route(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

/** "2026-11-23 14:02:11" (with `.123` if `millis`) in the browser's time zone, or "—". */
export function time(iso, millis = false) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    + (millis ? `.${String(d.getMilliseconds()).padStart(3, '0')}` : '');
}

/** A duration in milliseconds as "850 ms", "12.3 s", "4 min 2 s", "3 h 5 min", "2 d 4 h". */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const [m, hr, d] = [Math.floor(s / 60), Math.floor(s / 3600), Math.floor(s / 86400)];
  if (s < 3600) return `${m} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${hr} h ${m % 60} min`;
  return `${d} d ${hr % 24} h`;
}

/** Milliseconds since `iso` by the browser's clock (never negative). */
export function ageMs(iso) {
  return Math.max(0, Date.now() - new Date(iso).getTime());
}

/** Pretty JSON in a <pre>, or a dash for null. */
export function json(value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '—');
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}
