//! Error types: what an actor returns, and what a send or a receive can say.

use std::fmt;

/// An actor's failure: a message, and the cause when there is one.
///
/// Its `Display` shows the whole chain (`message: cause: cause…`), which is what the root
/// logs and what a fatal event carries across the process boundary.
///
/// ```
/// use actor_core::ActorError;
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
/// let err = ActorError::new("cannot open the send file").with_cause(io);
/// assert_eq!(err.to_string(), "cannot open the send file: no such file");
/// ```
#[derive(Debug)]
pub struct ActorError {
    message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ActorError {
    /// An error with this message and no cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: None,
        }
    }

    /// Adds the underlying cause.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// The message without its cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for ActorError {}

impl From<std::io::Error> for ActorError {
    fn from(e: std::io::Error) -> Self {
        ActorError::new("I/O error").with_cause(e)
    }
}

impl From<String> for ActorError {
    fn from(message: String) -> Self {
        ActorError::new(message)
    }
}

impl From<&str> for ActorError {
    fn from(message: &str) -> Self {
        ActorError::new(message)
    }
}

/// Why a send did not happen. The undelivered message is handed back.
///
/// ```
/// use actor_core::SendError;
/// let err: SendError<u32> = SendError::Full(7);
/// assert!(err.is_full());
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum SendError<M> {
    /// The mailbox is at its capacity (`try_send` says so at once).
    #[error("the mailbox is full")]
    Full(M),
    /// The mailbox stayed full until the send's deadline.
    #[error("the mailbox stayed full until the send deadline")]
    Timeout(M),
    /// The actor is gone and will not come back (stopped, or not restarted).
    #[error("the actor is gone")]
    Disconnected(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Timeout(m) | SendError::Disconnected(m) => m,
        }
    }

    /// True for [`SendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }

    /// True for [`SendError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Timeout(_))
    }

    /// True for [`SendError::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendError::Disconnected(_))
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message itself may be large or not Debug: name the variant only.
        let name = match self {
            SendError::Full(_) => "Full(..)",
            SendError::Timeout(_) => "Timeout(..)",
            SendError::Disconnected(_) => "Disconnected(..)",
        };
        f.write_str(name)
    }
}

impl<M> From<SendError<M>> for ActorError {
    fn from(e: SendError<M>) -> Self {
        ActorError::new(format!("send failed: {e}"))
    }
}
