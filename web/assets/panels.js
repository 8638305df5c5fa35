// The cockpit's panels besides the logs: the services list (status, restarts,
// CPU, memory, open incidents), a service's timeline, the incidents with their
// evidence. They draw what app.js hands them; they hold no connection.

import { bytes, clock, count, cpu, duration, fill, h, isUp, sparkline, stamp } from "./util.js";

/** The services list; its first row is "all logs" (name `null`). */
export class ServiceList {
  constructor(el, select) {
    this.el = el;
    this.rows = new Map();
    this.selected = null;
    el.addEventListener("click", (ev) => {
      const row = ev.target.closest(".svc");
      if (row) select(row.dataset.service || null);
    });
  }

  /** Builds the rows for these names (the config's services, sorted). */
  setNames(names) {
    this.rows.clear();
    const all = this.row(null);
    fill(this.el, all, names.map((n) => this.row(n)));
    this.mark();
  }

  row(name) {
    const el = h(
      "div",
      { class: "svc", role: "option", dataset: { service: name ?? "" } },
      h("span", { class: "dot" }),
      h("span", { class: "name", text: name ?? "all logs" }),
      h("span", { class: "inc", title: "open incident" }),
      h("span", { class: "st" }),
      h(
        "span",
        { class: "sub" },
        h("span", { class: "rs", title: "restarts" }),
        h("span", { class: "cpu", title: "CPU (100% = one core)" }),
        h("span", { class: "mem", title: "memory (resident)" }),
      ),
    );
    el.parts = {
      st: el.querySelector(".st"),
      rs: el.querySelector(".rs"),
      cpu: el.querySelector(".cpu"),
      mem: el.querySelector(".mem"),
      inc: el.querySelector(".inc"),
    };
    this.rows.set(name, el);
    return el;
  }

  /** Draws one service's row from its state. */
  update(svc, openIncidents) {
    const el = this.rows.get(svc.name);
    if (!el) return;
    el.dataset.status = svc.status;
    set(el.parts.st, pendingText(svc));
    set(el.parts.rs, svc.restarts ? `↻${svc.restarts}` : "");
    const stats = svc.stats;
    set(el.parts.cpu, stats && isUp(svc.status) ? `${cpu(stats.cpu)} CPU` : "");
    set(el.parts.mem, stats && isUp(svc.status) && stats.rss_bytes ? bytes(stats.rss_bytes) : "");
    set(el.parts.inc, openIncidents ? "!" : "");
    el.classList.toggle("incident", openIncidents > 0);
  }

  /** The "all logs" row: counts of what is up and what failed. */
  summary(text) {
    const el = this.rows.get(null);
    if (el) set(el.parts.st, text);
  }

  select(name) {
    this.selected = name;
    this.mark();
  }

  mark() {
    for (const [name, el] of this.rows) {
      const on = name === this.selected;
      el.classList.toggle("selected", on);
      el.setAttribute("aria-selected", on ? "true" : "false");
      if (on) el.scrollIntoView({ block: "nearest" });
    }
  }
}

function set(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** The status word, with a pending restart when there is one. */
export function pendingText(svc) {
  if (svc.restart_in_ms > 0) return `${svc.status} · restart in ${duration(svc.restart_in_ms)}`;
  return svc.status;
}

/** The timeline of one service (or of all, `showService`), newest last. */
export function renderTimeline(el, entries, showService) {
  if (!entries.length) {
    fill(el, h("li", { class: "empty", text: "Nothing recorded yet." }));
    return;
  }
  fill(
    el,
    entries.map((e) =>
      h(
        "li",
        { class: `tl ${e.kind}` },
        h("time", { text: clock(e.timestamp), title: e.timestamp }),
        h("span", { class: "kind", text: e.kind.replace(/_/g, " ") }),
        showService ? h("span", { class: "svcname", text: e.service }) : null,
        h("span", { class: "msg", text: e.message }),
      ),
    ),
  );
  el.lastElementChild?.scrollIntoView({ block: "nearest" });
}

/** The incidents, newest first, each with its evidence. */
export function renderIncidents(el, incidents, service) {
  const list = incidents
    .filter((i) => !service || i.service === service)
    .sort((a, b) => (a.opened_at < b.opened_at ? 1 : -1));
  if (!list.length) {
    fill(el, h("p", { class: "empty", text: service ? `No incident for ${service}.` : "No incident." }));
    return;
  }
  fill(el, list.map(incidentCard));
}

function incidentCard(i) {
  const open = !i.closed_at;
  const took = open ? "" : duration(new Date(i.closed_at) - new Date(i.opened_at));
  const ev = i.evidence || {};
  return h(
    "article",
    { class: `incident-card ${open ? "open" : "closed"}`, dataset: { incident: i.id } },
    h(
      "header",
      {},
      h("span", { class: "state", text: open ? "open" : "closed" }),
      h("strong", { text: `${i.service}: ${i.rule}` }),
      h("span", { class: "action", text: i.dry_run ? `${i.action} (dry run)` : i.action }),
      h("time", { text: stamp(i.opened_at) + (took ? ` · lasted ${took}` : ""), title: i.opened_at }),
    ),
    h("p", { class: "summary", text: i.summary }),
    i.outcome ? h("p", { class: "outcome", text: `→ ${i.outcome}` }) : null,
    evidence(ev),
  );
}

function evidence(ev) {
  const parts = [];
  if (ev.threshold) parts.push(h("div", { class: "kv" }, h("span", { text: "threshold" }), h("code", { text: thresholdText(ev.threshold) })));
  if (Array.isArray(ev.cpu) && ev.cpu.length) {
    parts.push(series("cpu", ev.cpu, (v) => cpu(v)));
  }
  if (Array.isArray(ev.rss_bytes) && ev.rss_bytes.length) {
    parts.push(series("memory", ev.rss_bytes, (v) => bytes(v)));
  }
  if (ev.template) {
    const n = ev.template_count ? ` ×${count(ev.template_count)}` : "";
    parts.push(h("div", { class: "kv" }, h("span", { text: "repeated" }), h("code", { text: ev.template + n })));
  }
  for (const [k, v] of Object.entries(ev)) {
    if (["threshold", "cpu", "rss_bytes", "template", "template_count", "last_lines"].includes(k)) continue;
    parts.push(h("div", { class: "kv" }, h("span", { text: k.replace(/_/g, " ") }), h("code", { text: JSON.stringify(v) })));
  }
  if (Array.isArray(ev.last_lines) && ev.last_lines.length) {
    parts.push(h("details", {}, h("summary", { text: `last ${ev.last_lines.length} lines` }), h("pre", { text: ev.last_lines.join("\n") })));
  }
  return parts.length ? h("div", { class: "evidence" }, parts) : null;
}

function series(label, values, fmt) {
  const nums = values.filter((v) => typeof v === "number");
  const hi = Math.max(...nums);
  return h(
    "div",
    { class: "kv" },
    h("span", { text: label }),
    sparkline(nums),
    h("code", { text: `last ${fmt(nums[nums.length - 1])}, peak ${fmt(hi)}` }),
  );
}

/** `{"cpu":{"above":0.9,"forMs":30000}}` -> `cpu above 0.9 for 30 s`. */
function thresholdText(t) {
  const words = (o) =>
    Object.entries(o)
      .map(([k, v]) => {
        if (v && typeof v === "object") return `${k} ${words(v)}`;
        if (/Ms$/.test(k)) return `${k.replace(/Ms$/, "")} ${duration(v)}`;
        return `${k} ${v}`;
      })
      .join(", ");
  return words(t);
}
