// Jobs, newest first: filters (state, queue, type) and cursor paging
// (GET /v1/jobs?state=&queue=&type=&limit=&before=, answering {jobs, next}).
import { api } from './api.js';
import { h, route, stateBadge, table, time } from './dom.js';

/** Every job state, in lifecycle order. */
export const STATES = ['awaiting_approval', 'blocked', 'pending', 'queued', 'running', 'failed',
  'timeout', 'retrying', 'completed', 'cancelled', 'skipped'];
const FILTERS = ['state', 'queue', 'type'];
const REFRESH_MS = 5000;

export function render(view) {
  const filters = Object.fromEntries(FILTERS.map((key) => [key, view.params.get(key) ?? '']));
  const limit = view.params.get('limit') ?? '';
  const before = view.params.get('before') ?? '';
  const results = h('div');
  view.show(h('h2', null, 'Jobs'), filterForm(filters, limit), view.note, results);

  const query = new URLSearchParams(Object.entries({ ...filters, limit, before }).filter(([, v]) => v));
  view.every(REFRESH_MS, async () => {
    const body = await api(`/jobs?${query}`);
    const ignored = filters.type && body.jobs.some((job) => job.task_type !== filters.type);
    view.say(ignored ? 'This coordinator does not filter by type yet: all types are listed.' : null, 'error');
    view.swap(results, h('div', null,
      jobTable(body.jobs),
      pager(filters, limit, before, body)), JSON.stringify(body));
  });
}

function filterForm(filters, limit) {
  const state = h('select', { name: 'state', 'aria-label': 'state' },
    h('option', { value: '' }, 'any state'),
    STATES.map((s) => h('option', { value: s, selected: s === filters.state }, s.replaceAll('_', ' '))));
  const queue = h('input', { name: 'queue', placeholder: 'queue', value: filters.queue, 'aria-label': 'queue' });
  const type = h('input', { name: 'type', placeholder: 'task type', value: filters.type, 'aria-label': 'task type' });
  return h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      location.hash = route('jobs', { state: state.value, queue: queue.value.trim(), type: type.value.trim(), limit });
    },
  }, state, queue, type, h('button', { type: 'submit' }, 'Apply'), h('a', { href: route('jobs') }, 'Clear'));
}

function jobTable(jobs) {
  if (jobs.length === 0) return h('p', { class: 'muted' }, 'No jobs match.');
  return table(['Job', 'Queue', 'Type', 'State', 'Attempt', 'Progress', 'Created', 'Finished'],
    jobs.map((job) => h('tr', { 'data-job': job.id },
      h('td', { class: 'mono' }, h('a', { href: route(`jobs/${job.id}`), title: job.id }, job.id)),
      h('td', null, job.queue),
      h('td', null, job.task_type),
      h('td', null, stateBadge(job.state)),
      h('td', { class: 'num' }, `${job.attempt} / ${job.max_attempts}`),
      h('td', { class: 'num' }, job.progress === null ? '—' : `${Math.round(job.progress)}%`),
      h('td', null, time(job.created_at)),
      h('td', null, time(job.finished_at)))), { class: 'jobs' });
}

function pager(filters, limit, before, body) {
  const links = [];
  if (before) links.push(h('a', { href: route('jobs', { ...filters, limit }) }, '« First page'));
  if (body.next) {
    links.push(h('a', { href: route('jobs', { ...filters, limit, before: body.next }), rel: 'next' }, 'Next page »'));
  }
  return h('p', { class: 'pager' }, `${body.jobs.length} job${body.jobs.length === 1 ? '' : 's'} on this page`,
    links.map((link) => [' · ', link]));
}
