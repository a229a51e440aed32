//! The OS random source.

/// A secret for one spawn: 128 random bits, hex.
pub(crate) fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// 64 random bits from the OS (the key and the token of a reply inbox).
pub(crate) fn random_u64() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    fill(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Fills `bytes` from the OS random source, or fails. A secret guessable from the time and
/// the pid would let another process of this user pose as a child (or forge a reply): if the
/// source fails, the caller fails (with this error), rather than going on with a weak secret.
fn fill(bytes: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "the OS random source failed ({e})"
                )))
            }
        }
    }
    Ok(())
}
