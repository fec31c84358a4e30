//! XFRM numbers and layouts: message and attribute types, multicast
//! groups, struct sizes and field offsets.
//!
//! Layouts are those of `include/uapi/linux/xfrm.h` on a 64-bit Linux
//! (the `u64` lifetime fields make the structs 8-aligned); every offset is
//! named here once. Addresses, ports and SPIs are in network byte order;
//! everything else in host order.

/// `NETLINK_XFRM`, the netlink protocol of IPsec states and policies.
pub const NETLINK_XFRM: i32 = 6;

/// Message types (`XFRM_MSG_*`).
pub mod msg {
    /// A state was added (event), or add one (request), or a dump record.
    pub const NEWSA: u16 = 0x10;
    /// A state was deleted, or delete one.
    pub const DELSA: u16 = 0x11;
    /// Get one state, or dump them all.
    pub const GETSA: u16 = 0x12;
    /// A policy was added, or add one, or a dump record.
    pub const NEWPOLICY: u16 = 0x13;
    /// A policy was deleted, or delete one.
    pub const DELPOLICY: u16 = 0x14;
    /// Get one policy, or dump them all.
    pub const GETPOLICY: u16 = 0x15;
    /// The kernel wants a state negotiated (keying daemons only).
    pub const ACQUIRE: u16 = 0x17;
    /// A state's soft or hard lifetime ran out.
    pub const EXPIRE: u16 = 0x18;
    /// A policy was replaced, or add-or-replace one.
    pub const UPDPOLICY: u16 = 0x19;
    /// A state was replaced, or replace one.
    pub const UPDSA: u16 = 0x1a;
    /// A policy's lifetime ran out.
    pub const POLEXPIRE: u16 = 0x1b;
    /// States were flushed, or flush them.
    pub const FLUSHSA: u16 = 0x1c;
    /// Policies were flushed, or flush them.
    pub const FLUSHPOLICY: u16 = 0x1d;
    /// Replay and lifetime counters of a state (async events), or set
    /// them (with `NLM_F_REPLACE`).
    pub const NEWAE: u16 = 0x1e;
    /// Read a state's replay and lifetime counters (answered by a `NEWAE`).
    pub const GETAE: u16 = 0x1f;
}

/// Attribute types (`XFRMA_*`).
pub mod attr {
    /// Authentication algorithm (`xfrm_algo`).
    pub const ALG_AUTH: u16 = 1;
    /// Encryption algorithm (`xfrm_algo`).
    pub const ALG_CRYPT: u16 = 2;
    /// Compression algorithm (`xfrm_algo`).
    pub const ALG_COMP: u16 = 3;
    /// UDP encapsulation (`xfrm_encap_tmpl`).
    pub const ENCAP: u16 = 4;
    /// A policy's templates (`xfrm_user_tmpl[]`).
    pub const TMPL: u16 = 5;
    /// The whole state inside a delete event or an expire.
    pub const SA: u16 = 6;
    /// The whole policy inside a delete event.
    pub const POLICY: u16 = 7;
    /// Security context.
    pub const SEC_CTX: u16 = 8;
    /// Current lifetime counters (`xfrm_lifetime_cur`); on an add, the
    /// state starts from them.
    pub const LTIME_VAL: u16 = 9;
    /// Replay state (`xfrm_replay_state`).
    pub const REPLAY_VAL: u16 = 10;
    /// Sequence-number distance between two replay events of a state.
    pub const REPLAY_THRESH: u16 = 11;
    /// Longest time between two replay events of a state that changed
    /// (in jiffies when written: `xfrm_update_ae_params` stores it as is).
    pub const ETIMER_THRESH: u16 = 12;
    /// Care-of address.
    pub const COADDR: u16 = 14;
    /// Last use time of a state (local to one kernel).
    pub const LASTUSED: u16 = 15;
    /// Policy type (main or sub).
    pub const POLICY_TYPE: u16 = 16;
    /// AEAD algorithm (`xfrm_algo_aead`).
    pub const ALG_AEAD: u16 = 18;
    /// Authentication algorithm with truncation length.
    pub const ALG_AUTH_TRUNC: u16 = 20;
    /// Mark value and mask (`xfrm_mark`): part of a state's and a policy's
    /// identity.
    pub const MARK: u16 = 21;
    /// TFC padding.
    pub const TFCPAD: u16 = 22;
    /// Extended sequence number replay state.
    pub const REPLAY_ESN_VAL: u16 = 23;
    /// State extra flags.
    pub const SA_EXTRA_FLAGS: u16 = 24;
    /// Padding for 64-bit attributes.
    pub const PAD: u16 = 27;
    /// Hardware offload device (an ifindex: local to one machine).
    pub const OFFLOAD_DEV: u16 = 28;
    /// Output mark value.
    pub const SET_MARK: u16 = 29;
    /// Output mark mask.
    pub const SET_MARK_MASK: u16 = 30;
    /// XFRM interface id: part of a state's and a policy's identity.
    pub const IF_ID: u16 = 31;
}

/// Multicast groups (`XFRMNLGRP_*`), as bind(2) bits.
pub mod group {
    /// State expiries.
    pub const EXPIRE: u32 = 1 << (2 - 1);
    /// State adds, updates, deletes and flushes.
    pub const SA: u32 = 1 << (3 - 1);
    /// Policy adds, updates, deletes and flushes.
    pub const POLICY: u32 = 1 << (4 - 1);
    /// Replay-state events (`XFRMNLGRP_AEVENTS`): a state's sequence
    /// numbers moved by its threshold, or its timer ran with a change.
    pub const AEVENTS: u32 = 1 << (5 - 1);
}

/// `IPPROTO_ESP`.
pub const IPPROTO_ESP: u8 = 50;
/// `IPPROTO_AH`.
pub const IPPROTO_AH: u8 = 51;
/// `IPPROTO_COMP`.
pub const IPPROTO_COMP: u8 = 108;

/// `sizeof(struct xfrm_selector)`.
pub const SELECTOR_LEN: usize = 56;
/// `sizeof(struct xfrm_usersa_info)`.
pub const USERSA_INFO_LEN: usize = 224;
/// `sizeof(struct xfrm_usersa_id)`.
pub const USERSA_ID_LEN: usize = 24;
/// `sizeof(struct xfrm_userpolicy_info)`.
pub const USERPOLICY_INFO_LEN: usize = 168;
/// `sizeof(struct xfrm_userpolicy_id)`.
pub const USERPOLICY_ID_LEN: usize = 64;
/// `sizeof(struct xfrm_user_expire)`.
pub const USER_EXPIRE_LEN: usize = 232;
/// `sizeof(struct xfrm_aevent_id)`: the state's id, its source address,
/// flags and reqid.
pub const AEVENT_ID_LEN: usize = 48;
/// `sizeof(struct xfrm_lifetime_cur)`.
pub const LIFETIME_CUR_LEN: usize = 32;

/// Offsets inside `xfrm_usersa_info`.
pub mod sa_off {
    /// `sel` (an `xfrm_selector`).
    pub const SEL: usize = 0;
    /// `id.daddr`.
    pub const DADDR: usize = 56;
    /// `id.spi` (network order).
    pub const SPI: usize = 72;
    /// `id.proto`.
    pub const PROTO: usize = 76;
    /// `saddr`.
    pub const SADDR: usize = 80;
    /// `lft` (an `xfrm_lifetime_cfg`).
    pub const LFT: usize = 96;
    /// `curlft` (an `xfrm_lifetime_cur`).
    pub const CURLFT: usize = 160;
    /// `stats` (an `xfrm_stats`).
    pub const STATS: usize = 192;
    /// `seq`.
    pub const SEQ: usize = 204;
    /// `reqid`.
    pub const REQID: usize = 208;
    /// `family`.
    pub const FAMILY: usize = 212;
    /// `mode`.
    pub const MODE: usize = 214;
    /// `replay_window`.
    pub const REPLAY_WINDOW: usize = 215;
    /// `flags`.
    pub const FLAGS: usize = 216;
}

/// Offsets inside `xfrm_userpolicy_info`.
pub mod pol_off {
    /// `sel`.
    pub const SEL: usize = 0;
    /// `lft`.
    pub const LFT: usize = 56;
    /// `curlft`.
    pub const CURLFT: usize = 120;
    /// `priority`.
    pub const PRIORITY: usize = 152;
    /// `index`.
    pub const INDEX: usize = 156;
    /// `dir`.
    pub const DIR: usize = 160;
    /// `action`.
    pub const ACTION: usize = 161;
    /// `flags`.
    pub const FLAGS: usize = 162;
}

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
