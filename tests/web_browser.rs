//! The web cockpit in headless Chromium against the real server and the
//! demo-like stack (`fixtures/tests/web.jsonc`), driven over the DevTools
//! protocol (`support/cdp.rs`): web.md section 4.

use crate::support::cdp::Browser;
use crate::support::{free_port, Opts, Server};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// The demo-like stack, started; `tick`: the clock's period in ms.
fn stack(tick: u64) -> Server {
    let vars = [
        ("P1", free_port().to_string()),
        ("P2", free_port().to_string()),
        ("P3", free_port().to_string()),
        ("TICK", tick.to_string()),
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
        "(() => { const r = [...document.querySelectorAll('.svc[data-service]')].map(e => e.dataset.service).filter(Boolean); return r.length === 7 && r; })()",
        T,
        "seven services listed",
    );
    assert_eq!(
        names,
        serde_json::json!(["api", "clock", "db", "jobs", "migrate", "web", "worker"])
    );
    b.wait_js(&format!("{} === 'ready'", status_js("api")), T, "api ready");
    assert_eq!(b.eval("location.hash"), "", "the token left the address bar");
    assert_eq!(b.eval("sessionStorage.getItem('flowlayer.token')"), s.token.as_str());
    assert_eq!(b.eval("document.getElementById('conn').dataset.state"), "connected");
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}

/// The screenshot in spec/ (`make screenshot`): the page on the demo stack,
/// light, 1280x760, the all-logs view after a restart of `api`. Also writes
/// dark and narrow variants next to it when `FL_SHOTS` names a directory.
#[test]
#[ignore = "writes spec/web.png: run with `make screenshot`"]
fn screenshot_of_the_demo_stack() {
    let s = stack(700);
    let mut b = Browser::launch();
    b.viewport(1280, 760);
    b.dark(false);
    b.navigate(&page_url(&s, &s.token));
    b.wait_js(&format!("{} === 'ready'", status_js("web")), T, "web ready");
    b.wait_js("document.querySelectorAll('#logs .row:not([hidden])').length > 20", T, "log lines");
    let shots = std::env::var_os("FL_SHOTS").map(std::path::PathBuf::from);
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/web.png");
    b.screenshot(&spec);
    if let Some(dir) = shots {
        b.key("ArrowDown");
        b.key("ArrowDown");
        b.wait_js("document.getElementById('sel-name').textContent === 'clock'", T, "clock");
        b.screenshot(&dir.join("light-clock.png"));
        b.dark(true);
        b.screenshot(&dir.join("dark.png"));
        b.viewport(420, 800);
        b.screenshot(&dir.join("narrow.png"));
    }
    assert!(b.errors.is_empty(), "page errors: {:?}", b.errors);
}
