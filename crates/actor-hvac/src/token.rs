//! The control token: a shared secret that, when the device is started with one, a client
//! must show to change the device (`REQUEST END`, `REQUEST SET`). Reading it stays open.
//!
//! The syntax keeps mptools' protocol: the token goes after `REQUEST`, behind the keyword
//! `TOKEN`, and the request follows as usual:
//!
//! ```text
//! REQUEST TOKEN s3cret END
//! REQUEST TOKEN s3cret SET 23.5
//! REQUEST TOKEN s3cret STATUS        (allowed: the token is simply checked)
//! ```
//!
//! Without a token configured, nothing changes: `REQUEST TOKEN x END` is the echo it always
//! was, and `REQUEST END` stops the device, so mptools' unmodified client keeps working.
//!
//! ```
//! use actor_hvac::token::ControlToken;
//! let token = ControlToken::new("s3cret").expect("a valid token");
//! assert!(token.matches("s3cret"));
//! assert!(!token.matches("s3cre"));
//! assert!(ControlToken::new("two words").is_err());
//! assert_eq!(format!("{token:?}"), "ControlToken(<hidden>)");
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// The environment variable that sets the control token (the command line's
/// `--control-token` wins). Prefer it: a command line is visible to every user in `ps`.
pub const TOKEN_ENV: &str = "HVAC_CONTROL_TOKEN";

/// The keyword in front of the token: `REQUEST TOKEN <token> <request>`.
pub const TOKEN_KEYWORD: &str = "TOKEN";

/// The longest token accepted, in bytes (a request is at most 1500 bytes in all).
pub const MAX_TOKEN: usize = 256;

/// A control token: one word of printable characters, at most [`MAX_TOKEN`] bytes. Its
/// `Debug` form hides the value, so it never reaches a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlToken(String);

impl ControlToken {
    /// Checks `text` and makes a token of it.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the control token is empty".into());
        }
        if text.len() > MAX_TOKEN {
            return Err(format!(
                "the control token is longer than {MAX_TOKEN} bytes"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the control token must be one word: no blanks or control characters".into(),
            );
        }
        Ok(Self(text.to_string()))
    }

    /// True if `shown` is the token. The comparison takes the same time whatever the
    /// position of the first difference, so the token cannot be guessed byte by byte
    /// from the reply's timing.
    pub fn matches(&self, shown: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), shown.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
        }
        diff == 0
    }
}

impl fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlToken(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        let t = ControlToken::new("abc").expect("valid");
        assert!(t.matches("abc"));
        for other in ["", "ab", "abcd", "ABC", "abd", "xbc"] {
            assert!(!t.matches(other), "{other}");
        }
    }

    #[test]
    fn tokens_are_one_printable_word() {
        assert!(ControlToken::new("").is_err());
        assert!(ControlToken::new("a b").is_err());
        assert!(ControlToken::new("a\tb").is_err());
        assert!(ControlToken::new("a\u{7}").is_err());
        assert!(ControlToken::new(&"x".repeat(MAX_TOKEN + 1)).is_err());
        assert!(ControlToken::new(&"x".repeat(MAX_TOKEN)).is_ok());
        assert!(ControlToken::new("Zürich-42!").is_ok());
    }
}
