//! The typed payloads of the devhost protocol: the hello that names a
//! connection's role, the host role's requests, and the status byte that
//! starts every reply. Layouts are in the crate documentation; integers
//! are big-endian.

use core::fmt;

use sasyncd_core::node::Table;

/// First bytes of every hello, so a stray client is told apart at once.
pub const MAGIC: [u8; 4] = *b"SDH1";
/// Largest payload a client may send in one frame (hello, host, ctl).
pub const MAX_REQUEST: usize = 4096;
/// Largest payload the devhost sends in one frame (a dump reply): a
/// million SAs and half a million flows dump to about 420 MB, and
/// development mode is meant to carry the sizes the product must.
pub const MAX_REPLY: usize = 1 << 30;

/// Status byte of a successful reply; the result follows.
pub const STATUS_OK: u8 = 0;
/// Status byte of a refused request; a UTF-8 message follows.
pub const STATUS_ERR: u8 = 1;

/// Role byte of a PF_KEY socket (a u32 pid follows).
pub const ROLE_PFKEY: u8 = 1;
/// Role byte of the privileged process's channel.
pub const ROLE_HOST: u8 = 2;
/// Role byte of a carp link-state watcher.
pub const ROLE_CARP: u8 = 3;
/// Role byte of a control client (CLI, tests).
pub const ROLE_CTL: u8 = 4;

/// Host request codes.
const REQ_DUMP: u8 = 1;
const REQ_DEMOTE: u8 = 2;
const REQ_GET_DEMOTE: u8 = 3;
const REQ_IKE: u8 = 4;
const REQ_LINK_STATE: u8 = 5;
const REQ_PFSYNC: u8 = 6;

/// What a connection is, as its hello says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A PF_KEY socket of the process with this pid.
    Pfkey {
        /// The pid the process writes in `sadb_msg_pid`.
        pid: u32,
    },
    /// The privileged process: dumps, demotion, IKE control, link state.
    Host,
    /// A watcher of the carp interface's link state.
    Carp,
    /// A control client speaking text commands.
    Ctl,
}

/// A request of the host role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRequest {
    /// The sysctl dump of a table.
    Dump(Table),
    /// Add a delta to the carp group's demotion counter.
    Demote(i32),
    /// Read the demotion counter.
    GetDemote,
    /// Tell the IKE daemon to be active (true) or passive.
    Ike(bool),
    /// The carp interface's `LINK_STATE_*`.
    LinkState,
    /// Whether a pfsync interface is up.
    Pfsync,
}

/// A malformed or unacceptable protocol element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// A frame's declared payload length is over the bound.
    FrameTooLong(usize),
    /// The hello does not start with [`MAGIC`].
    BadMagic,
    /// An unknown role byte.
    UnknownRole(u8),
    /// A pfkey hello with pid 0.
    ZeroPid,
    /// An unknown host request code.
    UnknownRequest(u8),
    /// A table byte other than 0 (SADB) or 1 (SPD).
    UnknownTable(u8),
    /// A payload of the wrong length for its kind.
    BadLength {
        /// The payload length.
        got: usize,
        /// The length its kind has.
        want: usize,
    },
    /// An empty payload where a request or status was expected.
    Empty,
    /// A status byte other than ok or error.
    BadStatus(u8),
    /// Text that is not UTF-8.
    NotUtf8,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtoError::FrameTooLong(n) => write!(f, "frame of {n} bytes is too long"),
            ProtoError::BadMagic => f.write_str("hello without the SDH1 magic"),
            ProtoError::UnknownRole(r) => write!(f, "unknown role {r}"),
            ProtoError::ZeroPid => f.write_str("pfkey hello with pid 0"),
            ProtoError::UnknownRequest(c) => write!(f, "unknown host request {c}"),
            ProtoError::UnknownTable(t) => write!(f, "unknown table {t}"),
            ProtoError::BadLength { got, want } => {
                write!(f, "payload of {got} bytes where {want} were expected")
            }
            ProtoError::Empty => f.write_str("empty payload"),
            ProtoError::BadStatus(s) => write!(f, "unknown status {s}"),
            ProtoError::NotUtf8 => f.write_str("text is not UTF-8"),
        }
    }
}

impl std::error::Error for ProtoError {}

fn exact(p: &[u8], want: usize) -> Result<(), ProtoError> {
    if p.len() == want {
        Ok(())
    } else {
        Err(ProtoError::BadLength { got: p.len(), want })
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

impl Role {
    /// The hello payload naming this role.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        match *self {
            Role::Pfkey { pid } => {
                v.push(ROLE_PFKEY);
                v.extend_from_slice(&pid.to_be_bytes());
            }
            Role::Host => v.push(ROLE_HOST),
            Role::Carp => v.push(ROLE_CARP),
            Role::Ctl => v.push(ROLE_CTL),
        }
        v
    }

    /// Parses a hello payload.
    pub fn decode(p: &[u8]) -> Result<Role, ProtoError> {
        if p.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(ProtoError::BadMagic);
        }
        let rest = &p[MAGIC.len()..];
        let (&role, args) = rest.split_first().ok_or(ProtoError::Empty)?;
        let role = match role {
            ROLE_PFKEY => {
                exact(args, 4)?;
                match be_u32(args) {
                    0 => return Err(ProtoError::ZeroPid),
                    pid => Role::Pfkey { pid },
                }
            }
            ROLE_HOST => Role::Host,
            ROLE_CARP => Role::Carp,
            ROLE_CTL => Role::Ctl,
            r => return Err(ProtoError::UnknownRole(r)),
        };
        if !matches!(role, Role::Pfkey { .. }) {
            exact(args, 0)?;
        }
        Ok(role)
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Pfkey { .. } => "pfkey",
            Role::Host => "host",
            Role::Carp => "carp",
            Role::Ctl => "ctl",
        }
    }
}

impl HostRequest {
    /// The request payload.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            HostRequest::Dump(t) => vec![REQ_DUMP, matches!(t, Table::Spd) as u8],
            HostRequest::Demote(d) => {
                let mut v = vec![REQ_DEMOTE];
                v.extend_from_slice(&d.to_be_bytes());
                v
            }
            HostRequest::GetDemote => vec![REQ_GET_DEMOTE],
            HostRequest::Ike(active) => vec![REQ_IKE, active as u8],
            HostRequest::LinkState => vec![REQ_LINK_STATE],
            HostRequest::Pfsync => vec![REQ_PFSYNC],
        }
    }

    /// Parses a request payload.
    pub fn decode(p: &[u8]) -> Result<HostRequest, ProtoError> {
        let (&code, args) = p.split_first().ok_or(ProtoError::Empty)?;
        match code {
            REQ_DUMP => {
                exact(args, 1)?;
                match args[0] {
                    0 => Ok(HostRequest::Dump(Table::Sadb)),
                    1 => Ok(HostRequest::Dump(Table::Spd)),
                    t => Err(ProtoError::UnknownTable(t)),
                }
            }
            REQ_DEMOTE => {
                exact(args, 4)?;
                Ok(HostRequest::Demote(be_u32(args) as i32))
            }
            REQ_GET_DEMOTE => exact(args, 0).map(|()| HostRequest::GetDemote),
            REQ_IKE => {
                exact(args, 1)?;
                Ok(HostRequest::Ike(args[0] != 0))
            }
            REQ_LINK_STATE => exact(args, 0).map(|()| HostRequest::LinkState),
            REQ_PFSYNC => exact(args, 0).map(|()| HostRequest::Pfsync),
            c => Err(ProtoError::UnknownRequest(c)),
        }
    }
}

/// A successful reply payload carrying `result`.
pub fn ok_reply(result: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + result.len());
    v.push(STATUS_OK);
    v.extend_from_slice(result);
    v
}

/// A refusal payload carrying `message`.
pub fn err_reply(message: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + message.len());
    v.push(STATUS_ERR);
    v.extend_from_slice(message.as_bytes());
    v
}

/// Splits a reply payload into its result or its refusal message.
pub fn parse_reply(p: &[u8]) -> Result<Result<&[u8], String>, ProtoError> {
    match p.split_first() {
        None => Err(ProtoError::Empty),
        Some((&STATUS_OK, rest)) => Ok(Ok(rest)),
        Some((&STATUS_ERR, rest)) => match core::str::from_utf8(rest) {
            Ok(s) => Ok(Err(s.to_string())),
            Err(_) => Err(ProtoError::NotUtf8),
        },
        Some((&s, _)) => Err(ProtoError::BadStatus(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in [Role::Pfkey { pid: 4242 }, Role::Host, Role::Carp, Role::Ctl] {
            assert_eq!(Role::decode(&r.encode()), Ok(r));
        }
        assert_eq!(
            Role::Pfkey { pid: 0x1092 }.encode(),
            b"SDH1\x01\x00\x00\x10\x92".to_vec()
        );
    }

    #[test]
    fn bad_hellos() {
        assert_eq!(Role::decode(b"SDH2\x02"), Err(ProtoError::BadMagic));
        assert_eq!(Role::decode(b"SD"), Err(ProtoError::BadMagic));
        assert_eq!(Role::decode(b"SDH1"), Err(ProtoError::Empty));
        assert_eq!(Role::decode(b"SDH1\x09"), Err(ProtoError::UnknownRole(9)));
        assert_eq!(
            Role::decode(b"SDH1\x01\x00\x00\x00\x00"),
            Err(ProtoError::ZeroPid)
        );
        assert_eq!(
            Role::decode(b"SDH1\x01\x00\x01"),
            Err(ProtoError::BadLength { got: 2, want: 4 })
        );
        assert_eq!(
            Role::decode(b"SDH1\x02x"),
            Err(ProtoError::BadLength { got: 1, want: 0 })
        );
    }

    #[test]
    fn host_requests_round_trip() {
        for r in [
            HostRequest::Dump(Table::Sadb),
            HostRequest::Dump(Table::Spd),
            HostRequest::Demote(-3),
            HostRequest::Demote(i32::MAX),
            HostRequest::GetDemote,
            HostRequest::Ike(true),
            HostRequest::Ike(false),
            HostRequest::LinkState,
            HostRequest::Pfsync,
        ] {
            assert_eq!(HostRequest::decode(&r.encode()), Ok(r));
        }
        assert_eq!(
            HostRequest::Demote(-1).encode(),
            [2, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn bad_host_requests() {
        assert_eq!(HostRequest::decode(&[]), Err(ProtoError::Empty));
        assert_eq!(
            HostRequest::decode(&[9]),
            Err(ProtoError::UnknownRequest(9))
        );
        assert_eq!(
            HostRequest::decode(&[1, 2]),
            Err(ProtoError::UnknownTable(2))
        );
        assert_eq!(
            HostRequest::decode(&[2, 0]),
            Err(ProtoError::BadLength { got: 1, want: 4 })
        );
        assert_eq!(
            HostRequest::decode(&[5, 0]),
            Err(ProtoError::BadLength { got: 1, want: 0 })
        );
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(&ok_reply(b"abc")), Ok(Ok(&b"abc"[..])));
        assert_eq!(parse_reply(&err_reply("no")), Ok(Err("no".to_string())));
        assert_eq!(parse_reply(&[]), Err(ProtoError::Empty));
        assert_eq!(parse_reply(&[7]), Err(ProtoError::BadStatus(7)));
        assert_eq!(parse_reply(&[1, 0xff]), Err(ProtoError::NotUtf8));
    }
}
