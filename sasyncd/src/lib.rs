//! The `sasyncd` daemon: start-up ([`daemon`]), the privileged process
//! ([`privproc`]) and the network process ([`net`]) joined by a typed
//! channel ([`privsep`]), the kernel side each needs ([`kernel`]: on
//! OpenBSD the real one, [`openbsd`]; in development mode a devhost plays
//! it, [`dev`]; on Linux with keepalived, `linux`), the control socket
//! ([`control`]), reading the configuration file ([`conffile`]), logging
//! ([`logger`]), process plumbing ([`sys`]) and buffers for key material
//! ([`secret`]). The binary (`main.rs`) parses the command line.

pub mod conffile;
pub mod control;
pub mod daemon;
pub mod dev;
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod logger;
pub mod net;
pub mod openbsd;
pub mod privproc;
pub mod privsep;
pub mod secret;
pub mod sys;

#[cfg(test)]
mod testutil;
