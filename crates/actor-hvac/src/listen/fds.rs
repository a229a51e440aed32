//! Descriptors: the process's limit (raised at start, as servers do), the listening
//! socket's backlog, the accept errors that mean "out of resources", and a spare descriptor
//! kept to refuse a client politely even then.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// The process's descriptor limit after [`raise_limit`]: `(soft before, soft now)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit, if raising it worked).
    pub now: u64,
}

/// Raises the soft limit on open descriptors (RLIMIT_NOFILE) to the hard limit: every open
/// connection costs one, and the distributions' default soft limit (1024) is below what a
/// server with 1,000 idle clients needs.
pub fn raise_limit() -> io::Result<Limit> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let before = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if before < hard {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        )?;
        return Ok(Limit { before, now: hard });
    }
    Ok(Limit {
        before,
        now: before,
    })
}

/// Sets the listening socket's backlog (calling listen(2) again on a listening socket
/// changes it; the kernel caps it at `net.core.somaxconn`). std and mio listen with 128:
/// a burst of a thousand connections would overflow it, and a client whose SYN is dropped
/// retries only after a second.
pub fn set_backlog(listener: &impl AsFd, backlog: i32) -> io::Result<()> {
    rustix::net::listen(listener, backlog)?;
    Ok(())
}

/// accept(2) failed for want of descriptors or memory: a passing shortage, which a pause
/// (and closing connections) cures.
pub fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// accept(2) errors that concern one connection, not the listening socket (accept(2):
/// "treat them like EAGAIN by retrying").
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ETIMEDOUT
        )
    )
}

/// A descriptor held in reserve: when accept fails with EMFILE, closing it makes room to
/// accept one waiting client, tell it `ERROR busy` and close it, instead of leaving it in
/// the backlog without an answer.
pub fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let lim = raise_limit().expect("getrlimit/setrlimit");
        assert!(lim.now >= lim.before);
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
        assert_eq!(now.current.unwrap_or(u64::MAX), lim.now);
    }

    #[test]
    fn shortages_and_connection_errors_are_told_apart() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(is_out_of_resources(&emfile) && !is_transient(&emfile));
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(is_transient(&aborted) && !is_out_of_resources(&aborted));
        let badf = io::Error::from_raw_os_error(libc::EBADF);
        assert!(!is_transient(&badf) && !is_out_of_resources(&badf));
    }
}
