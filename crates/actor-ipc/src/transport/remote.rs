//! The remote flavor of [`Addr`](crate::Addr): an actor on another machine, reached through a
//! transport crate (`actor-nats`) that this floor never names. The transport implements
//! [`RemoteLink`], a byte-level, object-safe trait: the typed `Addr<M>` encodes each message
//! with postcard (exactly one frame entry's bytes, see `wire::frame`) and hands the bytes
//! over; the link queues, publishes, bounds and accounts them.
//!
//! An address of this flavor crosses processes as its scheme (`"nats"`), the message type's
//! name and the link's identity bytes. The process that decodes it finds the scheme's
//! [`RemoteScheme`] among those registered with [`inventory`] (statically, at link time: a
//! child process that runs nothing but [`Registry::run_if_child`](crate::Registry) has them
//! too, because it is the same binary) and rebuilds the link from the identity.

use super::Addr;
use actor_core::{SendTimeoutError, TrySendError};
use serde::Serialize;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

/// Why a [`RemoteLink`] did not take an encoded message; each hands the bytes back.
#[derive(Debug)]
pub enum LinkError {
    /// No room now (or not within the timeout): the actor does not keep up.
    Full(Vec<u8>),
    /// The actor's node is down (or the link is closed).
    Disconnected(Vec<u8>),
}

/// One remote actor as this process sends to it: what a transport crate implements so that
/// an [`Addr`] can reach an actor on another machine.
///
/// Every method is bounded: none waits longer than its timeout. Messages arrive as the
/// postcard encoding of one message (what a local inbox's frame holds for it). A link is
/// shared by every `Addr` of its actor in a process, so that order is kept per sending
/// process.
pub trait RemoteLink: Send + Sync + 'static {
    /// The actor's published name.
    fn name(&self) -> &str;
    /// The node that runs it.
    fn node(&self) -> &str;
    /// The most messages this process may have on their way to it.
    fn capacity(&self) -> usize;
    /// The largest encoded message the link carries.
    fn max_message_bytes(&self) -> usize;
    /// False while the actor's node is down: sends then say `Disconnected` at once.
    fn is_up(&self) -> bool;
    /// Takes `msg` if there is room now.
    fn try_send(&self, msg: Vec<u8>) -> Result<(), LinkError>;
    /// Takes `msg`, waiting at most `timeout` for room.
    fn send_timeout(&self, msg: Vec<u8>, timeout: Duration) -> Result<(), LinkError>;
    /// Counts a message that could not be encoded as sent and dead (a dead letter), and
    /// logs `reason` (the first time for this link: the count says the rest).
    fn refuse(&self, reason: &str);
    /// The scheme of the transport (`"nats"`): the key of its [`RemoteScheme`].
    fn scheme(&self) -> &'static str;
    /// What another process needs to rebuild this link with its scheme's
    /// [`RemoteScheme::resolve`].
    fn identity(&self) -> Vec<u8>;
    /// The link itself, for the transport crate to reach what it keeps (its statistics).
    fn as_any(&self) -> &dyn Any;
    /// Where the answers to questions asked through this link come back to this process:
    /// the identity of a reply route that this scheme's
    /// [`ReplyScheme`](super::ReplyScheme) rebuilds on the answering machine (for NATS, a
    /// subject this process subscribes to, made at its first ask across machines). `None`
    /// (the default) if the transport carries no replies: [`Addr::ask`] on it then fails at
    /// once with [`AskError::AcrossMachines`](crate::AskError::AcrossMachines). Called for
    /// every question asked through the link: keep it cheap once the route is made.
    fn reply_route(&self) -> Option<Result<Vec<u8>, String>> {
        None
    }
}

/// How a process rebuilds the links of one scheme from their identity: registered by the
/// transport crate with [`inventory::submit!`], so that every process of the binary has it.
///
/// ```ignore
/// inventory::submit! {
///     actor_ipc::RemoteScheme { scheme: "nats", resolve: my_resolve }
/// }
/// ```
pub struct RemoteScheme {
    /// The scheme, as [`RemoteLink::scheme`] says it.
    pub scheme: &'static str,
    /// Rebuilds a link from [`RemoteLink::identity`]'s bytes, for messages of the type named
    /// `type_name` (`std::any::type_name`); an error says why not.
    pub resolve: Resolve,
}

/// [`RemoteScheme::resolve`]: the identity's bytes and the message type's name in, the link
/// (or why not) out.
pub type Resolve = fn(identity: &[u8], type_name: &str) -> Result<Arc<dyn RemoteLink>, String>;

inventory::collect!(RemoteScheme);

/// The link of `scheme` with `identity`, in this process.
pub(super) fn resolve(
    scheme: &str,
    identity: &[u8],
    type_name: &str,
) -> Result<Arc<dyn RemoteLink>, String> {
    let result = match inventory::iter::<RemoteScheme>
        .into_iter()
        .find(|s| s.scheme == scheme)
    {
        Some(s) => (s.resolve)(identity, type_name),
        None => Err(format!(
            "an address of an actor on another machine (scheme {scheme:?}) arrived, but this \
             binary has no {scheme:?} transport: build it with mpactor's `{scheme}` feature \
             (or link the crate that provides it)"
        )),
    };
    if let Err(why) = &result {
        say_once(why);
    }
    result
}

/// Logs why something that arrived from another machine could not be rebuilt. The decoder's
/// own error may not carry the text (postcard's does not): it is said here, once per reason,
/// as the message it came in is counted a decode failure.
pub(super) fn say_once(why: &str) {
    static SAID: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());
    let mut said = SAID.lock();
    if !said.iter().any(|s| s == why) {
        said.push(why.to_string());
        super::ipc::writer_says(true, why);
    }
}

thread_local! {
    /// Set while this thread encodes a message for another machine: an address of a local
    /// actor refuses to be encoded into it.
    static ENCODING_REMOTE: Cell<bool> = const { Cell::new(false) };
    /// Why the message being encoded for another machine was refused: postcard's error
    /// does not carry the text of a custom error, so the refusing `Serialize` leaves it here.
    static REFUSED: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The link the message being encoded (or the last one) goes through: a `ReplyTo` in it
    /// asks the link for its reply route. Replaced only when another link encodes, so a
    /// send costs no reference count.
    static ENCODING_LINK: RefCell<Option<Arc<dyn RemoteLink>>> = const { RefCell::new(None) };
}

/// The scheme and reply route of the link this thread encodes a message for (see
/// [`RemoteLink::reply_route`]); `None` outside such an encoding or if the link's transport
/// carries no replies.
pub(super) fn encoding_reply_route() -> Option<(&'static str, Result<Vec<u8>, String>)> {
    if !encoding_remote() {
        return None;
    }
    let link = ENCODING_LINK.with(|l| l.borrow().clone())?;
    link.reply_route().map(|r| (link.scheme(), r))
}

/// True while this thread encodes a message for another machine.
pub(super) fn encoding_remote() -> bool {
    ENCODING_REMOTE.with(Cell::get)
}

/// Notes why the message being encoded for another machine is refused.
pub(super) fn refused_because(why: &str) {
    REFUSED.with(|r| *r.borrow_mut() = Some(why.to_string()));
}

/// The postcard encoding of `msg` for another machine, through `link`.
fn encode<M: Serialize>(msg: &M, link: &Arc<dyn RemoteLink>) -> Result<Vec<u8>, postcard::Error> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ENCODING_REMOTE.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(ENCODING_REMOTE.with(|c| c.replace(true)));
    REFUSED.with(|r| r.borrow_mut().take());
    ENCODING_LINK.with(|l| {
        let mut l = l.borrow_mut();
        if !l.as_ref().is_some_and(|had| Arc::ptr_eq(had, link)) {
            *l = Some(link.clone());
        }
    });
    // Room for a typical encoding at once (from nothing, the buffer would be reallocated four
    // or five times for a 64-byte message).
    let room = (std::mem::size_of::<M>() + 8).min(4096);
    postcard::to_extend(msg, Vec::with_capacity(room))
}

/// The remote flavor's sends, typed.
pub(super) struct Remote<M> {
    pub(super) link: Arc<dyn RemoteLink>,
    _m: std::marker::PhantomData<fn(M)>,
}

impl<M> Clone for Remote<M> {
    fn clone(&self) -> Self {
        Remote::new(self.link.clone())
    }
}

impl<M> Remote<M> {
    pub(super) fn new(link: Arc<dyn RemoteLink>) -> Self {
        Remote {
            link,
            _m: std::marker::PhantomData,
        }
    }
}

impl<M: Serialize + Send + 'static> Remote<M> {
    /// The encoded message, or `Err(())` once a message that cannot be encoded was counted as
    /// a dead letter (as the ipc flavor's writer does, the send itself succeeds).
    fn encode(&self, msg: &M) -> Result<Vec<u8>, ()> {
        encode(msg, &self.link).map_err(|e| {
            let why = REFUSED
                .with(|r| r.borrow_mut().take())
                .unwrap_or(e.to_string());
            self.link.refuse(&format!(
                "a message to {} on node {} could not be encoded for another machine: {why}",
                self.link.name(),
                self.link.node()
            ))
        })
    }

    pub(super) fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        if !self.link.is_up() {
            return Err(TrySendError::Disconnected(msg));
        }
        let Ok(bytes) = self.encode(&msg) else {
            return Ok(());
        };
        match self.link.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(LinkError::Full(_)) => Err(TrySendError::Full(msg)),
            Err(LinkError::Disconnected(_)) => Err(TrySendError::Disconnected(msg)),
        }
    }

    pub(super) fn send_timeout(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<M>> {
        if !self.link.is_up() {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        let Ok(bytes) = self.encode(&msg) else {
            return Ok(());
        };
        match self.link.send_timeout(bytes, timeout) {
            Ok(()) => Ok(()),
            Err(LinkError::Full(_)) => Err(SendTimeoutError::Timeout(msg)),
            Err(LinkError::Disconnected(_)) => Err(SendTimeoutError::Disconnected(msg)),
        }
    }
}

/// How a remote address crosses a process boundary.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct RemoteWire {
    pub scheme: String,
    /// `std::any::type_name` of the message type: checked when it is decoded.
    pub type_name: String,
    pub identity: Vec<u8>,
}

impl RemoteWire {
    pub(super) fn of<M>(link: &dyn RemoteLink) -> Self {
        RemoteWire {
            scheme: link.scheme().to_string(),
            type_name: std::any::type_name::<M>().to_string(),
            identity: link.identity(),
        }
    }

    pub(super) fn into_addr<M: Serialize + Send + 'static>(self) -> Result<Addr<M>, String> {
        let want = std::any::type_name::<M>();
        if self.type_name != want {
            return Err(format!(
                "an address of a remote actor taking {} arrived as an Addr<{want}>",
                self.type_name
            ));
        }
        resolve(&self.scheme, &self.identity, &self.type_name).map(Addr::remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_address_of_an_unknown_scheme_is_a_decode_error_naming_the_feature() {
        // actor-ipc alone registers no scheme: a "nats" address cannot be rebuilt here.
        let wire = RemoteWire {
            scheme: "nats".into(),
            type_name: std::any::type_name::<u64>().into(),
            identity: vec![1, 2, 3],
        };
        let Err(text) = wire.into_addr::<u64>() else {
            panic!("a nats address rebuilt without the nats transport")
        };
        assert!(text.contains("`nats` feature"), "{text}");
        // The same bytes through serde: refused, not a panic.
        let wire = RemoteWire {
            scheme: "nats".into(),
            type_name: std::any::type_name::<u64>().into(),
            identity: vec![1, 2, 3],
        };
        let mut tagged = vec![1u8]; // the `Remote` variant of an address's wire form
        tagged.extend(postcard::to_allocvec(&wire).expect("encode"));
        assert!(postcard::from_bytes::<Addr<u64>>(&tagged).is_err());
    }

    #[test]
    fn a_remote_address_of_another_message_type_is_refused() {
        let wire = RemoteWire {
            scheme: "nats".into(),
            type_name: "alloc::string::String".into(),
            identity: Vec::new(),
        };
        let Err(e) = wire.into_addr::<u64>() else {
            panic!("an Addr<u64> from an address of String")
        };
        assert!(e.contains("String") && e.contains("u64"), "{e}");
    }
}
