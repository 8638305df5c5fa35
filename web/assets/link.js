// The connection to the server: protocol V1 over `/ws` (spec/protocol.md), with
// the token offered as the subprotocol `bearer.<token>` because a browser
// cannot set `Authorization` on a WebSocket. Waits for `hello` and `snapshot`
// before anything else, matches acks and results to commands, reconnects by
// itself with backoff, and tells why a connection could not be made.

/** Reconnect delays, then the last one over and over (the terminal client's). */
const BACKOFF_MS = [500, 1000, 2000, 5000];
/** How long a command may wait for its ack and result. */
export const COMMAND_TIMEOUT_MS = 30000;

/** Characters a subprotocol may hold (RFC 7230 `token`). */
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The token can travel as a subprotocol. */
export function usableToken(token) {
  return TOKEN_CHARS.test(token);
}

/**
 * States, in `handlers.state(state, detail)`:
 * `connecting`, `connected`, `retrying` (detail: {inMs, why}),
 * `invalid_token`, `unusable_token`, `too_many_attempts` (detail: {inMs}).
 */
export class Link {
  constructor(token, handlers) {
    this.token = token;
    this.on = handlers;
    this.ws = null;
    this.nextId = 0;
    this.pending = new Map();
    this.attempt = 0;
    this.timer = null;
    this.closed = false;
    this.hello = null;
    this.ready = false;
  }

  start() {
    this.closed = false;
    this.open();
  }

  /** Stops for good (a new token, or the page going away). */
  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.failAll("disconnected", "the connection was closed");
  }

  open() {
    clearTimeout(this.timer);
    if (!usableToken(this.token)) {
      this.on.state("unusable_token");
      return;
    }
    this.on.state("connecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url, ["flowlayer.v1", "bearer." + this.token]);
    } catch (e) {
      this.on.state("unusable_token");
      return;
    }
    this.ws = ws;
    this.ready = false;
    this.hello = null;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const was = this.ready;
      this.ready = false;
      this.failAll("disconnected", "the connection was lost");
      if (this.closed) return;
      if (was) this.on.lost(ev.reason || "");
      if (opened) this.retry(ev.reason || "connection lost");
      else this.diagnose();
    };
  }

  /**
   * The WebSocket was refused before it opened, and a browser does not say
   * why: ask `/health` with the same token, which answers with a status.
   */
  async diagnose() {
    let res;
    try {
      res = await fetch("/health", {
        headers: { Authorization: "Bearer " + this.token },
        cache: "no-store",
      });
    } catch (e) {
      if (!this.closed) this.retry("server unreachable");
      return;
    }
    if (this.closed) return;
    if (res.status === 403 || res.status === 401) {
      this.on.state("invalid_token");
    } else if (res.status === 429) {
      const secs = Number(res.headers.get("Retry-After")) || 5;
      this.on.state("too_many_attempts", { inMs: secs * 1000 });
      this.schedule(secs * 1000);
    } else if (res.status === 503) {
      this.retry("server busy");
    } else {
      this.retry("the WebSocket was refused");
    }
  }

  retry(why) {
    const inMs = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    this.on.state("retrying", { inMs, why });
    this.schedule(inMs);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), ms);
  }

  /** Reconnect now (a key, a button), skipping the rest of the wait. */
  now() {
    if (!this.ws && !this.closed) this.open();
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return;
    }
    const p = msg.payload || {};
    if (msg.type === "event") {
      if (msg.name === "hello") {
        this.hello = p;
      } else if (msg.name === "snapshot" && !this.ready) {
        this.ready = true;
        this.attempt = 0;
        this.on.state("connected");
        this.on.ready(this.hello || {}, p);
      } else {
        this.on.event(msg.name, p);
      }
      return;
    }
    const c = this.pending.get(msg.id);
    if (!c) return;
    if (msg.type === "ack") {
      if (p.accepted === false) this.settle(msg.id, null, p.error);
    } else if (msg.type === "result") {
      if (p.ok) this.settle(msg.id, p.data || {}, null);
      else this.settle(msg.id, null, { ...(p.error || {}), failed_services: p.failed_services });
    } else if (msg.type === "error") {
      this.settle(msg.id, null, p);
    }
  }

  settle(id, data, error) {
    const c = this.pending.get(id);
    if (!c) return;
    this.pending.delete(id);
    clearTimeout(c.timer);
    if (error) c.reject(error);
    else c.resolve(data);
  }

  failAll(code, message) {
    for (const id of [...this.pending.keys()]) this.settle(id, null, { code, message });
  }

  /** Sends a command; resolves with the result's data, rejects with `{code, message}`. */
  call(name, payload = null, timeoutMs = COMMAND_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      if (!this.ws || !this.ready) {
        reject({ code: "disconnected", message: "not connected" });
        return;
      }
      const id = String(++this.nextId);
      const timer = setTimeout(
        () => this.settle(id, null, { code: "timeout", message: `no answer in ${timeoutMs / 1000} s` }),
        timeoutMs,
      );
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type: "command", id, name, payload }));
    });
  }
}
