//! Development mode: a devhost (`sasyncd-devhost`, from `sasyncd-sim`;
//! its protocol and our client side are `sasyncd-devhost-proto`)
//! plays the gateway's kernel, carp interface and IKE daemon, so the same
//! daemon (loop, privilege separation, network code) runs on any host.
//! The PF_KEY socket speaks real PF_KEY bytes over a unix stream; dumps,
//! demotion, IKE control and the link state go through the devhost's host
//! role. What it does not emulate: the routing socket's and the ioctls'
//! byte formats, carp elections (a person or a test sets the state), the
//! IKE daemons' own control protocols, packet forwarding.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use sasyncd_core::node::Table;
use sasyncd_core::platform::PfkeyWrite;
use sasyncd_devhost_proto::{self as devhost, CarpWatch, HostClient, PfkeyFramer};

use crate::kernel::{Host, LinkWatch, PfkeySocket};
use crate::secret::SecretBytes;

/// Most bytes of PF_KEY messages queued for the devhost: beyond this the
/// socket "would block" and the node keeps them in its own queue.
const PFKEY_TX_MAX: usize = 64 * 1024;

/// The PF_KEY socket, as a devhost serves it.
#[derive(Debug)]
pub struct DevPfkey {
    stream: UnixStream,
    framer: PfkeyFramer,
    tx: Vec<u8>,
}

impl DevPfkey {
    /// Opens the PF_KEY socket of process `pid` on the devhost at `path`.
    pub fn open(path: &Path, pid: u32) -> io::Result<DevPfkey> {
        DevPfkey::from_stream(devhost::connect_pfkey(path, pid)?)
    }
}

impl DevPfkey {
    /// The PF_KEY socket over a stream already connected and past the
    /// devhost's hello (tests drive one over a socket pair).
    pub fn from_stream(stream: UnixStream) -> io::Result<DevPfkey> {
        stream.set_nonblocking(true)?;
        Ok(DevPfkey {
            stream,
            framer: PfkeyFramer::default(),
            tx: Vec::new(),
        })
    }
}

impl AsFd for DevPfkey {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl PfkeySocket for DevPfkey {
    fn read_messages(&mut self, out: &mut Vec<SecretBytes>) -> io::Result<()> {
        loop {
            match self.framer.read_from(&mut self.stream) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the devhost closed the PF_KEY socket",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            while let Some(m) = self.framer.next_message() {
                match m {
                    Ok(m) => out.push(SecretBytes::new(m)),
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
            }
        }
    }

    fn write_message(&mut self, msg: &[u8]) -> PfkeyWrite {
        if !self.tx.is_empty() && self.tx.len() + msg.len() > PFKEY_TX_MAX {
            return PfkeyWrite::WouldBlock;
        }
        // Grown by copying and wiping the old buffer: a message may hold
        // SA keys.
        crate::secret::reserve_wiping(&mut self.tx, msg.len());
        self.tx.extend_from_slice(msg);
        PfkeyWrite::Written
    }

    fn wants_write(&self) -> bool {
        !self.tx.is_empty()
    }

    fn flush(&mut self) -> io::Result<()> {
        while !self.tx.is_empty() {
            match self.stream.write(&self.tx) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    // What went out may hold key material.
                    self.tx[..n].fill(0);
                    self.tx.drain(..n);
                    // The move left copies of the rest past the end.
                    zeroize::Zeroize::zeroize(self.tx.spare_capacity_mut());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The carp link state, as a devhost pushes it.
#[derive(Debug)]
pub struct DevLinkWatch(CarpWatch);

impl DevLinkWatch {
    /// Watches the carp state of the devhost at `path`; its first report
    /// is the current state.
    pub fn open(path: &Path) -> io::Result<DevLinkWatch> {
        devhost::connect_carp(path).map(DevLinkWatch)
    }
}

impl AsFd for DevLinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl LinkWatch for DevLinkWatch {
    fn read_states(&mut self) -> io::Result<Vec<u8>> {
        self.0.read_states()
    }
}

/// The privileged process's side of a devhost.
#[derive(Debug)]
pub struct DevHost {
    path: PathBuf,
    client: HostClient,
}

impl DevHost {
    /// Connects to the devhost at `path`.
    pub fn open(path: &Path) -> io::Result<DevHost> {
        Ok(DevHost {
            path: path.to_path_buf(),
            client: HostClient::connect(path)?,
        })
    }

    /// The devhost's socket.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, msg)
}

impl Host for DevHost {
    fn dump(&mut self, table: Table) -> io::Result<SecretBytes> {
        self.client.dump(table).map(SecretBytes::new)
    }

    fn demote_counter(&mut self) -> io::Result<i32> {
        self.client.get_demote()
    }

    fn demote(&mut self, delta: i32) -> io::Result<()> {
        self.client.demote(delta)?.map(|_| ()).map_err(refused)
    }

    fn ike(&mut self, active: bool) -> io::Result<()> {
        if self.client.ike(active)? {
            Ok(())
        } else {
            Err(refused("the IKE daemon refused the request".into()))
        }
    }

    fn link_state(&mut self) -> io::Result<u8> {
        self.client.link_state()
    }

    fn pfsync_up(&mut self) -> Option<bool> {
        self.client.pfsync_up().ok()
    }
}
