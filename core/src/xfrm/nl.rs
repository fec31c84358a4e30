//! Netlink framing: message headers, attributes, and a builder.
//!
//! A netlink datagram holds one or more messages, each a 16-byte header
//! (length, type, flags, sequence, port id) and a payload padded to 4 bytes;
//! XFRM payloads are a fixed struct followed by attributes (length, type,
//! data, padded to 4). Everything here is in host byte order, as the kernel
//! writes it. Parsing never panics: a datagram that lies about a length
//! yields an error, and the caller drops what is left of it. Writing goes
//! into the caller's buffer ([`Writer`]): no heap, and a buffer too small
//! is an error that says how much was needed.

/// Bytes of a netlink message header.
pub const HDR_LEN: usize = 16;
/// Bytes of an attribute header.
pub const ATTR_HDR_LEN: usize = 4;

/// A message carrying an error code (0: an acknowledgement).
pub const NLMSG_ERROR: u16 = 2;
/// The end of a multi-part (dump) reply.
pub const NLMSG_DONE: u16 = 3;
/// A request (every message user space sends).
pub const NLM_F_REQUEST: u16 = 0x1;
/// One part of a multi-part reply.
pub const NLM_F_MULTI: u16 = 0x2;
/// Answer with an acknowledgement (or an error).
pub const NLM_F_ACK: u16 = 0x4;
/// Replace an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// Return every object of the table (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;

/// Rounds `n` up to netlink's 4-byte alignment.
pub const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Why bytes are not a netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlError {
    /// Fewer bytes than a header.
    Short(usize),
    /// The header's length is shorter than a header or runs past the bytes.
    BadLength {
        /// The length the header announces.
        len: usize,
        /// The bytes there were.
        avail: usize,
    },
    /// The payload is shorter than the fixed struct its type carries.
    ShortPayload {
        /// The message type.
        kind: u16,
        /// Bytes the struct needs.
        need: usize,
        /// Bytes the payload has.
        got: usize,
    },
    /// An attribute's length is shorter than its header or runs past the
    /// message.
    BadAttr {
        /// The attribute's type.
        kind: u16,
        /// Its announced length.
        len: usize,
    },
    /// A message being written does not fit the caller's buffer.
    NoRoom {
        /// Bytes the whole message needs.
        need: usize,
    },
}

impl core::fmt::Display for NlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NlError::Short(n) => write!(f, "{n} bytes, shorter than a netlink header"),
            NlError::BadLength { len, avail } => {
                write!(f, "header length {len} with {avail} bytes left")
            }
            NlError::ShortPayload { kind, need, got } => {
                write!(f, "message type {kind}: payload {got} bytes, needs {need}")
            }
            NlError::BadAttr { kind, len } => write!(f, "attribute {kind} of length {len}"),
            NlError::NoRoom { need } => write!(f, "needs a {need}-byte buffer"),
        }
    }
}

impl core::error::Error for NlError {}

/// The `u16` at `at` (host order); the caller has checked the length.
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// The `u32` at `at` (host order); the caller has checked the length.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The `u64` at `at` (host order); the caller has checked the length.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

/// A checked view of one netlink message (header and payload).
#[derive(Clone, Copy)]
pub struct Msg<'a> {
    bytes: &'a [u8],
}

impl core::fmt::Debug for Msg<'_> {
    // Payloads hold keys: show the header only.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Msg")
            .field("kind", &self.kind())
            .field("len", &self.bytes.len())
            .field("flags", &self.flags())
            .field("seq", &self.seq())
            .field("pid", &self.pid())
            .finish()
    }
}

impl<'a> Msg<'a> {
    /// Checks that `bytes` is exactly one message.
    pub fn new(bytes: &'a [u8]) -> Result<Msg<'a>, NlError> {
        if bytes.len() < HDR_LEN {
            return Err(NlError::Short(bytes.len()));
        }
        let len = u32_at(bytes, 0) as usize;
        if len < HDR_LEN || len > bytes.len() {
            return Err(NlError::BadLength {
                len,
                avail: bytes.len(),
            });
        }
        Ok(Msg {
            bytes: &bytes[..len],
        })
    }

    /// The whole message, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The message type.
    pub fn kind(&self) -> u16 {
        u16_at(self.bytes, 4)
    }
    /// The header's flags.
    pub fn flags(&self) -> u16 {
        u16_at(self.bytes, 6)
    }
    /// The sequence number (a request's, echoed in its replies).
    pub fn seq(&self) -> u32 {
        u32_at(self.bytes, 8)
    }
    /// The port id: of the sender for a request; in an event, the port of
    /// the socket whose request caused it (0 for the kernel's own).
    pub fn pid(&self) -> u32 {
        u32_at(self.bytes, 12)
    }
    /// The payload after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[HDR_LEN..]
    }

    /// The fixed struct of `need` bytes at the start of the payload, and
    /// the attributes after it (which start at `align(need)`).
    pub fn split(&self, need: usize) -> Result<(&'a [u8], Attrs<'a>), NlError> {
        let p = self.payload();
        if p.len() < need {
            return Err(NlError::ShortPayload {
                kind: self.kind(),
                need,
                got: p.len(),
            });
        }
        let rest = p.get(align(need)..).unwrap_or(&[]);
        Ok((&p[..need], Attrs { rest }))
    }

    /// For `NLMSG_ERROR`: the errno (positive; 0 is an acknowledgement).
    pub fn error(&self) -> Option<i32> {
        if self.kind() != NLMSG_ERROR || self.payload().len() < 4 {
            return None;
        }
        Some((u32_at(self.payload(), 0) as i32).wrapping_neg())
    }
}

/// The messages of one datagram, in order.
#[derive(Debug, Clone)]
pub struct Msgs<'a> {
    rest: &'a [u8],
}

/// Iterates the messages of a datagram; a malformed one ends the iteration
/// with an error (what follows it cannot be framed).
pub fn messages(datagram: &[u8]) -> Msgs<'_> {
    Msgs { rest: datagram }
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Result<Msg<'a>, NlError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Msg::new(self.rest) {
            Ok(m) => {
                let step = align(m.bytes.len()).min(self.rest.len());
                self.rest = &self.rest[step..];
                Some(Ok(m))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// One attribute: its type (flag bits masked off) and data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// The type, without the nested and byte-order flag bits.
    pub kind: u16,
    /// The data, without padding.
    pub data: &'a [u8],
}

impl core::fmt::Debug for Attr<'_> {
    // Attribute data can be a key: show the type and length only.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Attr({}, {} bytes)", self.kind, self.data.len())
    }
}

impl Attr<'_> {
    /// The data as a `u32`, if it is at least that long.
    pub fn u32(&self) -> Option<u32> {
        (self.data.len() >= 4).then(|| u32_at(self.data, 0))
    }
}

/// The attributes after a message's fixed struct.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// The first attribute of type `kind`, if any (a malformed list ends
    /// the search).
    pub fn find(&self, kind: u16) -> Option<Attr<'a>> {
        self.clone().filter_map(Result::ok).find(|a| a.kind == kind)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, NlError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < ATTR_HDR_LEN {
            // Trailing padding shorter than a header is not an attribute.
            self.rest = &[];
            return None;
        }
        let len = usize::from(u16_at(self.rest, 0));
        let kind = u16_at(self.rest, 2) & 0x3fff;
        if len < ATTR_HDR_LEN || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(NlError::BadAttr { kind, len }));
        }
        let data = &self.rest[ATTR_HDR_LEN..len];
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(Attr { kind, data }))
    }
}

/// Builds one netlink message into a growing buffer: for std hosts
/// (tests, the simulator, the Linux platform); the node uses [`Writer`].
#[cfg(any(test, feature = "alloc"))]
#[derive(Debug, Default)]
pub struct Builder {
    buf: alloc::vec::Vec<u8>,
}

#[cfg(any(test, feature = "alloc"))]
impl Builder {
    /// A message of type `kind` with `flags`; sequence and port id are 0
    /// (the socket sets the sequence when it sends).
    pub fn new(kind: u16, flags: u16) -> Builder {
        let mut buf = alloc::vec::Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0u8; 8]);
        Builder { buf }
    }

    /// Appends raw bytes (the fixed struct), padded to 4.
    pub fn raw(mut self, bytes: &[u8]) -> Builder {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends an attribute.
    pub fn attr(mut self, kind: u16, data: &[u8]) -> Builder {
        let len = ATTR_HDR_LEN + data.len();
        // An attribute longer than 64 KiB cannot be framed; XFRM's largest
        // (a sec context, an algorithm key) are far below.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let n = align(self.buf.len()) - self.buf.len();
        self.buf.extend(core::iter::repeat_n(0u8, n));
    }

    /// The finished message, its length set.
    pub fn finish(mut self) -> alloc::vec::Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The message `write` puts into a buffer, in a vector sized to it: for
/// std hosts, over the writers of [`super::rewrite`].
#[cfg(any(test, feature = "alloc"))]
pub fn to_vec(
    mut write: impl FnMut(&mut [u8]) -> Result<usize, NlError>,
) -> Result<alloc::vec::Vec<u8>, NlError> {
    let mut buf = alloc::vec![0u8; 512];
    loop {
        match write(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(NlError::NoRoom { need }) if need > buf.len() => buf.resize(need, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Writes one netlink message into the caller's buffer.
///
/// Each step appends (header, fixed struct, attributes, each padded to 4);
/// what does not fit is counted, not written, so [`Writer::finish`] can say
/// how large the buffer had to be.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    bad: Option<NlError>,
}

impl<'b> Writer<'b> {
    /// A message of type `kind` with `flags`; sequence and port id are 0
    /// (the sender sets them: [`set_seq_pid`]).
    pub fn new(buf: &'b mut [u8], kind: u16, flags: u16) -> Writer<'b> {
        let mut w = Writer {
            buf,
            len: 0,
            bad: None,
        };
        w.put(&0u32.to_ne_bytes());
        w.put(&kind.to_ne_bytes());
        w.put(&flags.to_ne_bytes());
        w.put(&[0u8; 8]);
        w
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn pad(&mut self) {
        let n = align(self.len) - self.len;
        self.put(&[0u8; 3][..n]);
    }

    /// Appends raw bytes (the fixed struct), padded to 4.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.put(bytes);
        self.pad();
        self
    }

    /// Appends an attribute.
    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = ATTR_HDR_LEN + data.len();
        // Netlink cannot frame an attribute past 64 KiB; XFRM's largest (a
        // security context, a key) are far below, and one read from a
        // message always fits.
        let Ok(len16) = u16::try_from(len) else {
            self.bad = Some(NlError::BadAttr { kind, len });
            return self;
        };
        self.put(&len16.to_ne_bytes());
        self.put(&kind.to_ne_bytes());
        self.put(data);
        self.pad();
        self
    }

    /// The finished message's length, its header's length field set; or
    /// why it could not be written.
    pub fn finish(self) -> Result<usize, NlError> {
        if let Some(e) = self.bad {
            return Err(e);
        }
        if self.len > self.buf.len() {
            return Err(NlError::NoRoom { need: self.len });
        }
        let len = u32::try_from(self.len).map_err(|_| NlError::NoRoom { need: self.len })?;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        Ok(self.len)
    }
}

/// Sets a message's sequence number and port id in place.
pub fn set_seq_pid(msg: &mut [u8], seq: u32, pid: u32) {
    if msg.len() >= HDR_LEN {
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        msg[12..16].copy_from_slice(&pid.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn build(kind: u16, flags: u16, f: impl Fn(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf, kind, flags);
        f(&mut w);
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn writes_and_parses_a_message_with_attributes() {
        let m = build(0x10, NLM_F_REQUEST | NLM_F_ACK, |w| {
            w.raw(&[1, 2, 3, 4, 5, 6])
                .attr(21, &7u32.to_ne_bytes())
                .attr(2, &[9; 5]);
        });
        assert_eq!(m.len() % 4, 0);
        assert_eq!(m.len(), HDR_LEN + 8 + 8 + 12);
        let msg = Msg::new(&m).unwrap();
        assert_eq!(msg.kind(), 0x10);
        assert_eq!(msg.flags(), NLM_F_REQUEST | NLM_F_ACK);
        let (fixed, attrs) = msg.split(6).unwrap();
        assert_eq!(fixed, &[1, 2, 3, 4, 5, 6]);
        let all: Vec<_> = attrs.clone().map(Result::unwrap).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].u32(), Some(7));
        assert_eq!(all[1].data, &[9; 5]);
        assert_eq!(attrs.find(2).unwrap().data.len(), 5);
        assert!(attrs.find(3).is_none());
    }

    #[test]
    fn a_small_buffer_says_what_it_needed() {
        let mut buf = [0xaau8; 20];
        let mut w = Writer::new(&mut buf, 0x10, 0);
        w.raw(&[1; 6]).attr(2, &[3; 9]);
        assert_eq!(w.finish(), Err(NlError::NoRoom { need: 16 + 8 + 16 }));
        let mut w = Writer::new(&mut buf, 0x10, 0);
        w.attr(2, &[0; 70_000]);
        assert!(matches!(w.finish(), Err(NlError::BadAttr { kind: 2, .. })));
        // Padding is written as zeros over whatever the buffer held.
        let mut w = Writer::new(&mut buf, 0x10, 0);
        w.raw(&[1]);
        assert_eq!(w.finish(), Ok(20));
        assert_eq!(buf[16..20], [1, 0, 0, 0]);
    }

    #[test]
    fn iterates_the_messages_of_a_datagram() {
        let mut d = build(0x10, 0, |w| {
            w.raw(&[0; 3]);
        });
        d.extend(build(NLMSG_DONE, NLM_F_MULTI, |w| {
            w.raw(&0u32.to_ne_bytes());
        }));
        let kinds: Vec<u16> = messages(&d).map(|m| m.unwrap().kind()).collect();
        assert_eq!(kinds, [0x10, NLMSG_DONE]);
    }

    #[test]
    fn lying_lengths_are_errors_not_panics() {
        assert_eq!(Msg::new(&[0; 8]).unwrap_err(), NlError::Short(8));
        let mut m = build(0x10, 0, |w| {
            w.raw(&[0; 8]);
        });
        m[0] = 200;
        assert!(matches!(
            Msg::new(&m),
            Err(NlError::BadLength { len: 200, .. })
        ));
        m[0] = 4;
        assert!(Msg::new(&m).is_err());
        let mut d = build(0x10, 0, |w| {
            w.attr(1, &[0; 4]);
        });
        // The attribute claims 40 bytes.
        d[HDR_LEN] = 40;
        let msg = Msg::new(&d).unwrap();
        let (_, mut attrs) = msg.split(0).unwrap();
        assert!(matches!(
            attrs.next(),
            Some(Err(NlError::BadAttr { kind: 1, len: 40 }))
        ));
        assert!(attrs.next().is_none());
        assert!(matches!(
            msg.split(64),
            Err(NlError::ShortPayload { need: 64, .. })
        ));
        let mut garbage = messages(&[0xff; 40]);
        assert!(garbage.next().unwrap().is_err());
        assert!(garbage.next().is_none());
    }

    #[test]
    fn reads_an_error_message() {
        let ack = build(NLMSG_ERROR, 0, |w| {
            w.raw(&(-17i32).to_ne_bytes()).raw(&[0; HDR_LEN]);
        });
        assert_eq!(Msg::new(&ack).unwrap().error(), Some(17));
        let not = build(NLMSG_DONE, 0, |w| {
            w.raw(&[0; 4]);
        });
        assert_eq!(Msg::new(&not).unwrap().error(), None);
    }

    #[test]
    fn sets_sequence_and_port() {
        let mut m = build(0x12, NLM_F_REQUEST, |_| {});
        set_seq_pid(&mut m, 7, 9);
        let msg = Msg::new(&m).unwrap();
        assert_eq!((msg.seq(), msg.pid()), (7, 9));
    }
}
