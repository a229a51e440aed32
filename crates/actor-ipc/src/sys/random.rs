//! The OS random source.

/// A secret for one spawn: 128 random bits, hex.
pub(crate) fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    // The OS random source, or nothing: a secret guessable from the time and the pid would
    // let another process of this user pose as the child. If the source fails, the start
    // fails (with this error), rather than going on with a weak secret.
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "the OS random source failed ({e}): no bootstrap secret"
                )))
            }
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
