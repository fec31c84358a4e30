//! The `sasyncd-devhost` binary end to end: serving with options, commands
//! with their exit codes, the client API against it, and a clean stop on
//! SIGTERM.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sasyncd_sim::carp::LINK_STATE_UP;
use sasyncd_sim::devhost::{ctl, HostClient};

const BIN: &str = env!("CARGO_BIN_EXE_sasyncd-devhost");

fn command(path: &Path, words: &[&str]) -> Output {
    Command::new(BIN).arg(path).args(words).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// A serving devhost process, killed if the test fails before stopping it.
struct Serving {
    child: Option<Child>,
    dir: PathBuf,
    path: PathBuf,
}

impl Serving {
    fn start(args: &[&str]) -> Serving {
        let dir = std::env::temp_dir().join(format!("devhost-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let child = Command::new(BIN).arg(&path).args(args).spawn().unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while ctl(&path, "show counts").is_err() {
            assert!(Instant::now() < end, "devhost did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Serving {
            child: Some(child),
            dir,
            path,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn serve_command_and_stop() {
    let mut s = Serving::start(&["--carp", "master", "--demote", "2", "--seed", "7"]);

    let o = command(&s.path, &["add-sa", "spi=0x1000"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "spi=0x00001000 spi=0x00001001");
    let o = command(&s.path, &["show", "counts"]);
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(0), "sas=2 flows=0".into())
    );
    let o = command(&s.path, &["show", "sadb"]);
    let lines = stdout(&o);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.starts_with("sa esp spi=0x00001000 src=10.0.0.100 dst=192.0.2.1 state=mature"));
    // Silence on success without output.
    let o = command(&s.path, &["carp", "backup"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
    // A refused command: exit 1, the message on stderr.
    let o = command(&s.path, &["delete-sa", "spi=0x5000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ESRCH"),
        "{o:?}"
    );
    assert!(o.stdout.is_empty());
    // Serving options with a command: a usage error.
    assert_eq!(
        command(&s.path, &["--seed", "1", "show", "counts"])
            .status
            .code(),
        Some(2)
    );
    // Nobody there: exit 2.
    let o = command(&s.dir.join("nobody"), &["show", "counts"]);
    assert_eq!(o.status.code(), Some(2));

    // The client API against the process: the options took effect.
    let mut host = HostClient::connect(&s.path).unwrap();
    assert_eq!(host.get_demote().unwrap(), 2);
    assert_ne!(
        host.link_state().unwrap(),
        LINK_STATE_UP,
        "carp backup above"
    );
    assert_eq!(command(&s.path, &["carp", "master"]).status.code(), Some(0));
    assert_eq!(host.link_state().unwrap(), LINK_STATE_UP);

    // SIGTERM: a clean exit that removes the socket.
    let mut child = s.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!s.path.exists(), "socket removed");
}
