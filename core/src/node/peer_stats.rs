//! Per-peer counters: traffic, errors by kind, snapshots, and how far
//! behind the peer is, for logs, the control socket and test oracles.

use crate::time::Instant;

/// Kinds of per-peer errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad framing, length or padding.
    Framing,
    /// MAC, hash or key-confirmation failure.
    Auth,
    /// A well-formed message that was not acceptable now.
    Protocol,
    /// The kernel refused a message from this peer.
    Kernel,
    /// Connection-level failure.
    Io,
}

/// Error counters by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorCounts {
    /// [`ErrorKind::Framing`].
    pub framing: u32,
    /// [`ErrorKind::Auth`].
    pub auth: u32,
    /// [`ErrorKind::Protocol`].
    pub protocol: u32,
    /// [`ErrorKind::Kernel`].
    pub kernel: u32,
    /// [`ErrorKind::Io`].
    pub io: u32,
}

impl ErrorCounts {
    /// Counts one error (saturating).
    pub fn bump(&mut self, kind: ErrorKind) {
        let c = match kind {
            ErrorKind::Framing => &mut self.framing,
            ErrorKind::Auth => &mut self.auth,
            ErrorKind::Protocol => &mut self.protocol,
            ErrorKind::Kernel => &mut self.kernel,
            ErrorKind::Io => &mut self.io,
        };
        *c = c.saturating_add(1);
    }
}

/// Per-peer statistics (all counters saturate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Snapshots we sent to it.
    pub snapshots_sent: u32,
    /// Snapshots we received from it.
    pub snapshots_received: u32,
    /// When the current session came up.
    pub up_since: Option<Instant>,
    /// When it was last known to be in sync.
    pub last_sync: Option<Instant>,
    /// How many sequence numbers it is behind (master's view).
    pub lag: u64,
}

impl PeerStats {
    /// One frame of `bytes` received.
    pub fn frame_in(&mut self, bytes: usize) {
        self.frames_in = self.frames_in.saturating_add(1);
        self.bytes_in = self.bytes_in.saturating_add(bytes as u64);
    }

    /// One frame of `bytes` sent.
    pub fn frame_out(&mut self, bytes: usize) {
        self.frames_out = self.frames_out.saturating_add(1);
        self.bytes_out = self.bytes_out.saturating_add(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_saturate() {
        let mut p = PeerStats::default();
        p.frame_in(100);
        p.frame_out(40);
        p.errors.bump(ErrorKind::Auth);
        p.errors.bump(ErrorKind::Auth);
        p.errors.bump(ErrorKind::Kernel);
        assert_eq!((p.frames_in, p.bytes_in), (1, 100));
        assert_eq!((p.frames_out, p.bytes_out), (1, 40));
        assert_eq!((p.errors.auth, p.errors.kernel), (2, 1));
        p.bytes_in = u64::MAX;
        p.frame_in(1);
        assert_eq!(p.bytes_in, u64::MAX);
        p.errors.io = u32::MAX;
        p.errors.bump(ErrorKind::Io);
        assert_eq!(p.errors.io, u32::MAX);
    }
}
