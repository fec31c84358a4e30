//! Identities of XFRM states and policies: the keys by which the kernel
//! tells entries apart (a second add with the same key is refused; a
//! delete names an entry by it).

use super::consts::{attr, SELECTOR_LEN};
use super::nl::{u32_at, Attrs};

/// A mark (value and mask); `(0, 0)` when the object has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mark {
    /// The value.
    pub v: u32,
    /// The mask.
    pub m: u32,
}

impl Mark {
    /// The mark among `attrs` (none: `(0, 0)`).
    pub fn from_attrs(attrs: &Attrs<'_>) -> Mark {
        match attrs.find(attr::MARK) {
            Some(a) if a.data.len() >= 8 => Mark {
                v: u32_at(a.data, 0),
                m: u32_at(a.data, 4),
            },
            _ => Mark::default(),
        }
    }

    /// The attribute's data.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.v.to_ne_bytes());
        b[4..].copy_from_slice(&self.m.to_ne_bytes());
        b
    }
}

/// What identifies a state in a kernel: two states with the same key
/// cannot both exist, and a delete names one by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaKey {
    /// Address family.
    pub family: u16,
    /// Destination address, as the kernel stores it (16 bytes).
    pub daddr: [u8; 16],
    /// SPI (network order, as stored).
    pub spi: u32,
    /// IPsec protocol.
    pub proto: u8,
    /// Mark.
    pub mark: Mark,
}

/// What identifies a policy: its selector, direction, mark and interface
/// id (the kernel refuses a second policy with the same, and deletes by
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    /// The selector bytes.
    pub sel: [u8; SELECTOR_LEN],
    /// Direction (in, out, fwd).
    pub dir: u8,
    /// Mark.
    pub mark: Mark,
    /// XFRM interface id.
    pub if_id: u32,
}
