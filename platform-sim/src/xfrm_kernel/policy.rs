//! The simulated XFRM kernel's policies: add, replace, delete, get and
//! flush, and the records and events a policy is reported as. Rules from
//! Linux 6.1 `net/xfrm/xfrm_user.c` (`xfrm_add_policy`,
//! `xfrm_get_policy`, `xfrm_flush_policy`, `dump_one_policy`,
//! `xfrm_notify_policy`) and `net/xfrm/xfrm_policy.c`
//! (`xfrm_policy_insert`, `xfrm_gen_index`, `selector_cmp`,
//! `xfrm_policy_mark_match`: value and mask both equal since 5.8).

use sasyncd_core::xfrm::nl::{u32_at, Builder, Msg};
use sasyncd_core::xfrm::{
    attr, group, msg, pol_off, Mark, PolicyKey, AF_INET, AF_INET6, IPPROTO_AH, IPPROTO_COMP,
    IPPROTO_ESP, SELECTOR_LEN, USERPOLICY_ID_LEN,
};

pub(super) use sasyncd_core::xfrm::USERPOLICY_INFO_LEN;

use super::errno::{EEXIST, EINVAL, ENOENT};
use super::state::{mark_of, parse_attrs};
use super::XfrmKernel;

/// `sizeof(struct xfrm_user_tmpl)`.
const TMPL_LEN: usize = 64;
/// `XFRM_MAX_DEPTH`: templates a policy may have.
const MAX_DEPTH: usize = 6;
/// `struct xfrm_userpolicy_type` of the main type (`XFRM_POLICY_TYPE_MAIN`,
/// reserved bytes zero).
const MAIN_TYPE: [u8; 6] = [0; 6];
/// `XFRM_MODE_MAX`.
const MODE_MAX: u8 = 5;
/// IPv6 routing header and destination options (Mobile IPv6 templates).
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_DSTOPTS: u8 = 60;

/// One policy as the kernel holds it.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// The `xfrm_userpolicy_info` as `copy_to_user_policy` fills it.
    info: [u8; USERPOLICY_INFO_LEN],
    /// The templates as `copy_to_user_tmpl` reports them.
    tmpls: Vec<u8>,
    mark: Mark,
    if_id: u32,
}

impl Policy {
    fn dir(&self) -> u8 {
        self.info[pol_off::DIR]
    }
    fn index(&self) -> u32 {
        u32_at(&self.info, pol_off::INDEX)
    }
    fn sel(&self) -> &[u8] {
        &self.info[..SELECTOR_LEN]
    }

    /// The identity the dialect reads from this policy's records.
    pub(super) fn key(&self) -> PolicyKey {
        let mut sel = [0u8; SELECTOR_LEN];
        sel.copy_from_slice(self.sel());
        PolicyKey {
            sel,
            dir: self.dir(),
            mark: self.mark,
            if_id: self.if_id,
        }
    }

    /// `dump_one_policy`'s attributes: templates, the policy type (the
    /// Debian kernel is built with `CONFIG_XFRM_SUB_POLICY`: its records
    /// carry `XFRMA_POLICY_TYPE`, seen in the guest), mark, interface id.
    fn put_attrs(&self, mut b: Builder) -> Builder {
        if !self.tmpls.is_empty() {
            b = b.attr(attr::TMPL, &self.tmpls);
        }
        b = b.attr(attr::POLICY_TYPE, &MAIN_TYPE);
        if self.mark.v | self.mark.m != 0 {
            b = b.attr(attr::MARK, &self.mark.to_bytes());
        }
        if self.if_id != 0 {
            b = b.attr(attr::IF_ID, &self.if_id.to_ne_bytes());
        }
        b
    }

    /// The policy as a `kind` message (dump record, get reply, add or
    /// update event).
    pub(super) fn record(&self, kind: u16, seq: u32, pid: u32, flags: u16) -> Vec<u8> {
        let mut r = self
            .put_attrs(Builder::new(kind, flags).raw(&self.info))
            .finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut r, seq, pid);
        r
    }

    /// `xfrm_notify_policy` for a delete: the id (the index if the
    /// request named one, else the selector), the policy in
    /// `XFRMA_POLICY`, its attributes at the top level.
    fn delete_event(&self, byid: bool, seq: u32, pid: u32) -> Vec<u8> {
        let mut id = [0u8; USERPOLICY_ID_LEN];
        if byid {
            id[56..60].copy_from_slice(&self.index().to_ne_bytes());
        } else {
            id[..SELECTOR_LEN].copy_from_slice(self.sel());
        }
        id[60] = self.dir();
        let b = Builder::new(msg::DELPOLICY, 0)
            .raw(&id)
            .attr(attr::POLICY, &self.info);
        let mut r = self.put_attrs(b).finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut r, seq, pid);
        r
    }

    /// The lookup rule of `xfrm_policy_insert` and `xfrm_policy_bysel_ctx`
    /// (main type, no security context): direction, interface id, the
    /// selector's bytes, mark value and mask.
    fn same(&self, dir: u8, sel: &[u8], mark: Mark, if_id: u32) -> bool {
        self.dir() == dir && self.if_id == if_id && self.sel() == sel && self.mark == mark
    }
}

/// `xfrm_id_proto_valid`.
fn proto_valid(p: u8) -> bool {
    matches!(
        p,
        IPPROTO_ESP | IPPROTO_AH | IPPROTO_COMP | IPPROTO_ROUTING | IPPROTO_DSTOPTS
    )
}

/// `verify_newpolicy_info`.
fn verify_newpolicy(p: &[u8]) -> Result<(), i32> {
    let share = p[pol_off::FLAGS + 1];
    let action = p[pol_off::ACTION];
    let family = u16::from_ne_bytes([p[40], p[41]]);
    let (pd, ps) = (p[42], p[43]);
    let dir = p[pol_off::DIR];
    let index = u32_at(p, pol_off::INDEX);
    let sel_ok = match family {
        AF_INET => pd <= 32 && ps <= 32,
        AF_INET6 => pd <= 128 && ps <= 128,
        _ => false,
    };
    if share > 3 || action > 1 || !sel_ok || dir > 2 || (index != 0 && index & 7 != u32::from(dir))
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// `validate_tmpl` and `copy_templates`/`copy_to_user_tmpl`: the
/// templates as the kernel reports them (a zero family becomes the
/// policy's; padding is zero).
fn templates(data: Option<&[u8]>, family: u16, dir: u8) -> Result<Vec<u8>, i32> {
    let Some(data) = data else {
        return Ok(Vec::new());
    };
    let nr = data.len() / TMPL_LEN;
    if nr > MAX_DEPTH {
        return Err(EINVAL);
    }
    let mut out = Vec::with_capacity(nr * TMPL_LEN);
    let mut prev = family;
    for t in data.chunks_exact(TMPL_LEN) {
        let mut f = u16::from_ne_bytes([t[24], t[25]]);
        if f == 0 {
            f = family;
        }
        let (mode, optional) = (t[48], t[50]);
        match mode {
            // Tunnel and BEET may change family; neither may be optional
            // in an outbound policy.
            1 | 4 if optional != 0 && dir == 1 => return Err(EINVAL),
            1 | 4 => {}
            _ if f != prev => return Err(EINVAL),
            _ => {}
        }
        if mode >= MODE_MAX || !(f == AF_INET || f == AF_INET6) || !proto_valid(t[20]) {
            return Err(EINVAL);
        }
        prev = f;
        let mut u = [0u8; TMPL_LEN];
        // The xfrm_id: address, SPI, protocol (its padding zero).
        u[..21].copy_from_slice(&t[..21]);
        u[24..26].copy_from_slice(&f.to_ne_bytes());
        u[28..51].copy_from_slice(&t[28..51]);
        u[52..64].copy_from_slice(&t[52..64]);
        out.extend_from_slice(&u);
    }
    Ok(out)
}

/// `copy_from_user_policy_type`: only the main type is modelled (Linux
/// built with sub policies also takes `XFRM_POLICY_TYPE_SUB`; refused
/// here).
fn check_type(tb: &[Option<&[u8]>]) -> Result<(), i32> {
    match tb[usize::from(attr::POLICY_TYPE)] {
        Some(t) if t[0] != 0 => Err(EINVAL),
        _ => Ok(()),
    }
}

impl XfrmKernel {
    /// `xfrm_gen_index`: the requested index if no policy has it, else
    /// the generator's next (the low three bits are the direction).
    fn gen_index(&mut self, dir: u8, mut index: u32) -> u32 {
        loop {
            let idx = if index == 0 {
                let i = self.idx_generator | u32::from(dir);
                self.idx_generator = self.idx_generator.wrapping_add(8);
                i
            } else {
                std::mem::take(&mut index)
            };
            let idx = if idx == 0 { 8 } else { idx };
            if !self.policies.iter().any(|p| p.index() == idx) {
                return idx;
            }
        }
    }

    /// `xfrm_add_policy`: `NEWPOLICY` refuses an existing policy
    /// (`EEXIST`), `UPDPOLICY` replaces it keeping its index; the event
    /// carries the policy as inserted (index assigned, added now).
    pub(super) fn add_policy(&mut self, m: &Msg<'_>, now: u64) -> Result<(), i32> {
        let (p, attrs) = m.split(USERPOLICY_INFO_LEN).map_err(|_| EINVAL)?;
        verify_newpolicy(p)?;
        let tb = parse_attrs(attrs)?;
        check_type(&tb)?;
        let family = u16::from_ne_bytes([p[40], p[41]]);
        let dir = p[pol_off::DIR];
        let tmpls = templates(tb[usize::from(attr::TMPL)], family, dir)?;
        // copy_from_user_policy / copy_to_user_policy: selector, lifetime
        // limits, priority, action, flags; counters zero, share "any".
        let mut info = [0u8; USERPOLICY_INFO_LEN];
        info[..pol_off::CURLFT].copy_from_slice(&p[..pol_off::CURLFT]);
        info[pol_off::PRIORITY..pol_off::PRIORITY + 4]
            .copy_from_slice(&p[pol_off::PRIORITY..pol_off::PRIORITY + 4]);
        info[pol_off::DIR] = dir;
        info[pol_off::ACTION] = p[pol_off::ACTION];
        info[pol_off::FLAGS] = p[pol_off::FLAGS];
        let mut x = Policy {
            info,
            tmpls,
            mark: mark_of(&tb),
            if_id: tb[usize::from(attr::IF_ID)].map_or(0, |d| u32_at(d, 0)),
        };
        let old = self
            .policies
            .iter()
            .position(|q| q.same(dir, x.sel(), x.mark, x.if_id));
        let index = match old {
            Some(_) if m.kind() == msg::NEWPOLICY => return Err(EEXIST),
            Some(i) => self.policies.remove(i).index(),
            None => self.gen_index(dir, u32_at(p, pol_off::INDEX)),
        };
        x.info[pol_off::INDEX..pol_off::INDEX + 4].copy_from_slice(&index.to_ne_bytes());
        // xfrm_policy_insert: curlft.add_time now, use_time 0.
        let at = pol_off::CURLFT + 16;
        x.info[at..at + 8].copy_from_slice(&now.to_ne_bytes());
        let ev = x.record(m.kind(), m.seq(), m.pid(), 0);
        self.policies.insert(0, x);
        self.notify(group::POLICY, ev);
        Ok(())
    }

    /// `xfrm_get_policy`: `DELPOLICY` deletes (an event), `GETPOLICY`
    /// answers with the record; by index if the request names one, else
    /// by selector; `ENOENT` if there is none.
    pub(super) fn get_policy(&mut self, m: &Msg<'_>, port: u32) -> Result<Option<Vec<u8>>, i32> {
        let (id, attrs) = m.split(USERPOLICY_ID_LEN).map_err(|_| EINVAL)?;
        let tb = parse_attrs(attrs)?;
        check_type(&tb)?;
        let dir = id[60];
        if dir > 2 {
            return Err(EINVAL);
        }
        let mark = mark_of(&tb);
        let if_id = tb[usize::from(attr::IF_ID)].map_or(0, |d| u32_at(d, 0));
        let index = u32_at(id, 56);
        let found = if index != 0 {
            // xfrm_policy_byid: an index of another direction finds none.
            (index & 7 == u32::from(dir))
                .then(|| {
                    self.policies
                        .iter()
                        .position(|p| p.index() == index && p.if_id == if_id && p.mark == mark)
                })
                .flatten()
        } else {
            self.policies
                .iter()
                .position(|p| p.same(dir, &id[..SELECTOR_LEN], mark, if_id))
        };
        let i = found.ok_or(ENOENT)?;
        if m.kind() == msg::GETPOLICY {
            return Ok(Some(self.policies[i].record(
                msg::NEWPOLICY,
                m.seq(),
                port,
                0,
            )));
        }
        let p = self.policies.remove(i);
        self.notify(group::POLICY, p.delete_event(index != 0, m.seq(), m.pid()));
        Ok(None)
    }

    /// `xfrm_flush_policy`: every (main) policy; an empty flush succeeds
    /// without an event.
    pub(super) fn flush_policy(&mut self, m: &Msg<'_>) -> Result<(), i32> {
        let tb = parse_attrs(m.split(0).map_err(|_| EINVAL)?.1)?;
        check_type(&tb)?;
        if self.policies.is_empty() {
            return Ok(());
        }
        self.policies.clear();
        let mut ev = Builder::new(msg::FLUSHPOLICY, 0)
            .attr(attr::POLICY_TYPE, &MAIN_TYPE)
            .finish();
        sasyncd_core::xfrm::nl::set_seq_pid(&mut ev, m.seq(), m.pid());
        self.notify(group::POLICY, ev);
        Ok(())
    }
}
