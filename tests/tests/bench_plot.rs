//! BENCHMARKS.md's plots are drawn from the bench output kept beside them
//! (`doc/bench/cluster.txt`) and are current: redrawing gives the same
//! bytes. The parser reads what the bench prints.

use std::path::Path;

use sasyncd_tests::plot;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

#[test]
fn the_plots_are_drawn_from_the_kept_output() {
    let text = std::fs::read_to_string(root().join("doc/bench/cluster.txt")).expect("output");
    let out = plot::parse(&text);
    let names: Vec<&str> = out.sync.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "v2, in process",
            "legacy, in process",
            "v2, two daemons",
            "legacy, two daemons"
        ]
    );
    for s in &out.sync {
        let ns: Vec<f64> = s.points.iter().map(|p| p.n).collect();
        assert_eq!(ns, [1e3, 1e4, 1e5, 1e6], "{}", s.name);
    }
    // Spot values, as the tables print them.
    assert_eq!(out.sync[0].points[3].secs, 8.348);
    assert_eq!(out.sync[2].points[2].secs, 0.605);
    assert_eq!(out.failover, Some(("100k".to_string(), 40.8e6, 128.0)));
    for (file, svg) in [
        ("sync-vs-n.svg", plot::sync_svg(&out.sync)),
        ("failover.svg", {
            let (n, full, after) = out.failover.clone().expect("failover");
            plot::failover_svg(&n, full, after)
        }),
    ] {
        let kept = std::fs::read_to_string(root().join("doc/bench").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            kept == svg,
            "doc/bench/{file} is stale: cargo run -p sasyncd-tests --example bench_plot -- doc/bench/cluster.txt doc/bench"
        );
    }
}
