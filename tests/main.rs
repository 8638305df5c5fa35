//! Integration tests: the real `flowlayer-server` binary against `fixtures/`
//! configs, driven over its terminal output, signals, files, HTTP and WebSocket.

mod support;

/// Boot plan, waves, readiness gating, failure propagation, spawning.
mod boot;
/// Command line: flags, errors, discovery, help and version.
mod cli;
/// Config validation errors as a user sees them.
mod config;
/// Crash safety and the runtime directory: no orphans after a SIGKILL, leftovers
/// of a killed run, one server per config, records, the port's holder.
mod crash;
/// `make demo`: the demo script brings up two stacks and leaves nothing behind.
mod demo;
/// The runaway guard (issue 13): the corpus on real processes, incidents, get_incidents.
mod guard;
/// Service health (issue 12): restarts, resources, timeline, /metrics.
mod health;
/// Log capture: JSONL contents, seq continuity, bursts.
mod logs;
/// Session API over HTTP: auth, health, routes.
mod session_http;
/// Session API limits: connection caps, failed-authentication delays, bounded queues.
mod session_limits;
/// `get_logs`: limits, paging, history from disk.
mod session_logs;
/// Session API over WebSocket: handshake, commands, errors, broadcast.
mod session_ws;
/// Stopping and shutdown: stopCmd, grace and SIGKILL, groups, track-only.
mod shutdown;
/// The `flowlayer` command against one stack: status, logs, actions, wait, why, incidents.
mod stacks;
/// Several stacks on one machine: the runtime directory, selection, the control
/// socket, `up` and `down`.
mod stacks_local;
/// Session tokens: where they come from, which are refused, the Bearer scheme.
mod token;
/// The terminal client end to end, in tmux, against the real server.
mod tui;
/// The web cockpit in headless Chromium, against the real server.
mod web_browser;
/// The web cockpit's HTTP side: assets, headers, the subprotocol token, Origin.
mod web_protocol;
