//! The web cockpit in headless Chromium against the real server and the
//! demo-like stack (`fixtures/tests/web.jsonc`), driven over the DevTools
//! protocol (`support/cdp.rs`): web.md section 4.

use crate::support::cdp::Browser;
use crate::support::{free_port, Opts, Server};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// The demo-like stack, started; `tick`: the clock's period in ms. Its
/// mailer stays calm (its runaway loop would take a core from the test).
fn stack(tick: u64) -> Server {
    stack_with(tick, 3_600_000)
}

/// The demo-like stack; the mailer turns runaway after `mailer_ms`.
fn stack_with(tick: u64, mailer_ms: u64) -> Server {
    let vars = [
        ("P1", free_port().to_string()),
        ("P2", free_port().to_string()),
        ("P3", free_port().to_string()),
        ("TICK", tick.to_string()),
        ("MAILER", mailer_ms.to_string()),
    ];
    let mut s = Server::start_with("tests/web.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_started();
    s
}

fn page_url(s: &Server, token: &str) -> String {
    format!("http://127.0.0.1:{}/#token={token}", s.port)
}

/// The status the page shows for `service`.
fn status_js(service: &str) -> String {
    format!("document.querySelector('.svc[data-service=\"{service}\"]')?.dataset.status ?? null")
}

#[test]
fn the_page_shows_every_service_with_the_token_from_the_fragment() {
    let s = stack(2000);
    let mut b = Browser::launch();
    b.navigate(&page_url(&s, &s.token));
    let names = b.wait_js(
        "(() => { const r = [...document.querySelectorAll('.svc[data-service]')].map(e => e.dataset.service).filter(Boolean); return r.length === 9 && r; })()",
        T,
        "nine services listed",
    );
    assert_eq!(
        names,
        serde_json::json!([
            "api", "clock", "db", "flaky", "jobs", "mailer", "migrate", "web", "worker"
        ])
    );
    b.wait_js(&format!("{} === 'ready'", status_js("api")), T, "api ready");
    assert_eq!(b.eval("location.hash"), "", "the token left the address bar");
    assert_eq!(b.eval("sessionStorage.getItem('flowlayer.token')"), s.token.as_str());
    assert_eq!(b.eval("document.getElementById('conn').dataset.state"), "connected");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

/// Writes a screenshot to `$FL_SHOTS/<name>.png` when `FL_SHOTS` names a
/// directory: a look at the page at that point of a test.
fn shot(b: &mut Browser, name: &str) {
    if let Some(dir) = std::env::var_os("FL_SHOTS") {
        b.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
    }
}

/// A browser with the page loaded on `s` and every service listed.
fn open(s: &Server) -> Browser {
    let mut b = Browser::launch();
    b.viewport(1200, 800);
    b.navigate(&page_url(s, &s.token));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "connected");
    b
}

/// Selects `service` by clicking its row.
fn pick(b: &mut Browser, service: &str) {
    b.eval(&format!("document.querySelector('.svc[data-service=\"{service}\"]').click()"));
    b.wait_js(
        &format!("document.getElementById('sel-name').textContent === '{service}'"),
        T,
        &format!("{service} selected"),
    );
}

/// Types `text` into the filter, as a person would (one input event).
fn set_filter(b: &mut Browser, text: &str) {
    b.eval(&format!(
        "(() => {{ const f = document.getElementById('filter'); f.value = {}; f.dispatchEvent(new Event('input')); }})()",
        serde_json::json!(text)
    ));
}

/// The texts of the log rows in the DOM, top to bottom.
const ROWS_JS: &str =
    "[...document.querySelectorAll('#logs .row:not([hidden]) .m')].map(e => e.textContent)";

#[test]
fn stopping_and_starting_a_service_shows_each_status_and_outcome() {
    let s = stack(2000);
    let mut b = open(&s);
    pick(&mut b, "worker");
    b.wait_js(&format!("{} === 'running'", status_js("worker")), T, "worker running");
    // The terminal client's keys: x stops, s starts.
    b.eval("document.getElementById('services').focus()");
    b.key("x");
    b.wait_js(&format!("{} === 'stopped'", status_js("worker")), T, "worker stopped");
    b.wait_js(
        "document.getElementById('outcome').textContent === 'stop worker: stopped'",
        T,
        "the stop's outcome",
    );
    assert_eq!(b.eval("document.getElementById('sel-status').textContent"), "stopped");
    assert_eq!(b.eval("document.getElementById('act-stop').disabled"), true);
    // And the button.
    b.eval("document.getElementById('act-start').click()");
    b.wait_js(&format!("{} === 'running'", status_js("worker")), T, "worker running again");
    b.wait_js(
        "document.getElementById('outcome').textContent === 'start worker: running'",
        T,
        "the start's outcome",
    );
    // A refused action says why.
    pick(&mut b, "migrate");
    b.eval("document.getElementById('act-restart').click()");
    b.wait_js(
        "/^restart migrate: (running|stopped)/.test(document.getElementById('outcome').textContent)",
        T,
        "the restart's outcome",
    );
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn a_line_printed_by_a_service_appears_live() {
    let s = stack(100);
    let mut b = open(&s);
    pick(&mut b, "clock");
    let first = b.wait_js(
        &format!("(() => {{ const r = {ROWS_JS}.filter(t => /^clock \\d+$/.test(t)); return r.length && Number(r[r.length - 1].split(' ')[1]); }})()"),
        T,
        "clock lines",
    );
    let next = first.as_u64().unwrap() + 5;
    b.wait_js(
        &format!("{ROWS_JS}.some(t => Number(/^clock (\\d+)$/.exec(t)?.[1]) >= {next})"),
        T,
        "a newer clock line",
    );
    // In the all view too, with the service named.
    b.eval("document.querySelector('.svc[data-service=\"\"]').click()");
    b.wait_js(
        "[...document.querySelectorAll('#logs .row:not([hidden])')].some(r => r.querySelector('.s').textContent === 'clock')",
        T,
        "clock lines in the all view",
    );
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn scrolling_up_pages_back_through_the_whole_history() {
    let mut s = Server::start("tests/web_pages.jsonc");
    s.wait_started();
    let mut b = open(&s);
    pick(&mut b, "lines");
    b.wait_js(&format!("{ROWS_JS}.includes('line 5000')"), T, "the newest line");
    assert_eq!(b.eval("document.getElementById('log-count').textContent"), "500 lines");
    b.eval("document.getElementById('logs').focus()");
    // Home goes to the oldest line held; the older page loads in sight, and
    // again, until the first line of the history.
    let deadline = std::time::Instant::now() + T;
    loop {
        b.key("Home");
        let top = b.eval(&format!("{ROWS_JS}.filter(t => t.startsWith('line '))[0] ?? ''"));
        if top == "line 1" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reached line 1; top: {top}");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.wait_js(
        "document.getElementById('log-count').textContent === '5,000 lines'",
        T,
        "every line held",
    );
    // Only what is in sight is in the DOM.
    let rows = b.eval("document.querySelectorAll('#logs .row').length").as_u64().unwrap();
    assert!(rows < 120, "{rows} rows in the DOM for 5,000 lines");
    // End follows the tail again.
    b.key("End");
    b.wait_js(&format!("{ROWS_JS}.includes('line 5000')"), T, "back at the tail");
    assert_eq!(b.eval("document.getElementById('follow').textContent"), "following");
    // The filter: `/` focuses it; a regular expression keeps two lines.
    b.key("/");
    set_filter(&mut b, "/^line 4(99|00)0$/");
    b.wait_js(
        &format!("JSON.stringify({ROWS_JS}) === JSON.stringify(['line 4000', 'line 4990'])"),
        T,
        "two lines left by the filter",
    );
    b.key("Escape");
    b.wait_js(&format!("{ROWS_JS}.includes('line 5000')"), T, "the filter cleared");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn a_wrong_token_shows_an_error_and_asks_again() {
    let s = stack(2000);
    let mut b = Browser::launch();
    b.navigate(&page_url(&s, "not-the-token"));
    b.wait_js("document.getElementById('conn').dataset.state === 'invalid_token'", T, "refusal");
    assert_eq!(b.eval("document.getElementById('conn').textContent.trim()"), "invalid token");
    assert_eq!(b.eval("document.getElementById('token-dialog').open"), true);
    let err = b.eval("document.getElementById('token-error').textContent");
    assert!(err.as_str().unwrap().contains("refused this token"), "{err}");
    assert_eq!(b.eval("sessionStorage.getItem('flowlayer.token')"), serde_json::Value::Null);
    // The right one, typed in.
    b.eval(&format!(
        "document.getElementById('token-input').value = '{}'; document.getElementById('token-form').requestSubmit()",
        s.token
    ));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "connected");
    b.wait_js(&format!("{} === 'ready'", status_js("api")), T, "api ready");
}

#[test]
fn without_a_fragment_the_page_asks_for_the_token() {
    let s = stack(2000);
    let mut b = Browser::launch();
    b.navigate(&format!("http://127.0.0.1:{}/", s.port));
    b.wait_js("document.getElementById('token-dialog').open", T, "the token dialog");
    assert_eq!(b.eval("document.getElementById('token-error').hidden"), true);
}

#[test]
fn a_page_of_another_origin_cannot_open_the_socket() {
    let s = stack(2000);
    let mut b = Browser::launch();
    // The same server under another name is another origin to the browser.
    b.navigate(&format!("http://localhost:{}/#token={}", s.port, s.token));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "own origin");
    let js = format!(
        "new Promise(done => {{ const w = new WebSocket('ws://127.0.0.1:{}/ws', ['flowlayer.v1', 'bearer.{}']); \
         w.onopen = () => done('open'); w.onerror = () => done('refused'); }})",
        s.port, s.token
    );
    assert_eq!(b.eval(&js), "refused", "the upgrade is refused (403)");
}

#[test]
fn the_page_reconnects_after_a_server_restart_and_fills_the_gap() {
    let dir = crate::support::temp_dir("web-restart").keep();
    let port = free_port().to_string();
    let vars = [
        ("P1", free_port().to_string()),
        ("P2", free_port().to_string()),
        ("P3", free_port().to_string()),
        ("TICK", "100".to_string()),
        ("MAILER", "3600000".to_string()),
    ];
    let opts = |dir: &std::path::Path| Opts {
        vars: &vars,
        session: false,
        dir: Some(dir.to_path_buf()),
        ..Opts::default()
    };
    let args = ["-s", &port, "-token", "test-token"];
    let mut s = Server::start_with("tests/web.jsonc", Opts { extra: &args, ..opts(&dir) });
    s.wait_started();
    let mut b = Browser::launch();
    b.navigate(&format!("http://127.0.0.1:{port}/#token=test-token"));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "connected");
    pick(&mut b, "clock");
    b.wait_js(&format!("{ROWS_JS}.some(t => /^clock \\d+$/.test(t))"), T, "clock lines");
    s.shutdown();
    b.wait_js("document.getElementById('conn').dataset.state !== 'connected'", T, "disconnected");
    let mut s2 = Server::start_with("tests/web.jsonc", Opts { extra: &args, ..opts(&dir) });
    s2.wait_started();
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "reconnected");
    b.wait_js(
        "document.getElementById('outcome').textContent.includes('the server restarted')",
        T,
        "the restart noticed",
    );
    // Both runs' first lines are in the view, once each: the second run's
    // early lines came with after_seq, the live ones followed.
    set_filter(&mut b, "/^clock [12]$/");
    b.wait_js(
        &format!("JSON.stringify({ROWS_JS}) === JSON.stringify(['clock 1', 'clock 2', 'clock 1', 'clock 2'])"),
        T,
        "clock 1 and 2 of both runs",
    );
    b.wait_js(&format!("{} === 'ready'", status_js("api")), T, "api ready after the restart");
    drop(s);
}

#[test]
fn lines_the_live_stream_skipped_during_a_flood_load_when_in_sight() {
    let vars = [("LINES", "60000".to_string())];
    let mut s =
        Server::start_with("tests/flood_gated.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    let mut b = open(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    // Following the tail, the page gets to the flood's last line.
    b.wait_js(
        "[...document.querySelectorAll('#logs .row .m')].some(e => e.textContent.startsWith('FLOOD1:0059999:'))",
        T,
        "the flood's last line",
    );
    shot(&mut b, "flood-tail");
    // The live stream skipped most of the flood: gaps in the view.
    let held = b.eval("document.getElementById('log-count').textContent");
    assert_ne!(held, "60,003 lines", "the stream skipped nothing: no gap to load");
    // A filter keeps the gaps in sight, so they load, until a line from the
    // middle of the flood is there.
    set_filter(&mut b, "FLOOD1:0030000:");
    b.wait_js(
        &format!("{ROWS_JS}.some(t => t.startsWith('FLOOD1:0030000:'))"),
        Duration::from_secs(25),
        "a line of the middle of the flood",
    );
    shot(&mut b, "flood-filtered");
    b.key("Escape");
    b.eval("document.getElementById('logs').focus()");
    b.key("PageUp");
    b.key("PageUp");
    shot(&mut b, "flood-up");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn cpu_memory_and_restarts_show_while_the_server_samples() {
    let s = stack(2000);
    let mut b = open(&s);
    // watch_stats: figures on every running service's row.
    b.wait_js(
        "(() => { const r = document.querySelector('.svc[data-service=\"api\"]'); return /CPU$/.test(r.querySelector('.cpu').textContent) && /B$/.test(r.querySelector('.mem').textContent); })()",
        T,
        "api's CPU and memory",
    );
    pick(&mut b, "api");
    b.wait_js(
        "/ CPU · [0-9.]+ [KMG]B/.test(document.getElementById('sel-meta').textContent)",
        T,
        "the header's figures",
    );
    // A stopped service shows none.
    let mem = b.eval("document.querySelector('.svc[data-service=\"migrate\"] .mem').textContent");
    assert_eq!(mem, "");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn a_pending_restart_counts_down_and_the_restarts_add_up() {
    let vars = [
        ("CODE", "1".to_string()),
        ("POLICY", "on-failure".to_string()),
        ("BACKOFF", "1500".to_string()),
        ("MAX", "5".to_string()),
    ];
    let mut s = Server::start_with("tests/restart.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    let mut b = open(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    b.wait_js(
        "/^failed · restart in /.test(document.querySelector('.svc[data-service=\"crashy\"] .st').textContent)",
        T,
        "the pending restart",
    );
    b.wait_js(
        "document.querySelector('.svc[data-service=\"crashy\"] .rs').textContent === '↻1'",
        T,
        "one restart counted",
    );
    // Its timeline says why.
    pick(&mut b, "crashy");
    b.wait_js("/exited with code 1/.test(document.getElementById('why').textContent)", T, "why");
    b.key("t");
    b.wait_js(
        "[...document.querySelectorAll('#timeline .tl')].some(e => e.classList.contains('restart_scheduled'))",
        T,
        "a restart_scheduled entry",
    );
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn the_why_line_says_what_a_service_waits_for() {
    let vars = [("P1", free_port().to_string())];
    let mut s = Server::start_with("tests/waiting.jsonc", Opts { vars: &vars, ..Opts::default() });
    s.wait_stdout("boot: session API", T);
    let mut b = open(&s);
    pick(&mut b, "api");
    b.wait_js("/waiting for db/.test(document.getElementById('why').textContent)", T, "why");
    assert_eq!(b.eval("document.getElementById('why').hidden"), false);
    b.eval("document.getElementById('tab-btn-timeline').click()");
    b.wait_js(
        "[...document.querySelectorAll('#timeline .tl .kind')].some(e => e.textContent === 'waiting')",
        T,
        "the waiting entry",
    );
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn the_page_fits_a_narrow_window_and_follows_the_colour_scheme() {
    let s = stack(2000);
    let mut b = open(&s);
    let bg = "getComputedStyle(document.body).backgroundColor";
    b.dark(false);
    let light = b.eval(bg);
    b.dark(true);
    let dark = b.eval(bg);
    assert_ne!(light, dark, "prefers-color-scheme switches the colours");
    // A phone-sized window: the services go above the logs, nothing sticks out.
    b.viewport(380, 700);
    b.wait_js(
        "(() => { const s = document.getElementById('services').getBoundingClientRect(); const l = document.getElementById('logs').getBoundingClientRect(); return s.bottom <= l.top + 1 && s.width > 300; })()",
        T,
        "services above the logs",
    );
    assert_eq!(b.eval("document.documentElement.scrollWidth <= window.innerWidth"), true);
    assert_eq!(
        b.eval("document.getElementById('logs').getBoundingClientRect().height > 150"),
        true,
        "the logs keep room"
    );
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

#[test]
fn an_incident_opens_with_its_evidence() {
    let mut s = Server::start("tests/web_guard.jsonc");
    s.wait_stdout("boot: session API", T);
    let mut b = open(&s);
    std::fs::write(s.dir.join("go"), "go").unwrap();
    // Live: the event marks the service and says so in the footer.
    b.wait_js(
        "document.querySelector('.svc[data-service=\"loop\"] .inc').textContent === '!'",
        T,
        "the incident mark on loop",
    );
    b.wait_js(
        "/^incident: loop: repeat → alert/.test(document.getElementById('outcome').textContent)",
        T,
        "the incident in the footer",
    );
    assert_eq!(b.eval("document.getElementById('tab-btn-incidents').hidden"), false);
    assert_eq!(b.eval("document.getElementById('inc-count').textContent"), "1");
    // A page opened later gets it with get_incidents.
    b.navigate("about:blank");
    b.navigate(&page_url(&s, &s.token));
    b.wait_js("document.getElementById('conn').dataset.state === 'connected'", T, "connected");
    pick(&mut b, "loop");
    b.key("!");
    let card = b.wait_js(
        "(() => { const c = document.querySelector('#incidents .incident-card'); return c && c.textContent; })()",
        T,
        "the incident's card",
    );
    shot(&mut b, "incidents");
    let card = card.as_str().unwrap_or("").to_string();
    assert!(card.contains("loop: repeat") && card.contains("alert"), "{card}");
    assert!(card.contains("repeated") && card.contains("line <"), "the template: {card}");
    assert!(card.contains("last "), "the last lines: {card}");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

/// The screenshots in spec/ (`make screenshot`): the page on the demo stack,
/// light, 1280x760. `web.png`: all logs, once `flaky` has crashed and come
/// back and `worker` has been restarted from the page. `web-incident.png`:
/// the mailer's incident, once its runaway loop has begun. With `FL_SHOTS`
/// naming a directory it also writes a service's view, its timeline, dark
/// and narrow variants there.
#[test]
#[ignore = "writes spec/web.png: run with `make screenshot`"]
fn screenshot_of_the_demo_stack() {
    let s = stack_with(700, 13_000);
    let mut b = Browser::launch();
    b.viewport(1280, 760);
    b.dark(false);
    b.navigate(&page_url(&s, &s.token));
    b.wait_js(&format!("{} === 'ready'", status_js("web")), T, "web ready");
    b.wait_js(
        "document.querySelector('.svc[data-service=\"flaky\"] .rs').textContent === '↻1'",
        T,
        "flaky restarted once",
    );
    pick(&mut b, "worker");
    b.eval("document.getElementById('act-restart').click()");
    b.wait_js(
        "document.getElementById('outcome').textContent === 'restart worker: running'",
        T,
        "the restart's outcome",
    );
    b.eval("document.querySelector('.svc[data-service=\"\"]').click()");
    b.wait_js("document.querySelectorAll('#logs .row:not([hidden])').length > 25", T, "log lines");
    b.eval("document.getElementById('services').focus()");
    std::thread::sleep(Duration::from_millis(300));
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec");
    b.screenshot(&spec.join("web.png"));
    b.wait_js(
        "document.querySelector('.svc[data-service=\"mailer\"] .inc').textContent === '!'",
        T,
        "the mailer's incident",
    );
    pick(&mut b, "mailer");
    b.key("!");
    b.wait_js("document.querySelector('#incidents .incident-card.open')", T, "the card");
    std::thread::sleep(Duration::from_millis(1200));
    b.screenshot(&spec.join("web-incident.png"));
    if std::env::var_os("FL_SHOTS").is_some() {
        b.key("l");
        pick(&mut b, "flaky");
        shot(&mut b, "light-flaky");
        b.key("t");
        std::thread::sleep(Duration::from_millis(500));
        shot(&mut b, "timeline");
        b.key("l");
        b.dark(true);
        shot(&mut b, "dark");
        b.viewport(420, 800);
        shot(&mut b, "narrow");
        b.eval("document.getElementById('info-btn').click()");
        b.viewport(1280, 760);
        shot(&mut b, "info");
    }
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}
