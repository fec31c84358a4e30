//! The ctl role's text commands: parsing, running them against the
//! [`Gateway`], and the reply text (`ok`, `ok WORDS`, or `ok` followed by
//! lines; `error: MESSAGE` on failure). See [`HELP`] for the commands.

mod args;
pub mod bulk;
mod digest;
mod flow;
mod sa;
mod show;

use std::fmt::Write;
use std::time::Duration;

use sasyncd_core::node::Table;

use super::gateway::{link_state_name, Gateway};
use crate::carp::{LINK_STATE_DOWN, LINK_STATE_UNKNOWN, LINK_STATE_UP};

/// What `help` prints.
pub const HELP: &str = "\
add-sa [spi=N] [src=ADDR] [dst=ADDR] [type=esp|ah|ipcomp|tcpmd5] [single]
delete-sa spi=N [dst=ADDR] [type=esp|ah|ipcomp|tcpmd5]
bulk-sa N [flows=M] [from=K]
add-flow [src=NET] [dst=NET] [dir=out|in] [type=require|use|acquire|bypass|deny|dontacq] [proto=N] [peer=ADDR]
delete-flow [src=NET] [dst=NET] [dir=out|in] [proto=N]
show sadb|spd|counts|status
digest
carp master|backup|init|N
drop-promisc N
ike refuse|accept
pfsync up|down
workload on [INTERVAL-MS]|off
help";

/// Default mean interval of `workload on`.
pub const DEFAULT_WORKLOAD_INTERVAL: Duration = Duration::from_millis(1000);

/// Connected clients by role, for `show status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clients {
    /// PF_KEY sockets.
    pub pfkey: usize,
    /// Privileged-process channels.
    pub host: usize,
    /// Link-state watchers.
    pub carp: usize,
    /// Control clients.
    pub ctl: usize,
}

/// A successful command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Nothing to say: `ok`.
    Done,
    /// One line of words: `ok WORDS`.
    Line(String),
    /// A listing: `ok`, then one line each.
    Lines(Vec<String>),
}

/// The reply text for a command's result.
pub fn render(r: &Result<Output, String>) -> String {
    match r {
        Ok(Output::Done) => "ok".into(),
        Ok(Output::Line(s)) if s.is_empty() => "ok".into(),
        Ok(Output::Line(s)) => format!("ok {s}"),
        Ok(Output::Lines(v)) => v.iter().fold("ok".to_string(), |mut s, l| {
            s.push('\n');
            s.push_str(l);
            s
        }),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs one command line.
pub fn execute(gw: &mut Gateway, clients: &Clients, line: &str) -> Result<Output, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, rest)) = words.split_first() else {
        return Err("empty command (try help)".into());
    };
    match (cmd, rest) {
        ("add-sa", a) => sa::add_sa(gw, a).map(Output::Line),
        ("delete-sa", a) => sa::delete_sa(gw, a).map(Output::Line),
        ("bulk-sa", a) => bulk::bulk_sa(gw, a).map(Output::Line),
        ("add-flow", a) => flow::add_flow(gw, a).map(Output::Line),
        ("delete-flow", a) => flow::delete_flow(gw, a).map(Output::Line),
        ("show", ["sadb"]) => Ok(Output::Lines(show::dump_lines(
            &gw.dump(Table::Sadb),
            show::sa_line,
        ))),
        ("show", ["spd"]) => Ok(Output::Lines(show::dump_lines(
            &gw.dump(Table::Spd),
            show::flow_line,
        ))),
        ("show", ["counts"]) => Ok(Output::Line(format!(
            "sas={} flows={}",
            gw.kernel().sa_count(),
            gw.kernel().flow_count()
        ))),
        ("show", ["status"]) => Ok(Output::Lines(status(gw, clients))),
        ("digest", []) => Ok(Output::Line(digest::digest(gw.kernel()))),
        ("carp", [s]) => carp(gw, s),
        ("drop-promisc", [n]) => {
            let n = n
                .parse()
                .map_err(|_| format!("drop-promisc {n}: not a count"))?;
            gw.drop_promisc(n);
            Ok(Output::Done)
        }
        ("ike", ["refuse"]) => {
            gw.set_ike_refuse(true);
            Ok(Output::Done)
        }
        ("ike", ["accept"]) => {
            gw.set_ike_refuse(false);
            Ok(Output::Done)
        }
        ("pfsync", [s @ ("up" | "down")]) => {
            gw.set_pfsync(*s == "up");
            Ok(Output::Done)
        }
        ("workload", ["off"]) => {
            gw.set_workload(None);
            Ok(Output::Done)
        }
        ("workload", ["on", more @ ..]) => {
            let interval = match more {
                [] => DEFAULT_WORKLOAD_INTERVAL,
                [ms] => match ms.parse::<u64>() {
                    Ok(ms) if ms > 0 => Duration::from_millis(ms),
                    _ => return Err(format!("workload on {ms}: not a positive interval in ms")),
                },
                _ => return Err("usage: workload on [INTERVAL-MS]|off".into()),
            };
            gw.set_workload(Some(interval));
            Ok(Output::Done)
        }
        ("help", []) => Ok(Output::Lines(HELP.lines().map(String::from).collect())),
        _ => match HELP.lines().find(|l| l.split(' ').next() == Some(cmd)) {
            Some(usage) => Err(format!("usage: {usage}")),
            None => Err(format!("unknown command '{cmd}' (try help)")),
        },
    }
}

fn carp(gw: &mut Gateway, s: &str) -> Result<Output, String> {
    let state = match s {
        "master" => LINK_STATE_UP,
        "backup" => LINK_STATE_DOWN,
        "init" => LINK_STATE_UNKNOWN,
        n => n
            .parse()
            .map_err(|_| format!("carp {n}: not master, backup, init or a LINK_STATE_* number"))?,
    };
    gw.set_link_state(state);
    Ok(Output::Done)
}

fn status(gw: &Gateway, c: &Clients) -> Vec<String> {
    let (kernel_drops, injected) = gw.promisc_drops();
    let refused = gw
        .kernel()
        .stats()
        .refused
        .iter()
        .fold(String::new(), |mut s, (e, n)| {
            if !s.is_empty() {
                s.push(',');
            }
            let _ = write!(s, "{}:{n}", e.name());
            s
        });
    let mut v = vec![
        format!("carp={}", link_state_name(gw.link_state())),
        format!("link_state={}", gw.link_state()),
        format!("demote={}", gw.demote_counter()),
        format!("ike={}", gw.ike_mode().name()),
        format!("ike_refuse={}", if gw.ike_refuse() { "yes" } else { "no" }),
        format!("pfsync={}", if gw.pfsync_up() { "up" } else { "down" }),
    ];
    match gw.workload() {
        None => v.push("workload=off".into()),
        Some(w) => {
            v.push("workload=on".into());
            v.push(format!("workload_interval_ms={}", w.interval.as_millis()));
            v.push(format!("workload_writes={}", w.ike.stats().writes));
        }
    }
    v.extend([
        format!("promisc_listeners={}", gw.promisc_listeners()),
        format!("promisc_drops={kernel_drops}"),
        format!("injected_drops={injected}"),
        format!("drop_pending={}", gw.drop_budget()),
        format!(
            "refused={}",
            if refused.is_empty() { "none" } else { &refused }
        ),
        format!(
            "clients=pfkey:{},host:{},carp:{},ctl:{}",
            c.pfkey, c.host, c.carp, c.ctl
        ),
        format!(
            "sas={} flows={}",
            gw.kernel().sa_count(),
            gw.kernel().flow_count()
        ),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devhost::gateway::GatewayConfig;

    fn run(gw: &mut Gateway, line: &str) -> String {
        render(&execute(gw, &Clients::default(), line))
    }

    #[test]
    fn replies_render() {
        let mut g = Gateway::new(&GatewayConfig::default());
        assert_eq!(run(&mut g, "carp master"), "ok");
        assert_eq!(run(&mut g, "show counts"), "ok sas=0 flows=0");
        assert_eq!(run(&mut g, "show sadb"), "ok");
        run(&mut g, "add-sa spi=0x1000");
        assert_eq!(run(&mut g, "show sadb").lines().count(), 3);
        assert_eq!(run(&mut g, ""), "error: empty command (try help)");
        assert_eq!(
            run(&mut g, "frob"),
            "error: unknown command 'frob' (try help)"
        );
        assert!(run(&mut g, "show").starts_with("error: usage: show "));
        assert!(run(&mut g, "carp sideways").starts_with("error: carp sideways"));
        assert!(run(&mut g, "drop-promisc -1").starts_with("error:"));
        assert!(run(&mut g, "workload on 0").starts_with("error:"));
        assert!(run(&mut g, "help").contains("\ndigest\n"));
    }

    #[test]
    fn carp_and_switches() {
        let mut g = Gateway::new(&GatewayConfig::default());
        for (cmd, state) in [("master", 4), ("backup", 2), ("3", 3), ("init", 0)] {
            run(&mut g, &format!("carp {cmd}"));
            assert_eq!(g.link_state(), state);
        }
        run(&mut g, "ike refuse");
        assert!(g.set_ike(true).is_err());
        run(&mut g, "ike accept");
        assert!(g.set_ike(true).is_ok());
        run(&mut g, "drop-promisc 3");
        assert_eq!(g.drop_budget(), 3);
        run(&mut g, "workload on 50");
        assert_eq!(g.workload().unwrap().interval, Duration::from_millis(50));
        let s = run(&mut g, "show status");
        for want in [
            "\ncarp=init\n",
            "\nike=active\n",
            "\nworkload=on\n",
            "\ndrop_pending=3\n",
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
        run(&mut g, "workload off");
        assert!(g.workload().is_none());
    }
}
