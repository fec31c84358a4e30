//! The HELLO frame: who we are, where we are, and a fresh nonce.
//!
//! HELLO travels in clear (there are no keys yet) but its exact bytes are
//! hashed into the key schedule, so a HELLO altered on the way makes the
//! key confirmation fail. Decoding is strict (exact length, known values,
//! reserved byte zero), so decoding and re-encoding gives back the very
//! bytes that were on the wire; the session relies on that.

use super::error::V2Error;
use super::frame::{parse_header, write_header, FrameType, HELLO_LEN};
use crate::dialect::KernelDialect;
use crate::state::{Position, RunState};

/// Byte order of the PF_KEY structures a node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ByteOrder {
    /// Little-endian (amd64, arm64, ...).
    Little = 1,
    /// Big-endian (sparc64, powerpc64, ...).
    Big = 2,
}

/// The shape of the PF_KEY payloads a node sends: raw kernel structures in
/// host byte order and layout (reference D-33). Peers must agree, or they
/// would misread each other's SAs; v2 checks this at HELLO time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArchTag {
    /// Byte order.
    pub order: ByteOrder,
    /// Pointer width in bytes (4 or 8; 2 and 16 are accepted on the wire).
    pub pointer_bytes: u8,
}

impl ArchTag {
    /// The tag of the machine this code runs on.
    pub const fn host() -> ArchTag {
        ArchTag {
            order: if cfg!(target_endian = "big") {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            },
            pointer_bytes: core::mem::size_of::<usize>() as u8,
        }
    }
}

impl core::fmt::Display for ArchTag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let order = match self.order {
            ByteOrder::Little => "little",
            ByteOrder::Big => "big",
        };
        write!(
            f,
            "{order}-endian/{}-bit",
            u32::from(self.pointer_bytes) * 8
        )
    }
}

/// The handshake each side sends first on a v2 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// A stable random identity of the node (tells peers apart behind NAT
    /// or address changes, and a node from itself).
    pub node_id: [u8; 16],
    /// Increases on every start of the daemon (a restarted peer lost its
    /// session state).
    pub boot_epoch: u64,
    /// 32 fresh random bytes per connection: they make the session keys
    /// new on every connection, which is what defeats cross-session replay.
    pub nonce: [u8; 32],
    /// The sender's run state right now.
    pub run_state: RunState,
    /// The last master position the sender applied (`Position::NONE` if none).
    pub resume: Position,
    /// The shape of the sender's PF_KEY payloads.
    pub arch: ArchTag,
    /// The kind of kernel records the sender sends (byte 83: 0, what an
    /// older v2 node sends in that reserved byte, is OpenBSD).
    pub dialect: KernelDialect,
}

impl Hello {
    /// Writes the HELLO frame into `out`; returns its length ([`HELLO_LEN`]).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, V2Error> {
        let out = out
            .get_mut(..HELLO_LEN)
            .ok_or(V2Error::BufferTooSmall { need: HELLO_LEN })?;
        out.copy_from_slice(&self.to_bytes());
        Ok(HELLO_LEN)
    }

    /// The HELLO frame as bytes.
    pub(super) fn to_bytes(self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        write_header(&mut b, FrameType::Hello, HELLO_LEN);
        b[8..24].copy_from_slice(&self.node_id);
        b[24..32].copy_from_slice(&self.boot_epoch.to_be_bytes());
        b[32..64].copy_from_slice(&self.nonce);
        b[64..72].copy_from_slice(&self.resume.epoch.to_be_bytes());
        b[72..80].copy_from_slice(&self.resume.seq.to_be_bytes());
        b[80] = self.run_state as u8;
        b[81] = self.arch.order as u8;
        b[82] = self.arch.pointer_bytes;
        b[83] = self.dialect as u8;
        b
    }

    /// Parses a whole HELLO frame (header included, exactly [`HELLO_LEN`] bytes).
    pub fn decode(frame: &[u8]) -> Result<Hello, V2Error> {
        let (ty, len) = parse_header(frame)?;
        if ty != FrameType::Hello {
            return Err(V2Error::UnexpectedFrame(ty));
        }
        let b: &[u8; HELLO_LEN] = match frame.try_into() {
            Ok(b) if len == HELLO_LEN => b,
            _ => return Err(V2Error::BadLength(frame.len())),
        };
        let run_state = RunState::from_u32(u32::from(b[80])).ok_or(V2Error::Malformed)?;
        let order = match b[81] {
            1 => ByteOrder::Little,
            2 => ByteOrder::Big,
            _ => return Err(V2Error::Malformed),
        };
        if !matches!(b[82], 2 | 4 | 8 | 16) {
            return Err(V2Error::Malformed);
        }
        let dialect = KernelDialect::from_u8(b[83]).ok_or(V2Error::Malformed)?;
        Ok(Hello {
            node_id: array(b, 8),
            boot_epoch: u64::from_be_bytes(array(b, 24)),
            nonce: array(b, 32),
            run_state,
            resume: Position {
                epoch: u64::from_be_bytes(array(b, 64)),
                seq: u64::from_be_bytes(array(b, 72)),
            },
            arch: ArchTag {
                order,
                pointer_bytes: b[82],
            },
            dialect,
        })
    }
}

/// `M` bytes of `b` from `at`; the offsets used above are constants inside
/// the fixed-size HELLO, and anything else yields zeros rather than a panic.
fn array<const M: usize>(b: &[u8; HELLO_LEN], at: usize) -> [u8; M] {
    let mut out = [0u8; M];
    if let Some(s) = at.checked_add(M).and_then(|end| b.get(at..end)) {
        out.copy_from_slice(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Hello {
        Hello {
            node_id: [0x11; 16],
            boot_epoch: 0x0102_0304_0506_0708,
            nonce: [0xa5; 32],
            run_state: RunState::Master,
            resume: Position { epoch: 3, seq: 42 },
            arch: ArchTag {
                order: ByteOrder::Little,
                pointer_bytes: 8,
            },
            dialect: KernelDialect::OpenBsd,
        }
    }

    #[test]
    fn layout() {
        let b = sample().to_bytes();
        assert_eq!(&b[..8], &[0x53, 0x41, 0x53, 0x59, 2, 1, 0, 84]);
        assert_eq!(&b[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &b[64..80],
            &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 42]
        );
        assert_eq!(&b[80..], &[2, 1, 8, 0]);
        assert_eq!(Hello::decode(&b), Ok(sample()));
        let linux = Hello {
            dialect: KernelDialect::LinuxXfrm,
            ..sample()
        };
        let b = linux.to_bytes();
        assert_eq!(&b[80..], &[2, 1, 8, 1]);
        assert_eq!(Hello::decode(&b), Ok(linux));
    }

    #[test]
    fn refusals() {
        let b = sample().to_bytes();
        assert_eq!(Hello::decode(&b[..83]), Err(V2Error::BadLength(83)));
        let mut long = [0u8; HELLO_LEN + 1];
        long[..HELLO_LEN].copy_from_slice(&b);
        assert_eq!(Hello::decode(&long), Err(V2Error::BadLength(HELLO_LEN + 1)));
        for (at, v) in [(80, 4u8), (81, 0), (81, 3), (82, 0), (82, 3), (83, 2)] {
            let mut m = b;
            m[at] = v;
            assert_eq!(
                Hello::decode(&m),
                Err(V2Error::Malformed),
                "byte {at} = {v}"
            );
        }
        let mut small = [0u8; HELLO_LEN - 1];
        assert_eq!(
            sample().encode(&mut small),
            Err(V2Error::BufferTooSmall { need: HELLO_LEN })
        );
    }

    #[test]
    fn host_tag_is_sane() {
        let t = ArchTag::host();
        assert!(matches!(t.pointer_bytes, 4 | 8));
        let s = std::format!(
            "{}",
            ArchTag {
                order: ByteOrder::Big,
                pointer_bytes: 4
            }
        );
        assert_eq!(s, "big-endian/32-bit");
    }

    fn any_hello() -> impl Strategy<Value = Hello> {
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            0u32..4,
            any::<(u64, u64)>(),
            any::<bool>(),
            prop::sample::select(&[2u8, 4, 8, 16][..]),
            any::<bool>(),
        )
            .prop_map(
                |(node_id, boot_epoch, nonce, rs, (epoch, seq), big, pointer_bytes, linux)| Hello {
                    node_id,
                    boot_epoch,
                    nonce,
                    run_state: RunState::from_u32(rs).unwrap_or(RunState::Init),
                    resume: Position { epoch, seq },
                    arch: ArchTag {
                        order: if big {
                            ByteOrder::Big
                        } else {
                            ByteOrder::Little
                        },
                        pointer_bytes,
                    },
                    dialect: if linux {
                        KernelDialect::LinuxXfrm
                    } else {
                        KernelDialect::OpenBsd
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn decode_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Hello::decode(&bytes);
        }

        #[test]
        fn decode_mutated_hello_never_panics(at in 0usize..HELLO_LEN, v in any::<u8>()) {
            let mut b = sample().to_bytes();
            b[at] = v;
            if let Ok(h) = Hello::decode(&b) {
                // Canonical: whatever decodes re-encodes to the same bytes.
                prop_assert_eq!(h.to_bytes(), b);
            }
        }

        #[test]
        fn encode_decode_round_trip(h in any_hello()) {
            let mut buf = [0u8; HELLO_LEN];
            prop_assert_eq!(h.encode(&mut buf), Ok(HELLO_LEN));
            prop_assert_eq!(Hello::decode(&buf), Ok(h));
        }
    }
}
