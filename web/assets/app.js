// The web cockpit (spec/web.md): the page's state and its wiring. It holds UI
// state only; the server is the truth. Reads the token from the address's
// fragment (or asks for it), connects through link.js, keeps the services
// from `snapshot` + `service_status`, shows the selected view's logs
// (logview.js), stats, why, timeline and incidents when the server offers
// them (`hello` capabilities), and sends the actions.

import { Link } from "./link.js";
import { LogView, PAGE } from "./logview.js";
import { ServiceList, pendingText, renderIncidents, renderTimeline } from "./panels.js";
import { bytes, clock, count, cpu, duration, fill, h, isUp } from "./util.js";

const $ = (id) => document.getElementById(id);

/** Where the token is kept: this tab only, gone when it closes (spec/web.md). */
const TOKEN_KEY = "flowlayer.token";
/** How often the server sends `service_stats` while the page is visible. */
const STATS_INTERVAL_MS = 1000;
/** Status changes come in bursts (a restart is four): one timeline fetch per burst. */
const TIMELINE_DEBOUNCE_MS = 200;
const FILTER_DEBOUNCE_MS = 120;

const S = {
  link: null,
  token: null,
  state: "connecting",
  hello: {},
  caps: new Set(),
  instance: null,
  names: [],
  services: new Map(),
  selected: null,
  tab: "logs",
  incidents: new Map(),
  /** Highest seq of the live stream, to see what it skipped. */
  lastLive: null,
  /** The view's first page was asked for on this connection. */
  viewLoaded: false,
  viewEpoch: 0,
  timeline: [],
  why: "",
  shownOnce: false,
  timelineTimer: null,
  tick: null,
  busy: new Set(),
};

// ---- start ------------------------------------------------------------------

const list = new ServiceList($("services"), (name) => select(name));
const view = new LogView($("logs"), {
  load: (gap) =>
    call("get_logs", {
      service: S.selected ?? undefined,
      after_seq: gap.after ?? undefined,
      before_seq: gap.before,
      limit: PAGE,
    }),
  changed: () => drawLogBar(),
  picked: (entry) => drawPicked(entry),
});

wire();
const first = takeToken();
if (first) connect(first);
else {
  onState("no_token");
  askToken("");
}

/** The token from `#token=…` (then taken out of the address bar) or this tab's storage. */
function takeToken() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const t = frag.get("token");
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    history.replaceState(null, "", location.pathname + location.search);
    return t;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function connect(token) {
  if (S.link) S.link.stop();
  S.token = token;
  S.link = new Link(token, {
    state: onState,
    ready: onReady,
    event: onEvent,
    lost: onLost,
  });
  S.link.start();
}

function call(name, payload) {
  if (!S.link) return Promise.reject({ code: "disconnected", message: "not connected" });
  return S.link.call(name, payload);
}

// ---- connection -------------------------------------------------------------

function onState(state, detail = {}) {
  S.state = state;
  const conn = $("conn");
  conn.dataset.state = state;
  const label = {
    connecting: "connecting…",
    connected: "connected",
    retrying: `${detail.why || "disconnected"}: retrying in ${duration(detail.inMs)}`,
    invalid_token: "invalid token",
    no_token: "token required",
    unusable_token: "token not usable from a browser",
    too_many_attempts: `too many failed attempts: retrying in ${duration(detail.inMs)}`,
  }[state];
  conn.querySelector(".label").textContent = label;
  document.body.classList.toggle("offline", state !== "connected");
  drawSummary();
  if (state === "invalid_token") {
    sessionStorage.removeItem(TOKEN_KEY);
    S.link.stop();
    askToken("The server refused this token (403). Check it and try again.");
  } else if (state === "unusable_token") {
    S.link.stop();
    askToken("A browser can only send tokens made of letters, digits and !#$%&'*+-.^_`|~ (it travels as a WebSocket subprotocol).");
  }
  drawActions();
}

function onLost(reason) {
  S.lastLive = null;
  outcome(reason ? `connection lost: ${reason}` : "connection lost", "error");
}

function onReady(hello, snapshot) {
  const restarted = S.instance !== null && hello.instance_id && hello.instance_id !== S.instance;
  S.instance = hello.instance_id ?? S.instance;
  S.hello = hello;
  S.caps = new Set(hello.capabilities || []);
  S.lastLive = null;
  $("token-dialog").open && $("token-dialog").close();
  const lost = applySnapshot(snapshot.services || [], restarted);
  document.body.classList.toggle("stats", S.caps.has("watch_stats") || S.caps.has("get_stats"));
  $("tab-btn-timeline").hidden = !S.caps.has("get_timeline");
  $("tab-btn-incidents").hidden = !S.caps.has("get_incidents");
  if ((S.tab === "timeline" && !S.caps.has("get_timeline")) || (S.tab === "incidents" && !S.caps.has("get_incidents"))) {
    showTab("logs");
  }
  if (!S.shownOnce) {
    S.shownOnce = true;
    // `make bench` reads this: page load to every service shown.
    performance.mark("fl:services");
  }
  if (restarted) outcome("the server restarted: state reloaded, logs resumed", "info");
  if (S.viewLoaded && !lost && view.lastSeq() !== null) resumeView();
  else loadView();
  watchStats();
  if (S.caps.has("get_stats")) call("get_stats").then(applyStats, () => {});
  if (S.caps.has("get_incidents")) {
    call("get_incidents", { limit: 100 }).then(
      (d) => {
        S.incidents = new Map((d.incidents || []).map((i) => [i.id, i]));
        drawIncidents();
      },
      () => {},
    );
  }
  refreshTimeline(0);
}

/** Takes a snapshot's services; true when the selected one is gone (a new config). */
function applySnapshot(services, restarted) {
  const names = services.map((s) => s.name);
  const fresh = names.join("\n") !== S.names.join("\n");
  const old = S.services;
  S.services = new Map();
  for (const s of services) {
    // Figures of a previous server run say nothing about this one.
    const stats = restarted ? null : old.get(s.name)?.stats ?? null;
    S.services.set(s.name, { ...s, stats, restart_at: restartAt(s) });
  }
  let lost = false;
  if (fresh) {
    S.names = names;
    list.setNames(names);
    if (S.selected !== null && !S.services.has(S.selected)) {
      S.selected = null;
      lost = true;
    }
    list.select(S.selected);
  }
  drawServices();
  return lost;
}

function restartAt(s) {
  return s.restart_in_ms > 0 ? performance.now() + s.restart_in_ms : 0;
}

function onEvent(name, p) {
  switch (name) {
    case "log":
      onLog(p);
      break;
    case "service_status": {
      const svc = S.services.get(p.service);
      if (!svc) return;
      svc.status = p.status;
      if ("restarts" in p) svc.restarts = p.restarts;
      svc.restart_in_ms = p.restart_in_ms || 0;
      svc.restart_at = restartAt(svc);
      drawService(svc);
      if (S.selected === p.service || (S.selected === null && S.tab === "timeline")) refreshTimeline();
      break;
    }
    case "service_stats":
      applyStats(p);
      break;
    case "incident":
      S.incidents.set(p.id, p);
      drawIncidents();
      if (!p.closed_at) outcome(`incident: ${p.service}: ${p.rule} → ${p.dry_run ? "would " : ""}${p.action}`, "error");
      refreshTimeline();
      break;
  }
}

function onLog(e) {
  if (S.lastLive !== null && e.seq > S.lastLive + 1) view.skipped(S.lastLive, e.seq);
  if (S.lastLive === null || e.seq > S.lastLive) S.lastLive = e.seq;
  if (S.selected === null || e.service === S.selected) view.push(e);
}

function applyStats(p) {
  for (const s of p.services || []) {
    const svc = S.services.get(s.name);
    if (!svc) continue;
    svc.stats = s;
    if (typeof s.restarts === "number") svc.restarts = s.restarts;
  }
  drawServices();
}

function watchStats() {
  if (!S.caps.has("watch_stats") || S.state !== "connected") return;
  // Sampling costs the server CPU: only while someone looks.
  call("watch_stats", { enabled: !document.hidden, interval_ms: STATS_INTERVAL_MS }).catch(() => {});
}

// ---- the selected view ------------------------------------------------------

function select(name) {
  if (name === S.selected) return;
  S.selected = name;
  list.select(name);
  S.why = "";
  drawHead();
  drawIncidents();
  loadView();
  refreshTimeline(0);
}

function loadView() {
  const epoch = ++S.viewEpoch;
  view.reset(S.selected === null);
  drawPicked(null);
  if (S.state !== "connected") {
    S.viewLoaded = false;
    return;
  }
  S.viewLoaded = true;
  call("get_logs", S.selected === null ? {} : { service: S.selected }).then(
    (d) => {
      if (epoch !== S.viewEpoch) return;
      view.begin(d.entries || [], !!d.truncated);
      if (S.selected === null && d.entries?.length) {
        const last = d.entries[d.entries.length - 1].seq;
        if (S.lastLive === null || last > S.lastLive) S.lastLive = last;
      }
    },
    (err) => {
      if (epoch !== S.viewEpoch) return;
      S.viewLoaded = false;
      outcome(`logs: ${errText(err)}`, "error");
    },
  );
}

/** After a reconnect: what the view missed, newest first, with a gap for the rest. */
function resumeView() {
  const epoch = S.viewEpoch;
  view.hold();
  const payload = { after_seq: view.lastSeq(), limit: PAGE };
  if (S.selected !== null) payload.service = S.selected;
  call("get_logs", payload).then(
    (d) => {
      if (epoch === S.viewEpoch) view.resume(d.entries || [], !!d.truncated);
    },
    () => {
      if (epoch === S.viewEpoch) loadView();
    },
  );
}

function refreshTimeline(delay = TIMELINE_DEBOUNCE_MS) {
  clearTimeout(S.timelineTimer);
  if (!S.caps.has("get_timeline") || S.state !== "connected") {
    S.why = "";
    drawHead();
    return;
  }
  if (S.selected === null && S.tab !== "timeline") {
    S.why = "";
    drawHead();
    return;
  }
  S.timelineTimer = setTimeout(() => {
    const service = S.selected;
    const payload = service === null ? { limit: 200 } : { service, limit: 200 };
    call("get_timeline", payload).then(
      (d) => {
        if (service !== S.selected) return;
        S.timeline = d.entries || [];
        S.why = d.why || "";
        drawHead();
        if (S.tab === "timeline") renderTimeline($("timeline"), S.timeline, service === null);
      },
      () => {},
    );
  }, delay);
}

// ---- actions ----------------------------------------------------------------

const LABEL = {
  start_service: "start",
  stop_service: "stop",
  restart_service: "restart",
  start_all: "start all",
  stop_all: "stop all",
};

async function act(name, service) {
  const what = service ? `${LABEL[name]} ${service}` : LABEL[name];
  const key = `${name}:${service ?? ""}`;
  if (S.busy.has(key)) return;
  S.busy.add(key);
  drawActions();
  outcome(`${what}…`, "pending");
  try {
    const d = await call(name, service ? { service } : null);
    if (d.services) outcome(`${what}: under way for ${d.services.length ? d.services.join(", ") : "no service"}`, "ok");
    else outcome(`${what}: ${d.status}`, "ok");
  } catch (err) {
    const failed = err.failed_services?.length ? ` (${err.failed_services.join(", ")})` : "";
    outcome(`${what}: ${errText(err)}${failed}`, "error");
  } finally {
    S.busy.delete(key);
    drawActions();
  }
}

/** `s`: start a service that is down, restart one that is up; on all logs, start all. */
function startKey() {
  if (S.selected === null) return act("start_all");
  const svc = S.services.get(S.selected);
  act(svc && isUp(svc.status) ? "restart_service" : "start_service", S.selected);
}

function stopKey() {
  if (S.selected === null) return act("stop_all");
  act("stop_service", S.selected);
}

function errText(err) {
  return err.message ? `${err.code}: ${err.message}` : err.code || "failed";
}

function outcome(text, kind) {
  const el = $("outcome");
  el.textContent = text;
  el.dataset.kind = kind;
  el.title = `${clock(new Date().toISOString())} ${text}`;
}

// ---- drawing ----------------------------------------------------------------

function drawService(svc) {
  list.update(svc, openIncidents(svc.name));
  drawSummary();
  if (svc.name === S.selected || S.selected === null) drawHead();
  tickRestarts();
}

function drawServices() {
  for (const svc of S.services.values()) list.update(svc, openIncidents(svc.name));
  drawSummary();
  drawHead();
  tickRestarts();
}

/** While a restart is pending its countdown is redrawn; nothing runs otherwise. */
function tickRestarts() {
  const now = performance.now();
  let pending = false;
  for (const svc of S.services.values()) {
    if (svc.restart_at) {
      svc.restart_in_ms = Math.max(0, svc.restart_at - now);
      if (svc.restart_in_ms > 0) pending = true;
      else svc.restart_at = 0;
    }
  }
  if (pending && !S.tick) {
    S.tick = setInterval(() => {
      for (const svc of S.services.values()) if (svc.restart_at) list.update(svc, openIncidents(svc.name));
      tickRestarts();
      drawHead();
    }, 500);
  } else if (!pending && S.tick) {
    clearInterval(S.tick);
    S.tick = null;
  }
}

/** `6 up · 1 stopped`: how many services are in each state, up first. */
function drawSummary() {
  const n = { up: 0, moving: 0, stopped: 0, failed: 0 };
  for (const s of S.services.values()) {
    if (isUp(s.status)) n.up++;
    else if (s.status === "starting" || s.status === "stopping") n.moving++;
    else if (s.status === "failed") n.failed++;
    else n.stopped++;
  }
  const parts = [`${n.up} up`];
  if (n.moving) parts.push(`${n.moving} changing`);
  if (n.stopped) parts.push(`${n.stopped} stopped`);
  if (n.failed) parts.push(`${n.failed} failed`);
  const text = parts.join(" · ");
  list.summary(text);
  $("summary").textContent = text;
  $("summary").dataset.failed = n.failed ? "yes" : "no";
  const offline = S.state === "connected" ? "" : " · offline";
  document.title = S.services.size
    ? `${n.failed ? `✕ ${n.failed} failed · ` : ""}${n.up}/${S.services.size} up${offline} · FlowLayer`
    : "FlowLayer";
}

function drawHead() {
  const name = S.selected;
  const svc = name === null ? null : S.services.get(name);
  $("sel-name").textContent = name ?? "all logs";
  const badge = $("sel-status");
  badge.hidden = !svc;
  if (svc) {
    badge.textContent = pendingText(svc);
    badge.dataset.status = svc.status;
  }
  const meta = [];
  if (svc) {
    if (svc.restarts) meta.push(`↻ ${svc.restarts} restart${svc.restarts === 1 ? "" : "s"}`);
    const st = svc.stats;
    if (st && isUp(svc.status)) {
      if (st.uptime_ms) meta.push(`up ${duration(st.uptime_ms)}`);
      meta.push(`${cpu(st.cpu)} CPU`, bytes(st.rss_bytes));
      if (st.processes > 1) meta.push(`${st.processes} processes`);
    }
    const open = openIncidents(name);
    if (open) meta.push(`${open} open incident${open === 1 ? "" : "s"}`);
  } else {
    meta.push($("summary").textContent);
  }
  $("sel-meta").textContent = meta.join(" · ");
  const why = $("why");
  why.textContent = S.why;
  why.hidden = !S.why || !svc;
  drawActions();
}

function drawActions() {
  const svc = S.selected === null ? null : S.services.get(S.selected);
  const online = S.state === "connected";
  const busy = (n, s) => S.busy.has(`${n}:${s ?? ""}`);
  $("svc-actions").hidden = !svc;
  if (svc) {
    const st = svc.status;
    const moving = st === "starting" || st === "stopping";
    $("act-start").disabled = !online || isUp(st) || moving || busy("start_service", svc.name);
    $("act-restart").disabled = !online || moving || busy("restart_service", svc.name);
    $("act-stop").disabled = !online || st === "stopping" || !(isUp(st) || st === "starting") || busy("stop_service", svc.name);
  }
  $("start-all").disabled = !online || busy("start_all");
  $("stop-all").disabled = !online || busy("stop_all");
}

function openIncidents(service) {
  let n = 0;
  for (const i of S.incidents.values()) if (!i.closed_at && i.service === service) n++;
  return n;
}

function drawIncidents() {
  let open = 0;
  for (const i of S.incidents.values()) if (!i.closed_at) open++;
  $("inc-count").textContent = open ? String(open) : "";
  for (const svc of S.services.values()) list.update(svc, openIncidents(svc.name));
  if (S.tab === "incidents") renderIncidents($("incidents"), [...S.incidents.values()], S.selected);
}

function drawLogBar() {
  const i = view.info();
  const text = i.shown === i.held ? `${count(i.held)} lines` : `${count(i.shown)} of ${count(i.held)} lines`;
  const c = $("log-count");
  if (c.textContent !== text) c.textContent = text;
  const f = $("follow");
  const label = i.follow ? "following" : i.unseen ? `↓ ${count(i.unseen)} new` : "↓ follow";
  if (f.textContent !== label) f.textContent = label;
  f.setAttribute("aria-pressed", i.follow ? "true" : "false");
}

function drawPicked(e) {
  const el = $("line-detail");
  el.hidden = !e;
  if (!e) return;
  fill(
    el,
    h(
      "div",
      { class: "meta" },
      h("span", { text: `${e.timestamp} · ${e.service} · ${e.stream} · ${e.phase} · seq ${e.seq}` }),
      h("button", { class: "ghost", text: "×", title: "close (Esc)", "aria-label": "close", onclick: () => unpick() }),
    ),
    h("pre", { text: e.message }),
  );
}

function unpick() {
  view.pick = null;
  view.schedule();
  drawPicked(null);
}

function showTab(tab) {
  if (tab === "timeline" && !S.caps.has("get_timeline")) return;
  if (tab === "incidents" && !S.caps.has("get_incidents")) return;
  S.tab = tab;
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", b.dataset.tab === tab ? "true" : "false");
  for (const t of ["logs", "timeline", "incidents"]) $(`tab-${t}`).hidden = t !== tab;
  if (tab === "timeline") {
    renderTimeline($("timeline"), S.timeline, S.selected === null);
    refreshTimeline(0);
  }
  if (tab === "incidents") drawIncidents();
  if (tab === "logs") view.schedule();
}

// ---- dialogs ----------------------------------------------------------------

function askToken(message) {
  $("token-error").textContent = message;
  $("token-error").hidden = !message;
  const d = $("token-dialog");
  if (!d.open) d.showModal();
  $("token-input").value = "";
  $("token-input").focus();
}

function showInfo() {
  const masked = S.token ? `${S.token.slice(0, 4)}${"•".repeat(Math.max(0, Math.min(S.token.length - 4, 12)))}` : "none";
  const rows = [
    ["address", location.host],
    ["token", masked],
    ["connection", $("conn").querySelector(".label").textContent],
    ["server", `${S.hello.server ?? "?"} ${S.hello.server_version ?? ""}`],
    ["instance", S.hello.instance_id ?? "?"],
    ["capabilities", [...S.caps].join(", ")],
  ];
  fill($("info-table"), rows.map(([k, v]) => h("tr", {}, h("th", { text: k }), h("td", { text: v }))));
  $("info-dialog").showModal();
}

// ---- input ------------------------------------------------------------------

function wire() {
  $("act-start").onclick = () => act("start_service", S.selected);
  $("act-restart").onclick = () => act("restart_service", S.selected);
  $("act-stop").onclick = () => act("stop_service", S.selected);
  $("start-all").onclick = () => act("start_all");
  $("stop-all").onclick = () => act("stop_all");
  $("info-btn").onclick = () => showInfo();
  $("follow").onclick = () => view.toTail();
  $("conn").onclick = () => S.link?.now();
  for (const b of document.querySelectorAll(".tabs button")) b.onclick = () => showTab(b.dataset.tab);
  let filterTimer = null;
  const refilter = () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      const streams = {
        stdout: $("f-stdout").checked,
        stderr: $("f-stderr").checked,
        system: $("f-system").checked,
      };
      view.setFilter($("filter").value, streams);
    }, FILTER_DEBOUNCE_MS);
  };
  $("filter").addEventListener("input", refilter);
  for (const id of ["f-stdout", "f-stderr", "f-system"]) $(id).addEventListener("change", refilter);
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token-dialog").close();
    connect(t);
  });
  $("token-dialog").addEventListener("cancel", (ev) => ev.preventDefault());
  $("forget-token").onclick = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("info-dialog").close();
    if (S.link) S.link.stop();
    S.link = null;
    onState("no_token");
    askToken("");
  };
  $("info-close").onclick = () => $("info-dialog").close();
  document.addEventListener("visibilitychange", () => watchStats());
  document.addEventListener("keydown", onKey);
  $("services").focus();
}

function inLogs() {
  return document.activeElement?.closest?.(".detail") != null;
}

function moveSelection(d) {
  const order = [null, ...S.names];
  const i = Math.max(0, order.indexOf(S.selected));
  select(order[Math.min(order.length - 1, Math.max(0, i + d))]);
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t.matches?.("input, textarea, select")) {
    if (t.id === "filter" && (ev.key === "Escape" || ev.key === "Enter")) {
      if (ev.key === "Escape") {
        t.value = "";
        t.dispatchEvent(new Event("input"));
      }
      ev.preventDefault();
      $("logs").focus();
    }
    return;
  }
  if (document.querySelector("dialog[open]")) return;
  const logs = inLogs();
  switch (ev.key) {
    case "ArrowDown":
    case "j":
      if (logs) view.scrollBy({ lines: 1 });
      else moveSelection(1);
      break;
    case "ArrowUp":
    case "k":
      if (logs) view.scrollBy({ lines: -1 });
      else moveSelection(-1);
      break;
    case "PageDown":
      view.scrollBy({ pages: 1 });
      break;
    case "PageUp":
      view.scrollBy({ pages: -1 });
      break;
    case "Home":
    case "g":
      view.toTop();
      break;
    case "End":
    case "G":
      view.toTail();
      break;
    case "/":
      showTab("logs");
      $("filter").focus();
      $("filter").select();
      break;
    case "Escape":
      if (!$("line-detail").hidden) unpick();
      else if ($("filter").value) {
        $("filter").value = "";
        $("filter").dispatchEvent(new Event("input"));
      }
      break;
    case "i":
    case "?":
      showInfo();
      break;
    case "s":
      startKey();
      break;
    case "x":
      stopKey();
      break;
    case "l":
      showTab("logs");
      break;
    case "t":
      showTab("timeline");
      break;
    case "!":
      showTab("incidents");
      break;
    case "r":
      S.link?.now();
      break;
    default:
      return;
  }
  ev.preventDefault();
}
