// Queues: depth by state, oldest pending job and a pause/resume toggle
// (GET /v1/queues, POST /v1/queues/{name}/pause|resume).
import { api } from './api.js';
import { duration, h, route, table } from './dom.js';

/** Columns of the depth counts, in lifecycle order; `dead` = failed/timeout with no attempts left. */
const COUNTS = ['awaiting_approval', 'blocked', 'pending', 'queued', 'running', 'retrying', 'failed',
  'timeout', 'dead'];
const REFRESH_MS = 5000;

export function render(view) {
  const results = h('div');
  view.show(h('h2', null, 'Queues'), view.note, results);
  view.every(REFRESH_MS, async () => {
    let body;
    try {
      body = await api('/queues');
    } catch (error) {
      if (error.status !== 404) throw error;
      view.swap(results, h('p', { class: 'error', id: 'queues-unavailable' },
        'Queue endpoints unavailable: this coordinator has no /v1/queues (404).'), 'unavailable');
      return false;
    }
    view.swap(results, queueTable(view, body.queues), JSON.stringify(body));
  });
}

function queueTable(view, queues) {
  if (queues.length === 0) return h('p', { class: 'muted' }, 'No queues yet: they appear with their first job.');
  const headers = ['Queue', 'Dispatch', ...COUNTS.map((s) => s.replace('awaiting_', '')),
    'Oldest pending', 'Max in flight', 'Rate limit', 'Task defaults', ''];
  return table(headers, queues.map((queue) => h('tr', { 'data-queue': queue.name },
    h('td', null, h('a', { href: route('jobs', { queue: queue.name }) }, queue.name)),
    h('td', null, h('span', { class: `badge ${queue.paused ? 'paused' : 'active'}` },
      queue.paused ? 'paused' : 'active')),
    COUNTS.map((state) => count(queue, state)),
    h('td', { class: 'num' }, duration(queue.oldest_pending_age_ms)),
    h('td', { class: 'num' }, queue.max_in_flight ?? '—'),
    h('td', { class: 'num' }, queue.rate_limit === null ? '—' : `${queue.rate_limit}/s`),
    h('td', null, defaults(queue.task_defaults)),
    h('td', null, toggle(view, queue)))), { class: 'queues' });
}

function count(queue, state) {
  const n = queue.counts?.[state] ?? 0;
  const text = n === 0 ? h('span', { class: 'zero' }, '0') : String(n);
  // `dead` is not a state of its own; the other counts link to their jobs.
  const cell = state === 'dead' || n === 0 ? text
    : h('a', { href: route('jobs', { queue: queue.name, state }) }, text);
  return h('td', { class: 'num', 'data-count': state }, cell);
}

function defaults(taskDefaults) {
  const types = Object.keys(taskDefaults ?? {});
  if (types.length === 0) return h('span', { class: 'muted' }, '—');
  return h('span', { title: JSON.stringify(taskDefaults, null, 2) }, types.join(', '));
}

function toggle(view, queue) {
  const action = queue.paused ? 'resume' : 'pause';
  return h('button', {
    type: 'button',
    class: 'toggle',
    onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const updated = await api(`/queues/${encodeURIComponent(queue.name)}/${action}`, 'POST');
        view.say(`Queue ${updated.name} ${updated.paused ? 'paused: nothing more is dispatched' : 'resumed'}.`);
      } catch (error) {
        view.actionFailed(error);
      }
      button.disabled = false; // the refresh replaces it only if the queue changed
      view.refresh();
    },
  }, queue.paused ? 'Resume' : 'Pause');
}
