//! The simulated XFRM kernel against the rules it models, and the XFRM
//! dialect's rewrites against it.

use super::errno::*;
use super::*;
use sasyncd_core::dialect::{Classified, Dialect, Scope};
use sasyncd_core::node::Table;
use sasyncd_core::pfkey::FilterPolicy;
use sasyncd_core::state::FlushMode;
use sasyncd_core::xfrm::nl::{set_seq_pid, to_vec, NLM_F_REPLACE};
use sasyncd_core::xfrm::testutil::newsa;
use sasyncd_core::xfrm::{
    attr, rewrite, sa_off, PolicyView, SaView, AEVENT_ID_LEN, AF_INET, IPPROTO_ESP,
    LIFETIME_CUR_LEN, USERPOLICY_ID_LEN, USERPOLICY_INFO_LEN, USERSA_INFO_LEN,
};

const NOW: u64 = 1_800_000_000;

/// A request as a writer with port `pid` sends it (sequence 1).
fn req(mut b: Vec<u8>, pid: u32) -> Vec<u8> {
    set_seq_pid(&mut b, 1, pid);
    b
}

/// The errno of a single reply (0: acknowledged).
fn errno_of(replies: &[Vec<u8>]) -> i32 {
    assert_eq!(replies.len(), 1, "one reply");
    Msg::new(&replies[0])
        .unwrap()
        .error()
        .expect("an NLMSG_ERROR")
}

/// The add request for [`newsa`]'s state with SPI `spi`.
fn add_sa(spi: u32) -> Vec<u8> {
    let rec = newsa(msg::NEWSA, spi);
    let m = Msg::new(&rec).unwrap();
    to_vec(|b| rewrite::state_write(&SaView::from_new(&m).unwrap(), false, b)).unwrap()
}

/// A policy out 10.1.0.0/24 -> 10.2.0.0/24 with one ESP tunnel template,
/// as a `kind` message.
fn policy(kind: u16, dir: u8, index: u32, priority: u32) -> Vec<u8> {
    let mut info = [0u8; USERPOLICY_INFO_LEN];
    info[..4].copy_from_slice(&[10, 2, 0, 0]);
    info[16..20].copy_from_slice(&[10, 1, 0, 0]);
    info[40..42].copy_from_slice(&AF_INET.to_ne_bytes());
    info[42] = 24;
    info[43] = 24;
    info[pol_off_priority()..pol_off_priority() + 4].copy_from_slice(&priority.to_ne_bytes());
    info[156..160].copy_from_slice(&index.to_ne_bytes());
    info[160] = dir;
    let mut t = [0u8; 64];
    t[..4].copy_from_slice(&[192, 0, 2, 2]);
    t[20] = IPPROTO_ESP; // xfrm_id.proto
    t[28..32].copy_from_slice(&[192, 0, 2, 1]);
    t[44..48].copy_from_slice(&7u32.to_ne_bytes());
    t[48] = 1; // tunnel
    t[52..64].fill(0xff);
    Builder::new(kind, NLM_F_REQUEST | NLM_F_ACK)
        .raw(&info)
        .attr(attr::TMPL, &t)
        .attr(attr::MARK, &Mark { v: 5, m: 0xff }.to_bytes())
        .finish()
}

fn pol_off_priority() -> usize {
    sasyncd_core::xfrm::pol_off::PRIORITY
}

use sasyncd_core::xfrm::Mark;

#[test]
fn an_add_is_acknowledged_dumped_and_announced_with_the_writers_port() {
    let mut k = XfrmKernel::new();
    let r = k.handle(&req(add_sa(0x42), 4242), 99, NOW);
    assert_eq!(errno_of(&r), 0);
    let ack = Msg::new(&r[0]).unwrap();
    // The acknowledgement goes to the socket's port, echoing the header.
    assert_eq!((ack.pid(), ack.seq(), ack.flags()), (99, 1, NLM_F_CAPPED));
    assert_eq!(ack.payload().len(), 4 + HDR_LEN);
    let ev = k.take_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].group, group::SA);
    let e = Msg::new(&ev[0].msg).unwrap();
    // The event names the port the request's header carried.
    assert_eq!((e.kind(), e.pid(), e.seq()), (msg::NEWSA, 4242, 1));
    let d = Xfrm;
    assert_eq!(d.identity(&ev[0].msg), d.identity(&newsa(msg::NEWSA, 0x42)));
    // A dump: the record, then DONE, to the asking socket.
    let dump = k.handle(
        &req(to_vec(|b| rewrite::dump_request(msg::GETSA, b)).unwrap(), 7),
        7,
        NOW,
    );
    assert_eq!(dump.len(), 2);
    let rec = Msg::new(&dump[0]).unwrap();
    assert_eq!(
        (rec.kind(), rec.flags(), rec.pid()),
        (msg::NEWSA, NLM_F_MULTI, 7)
    );
    assert_eq!(Msg::new(&dump[1]).unwrap().kind(), NLMSG_DONE);
    let sa = SaView::from_new(&rec).unwrap();
    // copy_to_user_state_extra: both auth forms, the replay state.
    let kinds: Vec<u16> = sa.attrs.clone().map(|a| a.unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            attr::ALG_AUTH,
            attr::ALG_AUTH_TRUNC,
            attr::ALG_CRYPT,
            attr::MARK,
            attr::REPLAY_VAL
        ]
    );
}

#[test]
fn the_refusals_linux_gives() {
    let mut k = XfrmKernel::new();
    assert_eq!(errno_of(&k.handle(&req(add_sa(0x42), 1), 1, NOW)), 0);
    // NEWSA of an existing state: EEXIST, the request echoed whole.
    let again = req(add_sa(0x42), 1);
    let r = k.handle(&again, 1, NOW);
    assert_eq!(errno_of(&r), EEXIST);
    assert_eq!(&Msg::new(&r[0]).unwrap().payload()[4..], &again[..]);
    // UPDSA of a missing one: ESRCH.
    let rec = newsa(msg::NEWSA, 0x43);
    let m = Msg::new(&rec).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    let upd = to_vec(|b| rewrite::state_write(&sa, true, b)).unwrap();
    assert_eq!(errno_of(&k.handle(&upd, 1, NOW)), ESRCH);
    // DELSA of a missing one: ESRCH; DELPOLICY of a missing one: ENOENT.
    let del = to_vec(|b| rewrite::state_delete(&sa, b)).unwrap();
    assert_eq!(errno_of(&k.handle(&del, 1, NOW)), ESRCH);
    let pol = policy(msg::NEWPOLICY, 1, 0, 100);
    let pm = Msg::new(&pol).unwrap();
    let pdel = to_vec(|b| rewrite::policy_delete(&PolicyView::from_new(&pm).unwrap(), b)).unwrap();
    assert_eq!(errno_of(&k.handle(&pdel, 1, NOW)), ENOENT);
    // The same state under another mark is another state.
    let mut other = add_sa(0x42);
    let n = other.len();
    let mark_at = (HDR_LEN + USERSA_INFO_LEN..n)
        .find(|&i| other[i..i + 8] == Mark { v: 5, m: 0xff }.to_bytes())
        .unwrap();
    other[mark_at] = 6;
    assert_eq!(errno_of(&k.handle(&other, 1, NOW)), 0);
    assert_eq!(k.counts(), (2, 0));
    // Nothing refused left an event.
    assert_eq!(k.take_events().len(), 2);
    assert_eq!(k.refused()[&EEXIST], 1);
}

#[test]
fn malformed_and_unknown_requests_are_refused_not_panics() {
    let mut k = XfrmKernel::new();
    let short = Builder::new(msg::NEWSA, NLM_F_REQUEST)
        .raw(&[0; 100])
        .finish();
    assert_eq!(errno_of(&k.handle(&short, 1, NOW)), EINVAL);
    let past = Builder::new(0x40, NLM_F_REQUEST).finish();
    assert_eq!(errno_of(&k.handle(&past, 1, NOW)), EINVAL);
    // Not a request: ignored.
    let mut not = add_sa(1);
    not[6] = 0;
    not[7] = 0;
    assert!(k.handle(&not, 1, NOW).is_empty());
    // An unknown algorithm: ENOSYS; a truncation past the full ICV: EINVAL.
    let mut bad = add_sa(2);
    let at = bad.windows(8).position(|w| w == b"cbc(aes)").unwrap();
    bad[at..at + 8].copy_from_slice(b"cbc(xyz)");
    assert_eq!(errno_of(&k.handle(&bad, 1, NOW)), ENOSYS);
    let mut long = add_sa(3);
    let at = long.windows(12).position(|w| w == b"hmac(sha256)").unwrap();
    long[at + 68..at + 72].copy_from_slice(&512u32.to_ne_bytes());
    assert_eq!(errno_of(&k.handle(&long, 1, NOW)), EINVAL);
    // ESP with compression, or without any algorithm: EINVAL.
    let rec = newsa(msg::NEWSA, 4);
    let info = &rec[HDR_LEN..HDR_LEN + USERSA_INFO_LEN];
    let bare = Builder::new(msg::NEWSA, NLM_F_REQUEST).raw(info).finish();
    assert_eq!(errno_of(&k.handle(&bare, 1, NOW)), EINVAL);
    // Random bytes: never a panic.
    let mut rng = crate::rng::Rng::new(7);
    for _ in 0..2000 {
        let n = (rng.u64() % 400) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| rng.u64() as u8).collect();
        if b.len() >= HDR_LEN {
            let len = (b.len() as u32).to_ne_bytes();
            b[..4].copy_from_slice(&len);
            b[4] = 0x10 + (b[4] % 0x18);
            b[5] = 0;
            b[6] |= 1;
        }
        let _ = k.handle(&b, 1, NOW);
    }
    assert_eq!(k.counts().0, 0);
}

#[test]
fn an_add_takes_the_counters_and_replay_state_it_is_given() {
    let mut k = XfrmKernel::new();
    // rewrite::state_write adds XFRMA_LTIME_VAL from the record's curlft
    // (3000 bytes, 20 packets, added at 1 700 000 000).
    let mut add = add_sa(0x42);
    add = {
        let m = Msg::new(&add).unwrap();
        let sa = SaView::from_new(&m).unwrap();
        let mut b = Builder::new(msg::NEWSA, NLM_F_REQUEST | NLM_F_ACK).raw(sa.info);
        for a in sa.attrs.clone().flatten() {
            b = b.attr(a.kind, a.data);
        }
        let mut replay = [0u8; 12];
        replay[..4].copy_from_slice(&1000u32.to_ne_bytes());
        b.attr(attr::REPLAY_VAL, &replay).finish()
    };
    assert_eq!(errno_of(&k.handle(&add, 1, NOW)), 0);
    let rec = &k.dump_states()[0];
    let m = Msg::new(rec).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    assert_eq!(sa.cur_bytes_packets(), (3000, 20));
    let add_time = &sa.info[sa_off::CURLFT + 16..sa_off::CURLFT + 24];
    assert_eq!(add_time, &1_700_000_000u64.to_ne_bytes());
    let key = sa.key();
    assert_eq!(k.oseq(&key), Some(1000));
    // Without XFRMA_LTIME_VAL the state starts empty, added now.
    let rec2 = newsa(msg::NEWSA, 0x43);
    let m2 = Msg::new(&rec2).unwrap();
    let bare = {
        let sa = SaView::from_new(&m2).unwrap();
        let mut b = Builder::new(msg::NEWSA, NLM_F_REQUEST).raw(sa.info);
        for a in sa.attrs.clone().flatten() {
            if a.kind != attr::LASTUSED && a.kind != attr::OFFLOAD_DEV {
                b = b.attr(a.kind, a.data);
            }
        }
        b.finish()
    };
    assert!(
        k.handle(&bare, 1, NOW).is_empty(),
        "no ack asked, none sent"
    );
    let recs = k.dump_states();
    let newest = SaView::from_new(&Msg::new(&recs[0]).unwrap())
        .unwrap()
        .info
        .to_vec();
    assert_eq!(newest[sa_off::CURLFT..sa_off::CURLFT + 16], [0u8; 16]);
    assert_eq!(
        newest[sa_off::CURLFT + 16..sa_off::CURLFT + 24],
        NOW.to_ne_bytes()
    );
    // Outbound traffic moves the sequence number; a 32-bit one cannot
    // wrap.
    assert_eq!(k.send(&key, 5, 100, NOW), Ok((1001, 1005)));
    assert_eq!(k.oseq(&key), Some(1005));
    assert_eq!(k.send(&key, u64::from(u32::MAX), 1, NOW), Err(EOVERFLOW));
    // NEWAE sets it (with NLM_F_REPLACE only).
    let m = Msg::new(rec).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    let mut ae = to_vec(|b| rewrite::state_counters(&sa, b)).unwrap();
    assert_eq!(errno_of(&k.handle(&ae, 1, NOW)), 0);
    assert_eq!(k.oseq(&key), Some(1000));
    assert_eq!(k.take_events().last().unwrap().group, group::AEVENTS);
    ae[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    assert_eq!(errno_of(&k.handle(&ae, 1, NOW)), EINVAL);
    assert_ne!(NLM_F_REPLACE, 0);
}

/// The replay events of `k` since the last call: their outbound numbers.
fn replay_events(k: &mut XfrmKernel) -> Vec<u64> {
    k.take_events()
        .into_iter()
        .filter(|e| e.group == group::AEVENTS)
        .filter_map(|e| sasyncd_core::xfrm::replay::event(&e.msg).map(|(_, c)| c.oseq))
        .collect()
}

#[test]
fn replay_events_follow_the_threshold_a_newae_sets() {
    let mut k = XfrmKernel::new();
    k.set_aevents_listened(true);
    let rec = newsa(msg::NEWSA, 0x51);
    assert_eq!(errno_of(&k.handle(&req(add_sa(0x51), 1), 1, NOW)), 0);
    let m = Msg::new(&rec).unwrap();
    let key = SaView::from_new(&m).unwrap().key();
    let rec = &k.dump_states()[0].clone();
    let start = k.oseq(&key).unwrap();
    k.take_events();
    // The sysctl's threshold (net.core.xfrm_aevent_rseqth = 2): an event
    // every 2 packets.
    k.send(&key, 6, 100, NOW).unwrap();
    assert_eq!(replay_events(&mut k), [start + 2, start + 4, start + 6]);
    k.send(&key, 1, 100, NOW).unwrap();
    // The node's thresholds, and nothing else: the replay state is not
    // replaced, and the next event counts from the last one (preplay).
    let mut out = [0u8; 512];
    let n = sasyncd_core::xfrm::replay::thresholds(rec, 64, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(errno_of(&k.handle(&req(out[..n].to_vec(), 1), 1, NOW)), 0);
    assert_eq!(k.oseq(&key), Some(start + 7), "the number stays");
    assert_eq!(replay_events(&mut k), [start + 7], "the setter's own event");
    k.send(&key, 30, 100, NOW).unwrap();
    assert_eq!(replay_events(&mut k), [], "31 packets since the last event");
    k.send(&key, 70, 100, NOW).unwrap();
    assert_eq!(replay_events(&mut k), [start + 38, start + 70, start + 102]);
    // A threshold of 0 reports every packet (xfrm_replay_notify).
    let mut b = Builder::new(msg::NEWAE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE)
        .raw(&out[sasyncd_core::xfrm::nl::HDR_LEN..][..AEVENT_ID_LEN])
        .attr(attr::REPLAY_THRESH, &0u32.to_ne_bytes());
    for a in Msg::new(&out[..n])
        .unwrap()
        .split(AEVENT_ID_LEN)
        .unwrap()
        .1
        .flatten()
    {
        if a.kind == attr::MARK {
            b = b.attr(a.kind, a.data);
        }
    }
    assert_eq!(errno_of(&k.handle(&req(b.finish(), 1), 1, NOW)), 0);
    k.take_events();
    k.send(&key, 3, 100, NOW).unwrap();
    assert_eq!(replay_events(&mut k).len(), 3);
}

#[test]
fn an_update_changes_lifetimes_never_keys_or_counters() {
    let mut k = XfrmKernel::new();
    assert_eq!(errno_of(&k.handle(&add_sa(0x42), 1, NOW)), 0);
    let rec = newsa(msg::NEWSA, 0x42);
    let mut info = rec[HDR_LEN..HDR_LEN + USERSA_INFO_LEN].to_vec();
    info[sa_off::LFT..sa_off::LFT + 8].copy_from_slice(&77u64.to_ne_bytes());
    let m = Msg::new(&rec).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    let mut b = Builder::new(msg::UPDSA, NLM_F_REQUEST | NLM_F_ACK).raw(&info);
    for a in sa.attrs.clone().flatten() {
        let mut data = a.data.to_vec();
        if a.kind == attr::ALG_CRYPT {
            data[68] ^= 0xff; // another key
        }
        if !matches!(a.kind, attr::LASTUSED | attr::OFFLOAD_DEV) {
            b = b.attr(a.kind, &data);
        }
    }
    let upd = b.attr(attr::LTIME_VAL, &[9; LIFETIME_CUR_LEN]).finish();
    assert_eq!(errno_of(&k.handle(&upd, 1, NOW)), 0);
    let after = &k.dump_states()[0];
    let m = Msg::new(after).unwrap();
    let s = SaView::from_new(&m).unwrap();
    assert_eq!(&s.info[sa_off::LFT..sa_off::LFT + 8], &77u64.to_ne_bytes());
    assert_eq!(s.cur_bytes_packets(), (3000, 20), "counters kept");
    let crypt = s.attrs.find(attr::ALG_CRYPT).unwrap();
    assert_eq!(crypt.data[68], 0x11, "the key kept");
    // An encapsulation the state lacks: EINVAL.
    let enc = {
        let mut b = Builder::new(msg::UPDSA, NLM_F_REQUEST | NLM_F_ACK).raw(&info);
        for a in sa.attrs.clone().flatten() {
            if !matches!(a.kind, attr::LASTUSED | attr::OFFLOAD_DEV) {
                b = b.attr(a.kind, a.data);
            }
        }
        b.attr(attr::ENCAP, &[0; 24]).finish()
    };
    assert_eq!(errno_of(&k.handle(&enc, 1, NOW)), EINVAL);
}

#[test]
fn policies_follow_linuxs_identity_and_index_rules() {
    let mut k = XfrmKernel::new();
    let p = req(policy(msg::NEWPOLICY, 1, 0x801, 100), 5);
    assert_eq!(errno_of(&k.handle(&p, 5, NOW)), 0);
    // The requested index was free: kept.
    let dump = k.dump_policies();
    let pv = PolicyView::from_new(&Msg::new(&dump[0]).unwrap())
        .unwrap()
        .index();
    assert_eq!(pv, 0x801);
    // The same selector, direction and mark: EEXIST, whatever the
    // priority.
    let again = policy(msg::NEWPOLICY, 1, 0, 50);
    assert_eq!(errno_of(&k.handle(&again, 5, NOW)), EEXIST);
    // UPDPOLICY replaces it, keeping the index.
    let upd = policy(msg::UPDPOLICY, 1, 0, 50);
    assert_eq!(errno_of(&k.handle(&upd, 5, NOW)), 0);
    let dump = k.dump_policies();
    assert_eq!(dump.len(), 1);
    let m = Msg::new(&dump[0]).unwrap();
    let p = PolicyView::from_new(&m).unwrap();
    assert_eq!((p.index(), p.priority()), (0x801, 50));
    // Another direction is another policy; a taken index is replaced by
    // a generated one of the right direction; an index of another
    // direction is refused.
    let fwd = policy(msg::NEWPOLICY, 2, 0x801, 100);
    assert_eq!(errno_of(&k.handle(&fwd, 5, NOW)), EINVAL);
    let fwd = policy(msg::NEWPOLICY, 2, 0, 100);
    assert_eq!(errno_of(&k.handle(&fwd, 5, NOW)), 0);
    let inn = policy(msg::NEWPOLICY, 0, 0x801 - 1, 100);
    assert_eq!(errno_of(&k.handle(&inn, 5, NOW)), 0);
    let idx: Vec<u32> = k
        .dump_policies()
        .iter()
        .map(|r| PolicyView::from_new(&Msg::new(r).unwrap()).unwrap().index())
        .collect();
    assert_eq!(idx.len(), 3);
    assert_eq!((idx[0] & 7, idx[1] & 7, idx[2]), (0, 2, 0x801));
    // A template of an unknown family: EINVAL.
    let mut bad = policy(msg::NEWPOLICY, 1, 0, 1);
    bad[HDR_LEN + 168 + 4 + 24] = 99;
    bad[HDR_LEN] = 11; // another selector
    assert_eq!(errno_of(&k.handle(&bad, 5, NOW)), EINVAL);
    // A delete by selector: the event carries the policy, the writer's
    // port.
    k.take_events();
    let pm = Msg::new(&dump[0]).unwrap();
    let del = req(
        to_vec(|b| rewrite::policy_delete(&PolicyView::from_new(&pm).unwrap(), b)).unwrap(),
        5,
    );
    assert_eq!(errno_of(&k.handle(&del, 5, NOW)), 0);
    let ev = k.take_events();
    let e = Msg::new(&ev[0].msg).unwrap();
    assert_eq!(
        (e.kind(), e.pid(), ev[0].group),
        (msg::DELPOLICY, 5, group::POLICY)
    );
    let pv = PolicyView::from_del(&e).unwrap();
    assert_eq!(pv.index(), 0x801);
    assert_eq!(e.payload()[..USERPOLICY_ID_LEN][60], 1);
}

#[test]
fn flushes_announce_only_what_they_removed() {
    let mut k = XfrmKernel::new();
    let fs = to_vec(|b| rewrite::flush_states(0, b)).unwrap();
    let fp = to_vec(rewrite::flush_policies).unwrap();
    assert_eq!(errno_of(&k.handle(&fs, 1, NOW)), 0);
    assert_eq!(errno_of(&k.handle(&fp, 1, NOW)), 0);
    assert!(k.take_events().is_empty(), "an empty flush is silent");
    k.handle(&add_sa(1), 1, NOW);
    k.handle(&policy(msg::NEWPOLICY, 1, 0, 1), 1, NOW);
    k.take_events();
    // A flush of AH only leaves the ESP state.
    let ah = to_vec(|b| rewrite::flush_states(51, b)).unwrap();
    assert_eq!(errno_of(&k.handle(&ah, 1, NOW)), 0);
    assert!(k.take_events().is_empty());
    k.handle(&req(fs, 3), 1, NOW);
    k.handle(&req(fp, 3), 1, NOW);
    let ev = k.take_events();
    let kinds: Vec<(u16, u32)> = ev
        .iter()
        .map(|e| {
            let m = Msg::new(&e.msg).unwrap();
            (m.kind(), m.pid())
        })
        .collect();
    assert_eq!(kinds, [(msg::FLUSHSA, 3), (msg::FLUSHPOLICY, 3)]);
    assert_eq!(k.counts(), (0, 0));
}

#[test]
fn a_hard_expiry_deletes_with_an_expire_event_only() {
    let mut k = XfrmKernel::new();
    k.handle(&add_sa(1), 1, NOW);
    k.take_events();
    let key = k.canonical().states.keys().next().copied().unwrap();
    assert!(k.expire(&key, false));
    assert!(k.expire(&key, true));
    assert!(!k.expire(&key, true));
    let ev = k.take_events();
    assert_eq!(ev.len(), 2);
    for (e, hard) in ev.iter().zip([false, true]) {
        let m = Msg::new(&e.msg).unwrap();
        assert_eq!(
            (e.group, m.kind(), m.pid()),
            (group::EXPIRE, msg::EXPIRE, 0)
        );
        assert_eq!(SaView::from_expire(&m).unwrap().1, hard);
    }
    assert_eq!(k.counts(), (0, 0));
}

fn scope(own: u32) -> Scope<'static> {
    Scope {
        policy: FilterPolicy {
            flushmode: FlushMode::Startup,
            skipslave: false,
        },
        peers: &[],
        own,
    }
}

/// The dialect's requests rebuild one simulated kernel's tables in
/// another, from a dump (a snapshot) and from the events (live changes);
/// the slave's own writes come back as its own.
#[test]
fn the_dialect_mirrors_a_kernel_into_another() {
    let d = Xfrm;
    let (mut a, mut b) = (XfrmKernel::new(), XfrmKernel::new());
    const CHARON: u32 = 700;
    const SLAVE: u32 = 900;
    for spi in [1, 2, 3] {
        a.handle(&req(add_sa(spi), CHARON), CHARON, NOW);
    }
    a.handle(&req(policy(msg::NEWPOLICY, 1, 0, 5), CHARON), CHARON, NOW);
    a.take_events();
    a.send(
        &a.canonical().states.keys().next().copied().unwrap(),
        10,
        100,
        NOW,
    )
    .unwrap();
    // Snapshot: dump records as requests.
    let mut out = vec![0u8; 4096];
    for (table, recs) in [
        (Table::Sadb, a.dump_states()),
        (Table::Spd, a.dump_policies()),
    ] {
        for r in recs {
            let n = d.dump_to_request(table, &r, &mut out).unwrap();
            d.stamp(&mut out[..n], SLAVE, 1);
            assert_eq!(errno_of(&b.handle(&out[..n], SLAVE, NOW + 5)), 0);
        }
    }
    assert_eq!(a.canonical(), b.canonical());
    // The slave's own writes come back to its watch as its own.
    for e in b.take_events() {
        assert_eq!(d.classify(&e.msg, &scope(SLAVE)), Classified::Own);
    }
    // Live: a delete and an update on the master, forwarded.
    let rec = newsa(msg::NEWSA, 2);
    let m = Msg::new(&rec).unwrap();
    let sa = SaView::from_new(&m).unwrap();
    a.handle(
        &req(to_vec(|x| rewrite::state_delete(&sa, x)).unwrap(), CHARON),
        CHARON,
        NOW,
    );
    a.handle(&req(policy(msg::UPDPOLICY, 1, 0, 9), CHARON), CHARON, NOW);
    for e in a.take_events() {
        let Classified::Sync(change) = d.classify(&e.msg, &scope(SLAVE)) else {
            panic!("a keying daemon's change is forwarded");
        };
        let n = d.forward(change, &mut out).unwrap();
        d.stamp(&mut out[..n], SLAVE, 2);
        assert_eq!(errno_of(&b.handle(&out[..n], SLAVE, NOW)), 0);
    }
    assert_eq!(a.canonical(), b.canonical());
    assert_eq!(b.counts(), (2, 1));
}

/// An `ALLOCSPI` request for [`newsa`]'s hosts, request id, mode and
/// mark, asking for an SPI in `[min, max]`.
fn alloc_spi(min: u32, max: u32) -> Vec<u8> {
    let rec = newsa(msg::NEWSA, 0);
    let sa = Msg::new(&rec).unwrap();
    let mut p = sa.payload()[..USERSA_INFO_LEN].to_vec();
    p.extend_from_slice(&min.to_ne_bytes());
    p.extend_from_slice(&max.to_ne_bytes());
    Builder::new(ALLOCSPI, NLM_F_REQUEST)
        .raw(&p)
        .attr(
            attr::MARK,
            &sasyncd_core::xfrm::Mark { v: 5, m: 0xff }.to_bytes(),
        )
        .finish()
}

/// [`newsa`]'s state written as an update (how charon completes the SPI
/// it reserved).
fn upd_sa(spi: u32) -> Vec<u8> {
    let rec = newsa(msg::NEWSA, spi);
    let m = Msg::new(&rec).unwrap();
    to_vec(|b| rewrite::state_write(&SaView::from_new(&m).unwrap(), true, b)).unwrap()
}

#[test]
fn allocspi_reserves_a_larval_state_no_group_hears_of() {
    let mut k = XfrmKernel::new();
    let r = k.handle(&req(alloc_spi(0xc000_0000, 0xcfff_ffff), 9), 9, NOW);
    assert_eq!(r.len(), 1, "the state, to the asking socket");
    let m = Msg::new(&r[0]).unwrap();
    assert_eq!((m.kind(), m.pid(), m.seq()), (msg::NEWSA, 9, 1));
    let spi = u32::from_be_bytes(
        m.payload()[sa_off::SPI..sa_off::SPI + 4]
            .try_into()
            .unwrap(),
    );
    assert!((0xc000_0000..=0xcfff_ffff).contains(&spi));
    assert!(k.take_events().is_empty(), "ALLOCSPI is not broadcast");
    // A dump carries it: a record without algorithms.
    let dump = k.dump_states();
    assert_eq!(dump.len(), 1);
    let sa = Msg::new(&dump[0]).unwrap();
    let v = SaView::from_new(&sa).unwrap();
    assert!(v.attrs.clone().flatten().all(|a| !matches!(
        a.kind,
        attr::ALG_AUTH | attr::ALG_AUTH_TRUNC | attr::ALG_CRYPT | attr::ALG_AEAD
    )));
    assert!(k.canonical().states.is_empty(), "not a state to sync");
    // The same request again reserves another SPI on another state.
    let r2 = k.handle(&req(alloc_spi(0xc000_0000, 0xcfff_ffff), 9), 9, NOW);
    let spi2 = &Msg::new(&r2[0]).unwrap().payload()[sa_off::SPI..sa_off::SPI + 4];
    assert_ne!(spi2, spi.to_be_bytes());
    assert_eq!(k.counts().0, 2);

    // NEWSA of a reserved SPI: EEXIST.
    let mut add = req(add_sa(spi), 9);
    if let Some(f) = add.get_mut(6..8) {
        f.copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    }
    assert_eq!(errno_of(&k.handle(&add, 9, NOW)), EEXIST);
    // UPDSA completes it: replaced whole, broadcast as an update.
    assert_eq!(errno_of(&k.handle(&req(upd_sa(spi), 9), 9, NOW)), 0);
    let ev = k.take_events();
    assert_eq!(ev.len(), 1, "one event, no delete of the larval state");
    let e = Msg::new(&ev[0].msg).unwrap();
    assert_eq!((ev[0].group, e.kind()), (group::SA, msg::UPDSA));
    assert_eq!(k.counts().0, 2);
    assert_eq!(k.canonical().states.len(), 1, "a full state now");
    let dump = k.dump_states();
    let done = Msg::new(&dump[0]).unwrap();
    assert!(SaView::from_new(&done)
        .unwrap()
        .attrs
        .clone()
        .flatten()
        .any(|a| a.kind == attr::ALG_CRYPT));
}

#[test]
fn a_reserved_spi_runs_out_after_acq_expires_with_a_hard_expire() {
    let mut k = XfrmKernel::new();
    let r = k.handle(&req(alloc_spi(0x4242, 0x4242), 9), 9, NOW);
    assert_eq!(Msg::new(&r[0]).unwrap().kind(), msg::NEWSA);
    // A single SPI in use: the acquire state stays without an SPI, and
    // does not run out here (Linux only marks it expired).
    assert_eq!(errno_of(&k.handle(&req(add_sa(0x4343), 9), 9, NOW)), 0);
    let r = k.handle(&req(alloc_spi(0x4343, 0x4343), 9), 9, NOW);
    assert_eq!(errno_of(&r), ENOENT);
    assert_eq!(k.counts().0, 3);
    k.take_events();
    assert_eq!(k.expire_acquires(NOW + 29), 0);
    assert_eq!(k.expire_acquires(NOW + 30), 1);
    assert_eq!(k.counts().0, 2, "the SPI-less acquire state stays");
    let ev = k.take_events();
    assert_eq!(ev.len(), 1);
    let m = Msg::new(&ev[0].msg).unwrap();
    assert_eq!((ev[0].group, m.kind()), (group::EXPIRE, msg::EXPIRE));
    assert!(SaView::from_expire(&m).unwrap().1, "a hard expiry");
    // The SPI is free again: a NEWSA of it (a slave's copy of a later
    // master's state) lands.
    let mut add = req(add_sa(0x4242), 9);
    if let Some(f) = add.get_mut(6..8) {
        f.copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    }
    assert_eq!(errno_of(&k.handle(&add, 9, NOW + 31)), 0);
}

#[test]
fn update_of_a_state_never_reserved_is_esrch_and_a_taken_spi_enoent() {
    let mut k = XfrmKernel::new();
    // What a slave's kernel answers the master's completion.
    let mut upd = req(upd_sa(0x4242), 9);
    if let Some(f) = upd.get_mut(6..8) {
        f.copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    }
    assert_eq!(errno_of(&k.handle(&upd, 9, NOW)), ESRCH);
    // A single SPI already in use: ENOENT, the acquire state left
    // without an SPI (and settled by a later NEWSA of its hosts).
    assert_eq!(errno_of(&k.handle(&req(add_sa(0x4242), 9), 9, NOW)), 0);
    let r = k.handle(&req(alloc_spi(0x4242, 0x4242), 9), 9, NOW);
    assert_eq!(errno_of(&r), ENOENT);
    assert_eq!(k.counts().0, 2);
    assert_eq!(errno_of(&k.handle(&req(add_sa(0x4343), 9), 9, NOW)), 0);
    assert_eq!(k.counts().0, 2, "the acquire state settled by the add");
    // A range: COMP's SPI is 16 bits; min above max.
    assert_eq!(
        errno_of(&k.handle(&req(alloc_spi(9, 8), 9), 9, NOW)),
        EINVAL
    );
}
