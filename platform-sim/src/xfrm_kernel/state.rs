//! The simulated XFRM kernel's states: what an add, update, delete, get,
//! flush and replay-counter request does, and the records and events a
//! state is reported as. Rules from Linux 6.1 `net/xfrm/xfrm_user.c` and
//! `net/xfrm/xfrm_state.c` (see the module above for the tree read).

use sasyncd_core::xfrm::nl::{u32_at, Attrs, Builder, Msg, NLM_F_REPLACE};
use sasyncd_core::xfrm::{
    attr, group, msg, sa_off, Mark, SaKey, AEVENT_ID_LEN, AF_INET, AF_INET6, IPPROTO_AH,
    IPPROTO_COMP, IPPROTO_ESP, LIFETIME_CUR_LEN, USERSA_ID_LEN, USERSA_INFO_LEN,
};

use super::errno::{EINVAL, ENOENT, ENOSYS, EOVERFLOW, ESRCH};
use super::XfrmKernel;

/// `IPSEC_PROTO_ANY`: a flush of every IPsec protocol.
const IPSEC_PROTO_ANY: u8 = 255;
/// `XFRM_STATE_ESN`.
const XFRM_STATE_ESN: u8 = 128;
/// `XFRM_STATE_AF_UNSPEC`: keep a selector without a family.
const XFRM_STATE_AF_UNSPEC: u8 = 32;
/// `XFRM_AE_RTHR`, `XFRM_AE_ETHR`, `XFRM_AE_CU` (`enum xfrm_ae_ftype_t`).
const XFRM_AE_RTHR: u32 = 1;
const XFRM_AE_ETHR: u32 = 8;
const XFRM_AE_CU: u32 = 64;
/// `XFRM_AE_CR` (`XFRM_REPLAY_UPDATE`): a number moved by the threshold.
const XFRM_AE_CR: u32 = 16;
/// `net.core.xfrm_aevent_rseqth` (`XFRM_AE_SEQT_SIZE`): the replay
/// threshold a state gets when added (`xfrm_state_construct`).
const AEVENT_RSEQTH: u32 = 2;
/// `net.core.xfrm_aevent_etime` (`XFRM_AE_ETIME`), in 100 ms units.
const AEVENT_ETIME: u32 = 10;
/// `sizeof(struct xfrm_algo)`, `xfrm_algo_auth`, `xfrm_algo_aead`: the
/// name (64 bytes), the key length in bits, the truncation or ICV length.
const ALGO_LEN: usize = 68;
const ALGO_AUTH_LEN: usize = 72;
const ALGO_AEAD_LEN: usize = 72;
/// `sizeof(struct xfrm_replay_state)` and of the ESN one without its
/// bitmap; `XFRMA_REPLAY_ESN_MAX` (bytes of bitmap).
const REPLAY_LEN: usize = 12;
const REPLAY_ESN_LEN: usize = 24;
const REPLAY_ESN_MAX: u32 = 4096;
/// `sizeof(struct xfrm_encap_tmpl)`.
const ENCAP_LEN: usize = 24;
/// Attribute types the state code reads beside [`attr`]'s.
const XFRMA_SRCADDR: u16 = 13;
/// The highest attribute type parsed.
const ATTR_MAX: usize = 32;
/// `sizeof(struct xfrm_userspi_info)`: an `xfrm_usersa_info`, then the
/// SPI range (`min`, `max`).
const USERSPI_INFO_LEN: usize = USERSA_INFO_LEN + 8;
/// `net.ipv4.xfrm4_acq_expires` (`sysctl_acq_expires`, 30 s): the hard add
/// lifetime of an acquire state (`__find_acq_core`).
const ACQ_EXPIRES: u64 = 30;

/// The minimum length of each attribute (`xfrma_policy`): a shorter one
/// is refused.
fn min_len(kind: u16) -> usize {
    match kind {
        attr::SA => USERSA_INFO_LEN,
        attr::POLICY => super::policy::USERPOLICY_INFO_LEN,
        attr::LASTUSED => 8,
        attr::ALG_AUTH_TRUNC => ALGO_AUTH_LEN,
        attr::ALG_AEAD => ALGO_AEAD_LEN,
        attr::ALG_AUTH | attr::ALG_CRYPT | attr::ALG_COMP => ALGO_LEN,
        attr::ENCAP => ENCAP_LEN,
        attr::TMPL => 64,
        attr::LTIME_VAL => LIFETIME_CUR_LEN,
        attr::REPLAY_VAL => REPLAY_LEN,
        attr::REPLAY_THRESH | attr::ETIMER_THRESH | attr::TFCPAD | attr::SA_EXTRA_FLAGS => 4,
        attr::SET_MARK | attr::SET_MARK_MASK | attr::IF_ID => 4,
        XFRMA_SRCADDR | attr::COADDR => 16,
        attr::POLICY_TYPE => 6,
        attr::MARK => 8,
        attr::REPLAY_ESN_VAL => REPLAY_ESN_LEN,
        _ => 0,
    }
}

/// A request's attributes by type (`nlmsg_parse_deprecated`): the last of
/// a type wins; framing that breaks ends the list (what follows is
/// ignored, as the deprecated parse only warns); a known attribute
/// shorter than its policy is refused.
#[allow(clippy::type_complexity)]
pub(super) fn parse_attrs(attrs: Attrs<'_>) -> Result<[Option<&[u8]>; ATTR_MAX + 1], i32> {
    let mut tb = [None; ATTR_MAX + 1];
    for a in attrs {
        let Ok(a) = a else { break };
        let k = usize::from(a.kind);
        if k > ATTR_MAX {
            continue;
        }
        if a.data.len() < min_len(a.kind) {
            return Err(EINVAL);
        }
        tb[k] = Some(a.data);
    }
    Ok(tb)
}

/// `xfrm_mark_get`: the mark an attribute list names, and the value
/// lookups compare (`v & m`).
pub(super) fn mark_of(tb: &[Option<&[u8]>]) -> Mark {
    match tb[usize::from(attr::MARK)] {
        Some(d) => Mark {
            v: u32_at(d, 0),
            m: u32_at(d, 4),
        },
        None => Mark::default(),
    }
}

fn u32_attr(tb: &[Option<&[u8]>], kind: u16) -> Option<u32> {
    tb[usize::from(kind)].map(|d| u32_at(d, 0))
}

/// An authentication algorithm Linux knows (`aalg_list` in
/// `xfrm_algo.c`): its name, another name it answers to, and its ICV
/// lengths (default truncation, full).
const AUTH_ALGS: [(&str, &str, u32, u32); 5] = [
    ("hmac(md5)", "md5", 96, 128),
    ("hmac(sha1)", "sha1", 96, 160),
    ("hmac(sha256)", "sha256", 96, 256),
    ("hmac(sha384)", "", 192, 384),
    ("hmac(sha512)", "", 256, 512),
];
/// Encryption algorithms (`ealg_list`): name and other name.
const CRYPT_ALGS: [(&str, &str); 4] = [
    ("cbc(aes)", "aes"),
    ("cbc(des3_ede)", "des3_ede"),
    ("rfc3686(ctr(aes))", ""),
    ("ecb(cipher_null)", "cipher_null"),
];
/// AEAD algorithms (`aead_list`).
const AEAD_ALGS: [&str; 3] = [
    "rfc4106(gcm(aes))",
    "rfc4309(ccm(aes))",
    "rfc7539esp(chacha20,poly1305)",
];
/// Compression algorithms (`calg_list`).
const COMP_ALGS: [(&str, &str); 2] = [("deflate", ""), ("lzs", "")];

/// The NUL-terminated name at the start of an algorithm struct.
fn alg_name(d: &[u8]) -> &[u8] {
    let n = &d[..64];
    &n[..n.iter().position(|&b| b == 0).unwrap_or(64)]
}

/// The name an algorithm struct carries once the kernel has replaced it
/// with the algorithm's own (`strcpy(p->alg_name, algo->name)`).
fn with_name(d: &[u8], name: &str) -> Vec<u8> {
    let mut v = d.to_vec();
    v[..64].fill(0);
    v[..name.len()].copy_from_slice(name.as_bytes());
    v
}

fn key_bytes(bits: u32) -> usize {
    (bits as usize).div_ceil(8)
}

/// Replay state: the 32-bit form, or the ESN one (with its bitmap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Replay {
    /// `xfrm_replay_state`: oseq, seq, bitmap.
    Legacy([u8; REPLAY_LEN]),
    /// `xfrm_replay_state_esn`, `24 + 4 * bmp_len` bytes.
    Esn(Vec<u8>),
}

impl Replay {
    /// The outbound sequence number.
    fn oseq(&self) -> u64 {
        match self {
            Replay::Legacy(r) => u64::from(u32_at(r, 0)),
            Replay::Esn(r) => u64::from(u32_at(r, 12)) << 32 | u64::from(u32_at(r, 4)),
        }
    }

    fn set_oseq(&mut self, oseq: u64) {
        match self {
            Replay::Legacy(r) => r[..4].copy_from_slice(&(oseq as u32).to_ne_bytes()),
            Replay::Esn(r) => {
                r[4..8].copy_from_slice(&(oseq as u32).to_ne_bytes());
                r[12..16].copy_from_slice(&((oseq >> 32) as u32).to_ne_bytes());
            }
        }
    }

    fn put(&self, b: Builder) -> Builder {
        match self {
            Replay::Legacy(r) => b.attr(attr::REPLAY_VAL, r),
            Replay::Esn(r) => b.attr(attr::REPLAY_ESN_VAL, r),
        }
    }
}

/// One state as the kernel holds it: what `copy_to_user_state_extra`
/// reports.
#[derive(Debug, Clone)]
pub(super) struct State {
    /// The `xfrm_usersa_info` as `copy_to_user_state` fills it (current
    /// lifetime included).
    info: [u8; USERSA_INFO_LEN],
    extra_flags: u32,
    coaddr: Option<Vec<u8>>,
    aead: Option<Vec<u8>>,
    /// In `xfrm_algo_auth` form (reported as both `ALG_AUTH` and
    /// `ALG_AUTH_TRUNC`).
    auth: Option<Vec<u8>>,
    crypt: Option<Vec<u8>>,
    comp: Option<Vec<u8>>,
    encap: Option<[u8; ENCAP_LEN]>,
    tfcpad: u32,
    mark: Mark,
    smark: Mark,
    replay: Replay,
    if_id: u32,
    /// `replay_maxdiff`, `replay_maxage` (the aevent thresholds).
    rthr: u32,
    ethr: u32,
    /// `preplay`'s outbound number: where the last replay event (or the
    /// last counters set) left it.
    p_oseq: u64,
    /// `km.state == XFRM_STATE_ACQ`: an acquire (larval) state, as
    /// `ALLOCSPI` makes one to reserve an SPI (`__find_acq_core`); an
    /// `UPDSA` of its SPI completes it (`xfrm_state_update`).
    larval: bool,
}

impl State {
    fn family(&self) -> u16 {
        u16::from_ne_bytes([self.info[sa_off::FAMILY], self.info[sa_off::FAMILY + 1]])
    }
    fn proto(&self) -> u8 {
        self.info[sa_off::PROTO]
    }
    fn daddr(&self) -> &[u8] {
        &self.info[sa_off::DADDR..sa_off::DADDR + 16]
    }
    fn saddr(&self) -> &[u8] {
        &self.info[sa_off::SADDR..sa_off::SADDR + 16]
    }
    fn spi(&self) -> [u8; 4] {
        let mut s = [0u8; 4];
        s.copy_from_slice(&self.info[sa_off::SPI..sa_off::SPI + 4]);
        s
    }
    fn reqid(&self) -> u32 {
        u32_at(&self.info, sa_off::REQID)
    }

    /// An acquire (larval) state: sasyncd cannot copy one (no keys).
    pub(super) fn is_larval(&self) -> bool {
        self.larval
    }

    /// The identity the dialect reads from this state's records.
    pub(super) fn key(&self) -> SaKey {
        let mut daddr = [0u8; 16];
        daddr.copy_from_slice(self.daddr());
        SaKey {
            family: self.family(),
            daddr,
            spi: u32::from_ne_bytes(self.spi()),
            proto: self.proto(),
            mark: self.mark,
        }
    }

    /// `__xfrm_state_lookup`: same family, SPI, protocol and destination,
    /// and `(mark & x->mark.m) == x->mark.v`.
    /// An acquire state without an SPI is in no SPI hash chain.
    fn matches(&self, family: u16, daddr: &[u8], spi: [u8; 4], proto: u8, mark: u32) -> bool {
        !(self.larval && self.spi() == [0; 4])
            && self.family() == family
            && self.spi() == spi
            && self.proto() == proto
            && addr_eq(self.daddr(), daddr, family)
            && mark & self.mark.m == self.mark.v
    }

    /// `copy_to_user_state_extra`'s attributes after a fixed part.
    fn put_attrs(&self, mut b: Builder) -> Builder {
        if self.extra_flags != 0 {
            b = b.attr(attr::SA_EXTRA_FLAGS, &self.extra_flags.to_ne_bytes());
        }
        if let Some(c) = &self.coaddr {
            b = b.attr(attr::COADDR, c);
        }
        if let Some(a) = &self.aead {
            b = b.attr(attr::ALG_AEAD, a);
        }
        if let Some(a) = &self.auth {
            // The xfrm_algo form: name and key length, then the key.
            let klen = u32_at(a, 64);
            let mut plain = a[..ALGO_LEN].to_vec();
            plain.extend_from_slice(&a[ALGO_AUTH_LEN..ALGO_AUTH_LEN + key_bytes(klen)]);
            b = b.attr(attr::ALG_AUTH, &plain).attr(attr::ALG_AUTH_TRUNC, a);
        }
        if let Some(c) = &self.crypt {
            b = b.attr(attr::ALG_CRYPT, c);
        }
        if let Some(c) = &self.comp {
            b = b.attr(attr::ALG_COMP, c);
        }
        if let Some(e) = &self.encap {
            b = b.attr(attr::ENCAP, e);
        }
        if self.tfcpad != 0 {
            b = b.attr(attr::TFCPAD, &self.tfcpad.to_ne_bytes());
        }
        b = put_mark(b, self.mark);
        if self.smark.v | self.smark.m != 0 {
            b = b
                .attr(attr::SET_MARK, &self.smark.v.to_ne_bytes())
                .attr(attr::SET_MARK_MASK, &self.smark.m.to_ne_bytes());
        }
        b = self.replay.put(b);
        if self.if_id != 0 {
            b = b.attr(attr::IF_ID, &self.if_id.to_ne_bytes());
        }
        b
    }

    /// The state as a `kind` message (a dump record, a get reply, an add
    /// or update event).
    pub(super) fn record(&self, kind: u16, seq: u32, pid: u32, flags: u16) -> Vec<u8> {
        let mut r = self
            .put_attrs(Builder::new(kind, flags).raw(&self.info))
            .finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut r, seq, pid);
        r
    }

    /// `xfrm_notify_sa` for a delete: the id, the state in `XFRMA_SA`,
    /// its attributes at the top level.
    fn delete_event(&self, seq: u32, pid: u32) -> Vec<u8> {
        let mut id = [0u8; USERSA_ID_LEN];
        id[..16].copy_from_slice(self.daddr());
        id[16..20].copy_from_slice(&self.spi());
        id[20..22].copy_from_slice(&self.family().to_ne_bytes());
        id[22] = self.proto();
        let b = Builder::new(msg::DELSA, 0)
            .raw(&id)
            .attr(attr::SA, &self.info);
        let mut r = self.put_attrs(b).finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut r, seq, pid);
        r
    }

    /// `build_aevent`.
    fn aevent(&self, flags: u32, seq: u32, pid: u32) -> Vec<u8> {
        let mut id = [0u8; AEVENT_ID_LEN];
        id[..16].copy_from_slice(self.daddr());
        id[16..20].copy_from_slice(&self.spi());
        id[20..22].copy_from_slice(&self.family().to_ne_bytes());
        id[22] = self.proto();
        id[24..40].copy_from_slice(self.saddr());
        id[40..44].copy_from_slice(&flags.to_ne_bytes());
        id[44..48].copy_from_slice(&self.reqid().to_ne_bytes());
        let mut b = self.replay.put(Builder::new(msg::NEWAE, 0).raw(&id)).attr(
            attr::LTIME_VAL,
            &self.info[sa_off::CURLFT..sa_off::CURLFT + LIFETIME_CUR_LEN],
        );
        if flags & XFRM_AE_RTHR != 0 {
            b = b.attr(attr::REPLAY_THRESH, &self.rthr.to_ne_bytes());
        }
        if flags & XFRM_AE_ETHR != 0 {
            b = b.attr(attr::ETIMER_THRESH, &self.ethr.to_ne_bytes());
        }
        b = put_mark(b, self.mark);
        if self.if_id != 0 {
            b = b.attr(attr::IF_ID, &self.if_id.to_ne_bytes());
        }
        let mut r = b.finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut r, seq, pid);
        r
    }

    /// `build_expire`: the state, the hard flag, mark and interface id;
    /// port 0, sequence 0 (the kernel's own).
    fn expire_event(&self, hard: bool) -> Vec<u8> {
        let mut fixed = [0u8; USERSA_INFO_LEN + 8];
        fixed[..USERSA_INFO_LEN].copy_from_slice(&self.info);
        fixed[USERSA_INFO_LEN] = u8::from(hard);
        let mut b = put_mark(Builder::new(msg::EXPIRE, 0).raw(&fixed), self.mark);
        if self.if_id != 0 {
            b = b.attr(attr::IF_ID, &self.if_id.to_ne_bytes());
        }
        b.finish()
    }

    /// `xfrm_update_ae_params`: replay state (the ESN form only when
    /// `update_esn`, as `xfrm_new_ae` asks and an add does not), current
    /// lifetime, thresholds.
    fn update_ae(&mut self, tb: &[Option<&[u8]>], update_esn: bool) {
        let mut given = false;
        if update_esn {
            if let (Some(re), Replay::Esn(r)) =
                (tb[usize::from(attr::REPLAY_ESN_VAL)], &mut self.replay)
            {
                let n = r.len();
                r.copy_from_slice(&re[..n]);
                given = true;
            }
        }
        if let (Some(rp), Replay::Legacy(r)) = (tb[usize::from(attr::REPLAY_VAL)], &mut self.replay)
        {
            r.copy_from_slice(&rp[..REPLAY_LEN]);
            given = true;
        }
        if let Some(lt) = tb[usize::from(attr::LTIME_VAL)] {
            self.info[sa_off::CURLFT..sa_off::CURLFT + LIFETIME_CUR_LEN]
                .copy_from_slice(&lt[..LIFETIME_CUR_LEN]);
        }
        if let Some(e) = u32_attr(tb, attr::ETIMER_THRESH) {
            self.ethr = e;
        }
        if let Some(r) = u32_attr(tb, attr::REPLAY_THRESH) {
            self.rthr = r;
        }
        // The replay state given is copied to `preplay` too; without
        // one (thresholds or lifetimes only) `preplay` stays where the
        // last event left it, so the next event still comes when the
        // number moved by the threshold since that one.
        if given {
            self.p_oseq = self.replay.oseq();
        }
    }
}

/// The acquire state `__find_acq_core` creates for the
/// `xfrm_usersa_info` `p` (`xfrm_state_alloc`'s infinite limits, added
/// `now`).
fn acquire(p: &[u8], mark: Mark, if_id: u32, now: u64) -> State {
    let family = u16::from_ne_bytes([p[sa_off::FAMILY], p[sa_off::FAMILY + 1]]);
    let n = if family == AF_INET6 { 16 } else { 4 };
    let mut info = [0u8; USERSA_INFO_LEN];
    // The selector: the two hosts, without a family.
    info[..n].copy_from_slice(&p[sa_off::DADDR..sa_off::DADDR + n]);
    info[16..16 + n].copy_from_slice(&p[sa_off::SADDR..sa_off::SADDR + n]);
    info[42] = (n * 8) as u8;
    info[43] = (n * 8) as u8;
    info[sa_off::DADDR..sa_off::DADDR + n].copy_from_slice(&p[sa_off::DADDR..sa_off::DADDR + n]);
    info[sa_off::PROTO] = p[sa_off::PROTO];
    info[sa_off::SADDR..sa_off::SADDR + n].copy_from_slice(&p[sa_off::SADDR..sa_off::SADDR + n]);
    // XFRM_INF byte and packet limits; the acquire's hard add lifetime.
    info[sa_off::LFT..sa_off::LFT + 32].fill(0xff);
    info[sa_off::LFT + 40..sa_off::LFT + 48].copy_from_slice(&ACQ_EXPIRES.to_ne_bytes());
    info[sa_off::CURLFT + 16..sa_off::CURLFT + 24].copy_from_slice(&now.to_ne_bytes());
    info[sa_off::REQID..sa_off::REQID + 4].copy_from_slice(&p[sa_off::REQID..sa_off::REQID + 4]);
    info[sa_off::FAMILY..sa_off::FAMILY + 2].copy_from_slice(&family.to_ne_bytes());
    info[sa_off::MODE] = p[sa_off::MODE];
    State {
        info,
        extra_flags: 0,
        coaddr: None,
        aead: None,
        auth: None,
        crypt: None,
        comp: None,
        encap: None,
        tfcpad: 0,
        mark,
        smark: Mark::default(),
        replay: Replay::Legacy([0; REPLAY_LEN]),
        if_id,
        rthr: 0,
        ethr: 0,
        p_oseq: 0,
        larval: true,
    }
}

fn put_mark(b: Builder, m: Mark) -> Builder {
    // xfrm_mark_put: only a mark with a value or a mask.
    if m.v | m.m != 0 {
        b.attr(attr::MARK, &m.to_bytes())
    } else {
        b
    }
}

/// `xfrm_addr_equal`: 4 bytes for IPv4, 16 for IPv6.
fn addr_eq(a: &[u8], b: &[u8], family: u16) -> bool {
    let n = if family == AF_INET6 { 16 } else { 4 };
    a[..n] == b[..n]
}

/// `xfrm_id_proto_match`.
fn proto_match(proto: u8, userproto: u8) -> bool {
    userproto == 0
        || proto == userproto
        || (userproto == IPSEC_PROTO_ANY
            && matches!(proto, IPPROTO_AH | IPPROTO_ESP | IPPROTO_COMP))
}

/// `verify_newsa_info` and the algorithm checks it makes.
fn verify_newsa(p: &[u8], tb: &[Option<&[u8]>]) -> Result<(), i32> {
    let family = u16::from_ne_bytes([p[sa_off::FAMILY], p[sa_off::FAMILY + 1]]);
    if family != AF_INET && family != AF_INET6 {
        return Err(EINVAL);
    }
    let sel_family = u16::from_ne_bytes([p[40], p[41]]);
    let (pd, ps) = (p[42], p[43]);
    match sel_family {
        0 => {}
        AF_INET if pd <= 32 && ps <= 32 => {}
        AF_INET6 if pd <= 128 && ps <= 128 => {}
        _ => return Err(EINVAL),
    }
    let has = |k: u16| tb[usize::from(k)].is_some();
    let (auth, trunc, crypt, aead, comp, tfc) = (
        has(attr::ALG_AUTH),
        has(attr::ALG_AUTH_TRUNC),
        has(attr::ALG_CRYPT),
        has(attr::ALG_AEAD),
        has(attr::ALG_COMP),
        has(attr::TFCPAD),
    );
    let mode = p[sa_off::MODE];
    let ok = match p[sa_off::PROTO] {
        IPPROTO_AH => (auth || trunc) && !(aead || crypt || comp || tfc),
        IPPROTO_ESP => {
            !comp
                && (auth || trunc || crypt || aead)
                && !((auth || trunc || crypt) && aead)
                && !(tfc && mode != 1)
        }
        IPPROTO_COMP => {
            comp && !(aead || auth || trunc || crypt || tfc)
                && u32::from_be(u32_at(p, sa_off::SPI)) < 0x10000
        }
        // IPv6 routing and destination options (Mobile IPv6) are not
        // modelled: refused as an unknown protocol is.
        _ => false,
    };
    if !ok {
        return Err(EINVAL);
    }
    // verify_aead, verify_auth_trunc, verify_one_alg: the key fits.
    let fits = |k: u16, fixed: usize| {
        tb[usize::from(k)].is_none_or(|d| d.len() >= fixed + key_bytes(u32_at(d, 64)))
    };
    if !(fits(attr::ALG_AEAD, ALGO_AEAD_LEN)
        && fits(attr::ALG_AUTH_TRUNC, ALGO_AUTH_LEN)
        && fits(attr::ALG_AUTH, ALGO_LEN)
        && fits(attr::ALG_CRYPT, ALGO_LEN)
        && fits(attr::ALG_COMP, ALGO_LEN))
    {
        return Err(EINVAL);
    }
    // verify_replay.
    match tb[usize::from(attr::REPLAY_ESN_VAL)] {
        None if p[sa_off::FLAGS] & XFRM_STATE_ESN != 0 => return Err(EINVAL),
        None => {}
        Some(rs) => {
            let bmp_len = u32_at(rs, 0);
            if bmp_len > REPLAY_ESN_MAX / 4 / 8 {
                return Err(EINVAL);
            }
            let full = REPLAY_ESN_LEN + 4 * bmp_len as usize;
            if rs.len() < full && rs.len() != REPLAY_ESN_LEN {
                return Err(EINVAL);
            }
            if !matches!(p[sa_off::PROTO], IPPROTO_ESP | IPPROTO_AH)
                || p[sa_off::REPLAY_WINDOW] != 0
            {
                return Err(EINVAL);
            }
        }
    }
    // Transport, tunnel, route optimization, BEET.
    if !matches!(mode, 0 | 1 | 2 | 4) {
        return Err(EINVAL);
    }
    Ok(())
}

/// `xfrm_state_construct`: the state a `NEWSA`/`UPDSA` request describes.
fn construct(p: &[u8], tb: &[Option<&[u8]>], now: u64) -> Result<State, i32> {
    // copy_from_user_state: the fixed part, the window capped to the
    // legacy bitmap, a selector without a family given the state's.
    let mut info = [0u8; USERSA_INFO_LEN];
    info[..sa_off::STATS].copy_from_slice(&p[..sa_off::STATS]);
    info[sa_off::SEQ..sa_off::FLAGS + 1].copy_from_slice(&p[sa_off::SEQ..sa_off::FLAGS + 1]);
    info[sa_off::CURLFT..sa_off::CURLFT + LIFETIME_CUR_LEN].fill(0);
    info[sa_off::REPLAY_WINDOW] = info[sa_off::REPLAY_WINDOW].min(32);
    if info[40..42] == [0, 0] && info[sa_off::FLAGS] & XFRM_STATE_AF_UNSPEC == 0 {
        info.copy_within(sa_off::FAMILY..sa_off::FAMILY + 2, 40);
    }
    // xfrm_state_alloc: added now.
    info[sa_off::CURLFT + 16..sa_off::CURLFT + 24].copy_from_slice(&now.to_ne_bytes());

    // attach_aead / attach_auth_trunc / attach_auth / attach_crypt /
    // attach_one_algo: known names only (ENOSYS), the kernel's own name
    // kept.
    let aead = match tb[usize::from(attr::ALG_AEAD)] {
        None => None,
        Some(d) => {
            let name = alg_name(d);
            let known = AEAD_ALGS
                .iter()
                .find(|n| n.as_bytes() == name)
                .ok_or(ENOSYS)?;
            let n = ALGO_AEAD_LEN + key_bytes(u32_at(d, 64));
            Some(with_name(&d[..n], known))
        }
    };
    let find_auth = |name: &[u8]| {
        AUTH_ALGS
            .iter()
            .find(|a| a.0.as_bytes() == name || (!a.1.is_empty() && a.1.as_bytes() == name))
            .ok_or(ENOSYS)
    };
    let auth = if let Some(d) = tb[usize::from(attr::ALG_AUTH_TRUNC)] {
        let a = find_auth(alg_name(d))?;
        let trunc = u32_at(d, 68);
        if trunc > a.3 {
            return Err(EINVAL);
        }
        let n = ALGO_AUTH_LEN + key_bytes(u32_at(d, 64));
        let mut v = with_name(&d[..n], a.0);
        if trunc == 0 {
            v[68..72].copy_from_slice(&a.2.to_ne_bytes());
        }
        Some(v)
    } else if let Some(d) = tb[usize::from(attr::ALG_AUTH)] {
        let a = find_auth(alg_name(d))?;
        let klen = u32_at(d, 64);
        let mut v = with_name(&d[..ALGO_LEN], a.0);
        v.extend_from_slice(&a.2.to_ne_bytes());
        v.extend_from_slice(&d[ALGO_LEN..ALGO_LEN + key_bytes(klen)]);
        Some(v)
    } else {
        None
    };
    let crypt = match tb[usize::from(attr::ALG_CRYPT)] {
        None => None,
        Some(d) => {
            let name = alg_name(d);
            let a = CRYPT_ALGS
                .iter()
                .find(|a| a.0.as_bytes() == name || (!a.1.is_empty() && a.1.as_bytes() == name))
                .ok_or(ENOSYS)?;
            let n = ALGO_LEN + key_bytes(u32_at(d, 64));
            Some(with_name(&d[..n], a.0))
        }
    };
    let comp = match tb[usize::from(attr::ALG_COMP)] {
        None => None,
        Some(d) => {
            let name = alg_name(d);
            let a = COMP_ALGS
                .iter()
                .find(|a| a.0.as_bytes() == name)
                .ok_or(ENOSYS)?;
            // copy_to_user_calg reports the struct without a key.
            let mut v = with_name(&d[..ALGO_LEN], a.0);
            v[64..68].fill(0);
            Some(v)
        }
    };
    // copy_to_user_encap: type, ports and original address; the padding
    // zeroed.
    let encap = tb[usize::from(attr::ENCAP)].map(|d| {
        let mut e = [0u8; ENCAP_LEN];
        e[..6].copy_from_slice(&d[..6]);
        e[8..].copy_from_slice(&d[8..ENCAP_LEN]);
        e
    });
    // xfrm_smark_init: a set mark without a mask gets the full mask.
    let smark = match u32_attr(tb, attr::SET_MARK) {
        Some(v) => Mark {
            v,
            m: u32_attr(tb, attr::SET_MARK_MASK).unwrap_or(u32::MAX),
        },
        None => Mark::default(),
    };
    // xfrm_alloc_replay_state_esn: the full length, the bitmap zero if
    // the attribute carried none.
    let replay = match tb[usize::from(attr::REPLAY_ESN_VAL)] {
        Some(rs) => {
            let full = REPLAY_ESN_LEN + 4 * u32_at(rs, 0) as usize;
            let mut v = vec![0u8; full];
            let take = if rs.len() >= full {
                full
            } else {
                REPLAY_ESN_LEN
            };
            v[..take].copy_from_slice(&rs[..take]);
            Replay::Esn(v)
        }
        None => Replay::Legacy([0; REPLAY_LEN]),
    };
    let mut s = State {
        info,
        extra_flags: u32_attr(tb, attr::SA_EXTRA_FLAGS).unwrap_or(0),
        coaddr: tb[usize::from(attr::COADDR)].map(|d| d[..16].to_vec()),
        aead,
        auth,
        crypt,
        comp,
        encap,
        tfcpad: u32_attr(tb, attr::TFCPAD).unwrap_or(0),
        mark: mark_of(tb),
        smark,
        replay,
        if_id: u32_attr(tb, attr::IF_ID).unwrap_or(0),
        rthr: AEVENT_RSEQTH,
        ethr: AEVENT_ETIME,
        p_oseq: 0,
        larval: false,
    };
    // "override default values from above": an add takes the counters
    // and the legacy replay state it is given; `preplay` starts as the
    // replay state (xfrm_alloc_replay_state_esn copies the ESN one to
    // both, a legacy one is copied by xfrm_update_ae_params).
    s.update_ae(tb, false);
    s.p_oseq = s.replay.oseq();
    Ok(s)
}

impl XfrmKernel {
    fn lookup(
        &self,
        family: u16,
        daddr: &[u8],
        spi: [u8; 4],
        proto: u8,
        mark: u32,
    ) -> Option<usize> {
        self.states
            .iter()
            .position(|s| s.matches(family, daddr, spi, proto, mark))
    }

    /// `xfrm_add_sa`: `NEWSA` (`xfrm_state_add`) or `UPDSA`
    /// (`xfrm_state_update`); the event carries the state the request
    /// built, with the request's port and sequence.
    pub(super) fn add_sa(&mut self, m: &Msg<'_>, now: u64) -> Result<(), i32> {
        let (p, attrs) = m.split(USERSA_INFO_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        verify_newsa(p, &tb)?;
        let x = construct(p, &tb, now)?;
        let mark = x.mark.v & x.mark.m;
        let found = self.lookup(x.family(), x.daddr(), x.spi(), x.proto(), mark);
        if m.kind() == msg::NEWSA {
            // An acquire state holding the SPI is found like any other.
            if found.is_some() {
                return Err(super::errno::EEXIST);
            }
            // The acquire state the new one settles, by the request's
            // sequence number (`__xfrm_find_acq_byseq`: same protocol and
            // destination) or by `__find_acq_core` (one without an SPI),
            // is deleted without an event (`xfrm_state_delete`).
            let seq = u32_at(&x.info, sa_off::SEQ);
            let acq = self
                .states
                .iter()
                .position(|s| {
                    seq != 0
                        && s.larval
                        && u32_at(&s.info, sa_off::SEQ) == seq
                        && mark & s.mark.m == s.mark.v
                })
                .filter(|&i| {
                    let s = &self.states[i];
                    s.proto() == x.proto() && addr_eq(s.daddr(), x.daddr(), x.family())
                })
                .or_else(|| self.find_acq(&x.info, x.mark, x.if_id));
            self.states.insert(0, x.clone());
            if let Some(i) = acq {
                self.states.remove(i + 1);
            }
        } else if let Some(i) = found.filter(|&i| self.states[i].larval) {
            // xfrm_state_update: the new state replaces an acquire one
            // whole (`__xfrm_state_insert`, then `xfrm_state_delete` of
            // the acquire state, which sends no event of its own).
            self.states.remove(i);
            self.states.insert(0, x.clone());
        } else {
            let i = found.ok_or(ESRCH)?;
            let x1 = &mut self.states[i];
            // Encapsulation may change within its type only.
            match (&x.encap, &mut x1.encap) {
                (Some(a), Some(b)) if a[..2] == b[..2] => *b = *a,
                (None, None) => {}
                _ => return Err(EINVAL),
            }
            if let (Some(a), Some(b)) = (&x.coaddr, &mut x1.coaddr) {
                b.clone_from(a);
            }
            // The lifetime limits; never the keys, counters or replay.
            x1.info[sa_off::LFT..sa_off::CURLFT]
                .copy_from_slice(&x.info[sa_off::LFT..sa_off::CURLFT]);
            if x.smark.v | x.smark.m != 0 {
                x1.smark = x.smark;
            }
            if x.if_id != 0 {
                x1.if_id = x.if_id;
            }
        }
        self.notify(group::SA, x.record(m.kind(), m.seq(), m.pid(), 0));
        Ok(())
    }

    /// `__find_acq_core` without creating: an acquire state without an
    /// SPI for the mode, request id, family, protocol, mark and addresses
    /// of the `xfrm_usersa_info` `p`.
    fn find_acq(&self, p: &[u8], mark: Mark, if_id: u32) -> Option<usize> {
        let family = u16::from_ne_bytes([p[sa_off::FAMILY], p[sa_off::FAMILY + 1]]);
        let m = mark.v & mark.m;
        let _ = if_id; // 6.1 does not compare it here.
        self.states.iter().position(|s| {
            s.larval
                && s.spi() == [0; 4]
                && s.reqid() == u32_at(p, sa_off::REQID)
                && s.info[sa_off::MODE] == p[sa_off::MODE]
                && s.family() == family
                && s.proto() == p[sa_off::PROTO]
                && m & s.mark.m == s.mark.v
                && addr_eq(s.daddr(), &p[sa_off::DADDR..sa_off::DADDR + 16], family)
                && addr_eq(s.saddr(), &p[sa_off::SADDR..sa_off::SADDR + 16], family)
        })
    }

    /// `xfrm_alloc_userspi`: reserve an SPI in `[min, max]` on an acquire
    /// state, found by the request's sequence number
    /// (`xfrm_find_acq_byseq`, same destination) or by `xfrm_find_acq`,
    /// which creates one (`__find_acq_core`: selector of the two hosts,
    /// no algorithms, a hard add lifetime of `acq_expires`). Nothing is
    /// sent to any group: only the asking socket learns of it, by the
    /// state as a `NEWSA` record. `xfrm_alloc_spi`: a state with an SPI
    /// keeps it; a single SPI in use is `ENOENT` (the acquire state
    /// stays, without an SPI); a range is drawn from (at random in Linux,
    /// from a counter here) until a free SPI is found.
    pub(super) fn alloc_spi(&mut self, m: &Msg<'_>, port: u32, now: u64) -> Result<Vec<u8>, i32> {
        let (p, attrs) = m.split(USERSPI_INFO_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        let (min, max) = (u32_at(p, USERSA_INFO_LEN), u32_at(p, USERSA_INFO_LEN + 4));
        // verify_spi_info.
        match p[sa_off::PROTO] {
            IPPROTO_AH | IPPROTO_ESP => {}
            IPPROTO_COMP if max < 0x10000 => {}
            _ => return Err(EINVAL),
        }
        if min > max {
            return Err(EINVAL);
        }
        let family = u16::from_ne_bytes([p[sa_off::FAMILY], p[sa_off::FAMILY + 1]]);
        let daddr = &p[sa_off::DADDR..sa_off::DADDR + 16];
        let mark = mark_of(&tb);
        let mv = mark.v & mark.m;
        let if_id = u32_attr(&tb, attr::IF_ID).unwrap_or(0);
        let seq = u32_at(p, sa_off::SEQ);
        let by_seq = self.states.iter().position(|s| {
            seq != 0
                && s.larval
                && u32_at(&s.info, sa_off::SEQ) == seq
                && mv & s.mark.m == s.mark.v
                && addr_eq(s.daddr(), daddr, family)
        });
        let i = match by_seq.or_else(|| self.find_acq(p, mark, if_id)) {
            Some(i) => i,
            None => {
                self.states.insert(0, acquire(p, mark, if_id, now));
                0
            }
        };
        if self.states[i].spi() == [0; 4] {
            let (proto, fam) = (self.states[i].proto(), self.states[i].family());
            let mut d = [0u8; 16];
            d.copy_from_slice(self.states[i].daddr());
            let free = |k: &XfrmKernel, spi: u32| {
                k.lookup(fam, &d, spi.to_be_bytes(), proto, mv).is_none()
            };
            let spi = if min == max {
                free(self, min).then_some(min)
            } else {
                let span = u64::from(max - min) + 1;
                (0..span).find_map(|_| {
                    self.spi_draws = self.spi_draws.wrapping_add(1);
                    let r = self.spi_draws.wrapping_mul(0x9e37_79b9) as u64 % span;
                    let spi = min + r as u32;
                    free(self, spi).then_some(spi)
                })
            };
            let spi = spi.ok_or(ENOENT)?;
            self.states[i].info[sa_off::SPI..sa_off::SPI + 4].copy_from_slice(&spi.to_be_bytes());
        }
        // xfrm_state_netlink: the state, to the asking socket.
        Ok(self.states[i].record(msg::NEWSA, m.seq(), port, 0))
    }

    /// `xfrm_user_state_lookup`: by SPI for the IPsec protocols; by
    /// source address (`XFRMA_SRCADDR`, else `EINVAL`) for others.
    fn user_lookup(&self, id: &[u8], tb: &[Option<&[u8]>]) -> Result<usize, i32> {
        let mark = mark_of(tb);
        let mark = mark.v & mark.m;
        let family = u16::from_ne_bytes([id[20], id[21]]);
        let proto = id[22];
        if proto_match(proto, IPSEC_PROTO_ANY) {
            let mut spi = [0u8; 4];
            spi.copy_from_slice(&id[16..20]);
            return self
                .lookup(family, &id[..16], spi, proto, mark)
                .ok_or(ESRCH);
        }
        let saddr = tb[usize::from(XFRMA_SRCADDR)].ok_or(EINVAL)?;
        self.states
            .iter()
            .position(|s| {
                s.family() == family
                    && s.proto() == proto
                    && addr_eq(s.daddr(), &id[..16], family)
                    && addr_eq(s.saddr(), saddr, family)
                    && mark & s.mark.m == s.mark.v
            })
            .ok_or(ESRCH)
    }

    /// `xfrm_del_sa`.
    pub(super) fn del_sa(&mut self, m: &Msg<'_>) -> Result<(), i32> {
        let (id, attrs) = m.split(USERSA_ID_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        let i = self.user_lookup(id, &tb)?;
        let s = self.states.remove(i);
        self.notify(group::SA, s.delete_event(m.seq(), m.pid()));
        Ok(())
    }

    /// `xfrm_get_sa`'s lookup.
    pub(super) fn find_sa(&self, m: &Msg<'_>) -> Result<&State, i32> {
        let (id, attrs) = m.split(USERSA_ID_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        Ok(&self.states[self.user_lookup(id, &tb)?])
    }

    /// `xfrm_flush_sa` (`xfrm_state_flush`): every state of the protocol;
    /// an empty flush succeeds without an event.
    pub(super) fn flush_sa(&mut self, m: &Msg<'_>) -> Result<(), i32> {
        let (p, _) = m.split(1).map_err(|_| EINVAL)?;
        let proto = p[0];
        let before = self.states.len();
        self.states.retain(|s| !proto_match(s.proto(), proto));
        if self.states.len() == before {
            return Ok(());
        }
        let mut ev = Builder::new(msg::FLUSHSA, 0).raw(&[proto]).finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut ev, m.seq(), m.pid());
        self.notify(group::SA, ev);
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn ae_lookup<'m>(&self, m: &Msg<'m>) -> Result<(usize, [Option<&'m [u8]>; ATTR_MAX + 1]), i32> {
        let (id, attrs) = m.split(AEVENT_ID_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        let mark = mark_of(&tb);
        let mut spi = [0u8; 4];
        spi.copy_from_slice(&id[16..20]);
        let family = u16::from_ne_bytes([id[20], id[21]]);
        let i = self
            .lookup(family, &id[..16], spi, id[22], mark.v & mark.m)
            .ok_or(ESRCH)?;
        Ok((i, tb))
    }

    /// `xfrm_new_ae`: set a state's counters and replay state; needs
    /// `NLM_F_REPLACE` and something to set. The event goes to the
    /// replay-event group.
    pub(super) fn new_ae(&mut self, m: &Msg<'_>) -> Result<(), i32> {
        // Checked before the lookup: something to set, and NLM_F_REPLACE.
        let (_, attrs) = m.split(AEVENT_ID_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        let any = [
            attr::LTIME_VAL,
            attr::REPLAY_VAL,
            attr::REPLAY_ESN_VAL,
            attr::ETIMER_THRESH,
            attr::REPLAY_THRESH,
        ]
        .iter()
        .any(|&k| tb[usize::from(k)].is_some());
        if !any || m.flags() & NLM_F_REPLACE == 0 {
            return Err(EINVAL);
        }
        let (i, tb) = self.ae_lookup(m)?;
        let s = &mut self.states[i];
        // xfrm_replay_verify_len: an ESN state takes an ESN state of its
        // own size and a window its bitmap holds. An ESN attribute for a
        // legacy state is refused here (6.1 has no check of its own).
        if let Some(re) = tb[usize::from(attr::REPLAY_ESN_VAL)] {
            let Replay::Esn(r) = &s.replay else {
                return Err(EINVAL);
            };
            let ulen = REPLAY_ESN_LEN + 4 * u32_at(re, 0) as usize;
            if re.len() < ulen || r.len() != ulen || u32_at(re, 20) > u32_at(re, 0) * 32 {
                return Err(EINVAL);
            }
        }
        s.update_ae(&tb, true);
        let ev = s.aevent(XFRM_AE_CU, m.seq(), m.pid());
        self.notify(group::AEVENTS, ev);
        Ok(())
    }

    /// `xfrm_get_ae`: the counters, to the asking socket (the header's
    /// port as `build_aevent` writes it).
    pub(super) fn get_ae(&self, m: &Msg<'_>) -> Result<Vec<u8>, i32> {
        let (i, _) = self.ae_lookup(m)?;
        let flags = u32_at(&m.payload()[40..44], 0);
        Ok(self.states[i].aevent(flags, m.seq(), m.pid()))
    }

    /// A lifetime of the state `key` ran out (`xfrm_timer_handler`): an
    /// `EXPIRE` to the expire group (port 0); a hard one deletes the state
    /// without a delete event. False if there is no such state.
    pub fn expire(&mut self, key: &SaKey, hard: bool) -> bool {
        let Some(i) = self.states.iter().position(|s| s.key() == *key) else {
            return false;
        };
        let ev = self.states[i].expire_event(hard);
        if hard {
            self.states.remove(i);
        }
        self.notify(group::EXPIRE, ev);
        true
    }

    /// Acquire states whose hard add lifetime (`acq_expires`, set by
    /// `__find_acq_core`) ran out by `now` (seconds): Linux's
    /// `xfrm_timer_handler` deletes each (`__xfrm_state_delete`, no
    /// delete event) and, as it holds an SPI, reports a hard `EXPIRE`
    /// (`km_state_expired(x, 1, 0)`; Linux 6.1 `net/xfrm/xfrm_state.c`).
    /// Without this a slave keeps the SPI a past master's keying daemon
    /// reserved, and refuses the state a later master adds with it for
    /// ever. An acquire state without an SPI only turns `EXPIRED` in Linux
    /// (never made by the world here): it stays. Returns how many expired.
    pub fn expire_acquires(&mut self, now: u64) -> usize {
        let due = |s: &State| {
            let u64_at =
                |at: usize| u64::from_ne_bytes(s.info[at..at + 8].try_into().unwrap_or([0; 8]));
            let hard = u64_at(sa_off::LFT + 40);
            s.larval
                && s.spi() != [0; 4]
                && hard != 0
                && u64_at(sa_off::CURLFT + 16).saturating_add(hard) <= now
        };
        let mut n = 0;
        while let Some(i) = self.states.iter().position(due) {
            let ev = self.states[i].expire_event(true);
            self.states.remove(i);
            self.notify(group::EXPIRE, ev);
            n += 1;
        }
        n
    }

    /// Sends `packets` packets of `bytes` bytes each on the outbound state
    /// `key`: each takes the next outbound sequence number, and the
    /// counters grow (`xfrm_replay_overflow`: a 32-bit number does not
    /// wrap, `EOVERFLOW`; neither does a 64-bit one). Returns the first
    /// and last numbers used.
    pub fn send(
        &mut self,
        key: &SaKey,
        packets: u64,
        bytes: u64,
        now: u64,
    ) -> Result<(u64, u64), i32> {
        // Only a valid state carries packets (xfrm_state_find): never an
        // acquire state.
        let s = self
            .states
            .iter_mut()
            .find(|s| !s.larval && s.key() == *key)
            .ok_or(ESRCH)?;
        let first = s.replay.oseq() + 1;
        let last = s.replay.oseq().checked_add(packets).ok_or(EOVERFLOW)?;
        if matches!(s.replay, Replay::Legacy(_)) && last > u64::from(u32::MAX) {
            return Err(EOVERFLOW);
        }
        // xfrm_replay_overflow, per packet: with a listener on the
        // replay-event group (xfrm_aevent_is_on), xfrm_replay_notify
        // reports when the number moved by the threshold since the last
        // report, and with a threshold of 0 at every packet (its test
        // `x->replay_maxdiff && ...` keeps quiet only for a nonzero
        // one). The event timer (XFRM_TIME_DEFER) is not modelled: it
        // only adds events, so the simulated master carries less often
        // than Linux's.
        let mut events = Vec::new();
        for n in first..=last {
            s.replay.set_oseq(n);
            if self.aevents_on && (s.rthr == 0 || n - s.p_oseq >= u64::from(s.rthr)) {
                s.p_oseq = n;
                events.push(s.aevent(XFRM_AE_CR, 0, 0));
            }
        }
        let c = sa_off::CURLFT;
        let add = |info: &mut [u8; USERSA_INFO_LEN], at: usize, by: u64| {
            let v = u64::from_ne_bytes(info[at..at + 8].try_into().unwrap_or([0; 8]));
            info[at..at + 8].copy_from_slice(&v.saturating_add(by).to_ne_bytes());
        };
        add(&mut s.info, c, bytes.saturating_mul(packets));
        add(&mut s.info, c + 8, packets);
        s.info[c + 24..c + 32].copy_from_slice(&now.to_ne_bytes());
        for e in events {
            self.notify(group::AEVENTS, e);
        }
        Ok((first, last))
    }

    /// The replay-event threshold of the state `key` (`replay_maxdiff`).
    pub fn replay_threshold(&self, key: &SaKey) -> Option<u32> {
        self.states.iter().find(|s| s.key() == *key).map(|s| s.rthr)
    }

    /// Whether the kernel holds the state `key`, complete (not larval).
    pub fn holds(&self, key: &SaKey) -> bool {
        self.states.iter().any(|s| !s.larval && s.key() == *key)
    }

    /// The outbound sequence number the state `key` last used.
    pub fn oseq(&self, key: &SaKey) -> Option<u64> {
        self.states
            .iter()
            .find(|s| s.key() == *key)
            .map(|s| s.replay.oseq())
    }
}
