// The life of one page view: it owns its polling loop and its message line,
// and everything it does stops once the operator navigates elsewhere.
import { ApiError } from './api.js';
import { h } from './dom.js';

/** Failures after which polling goes on (the coordinator may come back). */
const TRANSIENT = new Set([0, 408, 429, 502, 503, 504]);

export class View {
  /**
   * @param {URLSearchParams} params query of the route
   * @param {string|undefined} id path parameter (a job id)
   * @param {{banner: (text: string|null) => void, tokenRejected: (e: ApiError) => void}} page
   */
  constructor(params, id, page) {
    this.params = params;
    this.id = id;
    this.page = page;
    this.alive = true;
    this.note = h('p', { class: 'note', role: 'status', hidden: true });
    this.timer = null;
    this.poll = null;
    this.polling = false;
    this.busy = false;
    this.again = false;
  }

  /** Replaces the main area with this view's skeleton. */
  show(...nodes) {
    if (this.alive) document.getElementById('main').replaceChildren(...nodes);
  }

  /** Replaces `container`'s content unless `key` is what it already shows. */
  swap(container, node, key) {
    if (!this.alive || (key !== undefined && container.dataset.key === key)) return;
    if (key !== undefined) container.dataset.key = key;
    container.replaceChildren(node);
  }

  /** Sets the view's message line (kind: 'ok' or 'error'); null hides it. */
  say(text, kind = 'ok') {
    this.note.hidden = text === null;
    this.note.className = `note ${kind}`;
    this.note.textContent = text ?? '';
  }

  /**
   * Runs `fn` now and then every `ms` until it returns false, the view closes
   * or a request fails for good. Slow requests never overlap.
   */
  every(ms, fn) {
    this.poll = { ms, fn };
    this.refresh();
  }

  /** Polls now (restarting a loop that had stopped). */
  refresh() {
    if (!this.poll || !this.alive) return;
    clearTimeout(this.timer);
    if (this.busy) {
      this.again = true;
      return;
    }
    this.tick();
  }

  async tick() {
    this.busy = true;
    let goOn;
    try {
      goOn = (await this.poll.fn()) !== false;
      if (this.alive) this.page.banner(null);
    } catch (error) {
      goOn = this.fail(error);
    }
    this.busy = false;
    if (!this.alive) return;
    if (this.again) {
      this.again = false;
      this.tick();
    } else if (goOn) {
      this.timer = setTimeout(() => this.tick(), this.poll.ms);
    }
  }

  /** Reports a failed request; returns whether polling should go on. */
  fail(error) {
    if (!this.alive) return false;
    if (!(error instanceof ApiError)) {
      this.page.banner(`The dashboard failed: ${error}`);
      return false;
    }
    if (error.status === 401) {
      this.page.tokenRejected(error);
      return false;
    }
    this.page.banner(explain(error));
    return TRANSIENT.has(error.status);
  }

  /** Reports a failed button action in the message line. */
  actionFailed(error) {
    if (error instanceof ApiError && error.status === 401) this.page.tokenRejected(error);
    else this.say(error instanceof ApiError ? explain(error) : String(error), 'error');
  }

  close() {
    this.alive = false;
    clearTimeout(this.timer);
  }
}

/** An API error in words an operator can act on. */
export function explain(error) {
  if (error.status === 403) return `Not allowed with this token: ${error.describe()}`;
  if (error.status === 0) return `${error.message}; retrying.`;
  return error.describe();
}
