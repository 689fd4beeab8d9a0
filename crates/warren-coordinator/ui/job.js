// One job: every field, progress, result or error, its event history and the
// Cancel / Retry / Approve buttons; refreshed every second until it settles.
import { api } from './api.js';
import { duration, h, json, stateBadge, table, time } from './dom.js';

const REFRESH_MS = 1000;
const TERMINAL = new Set(['completed', 'cancelled', 'skipped']);

/** Operator actions, each enabled in the states the API accepts it from. */
const ACTIONS = [
  { name: 'approve', label: 'Approve', enabled: (job) => job.state === 'awaiting_approval' },
  { name: 'retry', label: 'Retry', enabled: (job) => job.state === 'failed' || job.state === 'timeout' },
  { name: 'cancel', label: 'Cancel', enabled: (job) => !TERMINAL.has(job.state),
    confirm: 'Cancel this job? A running attempt is told to stop.' },
];

/** Terminal, or failed/timeout with no attempts left: nothing changes without an operator. */
function settled(job) {
  const dead = (job.state === 'failed' || job.state === 'timeout') && job.attempt >= job.max_attempts;
  return TERMINAL.has(job.state) || dead;
}

export function render(view) {
  const id = view.id;
  const path = `/jobs/${encodeURIComponent(id)}`;
  const results = h('div');
  view.show(h('h2', null, 'Job ', h('span', { class: 'mono' }, id)), view.note, results);
  view.every(REFRESH_MS, async () => {
    const [job, { events }] = await Promise.all([api(path), api(`${path}/events`)]);
    const done = settled(job);
    view.swap(results, h('div', null,
      actions(view, path, job),
      h('p', { class: 'muted refresh' }, done
        ? 'Final state: auto-refresh stopped.'
        : 'Refreshing every second until the job settles.'),
      overview(job),
      outcome(job),
      h('h3', null, `Events (${events.length})`),
      eventTable(events)), JSON.stringify([job, events]));
    return !done;
  });
}

function actions(view, path, job) {
  const buttons = ACTIONS.map((action) => h('button', {
    type: 'button',
    'data-action': action.name,
    disabled: !action.enabled(job),
    onclick: async () => {
      if (action.confirm && !window.confirm(action.confirm)) return;
      for (const button of buttons) button.disabled = true;
      try {
        const moved = await api(`${path}/${action.name}`, 'POST');
        view.say(`${action.label}: ${moved.from} → ${moved.to}.`);
      } catch (error) {
        view.actionFailed(error);
      }
      // The refresh replaces the buttons only if the job changed.
      buttons.forEach((button, i) => { button.disabled = !ACTIONS[i].enabled(job); });
      view.refresh();
    },
  }, action.label));
  return h('div', { class: 'actions' }, buttons);
}

function overview(job) {
  const fields = [
    ['State', stateBadge(job.state)],
    ['Progress', progress(job)],
    ['Queue', job.queue],
    ['Task type', job.task_type],
    ['Attempt', `${job.attempt} of ${job.max_attempts}`],
    ['Priority', job.priority],
    ['Timeout', job.timeout_ms === null ? 'none' : duration(job.timeout_ms)],
    ['Worker', job.worker_id ?? '—'],
    ['Requires approval', job.requires_approval ? 'yes' : 'no'],
    ['Idempotency key', job.idempotency_key ?? '—'],
    ['Created', time(job.created_at)],
    ['Run at', time(job.run_at)],
    ['Queued', time(job.queued_at)],
    ['Started', time(job.started_at)],
    ['Finished', time(job.finished_at)],
  ];
  return h('dl', { class: 'fields' }, fields.map(([name, value]) => [h('dt', null, name), h('dd', null, value)]));
}

function progress(job) {
  if (job.progress === null) {
    if (job.state !== 'running') return '—';
    // No value: an indeterminate bar until the handler reports progress.
    return h('span', { class: 'progress' },
      h('progress', { max: 100, 'aria-label': 'progress' }),
      h('span', { class: 'muted' }, 'no progress reported yet'));
  }
  return h('span', { class: 'progress' },
    h('progress', { max: 100, value: job.progress, 'aria-label': 'progress' }),
    h('span', null, `${job.stage ? `${job.stage} · ` : ''}${Math.round(job.progress)}%`));
}

function outcome(job) {
  return h('div', { class: 'outcome' },
    job.error ? [h('h3', null, 'Error'), h('pre', { class: 'json error' }, job.error)] : null,
    job.result !== null ? [h('h3', null, 'Result'), json(job.result)] : null,
    h('h3', null, 'Payload'), json(job.payload),
    job.checkpoint !== null ? [h('h3', null, 'Checkpoint'), json(job.checkpoint)] : null,
    job.metadata !== null ? [h('h3', null, 'Metadata'), json(job.metadata)] : null);
}

function eventTable(events) {
  if (events.length === 0) return h('p', { class: 'muted' }, 'No events.');
  return table(['#', 'At', 'Transition', 'Attempt', 'Worker', 'Detail'], events.map((event) =>
    h('tr', { 'data-event': event.id },
      h('td', { class: 'num' }, event.id),
      h('td', null, time(event.at, true)),
      h('td', null, event.from_state ? [stateBadge(event.from_state), ' → '] : 'created → ', stateBadge(event.to_state)),
      h('td', { class: 'num' }, event.attempt),
      h('td', { class: 'mono' }, event.worker_id ?? ''),
      h('td', { class: 'mono' }, event.detail ? JSON.stringify(event.detail) : ''))), { class: 'events' });
}
