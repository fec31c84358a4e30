//! Per-peer counters: traffic, errors by cause, sessions, snapshots, and
//! how far behind the peer is, for logs, the status tool and test oracles.

use core::time::Duration;

use crate::state::Position;
use crate::time::Instant;

/// Why a peer's input or connection was refused, in terms an operator can
/// act on (each cause points at a different fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A frame failed authentication: a bad MAC (v2), a bad hash (legacy,
    /// where a different shared key looks exactly like this), or one of
    /// our own frames reflected back.
    Auth,
    /// An authentic v2 frame out of sequence: replayed, or one before it
    /// went missing.
    Replay,
    /// v2 key confirmation failed: the peer holds another shared key (or
    /// ours is unusable for v2).
    WrongKey,
    /// A frame or message longer than the protocol or our kernel queue
    /// allows.
    Oversize,
    /// Bytes that do not parse: framing, length, padding, magic, a bad
    /// HELLO or control message.
    Malformed,
    /// A well-formed message that is not acceptable now: data from a peer
    /// that is not master, a frame out of handshake order, the other
    /// protocol, another PF_KEY architecture.
    Protocol,
    /// Our kernel refused a message this peer sent us.
    Kernel,
    /// The connection failed: no connect, a timeout, a silent peer, a
    /// reset, or a send that could not be queued.
    Io,
}

impl ErrorKind {
    /// A short name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Replay => "replay",
            ErrorKind::WrongKey => "wrong key",
            ErrorKind::Oversize => "oversize",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Kernel => "kernel",
            ErrorKind::Io => "io",
        }
    }
}

impl core::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Error counters by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorCounts {
    /// [`ErrorKind::Auth`].
    pub auth: u32,
    /// [`ErrorKind::Replay`].
    pub replay: u32,
    /// [`ErrorKind::WrongKey`].
    pub wrong_key: u32,
    /// [`ErrorKind::Oversize`].
    pub oversize: u32,
    /// [`ErrorKind::Malformed`].
    pub malformed: u32,
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
        let c = self.get_mut(kind);
        *c = c.saturating_add(1);
    }

    /// The count of one cause.
    pub fn get(&self, kind: ErrorKind) -> u32 {
        match kind {
            ErrorKind::Auth => self.auth,
            ErrorKind::Replay => self.replay,
            ErrorKind::WrongKey => self.wrong_key,
            ErrorKind::Oversize => self.oversize,
            ErrorKind::Malformed => self.malformed,
            ErrorKind::Protocol => self.protocol,
            ErrorKind::Kernel => self.kernel,
            ErrorKind::Io => self.io,
        }
    }

    /// All causes together (saturating).
    pub fn total(&self) -> u32 {
        [
            self.auth,
            self.replay,
            self.wrong_key,
            self.oversize,
            self.malformed,
            self.protocol,
            self.kernel,
            self.io,
        ]
        .iter()
        .fold(0u32, |a, &b| a.saturating_add(b))
    }

    fn get_mut(&mut self, kind: ErrorKind) -> &mut u32 {
        match kind {
            ErrorKind::Auth => &mut self.auth,
            ErrorKind::Replay => &mut self.replay,
            ErrorKind::WrongKey => &mut self.wrong_key,
            ErrorKind::Oversize => &mut self.oversize,
            ErrorKind::Malformed => &mut self.malformed,
            ErrorKind::Protocol => &mut self.protocol,
            ErrorKind::Kernel => &mut self.kernel,
            ErrorKind::Io => &mut self.io,
        }
    }
}

/// [`LastError::reason`] when the peer speaks v2 to a node configured
/// with `protocol legacy`.
pub const PEER_SPEAKS_V2: &str = "peer speaks the v2 protocol";

/// [`LastError::reason`] when the peer speaks the legacy protocol to a v2
/// node.
pub const PEER_SPEAKS_LEGACY: &str = "peer speaks the legacy protocol";

/// The most recent error with a peer, for "what went wrong last".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastError {
    /// Its cause.
    pub kind: ErrorKind,
    /// What exactly, in a few words.
    pub reason: &'static str,
    /// When.
    pub at: Instant,
}

/// Per-peer statistics (all counters saturate). Survives reconnects and
/// configuration reloads that keep the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerStats {
    /// Frames received (handshake frames and dropped ones included).
    pub frames_in: u64,
    /// Frames queued for it (handshake frames included).
    pub frames_out: u64,
    /// Bytes received on the wire.
    pub bytes_in: u64,
    /// Bytes written on the wire.
    pub bytes_out: u64,
    /// Errors by cause.
    pub errors: ErrorCounts,
    /// The most recent error.
    pub last_error: Option<LastError>,
    /// The peer's frames showed the other protocol ([`PEER_SPEAKS_V2`] or
    /// [`PEER_SPEAKS_LEGACY`]), and no good frame came since: the mismatch
    /// is logged once, then quietly while it lasts.
    pub other_protocol: Option<&'static str>,
    /// Sessions that came up (completed their handshake).
    pub sessions: u32,
    /// Sessions that came up after the first one.
    pub reconnects: u32,
    /// Full snapshots we sent to it.
    pub snapshots_sent: u32,
    /// Full snapshots we received from it (a resume from the ring is not
    /// one).
    pub snapshots_received: u32,
    /// How long the last full snapshot we sent it took, from its start to
    /// the end marker being queued.
    pub last_snapshot_sent: Option<Duration>,
    /// How long the last full snapshot from it took to arrive and be
    /// applied (sweep included). Legacy snapshots are not announced, so
    /// they count from the session's start.
    pub last_snapshot_received: Option<Duration>,
    /// When the snapshot we are sending it now started.
    pub sending_snapshot_since: Option<Instant>,
    /// When the snapshot we are receiving from it now started.
    pub receiving_snapshot_since: Option<Instant>,
    /// Repairs (the entries of the buckets that differed) we sent to it.
    pub repairs_sent: u32,
    /// Repairs from it that arrived and were swept.
    pub repairs_received: u32,
    /// How long the last repair we sent it took.
    pub last_repair_sent: Option<Duration>,
    /// How long the last repair from it took to arrive and be swept.
    pub last_repair_received: Option<Duration>,
    /// The transfer we are sending is a repair, not a full snapshot.
    pub sending_repair: bool,
    /// The transfer we are receiving is a repair, not a full snapshot.
    pub receiving_repair: bool,
    /// When the current session came up.
    pub up_since: Option<Instant>,
    /// When it last lost its last connection (`None`: never connected).
    pub down_since: Option<Instant>,
    /// When it was last known to be in sync.
    pub last_sync: Option<Instant>,
    /// We are its v2 slave: the last position of its stream we applied.
    pub applied: Position,
    /// We are its v2 slave: the last position we acknowledged to it.
    pub acked_to: Position,
    /// It is our slave (v2): the last position it acknowledged to us.
    pub acked_by: Position,
    /// It is our slave (v2): how many deltas it is behind our head (0 when
    /// unknown, e.g. a legacy slave, which never acknowledges).
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

    /// Counts an error and remembers it as the last one.
    pub fn record_error(&mut self, kind: ErrorKind, reason: &'static str, now: Instant) {
        self.errors.bump(kind);
        self.last_error = Some(LastError {
            kind,
            reason,
            at: now,
        });
    }

    /// A session came up at `now`. `settling`: it replaced a session of
    /// the other direction (a simultaneous connect settling on one), which
    /// is not a reconnect.
    pub fn session_up(&mut self, now: Instant, settling: bool) {
        if self.sessions > 0 && !settling {
            self.reconnects = self.reconnects.saturating_add(1);
        }
        self.sessions = self.sessions.saturating_add(1);
        self.up_since = Some(now);
    }

    /// We started sending it a full snapshot, or a repair (`repair`: the
    /// entries of some buckets).
    pub fn snapshot_send_started(&mut self, now: Instant, repair: bool) {
        if repair {
            self.repairs_sent = self.repairs_sent.saturating_add(1);
        } else {
            self.snapshots_sent = self.snapshots_sent.saturating_add(1);
        }
        self.sending_repair = repair;
        self.sending_snapshot_since = Some(now);
    }

    /// The snapshot or repair we were sending is complete (or abandoned:
    /// `done` false, and then the last duration stays what it was).
    pub fn snapshot_send_ended(&mut self, now: Instant, done: bool) {
        if let (Some(t), true) = (self.sending_snapshot_since.take(), done) {
            let took = Some(now.since(t));
            if self.sending_repair {
                self.last_repair_sent = took;
            } else {
                self.last_snapshot_sent = took;
            }
        }
    }

    /// A full snapshot, or a repair (`repair`), from it started arriving.
    pub fn snapshot_receive_started(&mut self, now: Instant, repair: bool) {
        self.receiving_repair = repair;
        self.receiving_snapshot_since = Some(now);
    }

    /// The snapshot or repair we were receiving is complete (or
    /// abandoned: `done` false). A completed full snapshot is counted even
    /// if its start was not seen.
    pub fn snapshot_receive_ended(&mut self, now: Instant, done: bool) {
        let since = self.receiving_snapshot_since.take();
        if !done {
            return;
        }
        let took = since.map(|t| now.since(t));
        if since.is_some() && self.receiving_repair {
            self.repairs_received = self.repairs_received.saturating_add(1);
            self.last_repair_received = took;
        } else {
            self.snapshots_received = self.snapshots_received.saturating_add(1);
            self.last_snapshot_received = took;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

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
        assert_eq!(p.errors.total(), 3);
        p.bytes_in = u64::MAX;
        p.frame_in(1);
        assert_eq!(p.bytes_in, u64::MAX);
        p.errors.io = u32::MAX;
        p.errors.bump(ErrorKind::Io);
        assert_eq!(p.errors.io, u32::MAX);
        assert_eq!(p.errors.total(), u32::MAX);
    }

    #[test]
    fn each_cause_has_its_own_counter() {
        let all = [
            ErrorKind::Auth,
            ErrorKind::Replay,
            ErrorKind::WrongKey,
            ErrorKind::Oversize,
            ErrorKind::Malformed,
            ErrorKind::Protocol,
            ErrorKind::Kernel,
            ErrorKind::Io,
        ];
        for (i, k) in all.iter().enumerate() {
            let mut e = ErrorCounts::default();
            for _ in 0..=i {
                e.bump(*k);
            }
            for other in all.iter().filter(|o| *o != k) {
                assert_eq!(e.get(*other), 0, "{k} leaked into {other}");
            }
            assert_eq!(e.get(*k), i as u32 + 1);
            assert_eq!(e.total(), i as u32 + 1);
        }
    }

    #[test]
    fn last_error_is_the_latest() {
        let mut p = PeerStats::default();
        p.record_error(ErrorKind::Malformed, "bad control message", t(5));
        p.record_error(ErrorKind::WrongKey, "key confirmation failed", t(9));
        assert_eq!(p.errors.malformed, 1);
        assert_eq!(p.errors.wrong_key, 1);
        assert_eq!(
            p.last_error,
            Some(LastError {
                kind: ErrorKind::WrongKey,
                reason: "key confirmation failed",
                at: t(9)
            })
        );
    }

    #[test]
    fn reconnects_count_sessions_after_the_first() {
        let mut p = PeerStats::default();
        p.session_up(t(1), false);
        assert_eq!((p.sessions, p.reconnects), (1, 0));
        p.session_up(t(2), true);
        assert_eq!((p.sessions, p.reconnects), (2, 0), "settling a crossing");
        p.session_up(t(7), false);
        p.session_up(t(9), false);
        assert_eq!((p.sessions, p.reconnects), (4, 2));
        assert_eq!(p.up_since, Some(t(9)));
    }

    #[test]
    fn snapshot_durations_from_start_to_end() {
        let mut p = PeerStats::default();
        p.snapshot_send_started(t(1000), false);
        assert_eq!(p.sending_snapshot_since, Some(t(1000)));
        p.snapshot_send_ended(t(1250), true);
        assert_eq!(p.last_snapshot_sent, Some(Duration::from_millis(250)));
        assert_eq!(p.sending_snapshot_since, None);
        // An abandoned one keeps the last duration.
        p.snapshot_send_started(t(2000), false);
        p.snapshot_send_ended(t(2100), false);
        assert_eq!(p.last_snapshot_sent, Some(Duration::from_millis(250)));
        assert_eq!(p.snapshots_sent, 2);

        p.snapshot_receive_started(t(3000), false);
        p.snapshot_receive_ended(t(3400), true);
        assert_eq!(p.snapshots_received, 1);
        assert_eq!(p.last_snapshot_received, Some(Duration::from_millis(400)));
        p.snapshot_receive_started(t(4000), false);
        p.snapshot_receive_ended(t(4100), false);
        assert_eq!(p.snapshots_received, 1, "an abandoned one is not counted");
        // Completed without a seen start: counted, duration unknown.
        p.snapshot_receive_ended(t(5000), true);
        assert_eq!(p.snapshots_received, 2);
        assert_eq!(p.last_snapshot_received, None);
    }

    #[test]
    fn repairs_are_counted_apart_from_snapshots() {
        let mut p = PeerStats::default();
        p.snapshot_send_started(t(1000), true);
        p.snapshot_send_ended(t(1030), true);
        assert_eq!((p.repairs_sent, p.snapshots_sent), (1, 0));
        assert_eq!(p.last_repair_sent, Some(Duration::from_millis(30)));
        assert_eq!(p.last_snapshot_sent, None);
        // A full snapshot after it is a snapshot again.
        p.snapshot_send_started(t(2000), false);
        p.snapshot_send_ended(t(2500), true);
        assert_eq!((p.repairs_sent, p.snapshots_sent), (1, 1));
        assert_eq!(p.last_repair_sent, Some(Duration::from_millis(30)));
        assert_eq!(p.last_snapshot_sent, Some(Duration::from_millis(500)));

        p.snapshot_receive_started(t(3000), true);
        p.snapshot_receive_ended(t(3020), true);
        assert_eq!((p.repairs_received, p.snapshots_received), (1, 0));
        assert_eq!(p.last_repair_received, Some(Duration::from_millis(20)));
        p.snapshot_receive_started(t(4000), true);
        p.snapshot_receive_ended(t(4010), false);
        assert_eq!(p.repairs_received, 1, "an abandoned repair is not counted");
        assert_eq!(p.last_repair_received, Some(Duration::from_millis(20)));
    }
}
