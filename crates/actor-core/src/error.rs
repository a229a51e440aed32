//! Error types: what an actor returns ([`ActorError`]), how a failure crosses a process
//! boundary with its causes ([`ErrorChain`]), and what each send operation can say
//! ([`TrySendError`], [`SendTimeoutError`]), as crossbeam-channel names them.

use serde::{Deserialize, Serialize};
use std::error::Error;
use std::fmt;

/// An actor's failure: a message, a cause, or both.
///
/// `?` works on any `std::error::Error + Send + Sync + 'static` (an I/O error, a parse error,
/// a library's error): it becomes the cause, and its whole chain of sources is kept. Its
/// `Display` shows the whole chain (`message: cause: cause…`), which is what the actor's log
/// line, the root's log and the summary ([`StopReason::Fatal`](crate::StopReason)) carry.
///
/// ```
/// use actor_core::ActorError;
///
/// fn port(text: &str) -> Result<u16, ActorError> {
///     Ok(text.parse::<u16>()?)          // a ParseIntError, through `?`
/// }
/// assert_eq!(port("80").ok(), Some(80));
/// assert_eq!(port("x").unwrap_err().to_string(), "invalid digit found in string");
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
/// let err = ActorError::new("cannot open the send file").with_cause(io);
/// assert_eq!(err.to_string(), "cannot open the send file: no such file");
/// ```
///
/// `ActorError` does not implement `std::error::Error` itself (that is what lets `?` take
/// every error type, as with `anyhow::Error`); [`ActorError::into_std`] makes one of it.
pub struct ActorError {
    message: Option<String>,
    cause: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl ActorError {
    /// An error with this message and no cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: Some(message.into()),
            cause: None,
        }
    }

    /// Adds the underlying cause (replacing one given before).
    pub fn with_cause(mut self, cause: impl Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// The message without its cause; `None` for an error made by `?` from another error.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The underlying cause, if any: the error `?` converted, or the one given to
    /// [`ActorError::with_cause`]. Its own sources follow from it.
    ///
    /// ```
    /// use actor_core::ActorError;
    /// let err: ActorError = "x".parse::<u8>().unwrap_err().into();
    /// assert!(err.cause().is_some_and(|c| c.is::<std::num::ParseIntError>()));
    /// ```
    pub fn cause(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// The chain of messages, top first: what crosses a process boundary.
    ///
    /// ```
    /// use actor_core::ActorError;
    /// let io = std::io::Error::other("disk full");
    /// let chain = ActorError::new("saving").with_cause(io).chain();
    /// assert_eq!(chain.messages(), vec!["saving", "disk full"]);
    /// ```
    pub fn chain(&self) -> ErrorChain {
        let mut levels = Vec::new();
        if let Some(m) = &self.message {
            levels.push(m.clone());
        }
        let mut next: Option<&(dyn Error + 'static)> =
            self.cause.as_deref().map(|c| c as &(dyn Error + 'static));
        while let Some(cause) = next {
            levels.push(cause.to_string());
            next = cause.source();
        }
        ErrorChain::from_messages(levels)
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.chain(), f)
    }
}

impl fmt::Debug for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorError")
            .field("message", &self.message)
            .field("cause", &self.cause)
            .finish()
    }
}

/// Anything `Box<dyn Error + Send + Sync>` takes: every error type (kept as the cause, with
/// its sources), and text (`"no such key".into()`, `format!(..).into()`, `ok_or("..")?`).
impl<E: Into<Box<dyn Error + Send + Sync + 'static>>> From<E> for ActorError {
    fn from(e: E) -> Self {
        Self {
            message: None,
            cause: Some(e.into()),
        }
    }
}

impl ActorError {
    /// This error as a `std::error::Error` (for a `main` that returns
    /// `Result<(), Box<dyn Error + Send + Sync>>`), as the convention for those goes: its
    /// `Display` is the top level only and `source()` the rest. An error made by `?` is
    /// handed back as it was.
    ///
    /// ```
    /// use actor_core::ActorError;
    /// let e = ActorError::new("saving").with_cause(std::io::Error::other("disk full"));
    /// let boxed = e.into_std();
    /// assert_eq!(boxed.to_string(), "saving");
    /// assert_eq!(boxed.source().map(|s| s.to_string()).as_deref(), Some("disk full"));
    /// ```
    pub fn into_std(self) -> Box<dyn Error + Send + Sync + 'static> {
        match self {
            ActorError {
                message: None,
                cause: Some(cause),
            } => cause,
            other => Box::new(AsStdError(other)),
        }
    }
}

/// An `ActorError` with a message where a `std::error::Error` is wanted: the message, and
/// the cause as the source.
struct AsStdError(ActorError);

impl fmt::Debug for AsStdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AsStdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.message.as_deref().unwrap_or_default())
    }
}

impl Error for AsStdError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

/// A failure's chain of messages, top first, as it crosses a process boundary: the text of
/// each level of an error and its sources. It is itself an error whose
/// [`source`](Error::source) walks the levels, so a failure that happened in another process
/// keeps its causes (a [`StartError`] of the process runtime carries one).
///
/// Its `Display` shows the whole chain, `top: cause: cause…`, like [`ActorError`]'s.
///
/// ```
/// use actor_core::ErrorChain;
/// use std::error::Error;
/// let chain = ErrorChain::from_messages(["startup failed", "binding port 80", "denied"]);
/// assert_eq!(chain.to_string(), "startup failed: binding port 80: denied");
/// assert_eq!(chain.source().map(|s| s.to_string()).as_deref(), Some("binding port 80: denied"));
/// ```
///
/// [`StartError`]: https://docs.rs/actor-ipc/latest/actor_ipc/enum.StartError.html
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorChain {
    message: String,
    source: Option<Box<ErrorChain>>,
}

impl ErrorChain {
    /// A chain of these messages, top first (an empty list gives one empty message).
    pub fn from_messages<S: Into<String>>(messages: impl IntoIterator<Item = S>) -> Self {
        let mut levels: Vec<String> = messages.into_iter().map(Into::into).collect();
        let mut chain = ErrorChain {
            message: levels.pop().unwrap_or_default(),
            source: None,
        };
        while let Some(message) = levels.pop() {
            chain = ErrorChain {
                message,
                source: Some(Box::new(chain)),
            };
        }
        chain
    }

    /// The chain of `err` and its sources.
    pub fn of(err: &(dyn Error + 'static)) -> Self {
        let mut levels = vec![err.to_string()];
        let mut next = err.source();
        while let Some(cause) = next {
            levels.push(cause.to_string());
            next = cause.source();
        }
        Self::from_messages(levels)
    }

    /// This level's message, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Every level's message, top first.
    pub fn messages(&self) -> Vec<&str> {
        let mut out = vec![self.message.as_str()];
        let mut next = self.source.as_deref();
        while let Some(level) = next {
            out.push(level.message.as_str());
            next = level.source.as_deref();
        }
        out
    }

    /// The same chain with `message` on top (`"startup failed"` over the actor's error).
    pub fn context(self, message: impl Into<String>) -> Self {
        ErrorChain {
            message: message.into(),
            source: Some(Box::new(self)),
        }
    }
}

impl fmt::Display for ErrorChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join(": "))
    }
}

impl Error for ErrorChain {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn Error + 'static))
    }
}

/// Why a `try_send` did not happen. The message is handed back.
///
/// ```
/// use actor_core::TrySendError;
/// let err: TrySendError<u32> = TrySendError::Full(7);
/// assert!(err.is_full());
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TrySendError<M> {
    /// The mailbox is at its capacity now.
    #[error("the mailbox is full")]
    Full(M),
    /// The actor is gone and will not come back (stopped, or not restarted).
    #[error("the actor is gone")]
    Disconnected(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        }
    }

    /// True for [`TrySendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// True for [`TrySendError::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message itself may be large or not Debug: name the variant only.
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

/// Why a `send_timeout` (or a `send`, which is `send_timeout` with the default deadline) did
/// not happen. The message is handed back.
///
/// ```
/// use actor_core::SendTimeoutError;
/// let err: SendTimeoutError<&str> = SendTimeoutError::Timeout("hello");
/// assert!(err.is_timeout());
/// assert_eq!(err.into_inner(), "hello");
/// ```
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum SendTimeoutError<M> {
    /// The mailbox stayed full until the send's deadline.
    #[error("the mailbox stayed full until the send deadline")]
    Timeout(M),
    /// The actor is gone and will not come back (stopped, or not restarted).
    #[error("the actor is gone")]
    Disconnected(M),
}

impl<M> SendTimeoutError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Disconnected(m) => m,
        }
    }

    /// True for [`SendTimeoutError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// True for [`SendTimeoutError::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<M> fmt::Debug for SendTimeoutError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(_) => "Timeout(..)",
            SendTimeoutError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct ConfigError(#[source] std::io::Error);

    fn read() -> Result<(), ActorError> {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        Err(ConfigError(io))?
    }

    #[test]
    fn question_mark_keeps_the_whole_chain() {
        let err = read().unwrap_err();
        assert_eq!(err.to_string(), "reading the config: denied");
        assert_eq!(err.chain().messages(), vec!["reading the config", "denied"]);
        assert!(err.cause().is_some_and(|c| c.is::<ConfigError>()));
        let boxed = err.into_std();
        assert_eq!(boxed.to_string(), "reading the config");
        assert_eq!(
            boxed.source().map(|s| s.to_string()).as_deref(),
            Some("denied")
        );
    }

    #[test]
    fn a_chain_survives_serialization_level_by_level() {
        let chain = ActorError::new("startup")
            .with_cause(ConfigError(std::io::Error::other("gone")))
            .chain();
        let json = serde_json::to_string(&chain).expect("encode");
        let back: ErrorChain = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, chain);
        let mut levels = Vec::new();
        let mut next: Option<&(dyn Error + 'static)> = Some(&back);
        while let Some(e) = next {
            levels.push(e.to_string());
            next = e.source();
        }
        assert_eq!(
            levels,
            [
                "startup: reading the config: gone",
                "reading the config: gone",
                "gone"
            ]
        );
    }
}
