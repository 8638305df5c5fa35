// Small pure helpers of the cockpit: element building and number, time and
// size formatting. No state, no I/O.

/** Creates an element: `h("div", {class: "x", text: "hi", onclick: f}, child...)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const SVG = "http://www.w3.org/2000/svg";

/** A small line chart of `values` (no axes): the shape of a series at a glance. */
export function sparkline(values, width = 160, height = 28) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  const nums = values.filter((v) => typeof v === "number" && isFinite(v));
  if (nums.length < 2) return svg;
  const lo = Math.min(...nums), hi = Math.max(...nums);
  const span = hi - lo || 1;
  const pts = nums.map((v, i) => {
    const x = (i / (nums.length - 1)) * (width - 2) + 1;
    const y = height - 2 - ((v - lo) / span) * (height - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  return svg;
}

const INT = new Intl.NumberFormat("en-US");

/** `12345` -> `12,345`. */
export function count(n) {
  return INT.format(n);
}

/** Bytes as people read them: `48.2 MB`. */
export function bytes(n) {
  if (typeof n !== "number" || !isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** Cores in use as a percentage of one core: `0.25` -> `25%`, `1.5` -> `150%`. */
export function cpu(cores) {
  if (typeof cores !== "number" || !isFinite(cores)) return "";
  const p = cores * 100;
  return p > 0 && p < 1 ? "<1%" : `${Math.round(p)}%`;
}

/** A duration in milliseconds, short: `850 ms`, `4.2 s`, `3 min`, `2 h 5 min`. */
export function duration(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
}

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

/** The local time of an RFC 3339 timestamp: `14:55:21.123`. */
export function clock(ts) {
  const d = new Date(ts);
  if (isNaN(d)) return "";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Date and time for records that may be days old: `27 Nov 14:55:21`. */
export function stamp(ts) {
  const d = new Date(ts);
  if (isNaN(d)) return "";
  const day = d.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
  return `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// CSI sequences (colours, cursor moves) and OSC sequences (titles, links).
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]/g;

/** The message without terminal escape sequences. */
export function plain(text) {
  return text.indexOf("\x1b") < 0 ? text : text.replace(ANSI, "");
}

/** One of 8 stable colour slots for a service name (CSS classes `c0`..`c7`). */
export function hue(name) {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return `c${x % 8}`;
}

/** Statuses that mean the process is up. */
export function isUp(status) {
  return status === "running" || status === "ready";
}
