//! The daemon's kernel traits on a real OpenBSD gateway, over
//! `sasyncd-openbsd`: the network process's PF_KEY socket ([`ObsdPfkey`])
//! and carp watch on a routing socket ([`ObsdLinkWatch`]), the privileged
//! process's `ObsdHost` (sysctl dumps, carp ioctls, IKE control, the
//! pfsync check), and what confines each process once it runs
//! ([`confine_net`], [`confine_priv`]).
//!
//! The socket glue is portable (it is tested over socket pairs); opening
//! the sockets and all of `ObsdHost` exist on OpenBSD only.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use sasyncd_core::platform::PfkeyWrite;
use sasyncd_openbsd::carp::CarpWatch;
use sasyncd_openbsd::confine::Unveil;
use sasyncd_openbsd::pfkey::PfkeySock;

use crate::kernel::{LinkWatch, PfkeySocket};

/// The PF_KEY socket. Writes go to the kernel at once: nothing is queued
/// here (the node keeps its own queue), so there is nothing to flush.
#[derive(Debug)]
pub struct ObsdPfkey(pub PfkeySock);

impl ObsdPfkey {
    /// Opens the PF_KEY socket (root, before pledge).
    #[cfg(target_os = "openbsd")]
    pub fn open() -> io::Result<ObsdPfkey> {
        PfkeySock::open().map(ObsdPfkey)
    }
}

impl AsFd for ObsdPfkey {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PfkeySocket for ObsdPfkey {
    fn read_messages(&mut self, out: &mut Vec<crate::secret::SecretBytes>) -> io::Result<()> {
        let mut got = Vec::new();
        let r = self.0.read_messages(&mut got);
        out.extend(got.into_iter().map(crate::secret::SecretBytes::new));
        r
    }

    fn write_message(&mut self, msg: &[u8]) -> PfkeyWrite {
        self.0.write(msg)
    }

    fn wants_write(&self) -> bool {
        self.0.wants_write()
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The carp interface's link state, from a routing socket.
#[derive(Debug)]
pub struct ObsdLinkWatch(pub CarpWatch);

impl ObsdLinkWatch {
    /// Opens the routing socket, filtered to interface messages (root,
    /// before pledge), tracking `interface`.
    #[cfg(target_os = "openbsd")]
    pub fn open(interface: Option<&str>) -> io::Result<ObsdLinkWatch> {
        CarpWatch::open(interface).map(ObsdLinkWatch)
    }
}

impl AsFd for ObsdLinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl LinkWatch for ObsdLinkWatch {
    fn read_states(&mut self) -> io::Result<Vec<u8>> {
        self.0.read_states()
    }

    fn set_interface(&mut self, name: Option<&str>) {
        self.0.set_interface(name);
    }

    fn take_recheck(&mut self) -> bool {
        self.0.take_recheck()
    }
}

/// Pledges the network process once its sockets are open and its
/// privileges dropped (see `sasyncd_openbsd::confine`). Nothing elsewhere.
pub fn confine_net() -> Result<(), String> {
    #[cfg(target_os = "openbsd")]
    {
        sasyncd_openbsd::confine::pledge_net().map_err(|e| e.to_string())?;
        log::debug!("pledged \"{}\"", sasyncd_openbsd::confine::NET_PROMISES);
    }
    Ok(())
}

/// Unveils only `paths` in the privileged process and locks unveil.
/// Nothing elsewhere.
pub fn confine_priv(paths: &[Unveil]) -> Result<(), String> {
    #[cfg(target_os = "openbsd")]
    sasyncd_openbsd::confine::unveil_priv(paths).map_err(|e| e.to_string())?;
    #[cfg(not(target_os = "openbsd"))]
    let _ = paths;
    Ok(())
}

#[cfg(target_os = "openbsd")]
pub use host::ObsdHost;

#[cfg(target_os = "openbsd")]
mod host {
    use std::io;

    use sasyncd_core::config::Config;
    use sasyncd_core::node::Table;
    use sasyncd_openbsd::ifioctl::IfSock;
    use sasyncd_openbsd::ike::{IkeMode, IkeTargets};
    use sasyncd_openbsd::{dump, pfsync, sysctl};

    use crate::kernel::Host;
    use crate::secret::SecretBytes;

    /// What only the privileged process may do, on the running kernel.
    #[derive(Debug)]
    pub struct ObsdHost {
        ifs: IfSock,
        /// The carp interface; `None` when the role is locked.
        interface: Option<String>,
        /// The demotion group, fixed at start-up.
        group: String,
        ike: IkeTargets,
    }

    impl ObsdHost {
        /// The host for `cfg`: its carp interface, demotion group and IKE
        /// control.
        pub fn open(cfg: &Config) -> io::Result<ObsdHost> {
            if cfg.address.is_some() || cfg.demote_file.is_some() {
                log::warn!("\"interface ... address\" and \"demote file\" are for keepalived on Linux: ignored, carp is used");
            }
            Ok(ObsdHost {
                ifs: IfSock::open()?,
                interface: cfg.interface.as_ref().map(|i| i.to_string()),
                group: cfg.group.to_string(),
                ike: IkeTargets::new(cfg.control),
            })
        }

        /// Where the IKE daemons are told (to unveil them).
        pub fn ike_targets(&self) -> &IkeTargets {
            &self.ike
        }

        /// The carp interface, if the role is not locked.
        pub fn interface(&self) -> Option<&str> {
            self.interface.as_deref()
        }

        /// The demotion group.
        pub fn group(&self) -> &str {
            &self.group
        }
    }

    impl Host for ObsdHost {
        fn dump(&mut self, table: Table) -> io::Result<SecretBytes> {
            let mut buf = sysctl::dump(table).map_err(io::Error::other)?;
            let check = dump::check(&buf);
            if let Some(e) = check.error {
                log::warn!(
                    "kernel dump cut after {} records ({} of {} bytes): {e}",
                    check.records,
                    check.len,
                    buf.len()
                );
            }
            buf.truncate(check.len);
            // Moves the allocation (no copy); SecretBytes wipes it.
            Ok(SecretBytes::new(std::mem::take(&mut *buf)))
        }

        fn demote_counter(&mut self) -> io::Result<i32> {
            self.ifs
                .demote_counter(&self.group)
                .map_err(|e| io::Error::other(format!("group {}: {e}", self.group)))
        }

        fn demote(&mut self, delta: i32) -> io::Result<()> {
            self.ifs
                .demote(&self.group, delta)
                .map_err(|e| io::Error::other(format!("group {}: {e}", self.group)))
        }

        fn ike(&mut self, active: bool) -> io::Result<()> {
            self.ike
                // iked's imsg carries the sender's pid: ours now, not the
                // one of the process that opened this before forking.
                .tell(IkeMode::from_active(active), std::process::id())
                .map_err(io::Error::other)
        }

        fn link_state(&mut self) -> io::Result<u8> {
            let Some(name) = self.interface.as_deref() else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no carp interface is tracked (mode master|slave)",
                ));
            };
            self.ifs
                .link_state(name)
                .map_err(|e| io::Error::other(format!("{name}: {e}")))
        }

        fn reconfigure(&mut self, cfg: &Config) {
            self.interface = cfg.interface.as_ref().map(|i| i.to_string());
            self.ike.control = cfg.control;
            if cfg.group.as_str() != self.group {
                log::warn!(
                    "carp demotion group stays {} until restart (configured: {})",
                    self.group,
                    cfg.group
                );
            }
        }

        fn pfsync_up(&mut self) -> Option<bool> {
            match pfsync::pfsync_up() {
                Ok(up) => Some(up),
                Err(e) => {
                    log::warn!("cannot list interfaces to look for pfsync: {e}");
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasyncd_core::pfkey::build_flush;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn pfkey_glue_reads_and_writes_through_the_trait() {
        let (a, k) = UnixDatagram::pair().unwrap();
        let mut s: Box<dyn PfkeySocket> =
            Box::new(ObsdPfkey(PfkeySock::from_fd(OwnedFd::from(a)).unwrap()));
        let mut m = [0u8; 16];
        build_flush(0, 1, 99, &mut m).unwrap();
        assert_eq!(s.write_message(&m), PfkeyWrite::Written);
        assert!(!s.wants_write());
        s.flush().unwrap();
        let mut b = [0u8; 32];
        assert_eq!(k.recv(&mut b).unwrap(), 16);
        k.send(&m).unwrap();
        let mut out = Vec::new();
        s.read_messages(&mut out).unwrap();
        assert_eq!(out, vec![crate::secret::SecretBytes::from_slice(&m)]);
    }

    #[test]
    fn link_glue_follows_its_interface_through_the_trait() {
        let (a, k) = UnixDatagram::pair().unwrap();
        let mut w: Box<dyn LinkWatch> = Box::new(ObsdLinkWatch(
            CarpWatch::from_fd(OwnedFd::from(a), Some("lo")).unwrap(),
        ));
        let lo = sasyncd_openbsd::carp::index_of("lo").unwrap();
        let mut msg = vec![0u8; 168];
        msg[0..2].copy_from_slice(&168u16.to_ne_bytes());
        msg[2] = 5;
        msg[3] = 0x0e;
        msg[6..8].copy_from_slice(&lo.to_ne_bytes());
        msg[27] = 4;
        k.send(&msg).unwrap();
        assert_eq!(w.read_states().unwrap(), vec![4]);
        assert!(!w.take_recheck());
        w.set_interface(Some("carp9"));
        assert!(w.take_recheck());
        k.send(&msg).unwrap();
        assert!(w.read_states().unwrap().is_empty());
    }

    #[test]
    fn confinement_is_a_no_op_elsewhere() {
        if !cfg!(target_os = "openbsd") {
            assert_eq!(confine_net(), Ok(()));
            assert_eq!(confine_priv(&[]), Ok(()));
        }
    }
}
