// The Warren dashboard. Hash routes (#/queues, #/jobs?state=&queue=&type=,
// #/jobs/<id>, #/workers) each render one view module; the API token is
// entered once and kept in localStorage until "Forget token".
import { api, token } from './api.js';
import { h } from './dom.js';
import * as job from './job.js';
import * as jobs from './jobs.js';
import * as queues from './queues.js';
import { View } from './view.js';
import * as workers from './workers.js';

const VIEWS = { queues, jobs, job, workers };
/** Header statistics refresh period; the header hides them if /v1/stats is missing. */
const STATS_EVERY_MS = 10_000;

const $ = (id) => document.getElementById(id);
let current = null;
let statsTimer = null;

const page = {
  banner(text) {
    $('banner').hidden = text === null;
    $('banner').textContent = text ?? '';
  },
  tokenRejected(error) {
    current?.close();
    askForToken(`The coordinator rejected the token (${error.describe()}). Enter a valid API token.`);
  },
};

function askForToken(message) {
  $('token-form').hidden = false;
  $('token-set').hidden = true;
  $('stats').hidden = true;
  clearTimeout(statsTimer);
  page.banner(message);
  $('main').replaceChildren(h('p', { class: 'muted' },
    'The dashboard reads everything from the coordinator\'s /v1 API with a bearer token.'));
  $('token-input').focus();
}

function render() {
  current?.close();
  if (!token.get()) {
    askForToken('Enter the API token (WARREN_API_TOKEN) to use the dashboard.');
    return;
  }
  $('token-form').hidden = true;
  $('token-set').hidden = false;
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name = 'queues', id] = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll('nav a')) {
    link.toggleAttribute('aria-current', link.dataset.route === name);
  }
  const module = VIEWS[name === 'jobs' && id ? 'job' : name];
  current = new View(new URLSearchParams(query), id, page);
  if (!module) {
    current.show(h('p', { class: 'error' }, `There is no page "${name}".`));
    return;
  }
  current.show(h('p', { class: 'muted' }, 'Loading…'));
  module.render(current);
}

/** (Re)starts the header statistics. */
function startStats() {
  clearTimeout(statsTimer);
  loadStats();
}

/** Header statistics: top-level numbers of GET /v1/stats, if the coordinator has it. */
async function loadStats() {
  let stats;
  try {
    stats = await api('/stats');
  } catch (error) {
    // 404: this coordinator has no statistics endpoint; 401: the token form is up.
    if (error.status !== 404 && error.status !== 401) {
      statsTimer = setTimeout(loadStats, STATS_EVERY_MS);
    }
    return;
  }
  const numbers = Object.entries(stats ?? {}).filter(([, v]) => typeof v === 'number').slice(0, 6);
  $('stats').replaceChildren(...numbers.map(([key, value]) =>
    h('span', null, h('b', null, String(value)), ` ${key.replaceAll('_', ' ')}`)));
  $('stats').hidden = numbers.length === 0;
  statsTimer = setTimeout(loadStats, STATS_EVERY_MS);
}

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  token.set($('token-input').value.trim());
  try {
    // Any authenticated read tells whether the coordinator accepts the token.
    await api('/workers');
  } catch (error) {
    if (error.status === 401) {
      token.clear();
      page.tokenRejected(error);
      return;
    }
  }
  $('token-input').value = '';
  page.banner(null);
  render();
  startStats();
});

$('forget-token').addEventListener('click', () => {
  token.clear();
  current?.close();
  askForToken('Token forgotten. Enter the API token to use the dashboard again.');
});

window.addEventListener('hashchange', render);
render();
if (token.get()) startStats();
