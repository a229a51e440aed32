//! The TCP protocol, as pure functions: parsing a client's message into a [`Command`], and
//! the reply lines. No sockets here, so every rule is unit-tested.
//!
//! One request per connection, compatible with the mptools example client:
//!
//! ```text
//! client:  REQUEST <text>          (one message, at most 1500 bytes, an optional final newline)
//! server:  REPLY <id> <text>       (or ERROR <reason>), then the connection closes
//! ```
//!
//! | request | reply | effect |
//! |---|---|---|
//! | `REQUEST <text>` | `REPLY <id> <text>` | none (mptools' echo) |
//! | `REQUEST STATUS` | `REPLY <id> <live view>` | none |
//! | `REQUEST SET <°C>` | `REPLY <id> SETPOINT <new>C (was <old>C)` | OBSERVATION's model works towards it |
//! | `REQUEST END` | `REPLY <id> END` | the whole system stops cleanly (exit 0) |
//! | anything else | `ERROR <reason>` | none |
//!
//! With a control token ([`crate::token`]), `END` and `SET` must come as
//! `REQUEST TOKEN <token> END` ([`parse_request`]). When the bytes read from a client are a
//! whole message is [`judge`]'s to say.
//!
//! ```
//! use actor_hvac::protocol::{parse_message, Command};
//! assert_eq!(parse_message(b"REQUEST END"), Ok(Command::End));
//! assert_eq!(parse_message(b"REQUEST SET 22.5\n"), Ok(Command::Set(22.5)));
//! assert!(parse_message(b"HELLO").is_err());
//! ```

use crate::token::{ControlToken, TOKEN_KEYWORD};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest message a client may send, in bytes (the original's `recv(1500)`).
pub const MAX_MESSAGE: usize = 1500;
/// The keyword every message starts with.
pub const REQUEST: &str = "REQUEST";
/// The lowest setpoint `REQUEST SET` accepts, in °C.
pub const MIN_SETPOINT: f64 = 5.0;
/// The highest setpoint `REQUEST SET` accepts, in °C.
pub const MAX_SETPOINT: f64 = 35.0;

/// What a well-formed request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `REQUEST END`: reply, then stop the whole system.
    End,
    /// `REQUEST STATUS`: a one-line live view of the system.
    Status,
    /// `REQUEST SET <°C>`: a new setpoint for the room model.
    Set(f64),
    /// Any other text: echoed back, as in mptools.
    Echo(String),
}

impl fmt::Display for Command {
    /// The request's text as the client wrote it (normalised).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::End => f.write_str("END"),
            Command::Status => f.write_str("STATUS"),
            Command::Set(t) => write!(f, "SET {t}"),
            Command::Echo(text) => f.write_str(text),
        }
    }
}

/// Why a message is not a request. The `Display` text is the `ERROR` reply's reason.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolError {
    /// More than [`MAX_MESSAGE`] bytes.
    TooLong,
    /// Not UTF-8 (the byte offset of the first bad byte).
    NotUtf8(usize),
    /// A control character (other than a tab) in the text.
    ControlCharacter,
    /// Does not start with `REQUEST`.
    NotARequest,
    /// `REQUEST` and nothing after it.
    EmptyRequest,
    /// `REQUEST SET` without a readable temperature.
    BadSetpoint(String),
    /// `REQUEST SET` with a temperature outside [`MIN_SETPOINT`]..=[`MAX_SETPOINT`].
    SetpointOutOfRange(f64),
    /// A control request (`END`, `SET`) without the control token the device was started
    /// with (the request's name).
    TokenRequired(&'static str),
    /// `REQUEST TOKEN <token> ...` with the wrong token.
    BadToken,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::TooLong => {
                write!(f, "message too long: at most {MAX_MESSAGE} bytes")
            }
            ProtocolError::NotUtf8(at) => {
                write!(f, "message is not UTF-8 text (bad byte at offset {at})")
            }
            ProtocolError::ControlCharacter => {
                f.write_str("message holds a control character; send one line of text")
            }
            ProtocolError::NotARequest => {
                f.write_str("not a request: expected REQUEST <text>")
            }
            ProtocolError::EmptyRequest => {
                f.write_str("empty request: expected REQUEST <text>")
            }
            ProtocolError::BadSetpoint(what) => write!(
                f,
                "bad setpoint {what:?}: expected REQUEST SET <temperature in C>, e.g. REQUEST SET 21.5"
            ),
            ProtocolError::SetpointOutOfRange(t) => write!(
                f,
                "setpoint {t}C out of range: {MIN_SETPOINT}..{MAX_SETPOINT}C"
            ),
            ProtocolError::TokenRequired(what) => write!(
                f,
                "{what} needs the control token: REQUEST {TOKEN_KEYWORD} <token> {what} ..."
            ),
            ProtocolError::BadToken => f.write_str("wrong control token"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Parses one client message (the bytes before the first newline, or all of them), as the
/// device does without a control token.
///
/// A final `\r` is ignored, so `printf 'REQUEST x\r\n' | nc` works like the mptools client,
/// which sends no newline at all. Keywords are case-insensitive; the echoed text is kept as
/// written (surrounding blanks trimmed).
pub fn parse_message(bytes: &[u8]) -> Result<Command, ProtocolError> {
    parse_request(bytes, None)
}

/// Parses one client message as [`parse_message`] does, and with a control token enforces
/// it: `END` and `SET` must come as `REQUEST TOKEN <token> END` (see [`crate::token`]).
///
/// ```
/// use actor_hvac::protocol::{parse_request, Command, ProtocolError};
/// use actor_hvac::token::ControlToken;
/// let t = ControlToken::new("s3cret").expect("valid");
/// assert_eq!(parse_request(b"REQUEST TOKEN s3cret END", Some(&t)), Ok(Command::End));
/// assert_eq!(parse_request(b"REQUEST END", Some(&t)), Err(ProtocolError::TokenRequired("END")));
/// assert_eq!(parse_request(b"REQUEST TOKEN guess END", Some(&t)), Err(ProtocolError::BadToken));
/// assert_eq!(parse_request(b"REQUEST STATUS", Some(&t)), Ok(Command::Status));
/// ```
pub fn parse_request(bytes: &[u8], token: Option<&ControlToken>) -> Result<Command, ProtocolError> {
    let rest = request_text(bytes)?;
    let Some(token) = token else {
        return parse_command(rest);
    };
    if let Some(after) = keyword(rest, TOKEN_KEYWORD) {
        let (shown, request) = after
            .split_once([' ', '\t'])
            .map_or((after, ""), |(t, r)| (t, r.trim_start()));
        if request.is_empty() {
            return Err(ProtocolError::EmptyRequest);
        }
        if !token.matches(shown) {
            return Err(ProtocolError::BadToken);
        }
        return parse_command(request);
    }
    match parse_command(rest)? {
        Command::End => Err(ProtocolError::TokenRequired("END")),
        Command::Set(_) => Err(ProtocolError::TokenRequired("SET")),
        open => Ok(open),
    }
}

/// The text after `REQUEST`, checked: one line, at most [`MAX_MESSAGE`] bytes, UTF-8, no
/// control characters, not empty.
fn request_text(bytes: &[u8]) -> Result<&str, ProtocolError> {
    let line = match bytes.iter().position(|b| *b == b'\n') {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    if line.len() > MAX_MESSAGE {
        return Err(ProtocolError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|e| ProtocolError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    // Control characters would reach the log and the send file: refuse them.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ProtocolError::ControlCharacter);
    }
    let text = text.trim();
    let rest = match keyword(text, REQUEST) {
        Some(rest) => rest,
        None => return Err(ProtocolError::NotARequest),
    };
    if rest.is_empty() {
        return Err(ProtocolError::EmptyRequest);
    }
    Ok(rest)
}

/// Whether the bytes read from a client so far are its whole message.
#[derive(Debug, Clone, PartialEq)]
pub enum Framing {
    /// They are: here is what they say.
    Complete(Result<Command, ProtocolError>),
    /// More may come and would change the meaning: wait for it (under the client's deadline).
    Incomplete,
}

/// Decides whether `buf`, all a client has sent so far, is its whole message, without
/// waiting for a quiet gap: a message is complete at a newline, at the client's end of
/// stream (`eof`), past [`MAX_MESSAGE`] bytes (too long), or as soon as the bytes form a
/// whole request or a mistake no further byte can mend. Only a beginning of one (nothing
/// yet, `REQ`, `REQUEST `, `REQUEST TOKEN x` with the request still to come, a character
/// cut in the middle of its UTF-8 encoding) waits for more.
///
/// The mptools client sends one request and waits for the reply: what its first write
/// delivers is the request, answered at once. A client that trickles bytes is judged on
/// what has arrived when it forms a request, or at its deadline.
///
/// ```
/// use actor_hvac::protocol::{judge, Command, Framing};
/// assert_eq!(judge(b"REQUEST hi 3", false, None), Framing::Complete(Ok(Command::Echo("hi 3".into()))));
/// assert_eq!(judge(b"REQU", false, None), Framing::Incomplete);
/// assert!(matches!(judge(b"REQU", true, None), Framing::Complete(Err(_))));
/// ```
pub fn judge(buf: &[u8], eof: bool, token: Option<&ControlToken>) -> Framing {
    let has_newline = buf.contains(&b'\n');
    let parsed = parse_request(buf, token);
    if eof || has_newline || buf.len() > MAX_MESSAGE {
        return Framing::Complete(parsed);
    }
    let wait = match &parsed {
        Err(ProtocolError::EmptyRequest) => true,
        Err(ProtocolError::NotUtf8(at)) => {
            // Cut inside a character (at most 3 bytes of a 4-byte one) rather than wrong.
            std::str::from_utf8(&buf[*at..]).is_err_and(|e| e.error_len().is_none())
        }
        Err(ProtocolError::NotARequest) => is_start_of_request(buf),
        _ => false,
    };
    if wait {
        Framing::Incomplete
    } else {
        Framing::Complete(parsed)
    }
}

/// True for blanks followed by a beginning of the word `REQUEST` (case-insensitive).
fn is_start_of_request(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(buf.len());
    let word = &buf[start..];
    word.len() < REQUEST.len() && REQUEST.as_bytes()[..word.len()].eq_ignore_ascii_case(word)
}

/// `Some(rest)` if `text` is `word` alone or `word` followed by blanks and `rest`
/// (case-insensitive).
fn keyword<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &text[word.len()..];
    if rest.is_empty() {
        return Some(rest);
    }
    if rest.starts_with([' ', '\t']) {
        return Some(rest.trim_start());
    }
    None
}

fn parse_command(text: &str) -> Result<Command, ProtocolError> {
    if text.eq_ignore_ascii_case("END") {
        return Ok(Command::End);
    }
    if text.eq_ignore_ascii_case("STATUS") {
        return Ok(Command::Status);
    }
    if let Some(arg) = keyword(text, "SET") {
        return parse_setpoint(arg).map(Command::Set);
    }
    Ok(Command::Echo(text.to_string()))
}

/// Reads a setpoint: `21.5`, `21.5C` or `21.5c`, within the accepted range.
pub fn parse_setpoint(arg: &str) -> Result<f64, ProtocolError> {
    let number = arg.strip_suffix(['C', 'c']).unwrap_or(arg).trim_end();
    let value: f64 = number
        .parse()
        .map_err(|_| ProtocolError::BadSetpoint(arg.to_string()))?;
    if !value.is_finite() {
        return Err(ProtocolError::BadSetpoint(arg.to_string()));
    }
    if !(MIN_SETPOINT..=MAX_SETPOINT).contains(&value) {
        return Err(ProtocolError::SetpointOutOfRange(value));
    }
    Ok(value)
}

/// What the root answers a request with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// Sent as `REPLY <id> <text>`.
    Reply(String),
    /// Sent as `ERROR <reason>`.
    Error(String),
}

/// The line a client receives for request `id` (newline-terminated, so line-oriented
/// clients like `nc` print it whole; the mptools client prints it as is).
///
/// ```
/// use actor_hvac::protocol::{answer_line, Answer};
/// assert_eq!(answer_line(7, &Answer::Reply("hello".into())), "REPLY 7 hello\n");
/// assert_eq!(answer_line(7, &Answer::Error("timeout".into())), "ERROR timeout\n");
/// ```
pub fn answer_line(id: u64, answer: &Answer) -> String {
    match answer {
        Answer::Reply(text) => format!("REPLY {id} {}\n", one_line(text)),
        Answer::Error(reason) => error_line(reason),
    }
}

/// An `ERROR <reason>` line.
pub fn error_line(reason: impl fmt::Display) -> String {
    format!("ERROR {}\n", one_line(&reason.to_string()))
}

/// `text` with every line break replaced by a blank: a reply is one line.
pub fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_requests_echo_their_text() {
        assert_eq!(
            parse_message(b"REQUEST TEST REQUEST 1"),
            Ok(Command::Echo("TEST REQUEST 1".into()))
        );
        assert_eq!(
            parse_message(b"REQUEST  hello world  \r\n"),
            Ok(Command::Echo("hello world".into()))
        );
        assert_eq!(
            parse_message(b"request\thi"),
            Ok(Command::Echo("hi".into()))
        );
    }

    #[test]
    fn commands_are_case_insensitive_and_whole_words() {
        assert_eq!(parse_message(b"REQUEST END"), Ok(Command::End));
        assert_eq!(parse_message(b"REQUEST end\n"), Ok(Command::End));
        assert_eq!(parse_message(b"REQUEST STATUS"), Ok(Command::Status));
        assert_eq!(
            parse_message(b"REQUEST END of the day"),
            Ok(Command::Echo("END of the day".into()))
        );
        assert_eq!(
            parse_message(b"REQUEST SETTINGS"),
            Ok(Command::Echo("SETTINGS".into()))
        );
        assert_eq!(
            parse_message(b"REQUESTS x"),
            Err(ProtocolError::NotARequest)
        );
    }

    #[test]
    fn setpoints_parse_with_or_without_unit() {
        assert_eq!(parse_message(b"REQUEST SET 22.5"), Ok(Command::Set(22.5)));
        assert_eq!(parse_message(b"REQUEST set 18C"), Ok(Command::Set(18.0)));
        assert_eq!(parse_message(b"REQUEST SET 5"), Ok(Command::Set(5.0)));
        assert_eq!(parse_message(b"REQUEST SET 35c"), Ok(Command::Set(35.0)));
    }

    #[test]
    fn bad_setpoints_say_why() {
        assert_eq!(
            parse_message(b"REQUEST SET warm"),
            Err(ProtocolError::BadSetpoint("warm".into()))
        );
        assert_eq!(
            parse_message(b"REQUEST SET"),
            Err(ProtocolError::BadSetpoint(String::new()))
        );
        assert_eq!(
            parse_message(b"REQUEST SET 21 22"),
            Err(ProtocolError::BadSetpoint("21 22".into()))
        );
        assert!(matches!(
            parse_message(b"REQUEST SET NaN"),
            Err(ProtocolError::BadSetpoint(_))
        ));
        assert_eq!(
            parse_message(b"REQUEST SET 99"),
            Err(ProtocolError::SetpointOutOfRange(99.0))
        );
        assert_eq!(
            parse_message(b"REQUEST SET -40"),
            Err(ProtocolError::SetpointOutOfRange(-40.0))
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(parse_message(b"HELLO"), Err(ProtocolError::NotARequest));
        assert_eq!(parse_message(b""), Err(ProtocolError::NotARequest));
        assert_eq!(parse_message(b"REQUEST"), Err(ProtocolError::EmptyRequest));
        assert_eq!(
            parse_message(b"REQUEST   \n"),
            Err(ProtocolError::EmptyRequest)
        );
        assert_eq!(
            parse_message(b"REQUEST \xff\xfe"),
            Err(ProtocolError::NotUtf8(8))
        );
        assert_eq!(
            parse_message(b"REQUEST a\x1b[31mred"),
            Err(ProtocolError::ControlCharacter)
        );
    }

    #[test]
    fn the_size_limit_is_1500_bytes_before_the_newline() {
        let mut exact = b"REQUEST ".to_vec();
        exact.resize(MAX_MESSAGE, b'x');
        assert!(parse_message(&exact).is_ok());
        let mut with_newline = exact.clone();
        with_newline.push(b'\n');
        assert!(parse_message(&with_newline).is_ok());
        let mut over = exact.clone();
        over.push(b'x');
        assert_eq!(parse_message(&over), Err(ProtocolError::TooLong));
    }

    #[test]
    fn only_the_first_line_counts() {
        assert_eq!(
            parse_message(b"REQUEST one\nREQUEST END\n"),
            Ok(Command::Echo("one".into()))
        );
    }

    #[test]
    fn replies_are_single_lines() {
        assert_eq!(
            answer_line(3, &Answer::Reply("a\nb".into())),
            "REPLY 3 a b\n"
        );
        assert_eq!(
            error_line(ProtocolError::NotARequest),
            "ERROR not a request: expected REQUEST <text>\n"
        );
        assert!(error_line(ProtocolError::TooLong).contains("1500"));
    }

    fn complete(r: Result<Command, ProtocolError>) -> Framing {
        Framing::Complete(r)
    }

    #[test]
    fn a_whole_request_is_complete_without_a_newline() {
        assert_eq!(
            judge(b"REQUEST hi 3", false, None),
            complete(Ok(Command::Echo("hi 3".into())))
        );
        assert_eq!(
            judge(b"REQUEST END", false, None),
            complete(Ok(Command::End))
        );
        assert_eq!(
            judge(b"REQUEST a\nREQUEST b", false, None),
            complete(Ok(Command::Echo("a".into())))
        );
    }

    #[test]
    fn a_beginning_waits_for_more() {
        for partial in [
            &b""[..],
            b"  ",
            b"R",
            b"req",
            b"REQUEST",
            b"REQUEST   ",
            b"REQUEST \xc3",
            b"REQUEST \xf0\x9f\x98",
        ] {
            assert_eq!(
                judge(partial, false, None),
                Framing::Incomplete,
                "{partial:?}"
            );
        }
        // ... until the client's end of stream, which judges what came.
        assert_eq!(
            judge(b"REQ", true, None),
            complete(Err(ProtocolError::NotARequest))
        );
        assert_eq!(
            judge(b"REQUEST", true, None),
            complete(Err(ProtocolError::EmptyRequest))
        );
    }

    #[test]
    fn mistakes_no_byte_can_mend_are_complete_at_once() {
        assert_eq!(
            judge(b"HELLO", false, None),
            complete(Err(ProtocolError::NotARequest))
        );
        assert_eq!(
            judge(b"REQUESTS", false, None),
            complete(Err(ProtocolError::NotARequest))
        );
        assert_eq!(
            judge(b"REQUEST \xff", false, None),
            complete(Err(ProtocolError::NotUtf8(8)))
        );
        assert_eq!(
            judge(b"REQUEST a\x1b", false, None),
            complete(Err(ProtocolError::ControlCharacter))
        );
        let big = vec![b'x'; MAX_MESSAGE + 1];
        assert_eq!(
            judge(&big, false, None),
            complete(Err(ProtocolError::TooLong))
        );
    }

    #[test]
    fn without_a_token_the_protocol_is_mptools() {
        assert_eq!(parse_request(b"REQUEST END", None), Ok(Command::End));
        assert_eq!(
            parse_request(b"REQUEST TOKEN x END", None),
            Ok(Command::Echo("TOKEN x END".into()))
        );
    }

    #[test]
    fn with_a_token_control_requests_need_it() {
        let t = ControlToken::new("s3cret").expect("valid");
        let t = Some(&t);
        assert_eq!(
            parse_request(b"REQUEST END", t),
            Err(ProtocolError::TokenRequired("END"))
        );
        assert_eq!(
            parse_request(b"REQUEST set 22", t),
            Err(ProtocolError::TokenRequired("SET"))
        );
        assert_eq!(
            parse_request(b"REQUEST token s3cret SET 22\n", t),
            Ok(Command::Set(22.0))
        );
        assert_eq!(
            parse_request(b"REQUEST TOKEN s3cret  end", t),
            Ok(Command::End)
        );
        assert_eq!(
            parse_request(b"REQUEST TOKEN S3CRET END", t),
            Err(ProtocolError::BadToken)
        );
        // Open requests stay open, with or without the token.
        assert_eq!(parse_request(b"REQUEST STATUS", t), Ok(Command::Status));
        assert_eq!(
            parse_request(b"REQUEST TOKEN s3cret hello", t),
            Ok(Command::Echo("hello".into()))
        );
        assert_eq!(
            parse_request(b"REQUEST hello", t),
            Ok(Command::Echo("hello".into()))
        );
        // The token and nothing after it: a beginning, waiting for the request.
        assert_eq!(
            parse_request(b"REQUEST TOKEN s3cret", t),
            Err(ProtocolError::EmptyRequest)
        );
        assert_eq!(
            judge(b"REQUEST TOKEN s3cret ", false, t),
            Framing::Incomplete
        );
        let reason = ProtocolError::TokenRequired("END").to_string();
        assert!(reason.contains("REQUEST TOKEN <token> END"), "{reason}");
    }
}
