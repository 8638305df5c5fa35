//! Web origins (`scheme://host[:port]`, RFC 6454) and the `Host` they are
//! compared with: the cross-site check of `/ws` (spec/protocol.md, "From a
//! browser"). Pure; used by the config validation (`session.allowedOrigins`)
//! and by the accept thread.

use std::fmt;

/// An origin, normalised: lowercase scheme and host, the port always explicit
/// (80 for http, 443 for https when the text left it out), so two spellings of
/// one origin compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Reads `scheme://host[:port]`: http or https, a host, a port from 1 to 65535,
/// nothing after it (a browser's `Origin` never has a path). `None` for
/// anything else, `null` included (what a sandboxed page or a file sends).
pub fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = split_authority(rest)?;
    Some(Origin { scheme, host, port: port.unwrap_or(default) })
}

/// Host and port of a `Host` header or an origin's authority: `host`,
/// `host:port`, `[v6]` or `[v6]:port`; the host lowercase. `None` when
/// malformed (a path, user info, an empty host, a bad port).
pub fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() || text.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{addr}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return None,
            None => (text.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return None,
        },
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The page that sent `origin` was served by this same address: its host and
/// port are those of the request's `Host` (the session listener speaks plain
/// HTTP, so a `Host` without a port means 80).
pub fn same_host(origin: &Origin, host_header: &str) -> bool {
    match split_authority(host_header.trim()) {
        Some((host, port)) => origin.host == host && origin.port == port.unwrap_or(80),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(text: &str) -> Origin {
        parse_origin(text).unwrap_or_else(|| panic!("{text} is an origin"))
    }

    #[test]
    fn origins_are_normalised_so_spellings_compare_equal() {
        assert_eq!(o("http://LocalHost:5173"), o("http://localhost:5173"));
        assert_eq!(o("http://example.com"), o("http://example.com:80"));
        assert_eq!(o("HTTPS://example.com").port, 443);
        assert_eq!(o("http://[::1]:6999").host, "[::1]");
        assert_eq!(o("http://127.0.0.1:6999").to_string(), "http://127.0.0.1:6999");
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "null",
            "",
            "localhost:5173",
            "ftp://x",
            "http://",
            "http://x/",
            "http://x/path",
            "http://x:0",
            "http://x:99999",
            "http://user@x",
            "http://::1:80",
            "http://[::1",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_origin_matches_the_host_it_was_served_from() {
        let page = o("http://127.0.0.1:6999");
        assert!(same_host(&page, "127.0.0.1:6999"));
        assert!(!same_host(&page, "127.0.0.1:7000"));
        assert!(!same_host(&page, "localhost:6999"), "another name is another origin");
        assert!(same_host(&o("http://Example.com"), "example.COM"));
        assert!(!same_host(&o("https://example.com"), "example.com"), "443 is not 80");
        assert!(same_host(&o("http://[::1]:6999"), "[::1]:6999"));
        assert!(!same_host(&page, ""));
        assert!(!same_host(&page, "127.0.0.1:6999/x"));
    }
}
