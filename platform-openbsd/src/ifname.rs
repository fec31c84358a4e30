//! Interface and interface-group names as the kernel takes them: at most
//! `IFNAMSIZ - 1` bytes, NUL-padded to `IFNAMSIZ`.

use core::fmt;

use crate::ffi::IFNAMSIZ;

/// A name the kernel could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Longer than `IFNAMSIZ - 1` bytes.
    TooLong(String),
    /// Contains a NUL byte.
    Nul(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty interface name"),
            NameError::TooLong(n) => write!(
                f,
                "interface name {n:?} is longer than {} bytes",
                IFNAMSIZ - 1
            ),
            NameError::Nul(n) => write!(f, "interface name {n:?} contains a NUL byte"),
        }
    }
}

impl std::error::Error for NameError {}

/// `name` as the kernel's fixed-size, NUL-padded field.
pub fn ifname(name: &str) -> Result<[u8; IFNAMSIZ], NameError> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err(NameError::Empty);
    }
    if b.len() >= IFNAMSIZ {
        return Err(NameError::TooLong(name.to_string()));
    }
    if b.contains(&0) {
        return Err(NameError::Nul(name.to_string()));
    }
    let mut out = [0u8; IFNAMSIZ];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// The name in a kernel field: the bytes before the first NUL (all 16 if
/// there is none), or `None` if they are not UTF-8.
pub fn from_field(field: &[u8; IFNAMSIZ]) -> Option<&str> {
    let end = field.iter().position(|&c| c == 0).unwrap_or(IFNAMSIZ);
    core::str::from_utf8(&field[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_checks() {
        let f = ifname("carp0").unwrap();
        assert_eq!(&f[..6], b"carp0\0");
        assert_eq!(from_field(&f), Some("carp0"));
        assert!(ifname("carpcarpcarpcar").is_ok());
        assert_eq!(
            ifname("carpcarpcarpcarp"),
            Err(NameError::TooLong("carpcarpcarpcarp".into()))
        );
        assert_eq!(ifname(""), Err(NameError::Empty));
        assert!(matches!(ifname("a\0b"), Err(NameError::Nul(_))));
        assert_eq!(from_field(&[b'x'; IFNAMSIZ]), Some("xxxxxxxxxxxxxxxx"));
        let mut bad = [0u8; IFNAMSIZ];
        bad[0] = 0xff;
        assert_eq!(from_field(&bad), None);
    }
}
