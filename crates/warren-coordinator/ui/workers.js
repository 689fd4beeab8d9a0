// Workers: queues, load and how long ago each last sent a heartbeat (GET /v1/workers).
import { api } from './api.js';
import { ageMs, duration, h, table, time } from './dom.js';

const REFRESH_MS = 2000;
/** A worker silent for longer than this is highlighted (well past any sane heartbeat interval). */
const STALE_MS = 30_000;

export function render(view) {
  const results = h('div');
  view.show(h('h2', null, 'Workers'), results);
  view.every(REFRESH_MS, async () => {
    const { workers } = await api('/workers');
    view.swap(results, workers.length === 0
      ? h('p', { class: 'muted' }, 'No worker has sent a heartbeat yet.')
      : table(['Worker', 'Queues', 'Running', 'Up since', 'Last heartbeat'], workers.map(row), { class: 'workers' }));
  });
}

function row(worker) {
  const age = ageMs(worker.last_heartbeat_at);
  return h('tr', { class: age > STALE_MS ? 'stale' : null, 'data-worker': worker.id },
    h('td', { class: 'mono' }, worker.id),
    h('td', null, worker.queues.join(', ')),
    h('td', { class: 'num' }, `${worker.running} / ${worker.concurrency}`),
    h('td', null, time(worker.started_at)),
    h('td', { class: 'heartbeat', title: time(worker.last_heartbeat_at) }, `${duration(age)} ago`));
}
