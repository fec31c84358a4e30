//! Whole-grammar tests: every statement, every default, every error message.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::state::{FlushMode, RunState};

const BASE: &str = "interface carp0\nsharedkey sasyncd-test-key\n";

fn ok(text: &str) -> Config {
    match Config::parse(text.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {}", e.display_with("sasyncd.conf")),
    }
}

fn with_base(text: &str) -> Config {
    ok(&format!("{BASE}{text}"))
}

fn err(text: &[u8]) -> String {
    match Config::parse(text) {
        Ok(c) => panic!("{:?} parsed: {c:?}", String::from_utf8_lossy(text)),
        Err(e) => e.display_with("sasyncd.conf").to_string(),
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

#[test]
fn defaults() {
    let c = ok(BASE);
    assert_eq!(c.interface.as_deref(), Some("carp0"));
    assert_eq!(c.group, "carp");
    assert_eq!(c.flushmode, FlushMode::Startup);
    assert!(c.peers.is_empty());
    assert_eq!(c.listen, Listen::default());
    assert_eq!(c.listen.on, ListenOn::Any);
    assert_eq!(c.listen.port, 500);
    assert_eq!(c.listen.family, None);
    assert_eq!(c.locked, None);
    assert!(!c.skipslave);
    assert_eq!(c.sharedkey.as_bytes(), b"sasyncd-test-key");
    assert_eq!(
        c.control,
        Control {
            isakmpd: true,
            iked: false
        }
    );
    assert_eq!(c.protocol, Protocol::V2);
}

#[test]
fn every_keyword() {
    let c = ok("interface carp1 group mygroup flushmode sync\n\
         peer 10.0.0.2 peer 2001:db8::2 port 8500 peer fw2.example\n\
         listen on em0 inet6 port 5000\n\
         mode slave mode skipslave\n\
         sharedkey 0x00112233445566778899aabbccddeeff0011223344556677\n\
         control all protocol legacy\n");
    assert_eq!(c.interface.as_deref(), Some("carp1"));
    assert_eq!(c.group, "mygroup");
    assert_eq!(c.flushmode, FlushMode::Sync);
    let peers: Vec<_> = c
        .peers
        .iter()
        .map(|p| (p.name.as_str(), p.addr, p.port))
        .collect();
    let v6: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into();
    assert_eq!(
        peers,
        [
            ("10.0.0.2", v4(10, 0, 0, 2), None),
            ("2001:db8::2", Some(v6), Some(8500)),
            ("fw2.example", None, None),
        ]
    );
    assert_eq!(c.peers[0].port_or(c.listen.port), 5000);
    assert_eq!(c.peers[1].port_or(c.listen.port), 8500);
    let on = ListenOn::Interface(IfName::try_from("em0").unwrap());
    assert_eq!(
        c.listen,
        Listen {
            on,
            family: Some(Family::Inet6),
            port: 5000
        }
    );
    assert_eq!(c.locked, Some(RunState::Slave));
    assert!(c.skipslave);
    assert_eq!(c.sharedkey.as_bytes().len(), 24);
    assert_eq!(c.sharedkey.as_bytes()[..2], [0x00, 0x11]);
    assert_eq!(
        c.control,
        Control {
            isakmpd: true,
            iked: true
        }
    );
    assert_eq!(c.protocol, Protocol::Legacy);
}

#[test]
fn enumerated_values() {
    for (text, mode) in [("startup", FlushMode::Startup), ("never", FlushMode::Never)] {
        assert_eq!(with_base(&format!("flushmode {text}")).flushmode, mode);
    }
    for (text, isakmpd, iked) in [
        ("isakmpd", true, false),
        ("iked", false, true),
        ("all", true, true),
        ("none", false, false),
        ("\"iked\"", false, true),
    ] {
        assert_eq!(
            with_base(&format!("control {text}")).control,
            Control { isakmpd, iked }
        );
    }
    assert_eq!(with_base("protocol v2").protocol, Protocol::V2);
    assert_eq!(with_base("mode \"master\"").locked, Some(RunState::Master));
    let c = with_base("mode skipslave");
    assert_eq!((c.locked, c.skipslave), (None, true));
}

#[test]
fn single_valued_statements_appear_once() {
    let cases = [
        (
            "interface a\ninterface b",
            "2: duplicate interface statement (first on line 1; it may appear once)",
        ),
        (
            "group g1\n\ngroup g2",
            "3: duplicate group statement (first on line 1; it may appear once)",
        ),
        (
            "flushmode never flushmode sync",
            "1: duplicate flushmode statement (first on line 1; it may appear once)",
        ),
        (
            "listen on 10.0.0.1\nlisten on ::1",
            "2: duplicate listen on statement (first on line 1; it may appear once)",
        ),
        (
            "mode master\nmode slave",
            "2: duplicate mode master|slave statement (first on line 1; it may appear once)",
        ),
        (
            "mode skipslave\nmode skipslave",
            "2: duplicate mode skipslave statement (first on line 1; it may appear once)",
        ),
        (
            "sharedkey 0123456789abcdef",
            "3: duplicate sharedkey statement (first on line 2; it may appear once)",
        ),
        (
            "control iked\ncontrol none",
            "2: duplicate control statement (first on line 1; it may appear once)",
        ),
        (
            "protocol legacy protocol v2",
            "1: duplicate protocol statement (first on line 1; it may appear once)",
        ),
    ];
    for (text, msg) in cases {
        let text = if text.starts_with("sharedkey") {
            format!("interface carp0\nsharedkey sasyncd-test-key\n{text}")
        } else {
            format!("{text}\n")
        };
        let got = Config::parse(text.as_bytes()).unwrap_err();
        assert_eq!(
            got.display_with("f").to_string(),
            format!("f:{msg}"),
            "{text:?}"
        );
    }
    // The lock and skipslave are two settings: one of each is fine.
    let c = with_base("mode master mode skipslave");
    assert_eq!((c.locked, c.skipslave), (Some(RunState::Master), true));
    // Peers are many.
    assert_eq!(with_base("peer 10.0.0.1 peer 10.0.0.2").peers.len(), 2);
}

#[test]
fn unusable_addresses_are_refused_with_their_line() {
    let cases = [
        ("\npeer 0.0.0.0", "2: peer 0.0.0.0: the unspecified address"),
        ("peer ::", "1: peer ::: the unspecified address"),
        ("peer 224.0.0.18", "1: peer 224.0.0.18: a multicast or broadcast address"),
        ("peer 255.255.255.255", "1: peer 255.255.255.255: a multicast or broadcast address"),
        ("peer ff02::1", "1: peer ff02::1: a multicast or broadcast address"),
        ("peer fe80::1%lo", "1: peer fe80::1%lo: a link-local or scoped address, which cannot be used (use a global or unique-local one)"),
        ("peer fe80::1", "1: peer fe80::1: a link-local or scoped address, which cannot be used (use a global or unique-local one)"),
        ("listen on 999.1.1.1", "1: listen on 999.1.1.1: neither an address nor an interface name"),
        ("listen on 10.0.0", "1: listen on 10.0.0: neither an address nor an interface name"),
        ("listen on 2001:db8::zz", "1: listen on 2001:db8::zz: neither an address nor an interface name"),
        ("listen on fe80::1%em0", "1: listen on fe80::1%em0: a link-local or scoped address, which cannot be used (use a global or unique-local one)"),
        ("listen on 224.0.0.1", "1: listen on 224.0.0.1: a multicast or broadcast address"),
    ];
    for (text, msg) in cases {
        assert_eq!(
            err(format!("{BASE}{text}").as_bytes()),
            format!("sasyncd.conf:{}", bump(msg))
        );
    }
    // The wildcard may be listened on; a peer's line is kept.
    let c = with_base("listen on 0.0.0.0\n\npeer 10.0.0.2");
    assert_eq!(c.lines.listen, 3);
    assert_eq!(c.lines.peer(0), 5);
}

/// `msg`'s line number moved down by [`BASE`]'s two lines.
fn bump(msg: &str) -> String {
    let (n, rest) = msg.split_once(':').unwrap();
    format!("{}:{rest}", n.parse::<u32>().unwrap() + 2)
}

#[test]
fn weak_keys_are_refused() {
    for key in [
        "0x00000000000000000000000000000000",
        "\"                \"",
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        "0X00000000000000000000000000000000",
    ] {
        assert_eq!(
            err(format!("interface c\nsharedkey {key}").as_bytes()),
            "sasyncd.conf:2: sharedkey is one byte repeated; use a random key (see sasyncd.conf(5))",
            "{key}"
        );
    }
}

#[test]
fn listen_forms() {
    let c = with_base("listen on 192.0.2.1 inet port 65535");
    let on = ListenOn::Addr(v4(192, 0, 2, 1).unwrap());
    assert_eq!(
        c.listen,
        Listen {
            on,
            family: Some(Family::Inet),
            port: 65535
        }
    );
    let c = with_base("listen on \"inet\" port \"1\"");
    let on = ListenOn::Interface(IfName::try_from("inet").unwrap());
    assert_eq!(
        c.listen,
        Listen {
            on,
            family: None,
            port: 1
        }
    );
    assert_eq!(with_base("listen on em0 port 0500").listen.port, 500);
}

#[test]
fn interface_only_required_without_lock() {
    for mode in ["master", "slave"] {
        let c = ok(&format!("sharedkey sasyncd-test-key mode {mode}"));
        assert_eq!(c.interface, None);
    }
    assert_eq!(
        err(b"sharedkey sasyncd-test-key mode skipslave"),
        "sasyncd.conf: missing interface (required unless mode master or mode slave)"
    );
}

#[test]
fn shared_keys() {
    let text = with_base("").sharedkey.as_bytes().to_vec();
    let hex = ok("interface c sharedkey 0x736173796e63642d746573742d6b6579");
    assert_eq!(hex.sharedkey.as_bytes(), text.as_slice());
    let upper = ok("interface c sharedkey 0X736173796E63642D746573742D6B6579");
    assert_eq!(upper.sharedkey.as_bytes(), text.as_slice());
    let cases: [(&str, &[u8]); 6] = [
        ("1234567890abcdef", b"1234567890abcdef"),
        ("\"1234567890abcdef\"", b"1234567890abcdef"),
        ("\"0x11223344556677\"", b"0x11223344556677"),
        ("\"key with #and \\\"\\\\\"", b"key with #and \"\\"),
        ("\"interface master\"", b"interface master"),
        (
            "0123456789abcdef0123456789abcdef",
            b"0123456789abcdef0123456789abcdef",
        ),
    ];
    for (key, bytes) in cases {
        let c = ok(&format!("interface c sharedkey {key}"));
        assert_eq!(c.sharedkey.as_bytes(), bytes, "{key}");
    }
    let long = format!("sharedkey 0x{}", "ab".repeat(31) + "cd");
    assert_eq!(
        ok(&format!("mode master {long}")).sharedkey.as_bytes()[..2],
        [0xab; 2]
    );
    // A quoted key may continue on the next line.
    let c = ok("mode master sharedkey \"sasyncd-\\\ntest-key\"");
    assert_eq!(c.sharedkey.as_bytes(), b"sasyncd-test-key");
}

#[test]
fn quoted_keywords_are_values() {
    let c = ok("sharedkey sasyncd-test-key peer \"master\" interface \"mode\" group \"port\"");
    assert_eq!(c.peers[0].name, "master");
    assert_eq!(c.peers[0].addr, None);
    assert_eq!(c.interface.as_deref(), Some("mode"));
    assert_eq!(c.group, "port");
}

#[test]
fn comments_and_continuations() {
    let c = ok(
        "interface carp0#c1\n#whole line\npeer 10.0.0.1#c\npeer 10.0.0.2 \\\n\
         port 600\nsharedkey sasyncd-test-key # trailing\n",
    );
    assert_eq!(c.interface.as_deref(), Some("carp0"));
    assert_eq!(c.peers[0].addr, v4(10, 0, 0, 1));
    assert_eq!(c.peers[1].port, Some(600));
    // Errors after continuation lines report the physical line.
    assert_eq!(
        err(b"peer 10.0.0.1 \\\nport 600 \\\n\\\n\nbogus"),
        "sasyncd.conf:5: expected a statement, got \"bogus\""
    );
    assert_eq!(
        err(b"sharedkey \"sasyncd-\\\ntest-key\" \\\n\n peer"),
        "sasyncd.conf:4: expected peer address after peer"
    );
}

#[test]
fn peers_keep_order_and_capacity() {
    let mut text = String::from(BASE);
    for i in 0..MAX_PEERS {
        text.push_str(&format!("peer 10.0.1.{i}\n"));
    }
    let c = ok(&text);
    assert_eq!(c.peers.len(), MAX_PEERS);
    assert_eq!(c.peers[MAX_PEERS - 1].addr, v4(10, 0, 1, 7));
    text.push_str("peer 10.0.1.200\n");
    assert_eq!(
        err(text.as_bytes()),
        "sasyncd.conf:11: too many peers (at most 8)"
    );
}

#[test]
fn duplicate_peers() {
    let cases: [(&str, &str); 4] = [
        (
            "\n\n\n\npeer 10.0.0.2\n\npeer 10.0.0.2",
            "7: duplicate peer 10.0.0.2 (first on line 5)",
        ),
        (
            "peer 2001:db8::1\npeer 2001:DB8:0::1 port 9",
            "2: duplicate peer 2001:DB8:0::1 (first on line 1)",
        ),
        (
            "peer 10.0.0.2 port 1\npeer 10.0.0.2 port 2",
            "2: duplicate peer 10.0.0.2 (first on line 1)",
        ),
        (
            "peer Fw.Example\npeer fw.example",
            "2: duplicate peer fw.example (first on line 1)",
        ),
    ];
    for (text, msg) in cases {
        assert_eq!(err(text.as_bytes()), format!("sasyncd.conf:{msg}"));
    }
    // A name and an address are different peers, even if the name would resolve to it.
    assert_eq!(
        with_base("peer 10.0.0.2 peer localhost peer 127.0.0.1")
            .peers
            .len(),
        3
    );
}

#[test]
fn name_limits() {
    assert_eq!(
        ok("sharedkey sasyncd-test-key interface abcdefghijklmno")
            .interface
            .unwrap()
            .len(),
        15
    );
    let long_peer = "p".repeat(PEER_NAME_MAX);
    assert_eq!(
        with_base(&format!("peer {long_peer}")).peers[0].name.len(),
        255
    );
}

/// Every error variant, with its exact message.
#[test]
fn error_messages() {
    let hi = "h".repeat(256);
    let cases: Vec<(Vec<u8>, &str)> = [
        ("bogus carp0", "1: expected a statement, got \"bogus\""),
        ("master", "1: expected a statement, got keyword master"),
        ("\"interface\" carp0", "1: expected a statement, got \"interface\""),
        ("sharedkey sasyncd-test-key\ninterface", "2: expected interface name after interface"),
        ("interface peer", "1: expected interface name after interface, got keyword peer (quote it to use it as a value)"),
        ("group", "1: expected group name after group"),
        ("flushmode always", "1: expected startup, never or sync after flushmode, got \"always\""),
        ("flushmode\nmaster", "2: expected startup, never or sync after flushmode, got keyword master"),
        ("peer master", "1: expected peer address after peer, got keyword master (quote it to use it as a value)"),
        ("listen at 10.0.0.1", "1: expected on after listen, got \"at\""),
        ("listen on", "1: expected address or interface name after on"),
        ("peer 10.0.0.1 port", "1: expected port number after port"),
        ("peer 10.0.0.1 port sync", "1: expected port number after port, got keyword sync"),
        ("\nmode", "2: expected master, slave or skipslave after mode"),
        ("sharedkey sync", "1: expected shared key after sharedkey, got keyword sync (quote it to use it as a value)"),
        ("control both", "1: expected isakmpd, iked, all or none after control, got \"both\""),
        ("protocol v3", "1: expected legacy or v2 after protocol, got \"v3\""),
        ("\n\n\n\n\n\n\n\nsharedkey \"abc", "9: unterminated quoted string"),
        ("peer \"a\\tb\"", "1: invalid escape \\t in quoted string (only \\\" and \\\\ are allowed)"),
        ("peer a\x07", "1: invalid character 0x07"),
        ("interface carp0123456789ab", "1: interface name too long (at most 15 bytes)"),
        ("group abcdefghijklmnop", "1: group name too long (at most 15 bytes)"),
        ("listen on abcdefghijklmnop", "1: listen interface name too long (at most 15 bytes)"),
        ("interface \"\"", "1: interface name is empty"),
        ("listen on 10.0.0.1 port 0", "1: invalid port \"0\" (must be 1 to 65535)"),
        ("listen on 10.0.0.1 port 65536", "1: invalid port \"65536\" (must be 1 to 65535)"),
        ("peer a port 10abc", "1: invalid port \"10abc\" (must be 1 to 65535)"),
        ("peer a port \"\"", "1: invalid port \"\" (must be 1 to 65535)"),
        ("peer a port 99999999999999999999999", "1: invalid port \"99999999999999999999999\" (must be 1 to 65535)"),
        ("interface carp0\n\nsharedkey short", "3: sharedkey must be 16, 24 or 32 bytes"),
        ("sharedkey 0x", "1: sharedkey must be 16, 24 or 32 bytes"),
        ("sharedkey 0x00112233445566778899aabbccddeeff0", "1: sharedkey has an odd number of hex digits"),
        ("\nsharedkey 0x00112233445566778899aabbccddeeZZ", "2: sharedkey starts with 0x but has the non-hex digit \"Z\" (quote the key to use it as text)"),
        ("sharedkey 0xsasyncd-test-key", "1: sharedkey starts with 0x but has the non-hex digit \"s\" (quote the key to use it as text)"),
        ("listen on 10.0.0.1\ninet6", "2: listen address 10.0.0.1 is not inet6"),
        ("listen on ::1 inet", "1: listen address ::1 is not inet"),
        ("interface carp0", ": missing sharedkey"),
        ("sharedkey sasyncd-test-key", ": missing interface (required unless mode master or mode slave)"),
        ("", ": missing sharedkey"),
    ]
    .into_iter()
    .map(|(t, m)| (t.as_bytes().to_vec(), m))
    .chain([
        (b"peer \xff".to_vec(), "1: peer name is not valid UTF-8"),
        (format!("peer {hi}").into_bytes(), "1: peer name too long (at most 255 bytes)"),
        (b"\n\"\x00\"".to_vec(), "2: invalid character 0x00"),
    ])
    .collect();
    for (text, msg) in cases {
        assert_eq!(
            err(&text),
            format!(
                "sasyncd.conf{}{msg}",
                if msg.starts_with(':') { "" } else { ":" }
            )
        );
    }
}

/// The example has no active key (nor an active non-default mode): as
/// installed it is refused until a key is set, then it parses.
#[test]
fn example_file_needs_a_key_and_then_parses() {
    let text = include_str!("../../../sasyncd.conf.example");
    assert_eq!(
        Config::parse(text.as_bytes()).unwrap_err().kind,
        ConfigErrorKind::MissingSharedKey
    );
    let keyed = format!("{text}\nsharedkey 0x{}\n", "0123456789abcdef".repeat(4));
    let c = Config::parse(keyed.as_bytes())
        .unwrap_or_else(|e| panic!("{}", e.display_with("sasyncd.conf.example")));
    assert_eq!(c.interface.as_deref(), Some("carp0"));
    assert_eq!(c.peers.len(), 2);
    assert_eq!((c.locked, c.skipslave), (None, false));
}

proptest! {
    #[test]
    fn never_panics_on_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Config::parse(&input);
    }

    #[test]
    fn never_panics_on_printable(input in "[ -~\t\n]{0,512}") {
        let _ = Config::parse(input.as_bytes());
    }

    #[test]
    fn never_panics_on_grammar_soup(
        words in proptest::collection::vec(
            prop_oneof![
                Just("peer"), Just("port"), Just("listen"), Just("on"), Just("inet6"),
                Just("sharedkey"), Just("mode"), Just("master"), Just("\"x"), Just("0x0"),
                Just("10.0.0.1"), Just("#"), Just("\\\n"), Just("interface"), Just("65536"),
            ],
            0..40,
        )
    ) {
        let _ = Config::parse(words.join(" ").as_bytes());
    }
}

/// The structured side of errors, for callers that match on them.
#[test]
fn error_values() {
    use ConfigErrorKind::*;
    let kind = |text: &str| Config::parse(text.as_bytes()).unwrap_err();
    assert_eq!(kind("sharedkey short"), ConfigError::new(1, KeyLength(5)));
    let long = format!("mode master\nsharedkey {}", "k".repeat(33));
    assert_eq!(kind(&long), ConfigError::new(2, KeyLength(33)));
    let hex = format!("sharedkey 0x{}", "0f".repeat(33));
    assert_eq!(kind(&hex), ConfigError::new(1, KeyLength(33)));
    // The first bad digit is reported, even in a key that is also too long
    // or has an odd digit count.
    let typo = format!("sharedkey 0x{}g1", "0f".repeat(40));
    assert_eq!(kind(&typo), ConfigError::new(1, BadHexDigit(b'g')));
    assert_eq!(
        kind("sharedkey 0x\\"),
        ConfigError::new(1, BadHexDigit(b'\\'))
    );
    let dup = kind("peer a\npeer A").kind;
    let DuplicatePeer { peer, first_line } = dup else {
        panic!("{dup:?}")
    };
    assert_eq!((peer.as_bytes(), first_line), (&b"A"[..], 1));
    let got = Got::Keyword(Keyword::Sync);
    let what = super::Expected::PeerAddress;
    let after = Some(Keyword::Peer);
    assert_eq!(
        kind("\npeer sync"),
        ConfigError::new(2, Expected { what, after, got })
    );
    assert_eq!(kind(""), ConfigError::new(0, MissingSharedKey));
}

/// Parsing in place gives what `parse` gives, replaces what was there, and
/// leaves nothing usable behind an error (firmware keeps one `Config` in
/// a static and parses into it).
#[test]
fn parse_into_replaces_and_an_error_leaves_it_empty() {
    let mut c = Config::empty();
    let first = format!("{BASE}peer 192.0.2.1\npeer 192.0.2.2 port 7500\nmode skipslave\n");
    c.parse_into(first.as_bytes()).unwrap();
    let by_value = ok(&first);
    assert_eq!(c.peers, by_value.peers);
    assert_eq!(c.group.as_str(), "carp");
    assert!(c.skipslave);
    assert_eq!(c.sharedkey.as_bytes(), by_value.sharedkey.as_bytes());
    // A second parse replaces everything, defaults included.
    c.parse_into(b"mode master\nsharedkey another-16-bytes\npeer 192.0.2.9\n")
        .unwrap();
    assert_eq!(c.peers.len(), 1);
    assert!(!c.skipslave);
    assert_eq!(c.interface, None);
    assert_eq!(c.locked, Some(RunState::Master));
    assert_eq!(c.sharedkey.as_bytes(), b"another-16-bytes");
    // An error half-way: nothing of either file is left, not even the key.
    let bad = format!("{BASE}peer 192.0.2.1\nbogus\n");
    assert!(c.parse_into(bad.as_bytes()).is_err());
    assert!(c.peers.is_empty());
    assert_eq!(c.interface, None);
    assert!(c.sharedkey.as_bytes().is_empty());
}

#[test]
fn keepalived_tracking_statements() {
    let c = ok("interface eth0 address 192.0.2.1\ndemote file \"/run/sasyncd/demote\"\nsharedkey sasyncd-test-key\n");
    assert_eq!(c.interface.as_deref(), Some("eth0"));
    assert_eq!(c.address, v4(192, 0, 2, 1));
    assert_eq!(c.demote_file.as_deref(), Some("/run/sasyncd/demote"));
    let c = ok("interface eth0 address 2001:db8::1 sharedkey sasyncd-test-key");
    assert_eq!(c.address, "2001:db8::1".parse().ok());
    // Neither: carp, as before.
    let c = ok(BASE);
    assert_eq!((c.address, c.demote_file.as_deref()), (None, None));
    let cases: [(&str, &str); 8] = [
        (
            "interface eth0 address",
            "2: expected address after address, got keyword sharedkey (quote it to use it as a value)",
        ),
        ("interface eth0 address eth1", "1: interface address eth1: neither an address nor an interface name"),
        ("interface eth0 address 0.0.0.0", "1: interface address 0.0.0.0: the unspecified address"),
        ("interface eth0 address 224.0.0.18", "1: interface address 224.0.0.18: a multicast or broadcast address"),
        ("demote /run/x", "1: expected file after demote, got \"/run/x\""),
        ("demote file run/x", "1: demote file must be an absolute path"),
        (
            "demote file",
            "2: expected absolute path after demote, got keyword sharedkey (quote it to use it as a value)",
        ),
        ("demote file /a\ndemote file /b", "2: duplicate demote statement (first on line 1; it may appear once)"),
    ];
    for (text, msg) in cases {
        let text = format!("{text}\nsharedkey sasyncd-test-key\nmode master\n");
        assert_eq!(
            err(text.as_bytes()),
            format!("sasyncd.conf:{msg}"),
            "{text:?}"
        );
    }
    let long = format!("demote file /{}", "a".repeat(DEMOTE_PATH_MAX));
    assert!(err(long.as_bytes()).contains("demote file path too long (at most 255 bytes)"));
    // A reparse without them clears them.
    let mut c = ok("interface eth0 address 192.0.2.1 demote file /x sharedkey sasyncd-test-key");
    c.parse_into(BASE.as_bytes()).unwrap();
    assert_eq!((c.address, c.demote_file.as_deref()), (None, None));
}

#[test]
fn replay_margin() {
    assert_eq!(ok(BASE).replay_margin, DEFAULT_REPLAY_MARGIN);
    assert_eq!(with_base("replay margin 100\n").replay_margin, 100);
    assert_eq!(with_base("replay margin 2147483648").replay_margin, 1 << 31);
    let cases: [(&str, &str); 5] = [
        (
            "replay margin 0",
            "1: invalid replay margin \"0\" (must be 1 to 2147483648)",
        ),
        (
            "replay margin 2147483649",
            "1: invalid replay margin \"2147483649\" (must be 1 to 2147483648)",
        ),
        (
            "replay margin -5",
            "1: invalid replay margin \"-5\" (must be 1 to 2147483648)",
        ),
        ("replay 5", "1: expected margin after replay, got \"5\""),
        (
            "replay margin 5\nreplay margin 6",
            "2: duplicate replay statement (first on line 1; it may appear once)",
        ),
    ];
    for (text, msg) in cases {
        let text = format!("{text}\nsharedkey sasyncd-test-key\nmode master\n");
        assert_eq!(
            err(text.as_bytes()),
            format!("sasyncd.conf:{msg}"),
            "{text:?}"
        );
    }
    // A reparse without it restores the default.
    let mut c = with_base("replay margin 9");
    c.parse_into(BASE.as_bytes()).unwrap();
    assert_eq!(c.replay_margin, DEFAULT_REPLAY_MARGIN);
}
