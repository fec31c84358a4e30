//! What can be wrong with a PF_KEY message.

/// Why a PF_KEY message (or part of one) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfkeyError {
    /// Fewer than 16 bytes: no complete header.
    Short,
    /// The header's version is not 2.
    BadVersion(u8),
    /// The header's length (in 8-byte units) does not match the buffer.
    BadLength,
    /// An extension runs past the end of the message.
    ExtTruncated,
    /// An extension is shorter than the structure its type implies.
    ExtTooShort(u16),
    /// A view was asked for over an extension of another type.
    WrongExtType(u16),
    /// A sockaddr whose `sa_len` is inconsistent with its family or space.
    BadSockaddr,
    /// A sockaddr family other than AF_INET (2) or AF_INET6 (24).
    UnknownFamily(u8),
    /// A key extension claims more key bits than it carries.
    BadKeyLength,
    /// The message type is not one this operation handles.
    WrongType(u8),
    /// A required extension is absent.
    Missing(u16),
    /// The result would exceed `PFKEY_MSG_MAXSZ` (4096 bytes).
    TooLong,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl core::fmt::Display for PfkeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PfkeyError::Short => f.write_str("PF_KEY message shorter than its header"),
            PfkeyError::BadVersion(v) => write!(f, "PF_KEY version {v}, expected 2"),
            PfkeyError::BadLength => f.write_str("PF_KEY header length does not match message"),
            PfkeyError::ExtTruncated => f.write_str("PF_KEY extension runs past message end"),
            PfkeyError::ExtTooShort(t) => write!(f, "PF_KEY extension {t} too short"),
            PfkeyError::WrongExtType(t) => write!(f, "PF_KEY extension {t} has unexpected type"),
            PfkeyError::BadSockaddr => f.write_str("sockaddr length inconsistent"),
            PfkeyError::UnknownFamily(af) => write!(f, "unsupported address family {af}"),
            PfkeyError::BadKeyLength => f.write_str("PF_KEY key longer than its extension"),
            PfkeyError::WrongType(t) => write!(
                f,
                "PF_KEY message type {} not handled here",
                super::consts::msg_type_name(t)
            ),
            PfkeyError::Missing(t) => write!(f, "PF_KEY extension {t} missing"),
            PfkeyError::TooLong => f.write_str("PF_KEY message would exceed 4096 bytes"),
            PfkeyError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for PfkeyError {}
