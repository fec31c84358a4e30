//! Plots for BENCHMARKS.md, drawn as SVG from the cluster bench's own
//! printed output (`tests/benches/cluster.rs`), so a figure is never typed
//! in by hand: time to initial sync against N (in process and between two
//! daemon processes, both protocols), and what a failover costs an in-sync
//! slave (bytes resent) against a full snapshot.
//!
//! The SVG is plain text with fixed formatting, so the same input always
//! gives the same bytes (a test compares the committed files).

use std::fmt::Write as _;

/// One measured point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Entries (SAs + flows) or SAs, by series.
    pub n: f64,
    /// Seconds.
    pub secs: f64,
}

/// A named line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its points, in order of `n`.
    pub points: Vec<Point>,
}

/// What the plots need from one bench output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchOutput {
    /// Time to sync against N: in process (`wall_s` of "initial sync") and
    /// between daemons (`sync_s` of "daemons:"), per protocol.
    pub sync: Vec<Series>,
    /// "failover at N=...": (N label, full snapshot bytes, bytes after the
    /// failover).
    pub failover: Option<(String, f64, f64)>,
}

/// `1k` → 1000, `1M` → 1e6.
fn size(word: &str) -> Option<f64> {
    let (num, mul) = match word.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match word.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (word, 1.0),
        },
    };
    num.parse::<f64>().ok().map(|v| v * mul)
}

/// Parses the tables of a cluster bench run (several runs may be
/// concatenated; `#` lines are comments).
pub fn parse(text: &str) -> BenchOutput {
    let mut out = BenchOutput::default();
    let mut section = "";
    let mut columns: Vec<String> = Vec::new();
    let add = |out: &mut BenchOutput, name: String, n: f64, secs: f64| match out
        .sync
        .iter_mut()
        .find(|s| s.name == name)
    {
        Some(s) => s.points.push(Point { n, secs }),
        None => out.sync.push(Series {
            name,
            points: vec![Point { n, secs }],
        }),
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(title) = line.strip_prefix("== ") {
            section = if title.starts_with("initial sync") {
                "sync"
            } else if title.starts_with("daemons:") {
                "daemons"
            } else if title.starts_with("failover at N=") {
                let n = title
                    .trim_start_matches("failover at N=")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                out.failover = Some((n, 0.0, 0.0));
                "failover"
            } else {
                ""
            };
            columns.clear();
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if section == "failover" {
            // full snapshot A->C 40.800 MB; B->C after failover 128 bytes = ...
            if let (Some(f), Some(full), Some(after)) = (
                out.failover.as_mut(),
                words.iter().position(|w| *w == "MB;"),
                words.iter().position(|w| *w == "bytes"),
            ) {
                f.1 = words
                    .get(full.wrapping_sub(1))
                    .and_then(|w| w.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    * 1e6;
                f.2 = words
                    .get(after.wrapping_sub(1))
                    .and_then(|w| w.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
            continue;
        }
        if section.is_empty() || words.is_empty() {
            continue;
        }
        if words[0] == "proto" {
            columns = words.iter().map(|w| w.to_string()).collect();
            continue;
        }
        let col = |name: &str| columns.iter().position(|c| c == name);
        let (Some(n_at), Some(t_at)) = (
            col("N"),
            col(if section == "sync" {
                "wall_s"
            } else {
                "sync_s"
            }),
        ) else {
            continue;
        };
        let (Some(n), Some(secs)) = (
            words.get(n_at).and_then(|w| size(w)),
            words.get(t_at).and_then(|w| w.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let where_ = if section == "sync" {
            "in process"
        } else {
            "two daemons"
        };
        add(&mut out, format!("{}, {where_}", words[0]), n, secs);
    }
    out
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn header(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
        W / 2.0
    );
    s
}

/// Decades from 10^lo to 10^hi covering `min..=max`.
fn decades(min: f64, max: f64) -> (i32, i32) {
    (min.log10().floor() as i32, max.log10().ceil() as i32)
}

fn label(e: i32, unit: &str) -> String {
    match unit {
        "n" => match e {
            3 => "1k".into(),
            4 => "10k".into(),
            5 => "100k".into(),
            6 => "1M".into(),
            _ => format!("1e{e}"),
        },
        "s" => match e {
            e if e >= 0 => format!("{} s", 10f64.powi(e)),
            -1 => "0.1 s".into(),
            -2 => "0.01 s".into(),
            -3 => "1 ms".into(),
            _ => format!("1e{e} s"),
        },
        _ => {
            let unit = ["B", "kB", "MB", "GB", "TB"];
            let k = usize::try_from(e.max(0) / 3)
                .unwrap_or(0)
                .min(unit.len() - 1);
            let mantissa = 10u64.pow(u32::try_from(e.max(0)).unwrap_or(0) - 3 * k as u32);
            format!("{mantissa} {}", unit[k])
        }
    }
}

/// Time to sync against N, log-log, one line per series.
pub fn sync_svg(series: &[Series]) -> String {
    let all: Vec<&Point> = series.iter().flat_map(|s| &s.points).collect();
    let fold = |f: fn(&Point) -> f64, pick: fn(f64, f64) -> f64, start: f64| {
        all.iter().map(|p| f(p)).fold(start, pick)
    };
    let (xlo, xhi) = decades(
        fold(|p| p.n, f64::min, f64::MAX),
        fold(|p| p.n, f64::max, 0.0),
    );
    let (ylo, yhi) = decades(
        fold(|p| p.secs, f64::min, f64::MAX),
        fold(|p| p.secs, f64::max, 0.0),
    );
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |n: f64| LEFT + (n.log10() - f64::from(xlo)) / f64::from(xhi - xlo) * pw;
    let y = |t: f64| TOP + ph - (t.log10() - f64::from(ylo)) / f64::from(yhi - ylo) * ph;
    let mut s = header("Time to initial sync against N (SAs; flows N/2), log-log");
    for e in xlo..=xhi {
        let px = x(10f64.powi(e));
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            TOP + ph
        );
        let _ = writeln!(
            s,
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + ph + 18.0,
            label(e, "n")
        );
    }
    for e in ylo..=yhi {
        let py = y(10f64.powi(e));
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>",
            LEFT + pw
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py + 4.0,
            label(e, "s")
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">N (SAs)</text>",
        LEFT + pw / 2.0,
        H - 10.0
    );
    for (i, ser) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let dash = if ser.name.contains("daemons") {
            " stroke-dasharray=\"6 3\""
        } else {
            ""
        };
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.n), y(p.secs)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
            pts.join(" ")
        );
        for p in &ser.points {
            let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"><title>{}: N={} {} s</title></circle>", x(p.n), y(p.secs), ser.name, p.n, p.secs);
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(s, "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/>", lx + 20.0);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 26.0,
            ly + 4.0,
            ser.name
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Bytes a failover costs an in-sync slave, against a full snapshot (log
/// scale bars).
pub fn failover_svg(n: &str, snapshot: f64, after: f64) -> String {
    let bars = [
        (format!("full snapshot (N={n})"), snapshot, COLOURS[1]),
        ("after a failover: resume".to_string(), after, COLOURS[2]),
    ];
    let (lo, hi) = decades(
        after.max(1.0).min(snapshot.max(1.0)),
        snapshot.max(after).max(10.0),
    );
    let lo = lo.min(0);
    let pw = W - LEFT - 40.0;
    let x = |b: f64| LEFT + (b.max(1.0).log10() - f64::from(lo)) / f64::from(hi - lo) * pw;
    let mut s = header("Bytes sent to an in-sync slave when its master fails over (log scale)");
    for e in lo..=hi {
        if e % 3 != 0 && e != hi {
            continue;
        }
        let px = x(10f64.powi(e));
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            H - BOTTOM
        );
        let _ = writeln!(
            s,
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM + 18.0,
            label(e, "b")
        );
    }
    for (i, (name, bytes, c)) in bars.iter().enumerate() {
        let top = TOP + 40.0 + 120.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"50\" fill=\"{c}\"/>",
            x(*bytes) - LEFT
        );
        let _ = writeln!(
            s,
            "<text x=\"{LEFT}\" y=\"{:.1}\">{name}: {bytes} bytes</text>",
            top - 6.0
        );
    }
    s.push_str("</svg>\n");
    s
}
