//! Draws BENCHMARKS.md's plots from a cluster bench output:
//! `cargo run -p sasyncd-tests --example bench_plot -- OUTPUT.txt DIR`
//! writes DIR/sync-vs-n.svg and DIR/failover.svg.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sasyncd_tests::plot;

/// The arguments.
#[derive(Debug, Parser)]
#[command(name = "bench_plot", about = "the cluster bench's output as SVG plots")]
struct Args {
    /// The bench's output.
    #[arg(value_name = "OUTPUT.txt")]
    input: PathBuf,
    /// Where the SVG files go.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let Args { input, dir } = Args::parse();
    let input = input.display().to_string();
    let text = match std::fs::read_to_string(&input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench_plot: {input}: {e}");
            return ExitCode::from(1);
        }
    };
    let out = plot::parse(&text);

    let mut files = vec![("sync-vs-n.svg", plot::sync_svg(&out.sync))];
    if let Some((n, full, after)) = &out.failover {
        files.push(("failover.svg", plot::failover_svg(n, *full, *after)));
    }
    for (name, svg) in files {
        let p = dir.join(name);
        if let Err(e) = std::fs::write(&p, svg) {
            eprintln!("bench_plot: {}: {e}", p.display());
            return ExitCode::from(1);
        }
        println!("{}", p.display());
    }
    ExitCode::SUCCESS
}
