//! The OpenBSD errno values the simulated kernel and network report, so
//! that a platform layer can pass them on exactly as the real system calls
//! would.

use core::fmt;

/// An OpenBSD errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such process / entry (PF_KEY: no such SA or flow).
    pub const ESRCH: Errno = Errno(3);
    /// Cannot allocate memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Entry exists (PF_KEY: SA already present).
    pub const EEXIST: Errno = Errno(17);
    /// Invalid argument (PF_KEY: malformed or refused request).
    pub const EINVAL: Errno = Errno(22);
    /// Message too long (PF_KEY: above `PFKEY_MSG_MAXSZ`).
    pub const EMSGSIZE: Errno = Errno(40);
    /// Connection reset by peer.
    pub const ECONNRESET: Errno = Errno(54);
    /// No buffer space.
    pub const ENOBUFS: Errno = Errno(55);
    /// Operation timed out.
    pub const ETIMEDOUT: Errno = Errno(60);
    /// Connection refused.
    pub const ECONNREFUSED: Errno = Errno(61);

    /// The symbolic name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            3 => "ESRCH",
            12 => "ENOMEM",
            17 => "EEXIST",
            22 => "EINVAL",
            40 => "EMSGSIZE",
            54 => "ECONNRESET",
            55 => "ENOBUFS",
            60 => "ETIMEDOUT",
            61 => "ECONNREFUSED",
            _ => "E?",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
