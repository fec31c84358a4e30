//! The building blocks of the `sasyncd` daemon: reading the configuration
//! file ([`conffile`]), logging ([`logger`]), process plumbing ([`sys`]),
//! the channel between the privileged and the network process
//! ([`privsep`]) and buffers for key material ([`secret`]). The binary
//! (`main.rs`) puts them together.

pub mod conffile;
pub mod logger;
pub mod privsep;
pub mod secret;
pub mod sys;

#[cfg(test)]
mod testutil;
