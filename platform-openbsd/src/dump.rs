//! Checking a sysctl dump before it is streamed (reference §13.3): the
//! kernel returns whole records, but a buffer is cut at the first record
//! whose framing is broken, so that everything handed on is whole records
//! (the network process walks them again with
//! `sasyncd_core::pfkey::records`).

use sasyncd_core::pfkey::{records, PfkeyError};

/// What a dump buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpCheck {
    /// Whole records.
    pub records: usize,
    /// Bytes they take, from the start of the buffer.
    pub len: usize,
    /// Why the walk stopped before the end of the buffer, if it did for a
    /// broken record (a zero-length record ends a dump normally).
    pub error: Option<PfkeyError>,
}

/// Walks the records of `dump`.
pub fn check(dump: &[u8]) -> DumpCheck {
    let mut c = DumpCheck {
        records: 0,
        len: 0,
        error: None,
    };
    for r in records(dump) {
        match r {
            Ok(m) => {
                c.records += 1;
                c.len += m.len_bytes();
            }
            // A record with a foreign version is still framed by its
            // length; the walk goes on past it. Its bytes stay in the
            // prefix: the receiver's filter skips it.
            Err(PfkeyError::BadVersion(_)) => {
                let len = dump
                    .get(c.len + 4..c.len + 6)
                    .map_or(0, |b| usize::from(u16::from_ne_bytes([b[0], b[1]])) * 8);
                c.len += len;
            }
            Err(e) => {
                c.error = Some(e);
                break;
            }
        }
    }
    c
}

#[cfg(test)]
pub(crate) mod testdump {
    //! Recorded dump buffers, laid out as the kernel exports SAs and
    //! flows (reference §13.3) with the `ffi` declarations.
    use crate::ffi::{SadbAddress, SadbExt, SadbKey, SadbMsg, SadbSa};
    use core::mem::size_of;
    use sasyncd_core::pfkey::consts::*;

    /// A declared structure's bytes, field by field in declaration order
    /// (the `ffi` assertions guarantee there is no padding between them).
    trait Bytes {
        fn put(&self, v: &mut Vec<u8>);
    }

    impl Bytes for SadbMsg {
        fn put(&self, v: &mut Vec<u8>) {
            v.extend_from_slice(&[
                self.sadb_msg_version,
                self.sadb_msg_type,
                self.sadb_msg_errno,
                self.sadb_msg_satype,
            ]);
            v.extend_from_slice(&self.sadb_msg_len.to_ne_bytes());
            v.extend_from_slice(&self.sadb_msg_reserved.to_ne_bytes());
            v.extend_from_slice(&self.sadb_msg_seq.to_ne_bytes());
            v.extend_from_slice(&self.sadb_msg_pid.to_ne_bytes());
        }
    }

    impl Bytes for SadbExt {
        fn put(&self, v: &mut Vec<u8>) {
            v.extend_from_slice(&self.sadb_ext_len.to_ne_bytes());
            v.extend_from_slice(&self.sadb_ext_type.to_ne_bytes());
        }
    }

    impl Bytes for SadbSa {
        fn put(&self, v: &mut Vec<u8>) {
            v.extend_from_slice(&self.sadb_sa_len.to_ne_bytes());
            v.extend_from_slice(&self.sadb_sa_exttype.to_ne_bytes());
            v.extend_from_slice(&self.sadb_sa_spi.to_ne_bytes());
            v.extend_from_slice(&[
                self.sadb_sa_replay,
                self.sadb_sa_state,
                self.sadb_sa_auth,
                self.sadb_sa_encrypt,
            ]);
            v.extend_from_slice(&self.sadb_sa_flags.to_ne_bytes());
        }
    }

    impl Bytes for SadbAddress {
        fn put(&self, v: &mut Vec<u8>) {
            v.extend_from_slice(&self.sadb_address_len.to_ne_bytes());
            v.extend_from_slice(&self.sadb_address_exttype.to_ne_bytes());
            v.extend_from_slice(&self.sadb_address_reserved.to_ne_bytes());
        }
    }

    impl Bytes for SadbKey {
        fn put(&self, v: &mut Vec<u8>) {
            v.extend_from_slice(&self.sadb_key_len.to_ne_bytes());
            v.extend_from_slice(&self.sadb_key_exttype.to_ne_bytes());
            v.extend_from_slice(&self.sadb_key_bits.to_ne_bytes());
            v.extend_from_slice(&self.sadb_key_reserved.to_ne_bytes());
        }
    }

    fn push<T: Bytes>(v: &mut Vec<u8>, t: &T) {
        let before = v.len();
        t.put(v);
        assert_eq!(v.len() - before, size_of::<T>());
    }

    fn units(n: usize) -> u16 {
        (n / CHUNK) as u16
    }

    fn sockaddr_in(addr: [u8; 4], port: u16) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[0] = SOCKADDR_IN_LEN;
        s[1] = AF_INET;
        s[2..4].copy_from_slice(&port.to_be_bytes());
        s[4..8].copy_from_slice(&addr);
        s
    }

    fn address(v: &mut Vec<u8>, ty: u16, addr: [u8; 4], port: u16) {
        push(
            v,
            &SadbAddress {
                sadb_address_len: units(8 + 16),
                sadb_address_exttype: ty,
                sadb_address_reserved: 0,
            },
        );
        v.extend_from_slice(&sockaddr_in(addr, port));
    }

    fn key(v: &mut Vec<u8>, ty: u16, key: &[u8]) {
        let padded = key.len().div_ceil(8) * 8;
        push(
            v,
            &SadbKey {
                sadb_key_len: units(8 + padded),
                sadb_key_exttype: ty,
                sadb_key_bits: (key.len() * 8) as u16,
                sadb_key_reserved: 0,
            },
        );
        v.extend_from_slice(key);
        v.resize(v.len() + padded - key.len(), 0);
    }

    fn raw_ext(v: &mut Vec<u8>, ty: u16, body: usize) {
        push(
            v,
            &SadbExt {
                sadb_ext_len: units(4 + body),
                sadb_ext_type: ty,
            },
        );
        v.resize(v.len() + body, 0);
    }

    fn header(v: &mut Vec<u8>, ty: u8, satype: u8) {
        push(
            v,
            &SadbMsg {
                sadb_msg_version: PF_KEY_V2,
                sadb_msg_type: ty,
                sadb_msg_satype: satype,
                ..SadbMsg::default()
            },
        );
    }

    fn fix_len(v: &mut [u8], start: usize) {
        let n = units(v.len() - start);
        v[start + 4..start + 6].copy_from_slice(&n.to_ne_bytes());
    }

    /// An SADB dump record of a mature ESP SA with keys.
    pub fn sa_record(v: &mut Vec<u8>, spi: u32) {
        let start = v.len();
        header(v, SADB_DUMP, SADB_SATYPE_ESP);
        push(
            v,
            &SadbSa {
                sadb_sa_len: 2,
                sadb_sa_exttype: SADB_EXT_SA,
                sadb_sa_spi: spi.to_be(),
                sadb_sa_replay: 64,
                sadb_sa_state: SADB_SASTATE_MATURE,
                sadb_sa_auth: 5,
                sadb_sa_encrypt: 12,
                sadb_sa_flags: 0,
            },
        );
        raw_ext(v, SADB_EXT_LIFETIME_CURRENT, 28);
        address(v, SADB_EXT_ADDRESS_SRC, [192, 0, 2, 1], 0);
        address(v, SADB_EXT_ADDRESS_DST, [192, 0, 2, 2], 0);
        key(v, SADB_EXT_KEY_AUTH, &[0x11; 32]);
        key(v, SADB_EXT_KEY_ENCRYPT, &[0x22; 20]);
        raw_ext(v, SADB_X_EXT_REPLAY, 12);
        raw_ext(v, SADB_X_EXT_COUNTER, 68);
        fix_len(v, start);
    }

    /// An SPD dump record of one flow.
    pub fn flow_record(v: &mut Vec<u8>) {
        let start = v.len();
        header(v, SADB_X_SPDDUMP, SADB_SATYPE_ESP);
        address(v, SADB_X_EXT_SRC_FLOW, [10, 0, 1, 0], 0);
        address(v, SADB_X_EXT_SRC_MASK, [255, 255, 255, 0], 0);
        address(v, SADB_X_EXT_DST_FLOW, [10, 0, 2, 0], 0);
        address(v, SADB_X_EXT_DST_MASK, [255, 255, 255, 0], 0);
        push(
            v,
            &SadbExt {
                sadb_ext_len: 1,
                sadb_ext_type: SADB_X_EXT_FLOW_TYPE,
            },
        );
        v.extend_from_slice(&[SADB_X_FLOW_TYPE_REQUIRE, IPSP_DIRECTION_OUT, 0, 0]);
        fix_len(v, start);
    }
}

#[cfg(test)]
mod tests {
    use super::testdump::*;
    use super::*;
    use sasyncd_core::pfkey::consts::*;
    use sasyncd_core::pfkey::{dump_to_add, spd_dump_to_addflow, Msg, PFKEY_MSG_MAXSZ};

    #[test]
    fn recorded_sadb_dump_walks_and_rewrites() {
        let mut d = Vec::new();
        sa_record(&mut d, 0x1000);
        sa_record(&mut d, 0x1001);
        sa_record(&mut d, 0x1002);
        let c = check(&d);
        assert_eq!(
            c,
            DumpCheck {
                records: 3,
                len: d.len(),
                error: None
            }
        );
        for r in records(&d) {
            let m = r.unwrap();
            assert_eq!(m.msg_type(), SADB_DUMP);
            assert!(m.find(SADB_EXT_KEY_ENCRYPT).is_some());
            let mut out = [0u8; PFKEY_MSG_MAXSZ];
            let n = dump_to_add(m.bytes(), &mut out).unwrap();
            let add = Msg::parse(&out[..n]).unwrap();
            assert_eq!(add.msg_type(), SADB_ADD);
            // The snapshot ADD drops what the kernel refuses on ADD input,
            // and keeps the keys.
            assert!(add.find(SADB_X_EXT_COUNTER).is_none());
            assert!(add.find(SADB_EXT_KEY_ENCRYPT).is_some());
        }
    }

    #[test]
    fn recorded_spd_dump_walks_and_rewrites() {
        let mut d = Vec::new();
        flow_record(&mut d);
        flow_record(&mut d);
        assert_eq!(check(&d).records, 2);
        for r in records(&d) {
            let m = r.unwrap();
            let mut out = [0u8; PFKEY_MSG_MAXSZ];
            let n = spd_dump_to_addflow(m.bytes(), &mut out).unwrap();
            assert_eq!(Msg::parse(&out[..n]).unwrap().msg_type(), SADB_X_ADDFLOW);
        }
    }

    #[test]
    fn a_truncated_dump_is_cut_at_the_last_whole_record() {
        let mut d = Vec::new();
        sa_record(&mut d, 1);
        let one = d.len();
        sa_record(&mut d, 2);
        let c = check(&d[..d.len() - 8]);
        assert_eq!((c.records, c.len), (1, one));
        assert_eq!(c.error, Some(PfkeyError::BadLength));
        let c = check(&d[..one + 10]);
        assert_eq!(
            (c.records, c.len, c.error),
            (1, one, Some(PfkeyError::Short))
        );
    }

    #[test]
    fn a_zero_length_record_ends_the_dump() {
        let mut d = Vec::new();
        sa_record(&mut d, 1);
        let one = d.len();
        d.extend_from_slice(&[0u8; 16]);
        sa_record(&mut d, 2);
        assert_eq!(
            check(&d),
            DumpCheck {
                records: 1,
                len: one,
                error: None
            }
        );
    }

    #[test]
    fn a_foreign_version_record_is_stepped_over() {
        let mut d = Vec::new();
        sa_record(&mut d, 1);
        let one = d.len();
        sa_record(&mut d, 2);
        d[one] = 3;
        let c = check(&d);
        assert_eq!((c.records, c.len, c.error), (1, d.len(), None));
    }

    #[test]
    fn empty_dump() {
        assert_eq!(
            check(&[]),
            DumpCheck {
                records: 0,
                len: 0,
                error: None
            }
        );
    }
}
