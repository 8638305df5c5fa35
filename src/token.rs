//! Session tokens and instance ids: random UUID v4 from the OS random source, and
//! the rules a configured token must follow. Pure; used by `main` and the config
//! validation at boot.

use std::fmt;
use std::io::Read;

/// Tokens shorter than this are accepted with a warning at boot: failed
/// attempts are slowed down (`session::listen`), not forbidden.
pub const SHORT_TOKEN: usize = 16;

/// Why a configured token cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenProblem {
    /// Empty or only whitespace.
    Blank,
    /// A control character (newline, tab, ...): a header cannot carry it.
    Control { position: usize },
    /// Whitespace at either end: headers are trimmed, so it could never match.
    Padded,
}

impl fmt::Display for TokenProblem {
    /// Never shows the token: it is a secret, and the message goes to a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenProblem::Blank => write!(f, "the token is blank"),
            TokenProblem::Control { position } => write!(
                f,
                "the token contains a control character (newline, tab, ...) at character {position}"
            ),
            TokenProblem::Padded => write!(f, "the token starts or ends with whitespace"),
        }
    }
}

/// Checks a token given by the user (flag, environment or config).
pub fn check(token: &str) -> Result<(), TokenProblem> {
    if token.trim().is_empty() {
        return Err(TokenProblem::Blank);
    }
    if let Some(i) = token.chars().position(char::is_control) {
        return Err(TokenProblem::Control { position: i + 1 });
    }
    if token.trim() != token {
        return Err(TokenProblem::Padded);
    }
    Ok(())
}

/// The token is shorter than `SHORT_TOKEN` characters.
pub fn is_short(token: &str) -> bool {
    token.chars().count() < SHORT_TOKEN
}

pub fn uuid_v4() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

/// `fl_` + UUID v4 (server.md section 7).
pub fn generate() -> std::io::Result<String> {
    Ok(format!("fl_{}", uuid_v4()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_control_and_padded_tokens_are_refused() {
        assert_eq!(check(""), Err(TokenProblem::Blank));
        assert_eq!(check(" \t "), Err(TokenProblem::Blank));
        assert_eq!(check("abc\ndef"), Err(TokenProblem::Control { position: 4 }));
        assert_eq!(check("abc\u{7f}"), Err(TokenProblem::Control { position: 4 }));
        assert_eq!(check(" abcdef"), Err(TokenProblem::Padded));
        assert_eq!(check("a token with spaces inside"), Ok(()));
        assert!(!TokenProblem::Control { position: 4 }.to_string().contains("abc"));
    }

    #[test]
    fn short_tokens_are_counted_in_characters() {
        assert!(is_short("0123456789abcde"));
        assert!(!is_short("0123456789abcdef"));
        assert!(!is_short(&generate().unwrap()));
    }

    #[test]
    fn token_is_a_v4_uuid_with_prefix() {
        let t = super::generate().unwrap();
        assert_eq!(t.len(), 3 + 36);
        assert!(t.starts_with("fl_"));
        assert_eq!(&t[3 + 14..3 + 15], "4");
        assert_ne!(t, super::generate().unwrap());
    }
}
