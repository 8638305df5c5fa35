//! One HTTP request head (bounded in size) parsed from the bytes read so far, and
//! the small JSON answers of the Session API. Pure; used by the accept thread
//! (`listen.rs`), which reads and writes the sockets.

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read past the head (a client that did not wait for the 101).
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, PartialEq)]
pub enum HeadError {
    /// Past `MAX_HEAD`, or more headers than we read (431).
    TooLarge,
    /// Not HTTP (400).
    Malformed,
}

/// The head in `buf` (the bytes read so far): `None` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) => Ok(Some(Head {
            method: req.method.unwrap_or("").to_string(),
            path: req.path.unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                .collect(),
            rest: buf[used..].to_vec(),
        })),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A complete JSON answer that closes the connection. `retry_after`: seconds
/// for a `Retry-After` header (429, 503).
pub fn response(code: u16, body: &str, retry_after: Option<u64>) -> Vec<u8> {
    let auth = if code == 401 { "WWW-Authenticate: Bearer\r\n" } else { "" };
    let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}{retry}Connection: close\r\n\r\n{body}",
        reason(code),
        body.len()
    )
    .into_bytes()
}

pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"ok": false, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_once_complete_with_what_follows_it() {
        let text = b"GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\nxyz";
        assert!(parse_head(&text[..20]).unwrap().is_none(), "incomplete");
        let head = parse_head(text).unwrap().unwrap();
        assert_eq!((head.method.as_str(), head.path.as_str()), ("GET", "/ws"));
        assert_eq!(head.header("AUTHORIZATION"), Some("Bearer t"));
        assert_eq!(head.rest, b"xyz");
    }

    #[test]
    fn oversized_and_garbage_heads_are_errors() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse_head(&big).err(), Some(HeadError::TooLarge));
        assert_eq!(parse_head(b"\x00\x01 nope\r\n\r\n").err(), Some(HeadError::Malformed));
    }

    #[test]
    fn answers_carry_their_length_and_retry_after() {
        let text = String::from_utf8(response(503, "{}", Some(1))).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n") && text.contains("Retry-After: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }
}
