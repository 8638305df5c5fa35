//! Reading the server's own config for `-config`: only `session.bind` (or
//! `session.addr`) and `session.token` matter here; everything else the server
//! accepts is ignored, never rejected.

use serde_json::Value;
use std::path::Path;

#[derive(Debug, PartialEq, Default)]
pub struct Session {
    pub addr: Option<String>,
    pub token: Option<String>,
}

pub fn read(path: &Path) -> Result<Session, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config {}: cannot read file: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Session, String> {
    let v: Value = jsonc_parser::parse_to_serde_value(text, &Default::default())
        .map_err(|e| format!("syntax error: {e}"))?;
    let s = &v["session"];
    let bind = s["bind"].as_str().or(s["addr"].as_str());
    Ok(Session {
        addr: bind.map(dial_addr),
        token: s["token"].as_str().filter(|t| !t.is_empty()).map(String::from),
    })
}

/// Where to dial for a bind form: `6999` and `:6999` -> `127.0.0.1:6999`,
/// `0.0.0.0:p` -> `127.0.0.1:p`, `[::]:p` -> `[::1]:p`.
pub fn dial_addr(bind: &str) -> String {
    let bind = bind.trim();
    match bind.rsplit_once(':') {
        None => format!("127.0.0.1:{bind}"),
        Some(("", p)) | Some(("0.0.0.0", p)) => format!("127.0.0.1:{p}"),
        Some(("[::]", p)) => format!("[::1]:{p}"),
        Some(_) => bind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_forms_map_to_dial_addresses() {
        assert_eq!(dial_addr("6999"), "127.0.0.1:6999");
        assert_eq!(dial_addr(":6999"), "127.0.0.1:6999");
        assert_eq!(dial_addr("0.0.0.0:7000"), "127.0.0.1:7000");
        assert_eq!(dial_addr("localhost:7000"), "localhost:7000");
    }

    #[test]
    fn a_full_server_config_is_accepted() {
        let s = parse(
            r#"{ // comment
              "session": { "addr": ":7001", "token": "t0k" },
              "logs": { "dir": "./logs" }, "logView": { "maxEntries": 5 },
              "services": { "a": { "cmd": ["x"], "ready": { "type": "none" } } },
            }"#,
        )
        .unwrap();
        assert_eq!(s, Session { addr: Some("127.0.0.1:7001".into()), token: Some("t0k".into()) });
        assert_eq!(parse(r#"{"services":{}}"#).unwrap(), Session::default());
    }
}
