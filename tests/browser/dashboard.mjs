// End-to-end test of the Warren dashboard in headless Chromium (Debian's
// `chromium` package driven by playwright-core; no browser download).
//
//   node tests/browser/dashboard.mjs <coordinator-url> <token> [queue]
//
// Expects (tests/integration/dashboard.rs sets this up) on `queue` (default
// dash-e2e): two jobs awaiting approval, one running job that reported
// progress 42% at stage "rendering" and waits to be cancelled, and a few
// finished jobs. It enters a wrong token and then the right one, checks
// the queues view, filters and pages the job list, opens a job page and its
// events, approves one job, sees a 409 explained on another, cancels the
// running job, lists the workers, toggles the queue's pause and forgets the
// token. The last line of stdout is a JSON summary of the jobs it changed,
// which the Rust test checks against the database.
//
// On failure it exits 1 naming the step and saves target/dashboard-failure.png.
// Environment: WARREN_CHROMIUM (default /usr/bin/chromium); WARREN_SCREENSHOTS
// = a directory to save a PNG of every view in (for looking at the page).

import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [url, token, queue = 'dash-e2e'] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node tests/browser/dashboard.mjs <coordinator-url> <token> [queue]');
  process.exit(2);
}
const CHROMIUM = process.env.WARREN_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = process.env.WARREN_SCREENSHOTS;
const FAILURE_PNG = fileURLToPath(new URL('../../target/dashboard-failure.png', import.meta.url));
const TIMEOUT_MS = 20_000;

const summary = {};
const pageErrors = [];
let step = 'launch chromium';
let browser;
let page;

/** Polls `check` (truthy = done) until TIMEOUT_MS; fails naming `what`. */
async function until(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function screenshot(name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

const text = (selector) => page.locator(selector).first().textContent({ timeout: 1000 });
const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash);
const rows = (selector) => page.locator(`${selector} tbody tr`);
const jobState = () => page.locator('.fields [data-state]').getAttribute('data-state', { timeout: 1000 });
/** Ids of the rows of the job list. */
const listedIds = () => rows('table.jobs').evaluateAll((trs) => trs.map((tr) => tr.dataset.job));

async function run(name, body) {
  step = name;
  console.log(`dashboard: ${name}`);
  await body();
}

try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Chromium's sandbox refuses to run as root (CI runs as root).
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // Failed fetches (the wrong token's 401, a missing endpoint's 404) are
    // expected; anything else logged as an error (a CSP violation, say) is not.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      pageErrors.push(`console error: ${message.text()}`);
    }
  });

  await run('page loads with a strict CSP and asks for the token', async () => {
    const response = await page.goto(`${url}/`);
    if (response.status() !== 200) throw new Error(`GET / answered ${response.status()}`);
    const csp = response.headers()['content-security-policy'] ?? '';
    if (!csp.includes("script-src 'self'")) throw new Error(`weak or missing CSP: ${csp}`);
    await page.locator('#token-form').waitFor({ state: 'visible' });
    await until('the token prompt', async () => (await text('#banner')).includes('Enter the API token'));
  });

  await run('a wrong token gets a clear 401 message', async () => {
    await page.fill('#token-input', 'not-the-token');
    await page.press('#token-input', 'Enter');
    await until('the 401 message', async () => {
      const banner = await text('#banner');
      return banner.includes('rejected the token') && banner.includes('401');
    });
    await page.locator('#token-form').waitFor({ state: 'visible' });
    await screenshot('token-rejected');
  });

  await run('the right token opens the queues view', async () => {
    await page.fill('#token-input', token);
    await page.press('#token-input', 'Enter');
    await page.locator('#token-set').waitFor({ state: 'visible' });
    const found = await until('the queue row or the unavailable notice', async () => {
      if (await page.locator(`tr[data-queue="${queue}"]`).count()) return 'listed';
      if (await page.locator('#queues-unavailable').count()) return 'unavailable';
      return null;
    });
    summary.queues = found;
    if (found === 'listed') {
      const running = await text(`tr[data-queue="${queue}"] [data-count="running"]`);
      if (running.trim() !== '1') throw new Error(`queue ${queue} shows ${running} running, expected 1`);
    }
    await screenshot('queues');
  });

  await run('the job list filters by state', async () => {
    await page.click('nav a[data-route="jobs"]');
    await until('jobs listed', async () => (await rows('table.jobs').count()) >= 6);
    await screenshot('jobs');
    await page.selectOption('select[name="state"]', 'awaiting_approval');
    await page.fill('input[name="queue"]', queue);
    await page.click('form.filters button[type="submit"]');
    await until('the filtered list', async () => {
      const states = await page.locator('table.jobs [data-state]').evaluateAll(
        (badges) => badges.map((b) => b.dataset.state));
      return page.url().includes('state=awaiting_approval') && states.length === 2
        && states.every((s) => s === 'awaiting_approval');
    });
  });

  await run('the job list pages with the cursor', async () => {
    await go(`#/jobs?queue=${queue}&limit=2`);
    await until('page 1 with a next link', async () =>
      (await rows('table.jobs').count()) === 2 && (await page.locator('a[rel="next"]').count()) === 1);
    const first = await listedIds();
    await page.click('a[rel="next"]');
    await until('page 2', async () => {
      const second = await listedIds();
      return second.length === 2 && second.every((id) => !first.includes(id));
    });
  });

  await run('a job page shows fields and events; Approve moves the job on', async () => {
    await go(`#/jobs?state=awaiting_approval&queue=${queue}`);
    await until('two awaiting jobs', async () => (await listedIds()).length === 2);
    const [approveId, conflictId] = await listedIds();
    summary.approved = approveId;
    summary.conflict = conflictId;
    await page.click(`tr[data-job="${approveId}"] a`);
    await until('the job page', async () => (await jobState()) === 'awaiting_approval');
    await until('the creation event', async () => (await rows('table.events').count()) >= 1);
    if (await page.isDisabled('[data-action="approve"]')) throw new Error('Approve is disabled');
    if (!(await page.isDisabled('[data-action="retry"]'))) throw new Error('Retry is enabled');
    await screenshot('job-awaiting');
    await page.click('[data-action="approve"]');
    await until('the job to leave awaiting_approval', async () => (await jobState()) !== 'awaiting_approval');
    await until('the approval note', async () => (await text('.note')).includes('awaiting_approval → pending'));
    // Auto-refresh follows it through the worker to the end, then stops.
    await until('completion', async () => (await jobState()) === 'completed'
      && (await text('.refresh')).includes('auto-refresh stopped'));
    await until('the completed event', async () =>
      (await page.locator('table.events [data-state="completed"]').count()) === 1);
    await screenshot('job-completed');
  });

  await run('a 409 shows the API\'s message', async () => {
    // A second browser context with paused timers: the page cannot notice the
    // change made behind its back (the clock belongs to the whole context).
    const isolated = await browser.newContext();
    await isolated.clock.install();
    await isolated.clock.pauseAt(Date.now() + 1000);
    const frozen = await isolated.newPage();
    await frozen.goto(`${url}/#/jobs/${summary.conflict}`);
    await frozen.fill('#token-input', token);
    await frozen.press('#token-input', 'Enter');
    await frozen.locator('[data-action="approve"]:enabled').waitFor();
    const response = await frozen.request.post(`${url}/v1/jobs/${summary.conflict}/approve`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (response.status() !== 200) throw new Error(`direct approve answered ${response.status()}`);
    await frozen.click('[data-action="approve"]');
    const message = await until('the 409 message', async () => {
      const note = await frozen.locator('.note.error').textContent({ timeout: 1000 });
      return note.includes('409 illegal_transition') && note;
    });
    console.log(`dashboard: shown: ${message}`);
    // After any action the page reloads the job at once, timers or not.
    await until('the refreshed state', async () => (await frozen.locator('.fields [data-state]')
      .getAttribute('data-state', { timeout: 1000 })) !== 'awaiting_approval');
    if (SCREENSHOTS) await frozen.screenshot({ path: `${SCREENSHOTS}/job-conflict.png`, fullPage: true });
    await isolated.close();
  });

  await run('Cancel stops the running job', async () => {
    await go(`#/jobs?state=running&queue=${queue}`);
    const [runningId] = await until('the running job', async () => {
      const ids = await listedIds();
      return ids.length === 1 && ids;
    });
    summary.cancelled = runningId;
    await page.click(`tr[data-job="${runningId}"] a`);
    await until('the running job page', async () => (await jobState()) === 'running');
    await until('its progress', async () => (await text('.fields .progress')).includes('rendering · 42%')
      && (await page.locator('.fields progress').getAttribute('value')) === '42');
    await screenshot('job-running');
    page.once('dialog', (dialog) => dialog.accept());
    await page.click('[data-action="cancel"]');
    await until('cancelled', async () => (await jobState()) === 'cancelled'
      && (await text('.refresh')).includes('auto-refresh stopped'));
    await until('the cancel note', async () => (await text('.note')).includes('running → cancelled'));
  });

  await run('the workers view shows heartbeat ages', async () => {
    await page.click('nav a[data-route="workers"]');
    const age = await until('a worker row', async () => {
      const cell = await text('table.workers td.heartbeat');
      return /ago$/.test(cell) && cell;
    });
    console.log(`dashboard: last heartbeat ${age}`);
    await screenshot('workers');
  });

  await run('the pause toggle pauses and resumes the queue', async () => {
    if (summary.queues !== 'listed') throw new Error('the queues view did not list the queue');
    await togglePauseTwiceAndPause();
    summary.queue_paused = true;
  });

  await run('Forget token clears it', async () => {
    await page.click('#forget-token');
    await page.locator('#token-form').waitFor({ state: 'visible' });
    const saved = await page.evaluate(() => localStorage.getItem('warren.token'));
    if (saved !== null) throw new Error('the token is still in localStorage');
  });

  if (pageErrors.length) throw new Error(pageErrors.join('\n'));
  await browser.close();
  console.log(JSON.stringify(summary));
} catch (error) {
  console.error(`dashboard test FAILED at step "${step}": ${error.message}`);
  if (page) {
    console.error(`  page: ${page.url()}`);
    const banner = await page.locator('#banner').textContent({ timeout: 1000 }).catch(() => '');
    if (banner) console.error(`  banner: ${banner}`);
    if (pageErrors.length) console.error(`  ${pageErrors.join('\n  ')}`);
    mkdirSync(new URL('../../target/', import.meta.url), { recursive: true });
    await page.screenshot({ path: FAILURE_PNG, fullPage: true }).catch(() => {});
    console.error(`  screenshot: ${FAILURE_PNG}`);
  }
  await browser?.close();
  process.exit(1);
}

/** Pause, resume, pause: each click's result is shown; the queue stays paused. */
async function togglePauseTwiceAndPause() {
  await go('#/queues');
  const row = `tr[data-queue="${queue}"]`;
  for (const [button, badge] of [['Pause', 'paused'], ['Resume', 'active'], ['Pause', 'paused']]) {
    await page.locator(`${row} button.toggle`, { hasText: button }).click();
    await until(`the queue ${badge}`, async () => (await text(`${row} .badge`)) === badge
      && (await text(`${row} button.toggle`)) !== button);
  }
  await until('the pause note', async () => (await text('.note')).includes(`Queue ${queue} paused`));
  await screenshot('queues-paused');
}

