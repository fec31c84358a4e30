//! The keying daemon of the XFRM swarm: charon on the carp master,
//! writing states (some reserved with `ALLOCSPI` first) and policies into
//! its kernel, deleting some, and sending bursts of outbound traffic
//! whose sequence numbers the replay oracle checks.

use sasyncd_core::xfrm::nl::{set_seq_pid, Builder, Msg, NLM_F_ACK, NLM_F_REQUEST};
use sasyncd_core::xfrm::{
    attr, msg, sa_off, Mark, SaKey, AF_INET, IPPROTO_ESP, USERPOLICY_INFO_LEN, USERSA_INFO_LEN,
};

use crate::rng::Rng;

use super::{XfrmWorld, REPLAY_MARGIN};

/// The keying daemon's netlink port (charon's, per host: 7000 + i).
const CHARON: u32 = 7000;

/// The most packets one burst of the workload sends (33): what the margin
/// covers besides the threshold (sasyncd.conf(5), `replay margin`). A
/// slave's number lags by up to the threshold less one (no event below
/// it, `xfrm_replay_notify`, Linux 6.1 `net/xfrm/xfrm_replay.c`), and a
/// burst sent just before a takeover is not carried at all while its
/// report crosses the network: the two together must stay within the
/// margin, or a real kernel replays too. Larger bursts fail the oracle for
/// traffic no node could carry (seed 3609874661: 29 packets unreported,
/// then 44 in one burst 7 ms before the takeover, its report 2 ms late).
pub(super) fn max_burst() -> u64 {
    let threshold = u64::from(sasyncd_core::xfrm::replay::event_threshold(REPLAY_MARGIN));
    REPLAY_MARGIN + 1 - threshold
}

impl XfrmWorld {
    /// The keying daemon on the master `m`: one change to its kernel.
    pub(super) fn ike_step(&mut self, m: usize) {
        let port = CHARON + m as u32;
        let r = self.rng.below(100);
        let req = if !self.reserved.is_empty() && self.rng.chance(0.3) {
            // The peer answered: the reserved SPI is completed.
            let (spi, mark) = self
                .reserved
                .swap_remove(self.rng.index(self.reserved.len()));
            self.spis.push((spi, mark));
            state_request(msg::UPDSA, spi, mark, &mut self.rng)
        } else if r < 40 || self.spis.is_empty() {
            let spi = 0x1000 + self.rng.u32() % 0x00ff_ffff;
            let mark = if self.rng.chance(0.3) {
                Mark { v: 5, m: 0xff }
            } else {
                Mark::default()
            };
            if self.rng.chance(0.6) {
                // How charon installs an inbound SA: reserve its SPI
                // (a larval state no watcher hears of), complete it with
                // UPDSA once the peer answers — at once, or some steps
                // later (a snapshot may see the larval state meanwhile).
                let mut req = alloc_spi_request(spi, mark);
                set_seq_pid(&mut req, self.ike_writes as u32 + 1, port);
                let secs = self.secs();
                let replies = self.hosts[m].kernel.handle(&req, port, secs);
                self.ike_writes += 1;
                // Refused (the SPI is taken): the daemon picks another
                // next time.
                if replies
                    .iter()
                    .any(|r| Msg::new(r).is_ok_and(|r| r.kind() == msg::NEWSA))
                {
                    if self.rng.chance(0.5) {
                        self.reserved.push((spi, mark));
                        return;
                    }
                    self.spis.push((spi, mark));
                    state_request(msg::UPDSA, spi, mark, &mut self.rng)
                } else {
                    return;
                }
            } else {
                self.spis.push((spi, mark));
                state_request(msg::NEWSA, spi, mark, &mut self.rng)
            }
        } else if r < 55 {
            let (spi, mark) = self.spis[self.rng.index(self.spis.len())];
            state_request(msg::UPDSA, spi, mark, &mut self.rng)
        } else if r < 70 {
            let (spi, mark) = self.spis.swap_remove(self.rng.index(self.spis.len()));
            state_delete(spi, mark)
        } else if r < 85 {
            let net = self.rng.below(8) as u8;
            if !self.policies.contains(&net) {
                self.policies.push(net);
            }
            policy_request(msg::UPDPOLICY, net, self.rng.range(1..1000) as u32)
        } else if r < 90 && !self.policies.is_empty() {
            let net = self
                .policies
                .swap_remove(self.rng.index(self.policies.len()));
            policy_request(msg::DELPOLICY, net, 0)
        } else {
            // Outbound traffic on a state the master holds.
            let (spi, mark) = self.spis[self.rng.index(self.spis.len())];
            let key = sa_key(spi, mark);
            let (n, secs) = (self.rng.range(1..max_burst() + 1), self.secs());
            if let Ok((first, last)) = self.hosts[m].kernel.send(&key, n, 1000, secs) {
                self.echo(|| {
                    format!(
                        "n{m} sends spi {:#x} {first}..={last}",
                        u32::from_be(key.spi)
                    )
                });
                self.check_seq(m, key, first, last);
            }
            return;
        };
        let mut req = req;
        set_seq_pid(&mut req, self.ike_writes as u32 + 1, port);
        let secs = self.secs();
        // The keying daemon's refusals (a state it lost to a failover,
        // a policy already gone) are its business, not sasyncd's.
        let _ = self.hosts[m].kernel.handle(&req, port, secs);
        self.ike_writes += 1;
    }
}

fn sa_key(spi: u32, mark: Mark) -> SaKey {
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[192, 0, 2, 2]);
    SaKey {
        family: AF_INET,
        daddr,
        spi: spi.to_be(),
        proto: IPPROTO_ESP,
        mark,
    }
}

/// A keying daemon's `NEWSA`/`UPDSA`: ESP tunnel 192.0.2.1 -> 192.0.2.2,
/// fresh keys, a random byte lifetime.
fn state_request(kind: u16, spi: u32, mark: Mark, rng: &mut Rng) -> Vec<u8> {
    let mut info = [0u8; USERSA_INFO_LEN];
    info[sa_off::DADDR..sa_off::DADDR + 4].copy_from_slice(&[192, 0, 2, 2]);
    info[sa_off::SPI..sa_off::SPI + 4].copy_from_slice(&spi.to_be_bytes());
    info[sa_off::PROTO] = IPPROTO_ESP;
    info[sa_off::SADDR..sa_off::SADDR + 4].copy_from_slice(&[192, 0, 2, 1]);
    // Byte and packet limits "infinite" (as ip writes them); time limits
    // 0: none (u64::MAX would expire the entry at once on Linux, as the
    // guest showed).
    for f in 0..4 {
        let at = sa_off::LFT + 8 * f;
        info[at..at + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    }
    let hard_bytes = rng.range(1 << 20..1 << 30);
    info[sa_off::LFT + 8..sa_off::LFT + 16].copy_from_slice(&hard_bytes.to_ne_bytes());
    info[sa_off::REQID..sa_off::REQID + 4].copy_from_slice(&(spi & 0xff).to_ne_bytes());
    info[sa_off::FAMILY..sa_off::FAMILY + 2].copy_from_slice(&AF_INET.to_ne_bytes());
    info[sa_off::MODE] = 1;
    // Every fourth SA uses extended sequence numbers, every eighth starts
    // just below 2^32 (the jump crosses into the high word); each keeps
    // its own replay-event threshold (the kernel default, 8 or 32).
    let esn = spi.is_multiple_of(4);
    info[sa_off::REPLAY_WINDOW] = if esn { 0 } else { 32 };
    if esn {
        info[sa_off::FLAGS] |= 128;
    }
    let mut crypt = vec![0u8; 68 + 16];
    crypt[..8].copy_from_slice(b"cbc(aes)");
    crypt[64..68].copy_from_slice(&128u32.to_ne_bytes());
    rng.fill(&mut crypt[68..]);
    let mut auth = vec![0u8; 72 + 32];
    auth[..12].copy_from_slice(b"hmac(sha256)");
    auth[64..68].copy_from_slice(&256u32.to_ne_bytes());
    auth[68..72].copy_from_slice(&128u32.to_ne_bytes());
    rng.fill(&mut auth[72..]);
    let mut b = Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&info)
        .attr(attr::ALG_AUTH_TRUNC, &auth)
        .attr(attr::ALG_CRYPT, &crypt);
    if mark != Mark::default() {
        b = b.attr(attr::MARK, &mark.to_bytes());
    }
    if esn {
        let oseq: u64 = if spi.is_multiple_of(8) {
            0xffff_ffc0
        } else {
            0
        };
        let words = [1, oseq as u32, 0, (oseq >> 32) as u32, 0, 32, 0];
        let r: Vec<u8> = words.iter().flat_map(|w: &u32| w.to_ne_bytes()).collect();
        b = b.attr(attr::REPLAY_ESN_VAL, &r);
    }
    match spi % 3 {
        1 => b = b.attr(attr::REPLAY_THRESH, &8u32.to_ne_bytes()),
        2 => b = b.attr(attr::REPLAY_THRESH, &32u32.to_ne_bytes()),
        _ => {}
    }
    b.finish()
}

/// charon's `ALLOCSPI` for the inbound state [`state_request`] then
/// writes for `spi` (its hosts, request id, mode and mark): a range of one
/// SPI, so the world decides which.
fn alloc_spi_request(spi: u32, mark: Mark) -> Vec<u8> {
    let mut p = [0u8; USERSA_INFO_LEN + 8];
    p[sa_off::DADDR..sa_off::DADDR + 4].copy_from_slice(&[192, 0, 2, 2]);
    p[sa_off::PROTO] = IPPROTO_ESP;
    p[sa_off::SADDR..sa_off::SADDR + 4].copy_from_slice(&[192, 0, 2, 1]);
    p[sa_off::REQID..sa_off::REQID + 4].copy_from_slice(&(spi & 0xff).to_ne_bytes());
    p[sa_off::FAMILY..sa_off::FAMILY + 2].copy_from_slice(&AF_INET.to_ne_bytes());
    p[sa_off::MODE] = 1;
    p[USERSA_INFO_LEN..USERSA_INFO_LEN + 4].copy_from_slice(&spi.to_ne_bytes());
    p[USERSA_INFO_LEN + 4..].copy_from_slice(&spi.to_ne_bytes());
    let mut b = Builder::new(crate::xfrm_kernel::ALLOCSPI, NLM_F_REQUEST).raw(&p);
    if mark != Mark::default() {
        b = b.attr(attr::MARK, &mark.to_bytes());
    }
    b.finish()
}

fn state_delete(spi: u32, mark: Mark) -> Vec<u8> {
    let mut id = [0u8; 24];
    id[..4].copy_from_slice(&[192, 0, 2, 2]);
    id[16..20].copy_from_slice(&spi.to_be_bytes());
    id[20..22].copy_from_slice(&AF_INET.to_ne_bytes());
    id[22] = IPPROTO_ESP;
    let mut b = Builder::new(msg::DELSA, NLM_F_REQUEST | NLM_F_ACK).raw(&id);
    if mark != Mark::default() {
        b = b.attr(attr::MARK, &mark.to_bytes());
    }
    b.finish()
}

/// An out policy 10.1.0.0/24 -> 10.2.`net`.0/24 with one ESP tunnel
/// template (`UPDPOLICY`), or its delete by selector (`DELPOLICY`).
fn policy_request(kind: u16, net: u8, priority: u32) -> Vec<u8> {
    let mut sel = [0u8; 56];
    sel[..4].copy_from_slice(&[10, 2, net, 0]);
    sel[16..20].copy_from_slice(&[10, 1, 0, 0]);
    sel[40..42].copy_from_slice(&AF_INET.to_ne_bytes());
    sel[42] = 24;
    sel[43] = 24;
    if kind == msg::DELPOLICY {
        let mut id = [0u8; 64];
        id[..56].copy_from_slice(&sel);
        id[60] = 1;
        return Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK)
            .raw(&id)
            .finish();
    }
    let mut info = [0u8; USERPOLICY_INFO_LEN];
    info[..56].copy_from_slice(&sel);
    // Byte and packet limits "infinite" (as ip writes them); time limits
    // 0: none (u64::MAX would expire the entry at once on Linux, as the
    // guest showed).
    for f in 0..4 {
        let at = 56 + 8 * f;
        info[at..at + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    }
    info[152..156].copy_from_slice(&priority.to_ne_bytes());
    info[160] = 1;
    let mut t = [0u8; 64];
    t[..4].copy_from_slice(&[192, 0, 2, 2]);
    t[20] = IPPROTO_ESP; // xfrm_id.proto
    t[24..26].copy_from_slice(&AF_INET.to_ne_bytes());
    t[28..32].copy_from_slice(&[192, 0, 2, 1]);
    t[48] = 1;
    t[52..64].fill(0xff);
    Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&info)
        .attr(attr::TMPL, &t)
        .finish()
}
