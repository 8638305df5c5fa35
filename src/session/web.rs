//! The web cockpit's files (`web/` in the repository), embedded in the binary at
//! build time, and the answers to the routes that serve them: `GET /` and
//! `GET /assets/<file>` (spec/web.md). Pure: the accept thread (`listen.rs`)
//! asks `public` before it looks at any token, and writes what it returns.
//!
//! The page and its assets hold no data (every datum comes over `/ws`, which
//! keeps its authentication), so they are served to anyone who can reach the
//! listener. Whatever listener serves the session routes (TCP today) calls the
//! same function, so `/` means the same everywhere.

/// One embedded file.
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `web/` (a test holds this list to the directory).
pub const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/assets/style.css", "assets/style.css", "text/css; charset=utf-8"),
    asset!("/assets/app.js", "assets/app.js", JS),
    asset!("/assets/link.js", "assets/link.js", JS),
    asset!("/assets/logview.js", "assets/logview.js", JS),
    asset!("/assets/panels.js", "assets/panels.js", JS),
    asset!("/assets/util.js", "assets/util.js", JS),
    asset!("/assets/icon.svg", "assets/icon.svg", "image/svg+xml"),
];

/// The cockpit's size budget (web.md section 1).
#[cfg(test)]
const MAX_TOTAL_BYTES: usize = 150 * 1024;

/// Headers of every answer on the public routes: the page runs only its own
/// scripts and talks only to its own origin; types are not sniffed; a new
/// build is picked up at the next load (no stale cached page against a newer
/// server). `X-Frame-Options` keeps the page's buttons out of other sites'
/// frames; `Referrer-Policy` keeps the address out of requests it makes.
pub const SECURITY_HEADERS: &str =
    "Content-Security-Policy: default-src 'self'; connect-src 'self'\r\n\
     X-Content-Type-Options: nosniff\r\n\
     Cache-Control: no-cache\r\n\
     X-Frame-Options: DENY\r\n\
     Referrer-Policy: no-referrer\r\n";

/// A complete answer: `head` then `body` (a file, not copied).
pub struct Answer {
    pub head: Vec<u8>,
    pub body: &'static [u8],
}

/// The answer to `method path` when it is a public route (the page, its
/// assets), else `None`: the request goes on to authentication. `path` has
/// no query string.
pub fn public(method: &str, path: &str) -> Option<Answer> {
    if path != "/" && !path.starts_with("/assets/") {
        return None;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let body = super::http::error_body(
                "method_not_allowed",
                &format!("{method} {path}: only GET and HEAD"),
            );
            return Some(Answer {
                head: plain(405, "application/json", &body, "Allow: GET, HEAD\r\n"),
                body: b"",
            });
        }
    };
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        let body = super::http::error_body("not_found", &format!("no file {path}"));
        let mut head = plain(404, "application/json", &body, "");
        if head_only {
            head.truncate(head.len() - body.len());
        }
        return Some(Answer { head, body: b"" });
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n",
        asset.content_type,
        asset.body.len()
    )
    .into_bytes();
    Some(Answer { head, body: if head_only { b"" } else { asset.body } })
}

/// `text` for a URL fragment: unreserved characters (RFC 3986) as they are,
/// every other byte percent-encoded, so the page reads back the same token.
pub fn fragment_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short answer with its body in the head.
fn plain(code: u16, content_type: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}{SECURITY_HEADERS}Connection: close\r\n\r\n{body}",
        super::http::reason(code),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Answer) -> String {
        let mut all = a.head.clone();
        all.extend_from_slice(a.body);
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn the_cockpit_fits_its_budget() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total <= MAX_TOTAL_BYTES, "web/ holds {total} bytes, over {MAX_TOTAL_BYTES}");
    }

    #[test]
    fn every_file_of_web_is_served_and_every_served_file_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        let mut served: Vec<String> = ASSETS
            .iter()
            .map(|a| if a.path == "/" { "index.html".into() } else { a.path[1..].to_string() })
            .collect();
        served.sort();
        assert_eq!(files, served);
    }

    #[test]
    fn the_page_and_its_assets_carry_the_security_headers_and_their_type() {
        for a in ASSETS {
            let answer = public("GET", a.path).unwrap();
            let t = text(&answer);
            assert!(t.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.path);
            assert!(t.contains(&format!("Content-Type: {}\r\n", a.content_type)));
            assert!(t.contains(&format!("Content-Length: {}\r\n", a.body.len())));
            assert!(t.contains(
                "\r\nContent-Security-Policy: default-src 'self'; connect-src 'self'\r\n"
            ));
            assert!(t.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
            assert!(t.contains("\r\nCache-Control: no-cache\r\n"));
            assert_eq!(answer.body, a.body);
        }
    }

    #[test]
    fn head_gets_the_headers_alone_and_other_paths_are_not_public() {
        let get = public("GET", "/").unwrap();
        let head = public("HEAD", "/").unwrap();
        assert_eq!(head.head, get.head);
        assert!(head.body.is_empty());
        let missing = text(&public("GET", "/assets/nope.js").unwrap());
        assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
        assert!(missing.contains(r#""message":"no file /assets/nope.js""#), "{missing}");
        let missing_head = text(&public("HEAD", "/assets/nope.js").unwrap());
        assert!(missing_head.ends_with("\r\n\r\n"), "no body for HEAD: {missing_head}");
        let post = text(&public("POST", "/").unwrap());
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
                && post.contains("Allow: GET, HEAD")
        );
        for p in ["/ws", "/health", "/index.html", "/metrics", "/assetsx"] {
            assert!(public("GET", p).is_none(), "{p}");
        }
    }

    #[test]
    fn a_token_survives_the_fragment() {
        assert_eq!(fragment_value("fl_0a1b-C2~d.e"), "fl_0a1b-C2~d.e");
        assert_eq!(fragment_value("a b&c=d#é"), "a%20b%26c%3Dd%23%C3%A9");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="), "CSP forbids them");
        for tag in html.match_indices("<script") {
            let rest = &html[tag.0..];
            let end = rest.find('>').unwrap();
            assert!(rest[..end].contains(" src="), "a script without src: {}", &rest[..end]);
        }
    }
}
