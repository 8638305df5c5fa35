// The log panel: the lines of one view (all services, or one), a filter, and a
// virtual list that puts only the visible rows in the DOM, so 100,000 lines
// scroll as smoothly as 100.
//
// The view is a list of entries in `seq` order with gaps in it: a gap stands
// for lines the page does not hold (older history, or lines the live stream
// skipped during a flood: spec/protocol.md lets the server drop `log` events
// for a client that cannot keep up). A gap that comes into sight is loaded
// with `get_logs` (`after_seq`/`before_seq`), newest first, so scrolling up
// pages back through the whole history with one mechanism.
//
// Live lines are queued and applied once per animation frame: during a flood
// the page does one layout per frame, whatever the rate of lines.

import { clock, count, hue, plain } from "./util.js";

/** Lines a view holds; past it the far end is dropped (and becomes a gap). */
export const MAX_LINES = 200000;
/** Lines asked for when a gap is loaded. */
export const PAGE = 2000;
/** Rows drawn above and below the visible ones, so a fast scroll shows no blank. */
const OVERSCAN = 12;
/** While the view follows the tail, a gap must stay in sight this long before
 * it is loaded: during a flood, gaps go by faster than they are worth loading. */
const GAP_SETTLE_MS = 250;
/** Quiet time after which a service view shows what the live stream skipped. */
const SKIP_SETTLE_MS = 500;

const isGap = (it) => it.gap === true;

export class LogView {
  /**
   * @param scroller the scrolling element (holds `.spacer` and `.rows`)
   * @param load (gap) => Promise<{entries, truncated}>: fetches the newest
   *   `PAGE` lines of the view between `gap.after` and `gap.before`
   * @param changed () => void: counts or follow state changed
   * @param picked (entry) => void: a line was clicked
   */
  constructor(scroller, { load, changed, picked }) {
    this.el = scroller;
    this.spacer = scroller.querySelector(".spacer");
    this.rowsEl = scroller.querySelector(".rows");
    this.loadGap = load;
    this.changed = changed;
    this.picked = picked;
    this.rowH = parseFloat(getComputedStyle(scroller).getPropertyValue("--row")) || 20;
    this.pool = [];
    this.items = [];
    this.rows = [];
    this.queue = [];
    this.re = null;
    this.streams = { stdout: true, stderr: true, system: true };
    this.follow = true;
    this.unseen = 0;
    this.holding = true;
    this.loading = null;
    this.gapTimer = null;
    this.frame = 0;
    this.epoch = 0;
    this.showService = true;
    this.pick = null;
    this.entries = 0;
    this.rowGaps = 0;
    this.pendingSkip = null;
    this.skipTimer = null;
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    scroller.addEventListener("click", (ev) => this.onClick(ev));
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  /** Empties the view for a new selection; live lines wait until `begin`. */
  reset(showService) {
    this.epoch++;
    this.showService = showService;
    this.el.classList.toggle("one-service", !showService);
    this.items = [];
    this.rows = [];
    this.rowGaps = 0;
    this.queue = [];
    this.entries = 0;
    this.holding = true;
    this.loading = null;
    this.follow = true;
    this.unseen = 0;
    this.pick = null;
    this.pendingSkip = null;
    clearTimeout(this.skipTimer);
    clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.render();
  }

  /** The first page of the view: `entries` ascending, `truncated` when older ones exist. */
  begin(entries, truncated) {
    const items = entries.slice();
    if (truncated && items.length) items.unshift({ gap: true, after: null, before: items[0].seq });
    this.items = items;
    this.entries = entries.length;
    this.holding = false;
    this.rebuild();
    this.schedule();
  }

  /** After a reconnect: the lines of the view newer than the ones it holds. */
  resume(entries, truncated) {
    const missed = truncated && entries.length ? [{ gap: true, after: this.lastSeq(), before: entries[0].seq }] : [];
    this.queue.unshift(...missed, ...entries);
    this.holding = false;
    this.schedule();
  }

  /** Stops applying live lines (a reconnect is being filled). */
  hold() {
    this.holding = true;
  }

  /** The highest `seq` the view accounts for (held or covered by a gap). */
  lastSeq() {
    const last = this.items[this.items.length - 1];
    if (!last) return null;
    return isGap(last) ? last.before - 1 : last.seq;
  }

  /** A live line of this view. */
  push(entry) {
    const p = this.pendingSkip;
    if (p && entry.seq > p.after) {
      this.queue.push({ gap: true, after: p.after, before: Math.min(entry.seq, p.before) });
      this.pendingSkip = p.before > entry.seq + 1 ? { after: entry.seq, before: p.before } : null;
    }
    this.queue.push(entry);
    this.schedule();
  }

  /**
   * The live stream skipped the lines between `after` and `before`. In the
   * all view they are lines of the view: a gap now. In a service's view they
   * may all be other services' lines (a neighbour's flood): the gap is shown
   * when a line of this view follows it, or once the stream has been quiet
   * for `SKIP_SETTLE_MS`, so another service's flood does not flicker here.
   */
  skipped(after, before) {
    if (this.showService) {
      this.queue.push({ gap: true, after, before });
      this.schedule();
      return;
    }
    const p = this.pendingSkip;
    this.pendingSkip = p ? { after: Math.min(p.after, after), before: Math.max(p.before, before) } : { after, before };
    clearTimeout(this.skipTimer);
    this.skipTimer = setTimeout(() => {
      if (!this.pendingSkip) return;
      this.queue.push({ gap: true, ...this.pendingSkip });
      this.pendingSkip = null;
      this.schedule();
    }, SKIP_SETTLE_MS);
  }

  setFilter(text, streams) {
    this.re = null;
    const t = text.trim();
    if (t) {
      const m = /^\/(.+)\/([a-z]*)$/.exec(t);
      try {
        this.re = m ? new RegExp(m[1], m[2].includes("i") ? "i" : "") : new RegExp(escapeRe(t), "i");
      } catch (e) {
        this.re = new RegExp(escapeRe(t), "i");
      }
    }
    this.streams = { ...streams };
    this.keepPlace(() => this.rebuild());
    this.schedule();
  }

  passes(it) {
    if (isGap(it)) return true;
    if (this.streams[it.stream] === false) return false;
    return !this.re || this.re.test(it.message) || (this.showService && this.re.test(it.service));
  }

  rebuild() {
    this.rows = this.items.filter((it) => this.passes(it));
    this.rowGaps = this.rows.reduce((n, it) => n + (isGap(it) ? 1 : 0), 0);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** One frame: apply queued lines, then draw. */
  flush() {
    this.frame = 0;
    if (!this.holding && this.queue.length) {
      const q = this.queue;
      this.queue = [];
      for (const it of q) {
        if (isGap(it)) this.addGap(it.after, it.before);
        else this.append(it);
      }
      if (this.items.length > MAX_LINES) {
        if (this.follow) this.trimFront(this.items.length - Math.floor(MAX_LINES * 0.9));
      }
    }
    this.render();
  }

  append(e) {
    const last = this.lastSeq();
    if (last !== null && e.seq <= last) return;
    if (!this.follow && this.items.length >= MAX_LINES) {
      // Full and the reader is elsewhere: keep the place, count the line.
      this.addGap(last, e.seq + 1);
      this.unseen++;
      return;
    }
    this.items.push(e);
    this.entries++;
    if (this.passes(e)) {
      this.rows.push(e);
      if (!this.follow) this.unseen++;
    }
  }

  addGap(after, before) {
    const last = this.lastSeq();
    const a = last === null ? after : Math.max(after ?? last, last);
    if (a !== null && before - a <= 1) return;
    const tail = this.items[this.items.length - 1];
    if (tail && isGap(tail)) {
      tail.before = Math.max(tail.before, before);
      return;
    }
    const gap = { gap: true, after: a, before };
    this.items.push(gap);
    this.rows.push(gap);
    this.rowGaps++;
  }

  trimFront(n) {
    const gone = this.items.splice(0, n);
    this.entries -= gone.filter((it) => !isGap(it)).length;
    const first = this.items[0];
    if (first && isGap(first)) first.after = null;
    else if (first) this.items.unshift({ gap: true, after: null, before: first.seq });
    this.rebuild();
  }

  trimBack(n) {
    const gone = this.items.splice(this.items.length - n, n);
    this.entries -= gone.filter((it) => !isGap(it)).length;
    const lastGone = gone[gone.length - 1];
    const before = isGap(lastGone) ? lastGone.before : lastGone.seq + 1;
    this.items.push({ gap: true, after: this.lastSeq(), before });
    this.rebuild();
  }

  /** Runs `change` (which may add or remove rows) keeping the first visible line in place. */
  keepPlace(change) {
    const top = this.el.scrollTop;
    const first = Math.floor(top / this.rowH);
    let anchor = null;
    for (let i = first; i < this.rows.length && i < first + 50; i++) {
      if (!isGap(this.rows[i])) {
        anchor = this.rows[i];
        break;
      }
    }
    const offset = anchor ? this.rows.indexOf(anchor) * this.rowH - top : 0;
    change();
    if (this.follow || !anchor) return;
    const at = this.rows.indexOf(anchor);
    if (at >= 0) {
      this.spacer.style.height = `${this.rows.length * this.rowH}px`;
      this.el.scrollTop = at * this.rowH - offset;
    }
  }

  onScroll() {
    const atBottom = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - this.rowH / 2;
    if (atBottom !== this.follow) {
      this.follow = atBottom;
      if (atBottom) this.unseen = 0;
    }
    this.schedule();
  }

  onClick(ev) {
    const row = ev.target.closest(".row");
    if (!row || !row._item || isGap(row._item)) return;
    this.pick = this.pick === row._item ? null : row._item;
    this.picked(this.pick);
    this.render();
  }

  render() {
    const n = this.rows.length;
    this.spacer.style.height = `${n * this.rowH}px`;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    const top = this.el.scrollTop;
    const height = this.el.clientHeight;
    const seenFirst = Math.floor(top / this.rowH);
    const seenLast = Math.min(n, Math.ceil((top + height) / this.rowH));
    const first = Math.max(0, seenFirst - OVERSCAN);
    const last = Math.min(n, seenLast + OVERSCAN);
    const want = Math.ceil(height / this.rowH) + 2 * OVERSCAN + 2;
    if (this.pool.length < want) {
      while (this.pool.length < want) this.pool.push(this.makeRow());
      for (const el of this.pool) el._index = -1;
    }
    // Row i always goes to element i mod the pool's size: as the view
    // scrolls (or a flood moves the tail), only the rows that come into the
    // window are written; the others keep their text and place.
    const size = this.pool.length;
    for (let i = first; i < last; i++) {
      const el = this.pool[i % size];
      if (el._index !== i) {
        el._index = i;
        el.style.transform = `translateY(${i * this.rowH}px)`;
      }
      if (el.hidden) el.hidden = false;
      this.paint(el, this.rows[i]);
    }
    for (const el of this.pool) {
      if (el._index < first || el._index >= last) {
        if (!el.hidden) el.hidden = true;
        el._index = -1;
        el._item = null;
      }
    }
    let gap = null;
    for (let i = seenFirst; i < seenLast && !gap; i++) if (isGap(this.rows[i])) gap = this.rows[i];
    if (gap) this.wantGap();
    this.changed();
  }

  makeRow() {
    const el = document.createElement("div");
    el.className = "row";
    el._index = -1;
    el.t = el.appendChild(document.createElement("span"));
    el.t.className = "t";
    el.s = el.appendChild(document.createElement("span"));
    el.s.className = "s";
    el.k = el.appendChild(document.createElement("span"));
    el.k.className = "k";
    el.m = el.appendChild(document.createElement("span"));
    el.m.className = "m";
    this.rowsEl.append(el);
    return el;
  }

  paint(el, it) {
    const picked = it === this.pick;
    if (el._item === it && el._picked === picked && !isGap(it)) return;
    el._item = it;
    el._picked = picked;
    if (isGap(it)) {
      el.className = "row gap";
      el.t.textContent = el.s.textContent = el.k.textContent = "";
      el.m.textContent = this.gapText(it);
      return;
    }
    el.className = `row ${it.stream}${picked ? " picked" : ""}`;
    el.t.textContent = it._clock || (it._clock = clock(it.timestamp));
    if (this.showService) {
      el.s.textContent = it.service;
      el.s.className = `s ${hue(it.service)}`;
    } else {
      el.s.textContent = "";
    }
    el.k.textContent = it.stream === "stdout" ? "" : it.stream === "stderr" ? "err" : "sys";
    el.m.textContent = plain(it.message);
  }

  gapText(g) {
    if (g.after === null) return g.loading ? "loading older lines…" : "older lines: scroll up to load";
    // On all logs every seq is a line of the view; in one service's view the
    // gap's seqs are shared with the other services.
    const span = this.showService ? `${count(g.before - g.after - 1)} ` : "";
    return g.loading ? `loading ${span}lines…` : `⋯ ${span}lines skipped by the live stream: they load when in sight`;
  }

  /** A gap is in sight: load it, at once when the reader went there, after a
   * moment while the view follows the tail. */
  wantGap() {
    if (this.loading || this.gapTimer || this.holding) return;
    this.gapTimer = setTimeout(
      () => {
        this.gapTimer = null;
        const gap = this.visibleGap();
        if (gap && !this.loading && !this.holding) this.fetchGap(gap);
      },
      this.follow ? GAP_SETTLE_MS : 0,
    );
  }

  visibleGap() {
    const first = Math.floor(this.el.scrollTop / this.rowH);
    const last = Math.min(this.rows.length, Math.ceil((this.el.scrollTop + this.el.clientHeight) / this.rowH));
    for (let i = Math.max(0, first); i < last; i++) if (isGap(this.rows[i])) return this.rows[i];
    return null;
  }

  async fetchGap(gap) {
    const epoch = this.epoch;
    this.loading = gap;
    gap.loading = true;
    this.schedule();
    let page = null;
    try {
      page = await this.loadGap(gap);
    } catch (e) {
      page = null;
    }
    if (epoch !== this.epoch) return;
    this.loading = null;
    gap.loading = false;
    if (!page) {
      this.schedule();
      return;
    }
    const at = this.items.indexOf(gap);
    if (at < 0) return this.schedule();
    const got = page.entries.filter((e) => e.seq < gap.before && (gap.after === null || e.seq > gap.after));
    const parts = [];
    if (page.truncated && got.length) parts.push({ gap: true, after: gap.after, before: got[0].seq });
    parts.push(...got);
    const aboveView = this.rows.indexOf(gap) * this.rowH < this.el.scrollTop;
    this.keepPlace(() => {
      this.items.splice(at, 1, ...parts);
      this.entries += got.length;
      if (this.items.length > MAX_LINES) {
        const extra = this.items.length - Math.floor(MAX_LINES * 0.9);
        // Drop the end farther from the reader.
        if (aboveView || at < this.items.length / 2) this.trimBack(extra);
        else this.trimFront(extra);
      }
      this.rebuild();
    });
    this.schedule();
  }

  /** Scrolls: by lines (`lines`) or pages (`pages`), or to an end. */
  scrollBy({ lines = 0, pages = 0 }) {
    const d = lines * this.rowH + pages * (this.el.clientHeight - this.rowH);
    this.el.scrollTop += d;
    if (d < 0) this.follow = false;
    this.schedule();
  }

  toTop() {
    this.follow = false;
    this.el.scrollTop = 0;
    this.schedule();
  }

  toTail() {
    this.follow = true;
    this.unseen = 0;
    this.schedule();
  }

  info() {
    return { shown: this.rows.length - this.rowGaps, held: this.entries, follow: this.follow, unseen: this.unseen };
  }
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
