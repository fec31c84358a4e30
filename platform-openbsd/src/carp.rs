//! Following one carp interface through the routing socket's messages,
//! by index, across its destruction and re-creation (fixes D-34: the
//! original kept the index it resolved at start-up forever).
//!
//! [`LinkTracker`] decides what each message means; [`CarpWatch`] reads
//! them from the routing socket (on OpenBSD) or any datagram socket (in
//! tests).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recv, MsgFlags};

use crate::ffi::RTM_MAXSIZE;
use crate::ifname::from_field;
use crate::route::{parse, Announce, RouteMsg};

/// What one routing message means for the tracked interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Nothing.
    Nothing,
    /// Its link state changed to this `LINK_STATE_*`.
    LinkState(u8),
    /// Its state must be read again: it arrived (a new index, whose state
    /// no message has told yet), it departed, or the kernel dropped
    /// messages (`RTM_DESYNC`).
    Recheck,
}

/// The tracked carp interface: its name, and its index while it exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkTracker {
    name: Option<String>,
    index: Option<u16>,
}

impl LinkTracker {
    /// Tracks `name` (none: the role is locked, nothing is tracked), whose
    /// index is `index` if it exists now.
    pub fn new(name: Option<&str>, index: Option<u16>) -> LinkTracker {
        LinkTracker {
            name: name.map(str::to_string),
            index: name.and(index),
        }
    }

    /// The tracked name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The tracked interface's index, if it exists.
    pub fn index(&self) -> Option<u16> {
        self.index
    }

    /// Feeds one message read from the routing socket.
    pub fn feed(&mut self, msg: &[u8]) -> Tracked {
        let Some(want) = self.name.as_deref() else {
            return Tracked::Nothing;
        };
        match parse(msg) {
            Some(RouteMsg::IfInfo { index, link_state }) if Some(index) == self.index => {
                Tracked::LinkState(link_state)
            }
            Some(RouteMsg::IfAnnounce {
                index,
                what: Announce::Arrival,
                name,
            }) if from_field(&name) == Some(want) => {
                log::info!("carp interface {want} arrived (index {index})");
                self.index = Some(index);
                Tracked::Recheck
            }
            Some(RouteMsg::IfAnnounce {
                index,
                what: Announce::Departure,
                ..
            }) if Some(index) == self.index => {
                log::warn!("carp interface {want} departed");
                self.index = None;
                Tracked::Recheck
            }
            Some(RouteMsg::Desync) => {
                log::info!("routing socket lost messages; reading {want} again");
                Tracked::Recheck
            }
            _ => Tracked::Nothing,
        }
    }
}

/// The index of interface `name` now, if it exists.
pub fn index_of(name: &str) -> Option<u16> {
    nix::net::if_::if_nametoindex(name)
        .ok()
        .and_then(|i| u16::try_from(i).ok())
        .filter(|&i| i != 0)
}

/// The carp interface's link-state changes, read from a routing socket
/// filtered to `RTM_IFINFO` and `RTM_IFANNOUNCE`.
#[derive(Debug)]
pub struct CarpWatch {
    fd: OwnedFd,
    tracker: LinkTracker,
    recheck: bool,
}

impl CarpWatch {
    /// Opens the routing socket and tracks `name` (none: the role is
    /// locked; the socket is still opened, because a reload may unlock it
    /// and the socket cannot be opened after pledge).
    #[cfg(target_os = "openbsd")]
    pub fn open(name: Option<&str>) -> io::Result<CarpWatch> {
        CarpWatch::from_fd(crate::sys::route_socket(crate::route::CARP_FILTER)?, name)
    }

    /// Reads routing messages from `fd` (made nonblocking) and tracks
    /// `name`, looking its index up now.
    pub fn from_fd(fd: OwnedFd, name: Option<&str>) -> io::Result<CarpWatch> {
        let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(CarpWatch {
            fd,
            tracker: LinkTracker::new(name, name.and_then(index_of)),
            recheck: false,
        })
    }

    /// Tracks another interface (a reloaded configuration), whose state
    /// must then be read.
    pub fn set_interface(&mut self, name: Option<&str>) {
        if name == self.tracker.name() {
            return;
        }
        self.tracker = LinkTracker::new(name, name.and_then(index_of));
        self.recheck = name.is_some();
    }

    /// What is tracked.
    pub fn tracker(&self) -> &LinkTracker {
        &self.tracker
    }

    /// Reads every message waiting; returns the tracked interface's link
    /// states in order.
    pub fn read_states(&mut self) -> io::Result<Vec<u8>> {
        let mut states = Vec::new();
        let mut buf = [0u8; RTM_MAXSIZE];
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                // A routing socket never sends an empty record: it ended.
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(states),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            match self.tracker.feed(&buf[..n]) {
                Tracked::Nothing => {}
                Tracked::LinkState(s) => states.push(s),
                Tracked::Recheck => self.recheck = true,
            }
        }
    }

    /// Whether the interface's state must be read again (see
    /// [`Tracked::Recheck`]); asking clears it.
    pub fn take_recheck(&mut self) -> bool {
        std::mem::take(&mut self.recheck)
    }
}

impl AsFd for CarpWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{IFAN_ARRIVAL, IFAN_DEPARTURE, LINK_STATE_DOWN, LINK_STATE_UP};
    use crate::route::testmsg::{announce, desync, ifinfo};

    #[test]
    fn follows_its_index_only() {
        let mut t = LinkTracker::new(Some("carp0"), Some(5));
        assert_eq!(t.feed(&ifinfo(5, LINK_STATE_UP)), Tracked::LinkState(4));
        assert_eq!(t.feed(&ifinfo(6, LINK_STATE_DOWN)), Tracked::Nothing);
        assert_eq!(t.feed(&ifinfo(5, LINK_STATE_DOWN)), Tracked::LinkState(2));
        assert_eq!(t.feed(&[1, 2, 3]), Tracked::Nothing);
    }

    #[test]
    fn a_recreated_interface_is_found_again() {
        let mut t = LinkTracker::new(Some("carp0"), Some(5));
        // Another interface departing changes nothing.
        assert_eq!(
            t.feed(&announce(6, "carp1", IFAN_DEPARTURE)),
            Tracked::Nothing
        );
        assert_eq!(
            t.feed(&announce(5, "carp0", IFAN_DEPARTURE)),
            Tracked::Recheck
        );
        assert_eq!(t.index(), None);
        // Messages for the old index no longer count.
        assert_eq!(t.feed(&ifinfo(5, LINK_STATE_UP)), Tracked::Nothing);
        // Another name arriving changes nothing.
        assert_eq!(
            t.feed(&announce(8, "carp00", IFAN_ARRIVAL)),
            Tracked::Nothing
        );
        assert_eq!(
            t.feed(&announce(9, "carp0", IFAN_ARRIVAL)),
            Tracked::Recheck
        );
        assert_eq!(t.index(), Some(9));
        assert_eq!(t.feed(&ifinfo(9, LINK_STATE_UP)), Tracked::LinkState(4));
    }

    #[test]
    fn an_interface_missing_at_start_is_found_when_it_arrives() {
        let mut t = LinkTracker::new(Some("carp0"), None);
        assert_eq!(t.feed(&ifinfo(1, LINK_STATE_UP)), Tracked::Nothing);
        assert_eq!(
            t.feed(&announce(3, "carp0", IFAN_ARRIVAL)),
            Tracked::Recheck
        );
        assert_eq!(t.feed(&ifinfo(3, LINK_STATE_UP)), Tracked::LinkState(4));
    }

    #[test]
    fn desync_asks_for_a_recheck() {
        let mut t = LinkTracker::new(Some("carp0"), Some(5));
        assert_eq!(t.feed(&desync()), Tracked::Recheck);
    }

    #[test]
    fn a_locked_role_tracks_nothing() {
        let mut t = LinkTracker::new(None, Some(5));
        assert_eq!(t.index(), None);
        assert_eq!(t.feed(&ifinfo(5, LINK_STATE_UP)), Tracked::Nothing);
        assert_eq!(
            t.feed(&announce(5, "carp0", IFAN_ARRIVAL)),
            Tracked::Nothing
        );
        assert_eq!(t.feed(&desync()), Tracked::Nothing);
    }

    mod watch {
        use super::*;
        use std::os::unix::net::UnixDatagram;

        fn watch(name: Option<&str>) -> (CarpWatch, UnixDatagram) {
            let (a, b) = UnixDatagram::pair().unwrap();
            (CarpWatch::from_fd(OwnedFd::from(a), name).unwrap(), b)
        }

        #[test]
        fn reads_the_states_of_its_interface() {
            // "lo" exists on the test host; its index is what is tracked.
            let lo = index_of("lo").expect("a loopback interface named lo");
            let (mut w, k) = watch(Some("lo"));
            assert_eq!(w.tracker().index(), Some(lo));
            k.send(&ifinfo(lo, LINK_STATE_UP)).unwrap();
            k.send(&ifinfo(lo + 100, LINK_STATE_DOWN)).unwrap();
            k.send(&ifinfo(lo, LINK_STATE_DOWN)).unwrap();
            assert_eq!(w.read_states().unwrap(), vec![4, 2]);
            assert!(!w.take_recheck());
            assert!(w.read_states().unwrap().is_empty());
        }

        #[test]
        fn recreation_asks_for_a_recheck() {
            let (mut w, k) = watch(Some("carp7"));
            assert_eq!(w.tracker().index(), None);
            k.send(&announce(40, "carp7", IFAN_ARRIVAL)).unwrap();
            k.send(&ifinfo(40, LINK_STATE_DOWN)).unwrap();
            assert_eq!(w.read_states().unwrap(), vec![2]);
            assert!(w.take_recheck());
            assert!(!w.take_recheck());
        }

        #[test]
        fn another_interface_after_a_reload() {
            let (mut w, k) = watch(Some("carp7"));
            w.set_interface(Some("carp7"));
            assert!(!w.take_recheck());
            w.set_interface(Some("lo"));
            assert!(w.take_recheck());
            let lo = w.tracker().index().unwrap();
            k.send(&ifinfo(lo, LINK_STATE_UP)).unwrap();
            assert_eq!(w.read_states().unwrap(), vec![4]);
            w.set_interface(None);
            assert!(!w.take_recheck());
            k.send(&ifinfo(lo, LINK_STATE_DOWN)).unwrap();
            assert!(w.read_states().unwrap().is_empty());
        }

        #[test]
        fn the_end_of_the_socket_is_an_error() {
            let (mut w, k) = watch(Some("lo"));
            k.send(&[]).unwrap();
            let e = w.read_states().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
    }
}
