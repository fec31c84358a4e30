//! One node's kernel as a Linux sasyncd sees it through XFRM netlink: the
//! states and policies with Linux's uniqueness rules, the replies and
//! refusals Linux gives, full dumps, and the events its watch group
//! receives. Beside [`crate::kernel`], the OpenBSD PF_KEY kernel.
//!
//! The rules are Linux 6.1's (the Debian 12 kernel the guest tests boot),
//! read from `net/xfrm/xfrm_user.c`, `net/xfrm/xfrm_state.c` and
//! `net/xfrm/xfrm_policy.c` of a 6.1 tree
//! (CodeLinaro-mirror/qsdk_oss_kernel_linux-ipq-6.1, xfrm_user.c at
//! 0641d469, xfrm_state.c at 272927ac) and, for the algorithm table,
//! `net/xfrm/xfrm_algo.c`. Each rule names the function it comes from.
//!
//! Simulated:
//! * **requests** ([`XfrmKernel::handle`], `xfrm_user_rcv_msg`): only
//!   `NLM_F_REQUEST` messages are carried out; a type past
//!   `XFRM_MSG_MAX` is `EINVAL`; a payload shorter than the type's fixed
//!   struct (`xfrm_msg_min`) is `EINVAL`; `GETSA`/`GETPOLICY` with
//!   `NLM_F_DUMP` dump before any payload check;
//! * **replies** (`netlink_ack`, `netlink_dump`): an `NLMSG_ERROR` for
//!   every refusal (the request echoed whole after the errno) and for
//!   every success asked with `NLM_F_ACK` (header only, `NLM_F_CAPPED`);
//!   dump records `NLM_F_MULTI` then `NLMSG_DONE`; replies carry the
//!   requesting socket's port, events the port the request's *header*
//!   names (`c.portid = nlh->nlmsg_pid`): a writer that puts its own
//!   port there is recognised by watchers, one that does not is not;
//! * **states** ([`state`]): `verify_newsa_info`, `xfrm_state_construct`,
//!   `xfrm_state_add` (`EEXIST`), `xfrm_state_update` (`ESRCH`; what an
//!   update may change), `xfrm_del_sa` (`ESRCH`), `xfrm_get_sa`,
//!   `xfrm_flush_sa` (no event when nothing was flushed), `xfrm_new_ae`
//!   and `xfrm_get_ae`; what `XFRMA_LTIME_VAL` and `XFRMA_REPLAY_VAL` do
//!   on add (`xfrm_update_ae_params`); the record layout and attribute
//!   order of `copy_to_user_state_extra`; kernel expiries
//!   ([`XfrmKernel::expire`]) and outbound sequence numbers
//!   ([`XfrmKernel::send`]);
//! * **policies** ([`policy`]): `verify_newpolicy_info`, `validate_tmpl`,
//!   `xfrm_policy_insert` (`EEXIST` for `NEWPOLICY` of an existing
//!   selector, direction, mark and interface id; `UPDPOLICY` replaces,
//!   keeping the index), `xfrm_gen_index`, `xfrm_get_policy` (delete or
//!   get, `ENOENT`), `xfrm_flush_policy`, and `dump_one_policy`'s layout;
//! * **events** (`xfrm_notify_sa`, `xfrm_notify_policy`, the flush and
//!   expire notifications) queued per multicast group
//!   ([`XfrmKernel::take_events`]).
//!
//! * **acquire states** (`xfrm_alloc_userspi`, `xfrm_find_acq`,
//!   `xfrm_alloc_spi`, `xfrm_state_update`, `xfrm_state_add`): `ALLOCSPI`
//!   reserves an SPI on a larval state it creates, answered to the asking
//!   socket only (no group hears of it); a dump walks it like any state
//!   (`xfrm_state_walk` skips only dead ones), a record without
//!   algorithms; `NEWSA` of its SPI is `EEXIST`; `UPDSA` of its SPI
//!   replaces it whole and is broadcast as an `UPDSA` of the new state —
//!   so a watcher sees a state first as an update. (Read in a 5.x
//!   `xfrm_state.c` whose functions 6.1 keeps but for the timer API.)
//!   Acquire states holding an SPI expire after `acq_expires` (30 s)
//!   with a hard `EXPIRE`, when the caller drives the clock
//!   ([`XfrmKernel::expire_acquires`]).
//!
//! Not simulated (the node never sends them; they answer `ENOSYS` here,
//! which Linux would not): `ACQUIRE`, user `EXPIRE` and
//! `POLEXPIRE`, `MIGRATE`, the `*INFO` and `*DEFAULT` messages; security
//! contexts (dropped, as a kernel without an XFRM security module does);
//! sub policies (a policy type other than main is `EINVAL` here; Debian's
//! kernel, built with `CONFIG_XFRM_SUB_POLICY`, takes them); hardware
//! offload; lifetimes running out by themselves (use
//! [`XfrmKernel::expire`]; note that Linux takes a time limit of
//! `u64::MAX` as already past and expires the entry within a second, as
//! the guest showed: 0 is "none"); socket buffers (the caller bounds what a
//! watcher queues). A short attribute is `EINVAL` here; `lib/nlattr.c`
//! (not modelled) may answer `ERANGE`.

pub mod policy;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use sasyncd_core::dialect::Dialect;
use sasyncd_core::xfrm::nl::{
    messages, Builder, Msg, HDR_LEN, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI,
    NLM_F_REQUEST,
};
use sasyncd_core::xfrm::{group, msg, PolicyKey, SaKey, Xfrm};

use policy::Policy;
use state::State;

/// Linux errno values (the simulator's [`crate::errno`] holds OpenBSD's).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory (policies not found).
    pub const ENOENT: i32 = 2;
    /// No such process (states not found).
    pub const ESRCH: i32 = 3;
    /// Entry exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Function not implemented (unknown algorithm; unmodelled message).
    pub const ENOSYS: i32 = 38;
    /// Value too large (a 32-bit sequence number would wrap).
    pub const EOVERFLOW: i32 = 75;
}

/// `NLM_F_CAPPED`: an acknowledgement carries the request's header only.
const NLM_F_CAPPED: u16 = 0x100;
/// `XFRM_MSG_ALLOCSPI`: reserve an SPI (the node never sends it; keying
/// daemons do).
pub const ALLOCSPI: u16 = 0x16;
/// `XFRM_MSG_MAX` in 6.1 (`XFRM_MSG_GETDEFAULT`).
const XFRM_MSG_MAX: u16 = 0x27;

/// One message to a multicast group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The group's bind(2) bit ([`group`]).
    pub group: u32,
    /// The message.
    pub msg: Vec<u8>,
}

/// The content of a kernel in the dialect's canonical form
/// ([`Xfrm::digest_input`]), keyed by identity: what table-equality
/// oracles compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canonical {
    /// States.
    pub states: BTreeMap<SaKey, Vec<u8>>,
    /// Policies.
    pub policies: BTreeMap<PolicyKey, Vec<u8>>,
}

/// One node's simulated XFRM kernel.
#[derive(Debug, Clone, Default)]
pub struct XfrmKernel {
    /// Newest first: `__xfrm_state_insert` adds at the head of the list a
    /// dump walks.
    states: Vec<State>,
    /// Newest first, as `__xfrm_policy_link` adds them.
    policies: Vec<Policy>,
    /// `xfrm_gen_index`'s generator (steps of 8; the low bits are the
    /// direction).
    idx_generator: u32,
    events: Vec<Event>,
    refused: BTreeMap<i32, u64>,
    /// A socket listens on the replay-event group (`xfrm_aevent_is_on`).
    aevents_on: bool,
    /// Draws of `xfrm_alloc_spi`'s SPI (a counter for Linux's random).
    spi_draws: u32,
}

/// What a request did: the messages the kernel unicasts back.
type Replies = Vec<Vec<u8>>;

impl XfrmKernel {
    /// An empty kernel.
    pub fn new() -> XfrmKernel {
        XfrmKernel::default()
    }

    /// Carries out the requests of one datagram `dgram` sent by the socket
    /// bound to `port`, at `now` (seconds: add times), and returns the
    /// kernel's unicast replies in order.
    pub fn handle(&mut self, dgram: &[u8], port: u32, now: u64) -> Replies {
        let mut out = Vec::new();
        for m in messages(dgram) {
            // netlink_rcv_skb drops what cannot be framed.
            let Ok(m) = m else { break };
            self.handle_msg(&m, port, now, &mut out);
        }
        out
    }

    fn handle_msg(&mut self, m: &Msg<'_>, port: u32, now: u64, out: &mut Replies) {
        // netlink_rcv_skb: only requests are handled; the control types
        // below 0x10 are acknowledged without effect.
        if m.flags() & NLM_F_REQUEST == 0 {
            return;
        }
        let res = if m.kind() < msg::NEWSA {
            Ok(())
        } else if m.kind() > XFRM_MSG_MAX {
            Err(errno::EINVAL)
        } else if matches!(m.kind(), msg::GETSA | msg::GETPOLICY) && m.flags() & NLM_F_DUMP != 0 {
            self.dump(m, port, out);
            return;
        } else {
            self.dispatch(m, port, now, out)
        };
        match res {
            Err(e) => {
                *self.refused.entry(e).or_default() += 1;
                out.push(ack(m, port, e));
            }
            Ok(()) if m.flags() & NLM_F_ACK != 0 => out.push(ack(m, port, 0)),
            Ok(()) => {}
        }
    }

    fn dispatch(&mut self, m: &Msg<'_>, port: u32, now: u64, out: &mut Replies) -> Result<(), i32> {
        match m.kind() {
            msg::NEWSA | msg::UPDSA => self.add_sa(m, now),
            msg::DELSA => self.del_sa(m),
            msg::GETSA => {
                let s = self.find_sa(m)?;
                out.push(s.record(msg::NEWSA, m.seq(), port, 0));
                Ok(())
            }
            msg::FLUSHSA => self.flush_sa(m),
            ALLOCSPI => {
                let r = self.alloc_spi(m, port, now)?;
                out.push(r);
                Ok(())
            }
            msg::NEWAE => self.new_ae(m),
            msg::GETAE => {
                let r = self.get_ae(m)?;
                out.push(r);
                Ok(())
            }
            msg::NEWPOLICY | msg::UPDPOLICY => self.add_policy(m, now),
            msg::DELPOLICY | msg::GETPOLICY => {
                if let Some(r) = self.get_policy(m, port)? {
                    out.push(r);
                }
                Ok(())
            }
            msg::FLUSHPOLICY => self.flush_policy(m),
            _ => Err(errno::ENOSYS),
        }
    }

    /// `xfrm_dump_sa` / `xfrm_dump_policy`: every entry, newest first,
    /// then `NLMSG_DONE`.
    fn dump(&self, m: &Msg<'_>, port: u32, out: &mut Replies) {
        if m.kind() == msg::GETSA {
            for s in &self.states {
                out.push(s.record(msg::NEWSA, m.seq(), port, NLM_F_MULTI));
            }
        } else {
            for p in &self.policies {
                out.push(p.record(msg::NEWPOLICY, m.seq(), port, NLM_F_MULTI));
            }
        }
        let mut done = Builder::new(NLMSG_DONE, NLM_F_MULTI)
            .raw(&0i32.to_ne_bytes())
            .finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut done, m.seq(), port);
        out.push(done);
    }

    fn notify(&mut self, group: u32, msg: Vec<u8>) {
        self.events.push(Event { group, msg });
    }

    /// Whether a socket listens on `XFRMNLGRP_AEVENTS`: without one the
    /// kernel reports no replay events and keeps no record of reporting.
    pub fn set_aevents_listened(&mut self, on: bool) {
        self.aevents_on = on;
    }

    /// The events queued for the multicast groups since the last call, in
    /// order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Every state as a `GETSA` dump record (newest first; header port
    /// and sequence 0).
    pub fn dump_states(&self) -> Vec<Vec<u8>> {
        self.states
            .iter()
            .map(|s| s.record(msg::NEWSA, 0, 0, NLM_F_MULTI))
            .collect()
    }

    /// Every policy as a `GETPOLICY` dump record.
    pub fn dump_policies(&self) -> Vec<Vec<u8>> {
        self.policies
            .iter()
            .map(|p| p.record(msg::NEWPOLICY, 0, 0, NLM_F_MULTI))
            .collect()
    }

    /// How many states and policies the kernel holds.
    pub fn counts(&self) -> (usize, usize) {
        (self.states.len(), self.policies.len())
    }

    /// Refusals so far, by errno.
    pub fn refused(&self) -> &BTreeMap<i32, u64> {
        &self.refused
    }

    /// The tables in the dialect's canonical form.
    pub fn canonical(&self) -> Canonical {
        let d = Xfrm;
        let mut c = Canonical::default();
        let mut buf = vec![0u8; 4096];
        // Acquire states are a keying daemon's reservations, which
        // sasyncd does not copy (it never sees them but in a dump).
        for s in self.states.iter().filter(|s| !s.is_larval()) {
            let rec = s.record(msg::NEWSA, 0, 0, 0);
            if let Ok(n) = d.digest_input(&rec, &mut buf) {
                c.states.insert(s.key(), buf[..n].to_vec());
            }
        }
        for p in &self.policies {
            let rec = p.record(msg::NEWPOLICY, 0, 0, 0);
            if let Ok(n) = d.digest_input(&rec, &mut buf) {
                c.policies.insert(p.key(), buf[..n].to_vec());
            }
        }
        c
    }
}

/// `netlink_ack`: an `NLMSG_ERROR` carrying `-err` and the request (its
/// header only for an acknowledgement).
fn ack(m: &Msg<'_>, port: u32, err: i32) -> Vec<u8> {
    let echoed = if err == 0 {
        &m.bytes()[..HDR_LEN]
    } else {
        m.bytes()
    };
    let flags = if err == 0 { NLM_F_CAPPED } else { 0 };
    let mut r = Builder::new(NLMSG_ERROR, flags)
        .raw(&(-err).to_ne_bytes())
        .raw(echoed)
        .finish();
    sasyncd_core::xfrm::nl::set_seq_pid(&mut r, m.seq(), port);
    r
}

/// The groups a sasyncd watch joins: state and policy changes, expiries,
/// replay events (outbound sequence numbers, carried to the slaves).
pub const WATCH_GROUPS: u32 = group::SA | group::POLICY | group::EXPIRE | group::AEVENTS;
