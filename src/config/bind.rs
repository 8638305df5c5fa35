//! Bind addresses: `6999`, `:6999`, `host:port` (server.md section 1 and 2).
//! Pure; shared by the CLI override and `session.bind` in the config.

use std::fmt;

/// A validated address to listen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAddr {
    pub host: String,
    pub port: u16,
}

impl BindAddr {
    /// True for addresses only this machine can reach.
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost"
            || h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a bind string was refused; the caller adds where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    BadPort(String),
    Empty,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::BadPort(p) => {
                write!(f, "port \"{p}\" is not a number from 0 to 65535 (0: any free port)")
            }
            BindError::Empty => write!(f, "address is empty"),
        }
    }
}

pub fn parse_bind(s: &str) -> Result<BindAddr, BindError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(BindError::Empty);
    }
    let (host, port) = match s.rsplit_once(':') {
        None => ("127.0.0.1", s),
        Some(("", p)) => ("0.0.0.0", p),
        Some((h, p)) => (h, p),
    };
    // A bare IPv6 address like "::1" has colons but no port.
    if host.contains(':') && !host.starts_with('[') {
        return Err(BindError::BadPort(s.to_string()));
    }
    // Port 0: the system picks a free one; the connect line and the stack's
    // record say which (stacks.md section 1).
    match port.parse::<u16>() {
        Ok(p) => Ok(BindAddr { host: host.to_string(), port: p }),
        _ => Err(BindError::BadPort(port.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_forms_parse() {
        assert_eq!(parse_bind("6999").unwrap().to_string(), "127.0.0.1:6999");
        assert_eq!(parse_bind(":6999").unwrap().to_string(), "0.0.0.0:6999");
        assert_eq!(parse_bind("localhost:7000").unwrap().to_string(), "localhost:7000");
        assert_eq!(parse_bind("[::1]:7000").unwrap().to_string(), "[::1]:7000");
    }

    #[test]
    fn ports_outside_the_range_are_refused() {
        assert_eq!(parse_bind("127.0.0.1:0").unwrap().port, 0, "0 is any free port");
        assert!(parse_bind("65536").is_err());
        assert!(parse_bind("host:").is_err());
        assert!(parse_bind("x:abc").is_err());
        assert!(parse_bind("").is_err());
    }

    #[test]
    fn loopback_is_recognised() {
        assert!(parse_bind("6999").unwrap().is_loopback());
        assert!(parse_bind("localhost:1").unwrap().is_loopback());
        assert!(!parse_bind(":6999").unwrap().is_loopback());
    }
}
