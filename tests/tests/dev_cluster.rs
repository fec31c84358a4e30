//! The README's development-mode recipe is `tools/dev-cluster`: this runs
//! it as written (two devhosts and two daemons in a private directory, a
//! failover, the old master rejoining as backup, the teardown) and checks
//! it passed and left nothing behind.

use std::process::Command;

use sasyncd_tests::cluster::{bin, bin_dir};

#[test]
fn the_readme_recipe_runs_and_cleans_up() {
    // Built first (bin builds them), then the script is given their
    // directory. Addresses and port of this run's own, away from the
    // other tests' 127.20-219.x.y.
    bin("sasyncd");
    let pid = std::process::id();
    let (a, b) = (230 + pid % 20, pid / 20 % 250 + 1);
    let tmp = std::env::temp_dir().join(format!("dev-cluster-test-{pid}"));
    std::fs::create_dir_all(&tmp).expect("TMPDIR for the script");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let out = Command::new(root.join("tools/dev-cluster"))
        .arg(bin_dir())
        .env("DEV_ADDR1", format!("127.{a}.{b}.1"))
        .env("DEV_ADDR2", format!("127.{a}.{b}.2"))
        .env("DEV_PORT", format!("{}", 6000 + pid % 1000))
        .env("TMPDIR", &tmp)
        .current_dir(&root)
        .output()
        .expect("run tools/dev-cluster");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("dev-cluster: PASS"),
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for step in [
        "gateway 2 synced from master 1",
        "gateway 2 is master with every SA",
        "gateway 1 rejoined as backup and synced",
    ] {
        assert!(stdout.contains(step), "{step:?} in\n{stdout}");
    }
    // The teardown removed its private directory.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("TMPDIR")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir(&tmp);
}
