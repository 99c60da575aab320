//! The engine on a fake clock: `now` is just a number the tests advance.

use super::*;
use crate::block::hosts_deny::DenyLine;
use crate::capture::classify::TcpScanType;
use crate::config::ignore;
use crate::config::mode::Proto;
use crate::config::protect::Protected;
use crate::config::{BlockMode, Config};

impl Verdict {
    /// The one job of a response, if any.
    fn job(&self) -> Option<Job> {
        assert!(self.jobs.len() <= 1, "{self:?}");
        self.jobs.first().cloned()
    }

    /// The log events as the syslog lines they become.
    fn lines(&self) -> Vec<String> {
        self.log
            .iter()
            .map(crate::observe::report::event_line)
            .collect()
    }
}

/// The gate for a hit from `src` (stealth modes: no banner questions).
fn gate(
    e: &mut Engine,
    now: u64,
    src: IpAddr,
    proto: Proto,
    trigger: u32,
    ignore: &IgnoreList,
) -> Gate {
    let mode = match proto {
        Proto::Tcp => Mode::Stcp,
        Proto::Udp => Mode::Sudp,
    };
    let h = Hit {
        src,
        port: 1,
        mode,
        detail: Detail::UdpScan,
        ip_options: false,
    };
    let cfg = Config {
        scan_trigger: trigger,
        ..Config::default()
    };
    Engine::gate(e, now, &h, &cfg, ignore)
}

/// Blocks that expired at `now`, as the old `expire_blocks` returned them: the lines, the
/// undo jobs and the addresses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expired {
    log: Vec<String>,
    jobs: Vec<Job>,
    hosts: Vec<IpAddr>,
}

fn expire_blocks(e: &mut Engine, now: u64) -> Expired {
    let v = e.tick(now);
    Expired {
        hosts: v
            .log
            .iter()
            .filter_map(|l| match l {
                Event::Expired { ip, .. } => Some(*ip),
                _ => None,
            })
            .collect(),
        log: v.lines(),
        jobs: v.jobs,
    }
}

const A: &str = "192.0.2.7";
const B: &str = "198.51.100.9";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn none() -> IgnoreList {
    IgnoreList::default()
}

fn hit(src: &str, port: u16, mode: Mode) -> Hit {
    Hit {
        src: ip(src),
        port,
        mode,
        detail: Detail::Connect,
        ip_options: false,
    }
}

fn cfg(block: BlockMode) -> Config {
    Config {
        block_tcp: block,
        block_udp: block,
        kill_route: Some("/sbin/ip route add blackhole $TARGET$".into()),
        kill_hosts_deny: Some("ALL: $TARGET$ : DENY".into()),
        kill_run_cmd: Some("/usr/local/bin/alert $TARGET$ $PORT$ $MODE$".into()),
        ..Config::default()
    }
}

/// Gate then respond, as the shell does.
fn step(e: &mut Engine, now: u64, c: &Config, h: &Hit) -> (Gate, Option<Verdict>) {
    let g = Engine::gate(e, now, h, c, &none());
    let v = match g {
        Gate::Respond(r) => Some(e.respond(now, c, h, r, None, &Protected::default())),
        _ => None,
    };
    (g, v)
}

#[test]
fn trigger_zero_and_one_both_fire_on_the_first_hit() {
    for t in [0, 1] {
        let mut e = Engine::new(Limits::default());
        let g = gate(&mut e, 0, ip(A), Proto::Tcp, t, &none());
        assert!(matches!(g, Gate::Respond(_)), "SCAN_TRIGGER={t}");
    }
}

#[test]
fn trigger_n_fires_on_the_nth_hit_counting_all_ports() {
    let mut e = Engine::new(Limits::default());
    assert_eq!(
        gate(&mut e, 0, ip(A), Proto::Tcp, 3, &none()),
        Gate::BelowTrigger
    );
    assert_eq!(
        gate(&mut e, 10, ip(A), Proto::Tcp, 3, &none()),
        Gate::BelowTrigger
    );
    assert!(matches!(
        gate(&mut e, 20, ip(A), Proto::Tcp, 3, &none()),
        Gate::Respond(_)
    ));
}

#[test]
fn other_hosts_cannot_evict_a_scanners_count() {
    // 1.2's shared 50-slot ring forgot host B after 50 other hits (§4, VERIFIED there).
    let mut e = Engine::new(Limits::default());
    assert_eq!(
        gate(&mut e, 0, ip(B), Proto::Tcp, 2, &none()),
        Gate::BelowTrigger
    );
    for i in 0..60u32 {
        let other = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
        gate(&mut e, 1, other, Proto::Tcp, 2, &none());
    }
    assert!(matches!(
        gate(&mut e, 2, ip(B), Proto::Tcp, 2, &none()),
        Gate::Respond(_)
    ));
}

#[test]
fn a_full_host_table_forgets_about_the_least_recently_seen_half_and_keeps_the_rest() {
    let mut e = Engine::new(Limits::default());
    let max = Limits::default().max_hosts as u64;
    // Trigger 3: every host is seen twice (so it is in the table, not aside as a source
    // seen once) and stays below it; host i last seen at i ms.
    let host = |i: u64| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    for i in 0..max {
        gate(&mut e, i, host(i), Proto::Tcp, 3, &none());
        gate(&mut e, i, host(i), Proto::Tcp, 3, &none());
    }
    assert_eq!(e.tracked_hosts(), max as usize);
    // One more: the eviction runs (its cut from a sample of the table).
    gate(&mut e, max, host(max), Proto::Tcp, 3, &none());
    gate(&mut e, max, host(max), Proto::Tcp, 3, &none());
    let gone = max as usize + 1 - e.tracked_hosts();
    let half = max as usize / 2;
    assert!(
        gone.abs_diff(half) < half / 20,
        "{gone} evicted, half is {half}"
    );
    // The ones kept are the most recent: a third hit from the newest hosts before the cut
    // reaches the trigger (they were remembered), one from the oldest does not.
    for i in [max - 1, max - 2, max * 3 / 4] {
        assert!(
            matches!(
                gate(&mut e, max + 1, host(i), Proto::Tcp, 3, &none()),
                Gate::Respond(_)
            ),
            "{i}"
        );
    }
    assert_eq!(
        gate(&mut e, max + 1, host(0), Proto::Tcp, 3, &none()),
        Gate::BelowTrigger
    );
}

#[test]
fn sources_seen_once_wait_aside_and_cannot_evict_a_scanner_seen_twice() {
    let l = Limits {
        max_hosts: 64,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    // A scanner seen twice (trigger 3) among the first hosts.
    for t in [0, 1] {
        assert_eq!(
            gate(&mut e, t, ip(B), Proto::Tcp, 3, &none()),
            Gate::BelowTrigger
        );
    }
    // 100,000 forged sources, one packet each, later than the scanner's: with every source
    // in the table the scanner, the least recently seen, went at the first eviction. Sources
    // seen once wait aside once the table is half full: it never fills.
    for i in 0..100_000u32 {
        let forged = IpAddr::from((0x6400_0000 + i).to_be_bytes());
        gate(&mut e, 10 + u64::from(i), forged, Proto::Tcp, 3, &none());
        assert!(e.tracked_hosts() <= 32 + 64, "{}", e.tracked_hosts());
    }
    assert!(matches!(
        gate(&mut e, 200_000, ip(B), Proto::Tcp, 3, &none()),
        Gate::Respond(_)
    ));
    // A source seen once aside is counted from its first sighting: its second and third
    // hits reach the trigger, as in the table (the last forged ones: no newer sighting can
    // have taken their slots).
    let last = IpAddr::from((0x6400_0000u32 + 99_999).to_be_bytes());
    assert_eq!(
        gate(&mut e, 200_001, last, Proto::Tcp, 3, &none()),
        Gate::BelowTrigger
    );
    assert!(matches!(
        gate(&mut e, 200_002, last, Proto::Tcp, 3, &none()),
        Gate::Respond(_)
    ));
}

#[test]
fn hits_outside_the_window_do_not_count() {
    let l = Limits {
        trigger_window_ms: 1000,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    assert_eq!(
        gate(&mut e, 0, ip(A), Proto::Tcp, 2, &none()),
        Gate::BelowTrigger
    );
    assert_eq!(
        gate(&mut e, 5000, ip(A), Proto::Tcp, 2, &none()),
        Gate::BelowTrigger
    );
    assert!(matches!(
        gate(&mut e, 5500, ip(A), Proto::Tcp, 2, &none()),
        Gate::Respond(_)
    ));
}

#[test]
fn ignored_hosts_are_silent_and_leave_no_state() {
    let (list, w) = ignore::parse(b"192.0.2.0/24\n2001:db8::/32\n");
    assert!(w.is_empty());
    let mut e = Engine::new(Limits::default());
    assert_eq!(gate(&mut e, 0, ip(A), Proto::Tcp, 0, &list), Gate::Ignored);
    assert_eq!(
        gate(&mut e, 0, ip("2001:db8::99"), Proto::Tcp, 0, &list),
        Gate::Ignored
    );
    assert_eq!(e.tracked_hosts(), 0);
    assert!(matches!(
        gate(&mut e, 0, ip(B), Proto::Tcp, 0, &list),
        Gate::Respond(_)
    ));
}

#[test]
fn block_runs_hosts_deny_route_then_command_with_the_address_literal() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let h = hit(A, 111, Mode::Tcp);
    let g = gate(&mut e, 0, h.src, Proto::Tcp, 0, &none());
    let Gate::Respond(r) = g else { panic!("{g:?}") };
    // Even with a resolved name, $TARGET$ is the address.
    let v = e.respond(0, &c, &h, r, Some("evil.example"), &Protected::default());
    assert!(v.banner);
    assert_eq!(
        v.lines(),
        vec!["attackalert: Connect from host: evil.example/192.0.2.7 to TCP port: 111"]
    );
    let job = v.job().unwrap();
    assert_eq!(
        job.steps,
        vec![
            Step::HostsDeny {
                line: "ALL: 192.0.2.7 : DENY".into()
            },
            Step::Route {
                command: "/sbin/ip route add blackhole 192.0.2.7".into()
            },
            Step::RunCmd {
                command: "/usr/local/bin/alert 192.0.2.7 111 tcp".into()
            },
        ]
    );
    assert!(job.record.blocked_file);
    assert_eq!(job.record.name, "evil.example");
}

#[test]
fn run_cmd_first_and_block_two() {
    let mut e = Engine::new(Limits::default());
    let mut c = cfg(BlockMode::Block);
    c.kill_run_cmd_first = true;
    let (_, v) = step(&mut e, 0, &c, &hit("2001:db8::5", 7, Mode::Udp));
    let steps = v.unwrap().job().unwrap().steps;
    assert!(
        matches!(&steps[0], Step::RunCmd { command } if command == "/usr/local/bin/alert 2001:db8::5 7 udp")
    );
    // hosts.deny gets the IPv6 address in brackets (hosts_access(5)); the route stays bare.
    assert_eq!(
        steps[1],
        Step::HostsDeny {
            line: "ALL: [2001:db8::5] : DENY".into()
        }
    );
    assert!(matches!(&steps[2], Step::Route { command } if command.ends_with(" 2001:db8::5")));

    let c = cfg(BlockMode::RunCmdOnly);
    let (_, v) = step(&mut e, 0, &c, &hit(B, 7, Mode::Udp));
    let steps = v.unwrap().job().unwrap().steps;
    assert_eq!(steps.len(), 1);
    assert!(matches!(steps[0], Step::RunCmd { .. }));
}

#[test]
fn blocked_hosts_are_matched_exactly_and_not_blocked_twice() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let (_, v) = step(&mut e, 0, &c, &hit("110.0.0.1", 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    // While the job runs, the host counts as blocked (no second chain of commands).
    let (_, v) = step(&mut e, 1, &c, &hit("110.0.0.1", 2, Mode::Tcp));
    let v = v.unwrap();
    assert!(v.job().is_none());
    assert_eq!(
        v.lines()[1],
        "attackalert: Host: 110.0.0.1 is already blocked. Ignoring"
    );
    assert!(e.job_done(0, &job, true).log.is_empty());
    assert!(e.is_blocked(ip("110.0.0.1")));
    // 1.2's substring match took 10.0.0.1 for blocked (§5.2); an exact match does not.
    assert!(!e.is_blocked(ip("10.0.0.1")));
    let (_, v) = step(&mut e, 2, &c, &hit("10.0.0.1", 1, Mode::Tcp));
    assert!(v.unwrap().job().is_some());
}

#[test]
fn already_blocked_wording_differs_by_mode() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let mut h = hit(A, 1, Mode::Stcp);
    h.detail = Detail::TcpScan(TcpScanType::Syn);
    let (_, v) = step(&mut e, 0, &c, &h);
    let v = v.unwrap();
    assert!(!v.banner, "no banner in stealth modes");
    assert_eq!(
        v.lines(),
        vec!["attackalert: TCP SYN/Normal scan from host: 192.0.2.7/192.0.2.7 to TCP port: 1"]
    );
    e.job_done(0, &v.job().unwrap(), true);
    let (_, v) = step(&mut e, 1, &c, &h);
    assert_eq!(
        v.unwrap().lines()[1],
        "attackalert: Host: 192.0.2.7/192.0.2.7 is already blocked Ignoring"
    );
}

/// A block queued quietly (its report held back by the report limits) that fails logs no
/// line either: a flood past a full set would otherwise log every forged source. Once its
/// report is logged (promoted), its failure is logged too.
#[test]
fn a_quiet_blocks_failure_is_not_logged_but_a_promoted_ones_is() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let (_, v) = step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp));
    let mut job = v.unwrap().job().unwrap();
    job.quiet = true;
    let v = e.job_done(0, &job, false);
    assert!(v.lines().is_empty(), "{:?}", v.lines());
    assert!(
        !e.is_blocked(ip(A)),
        "not blocked: tried again on its next hit"
    );
    let (_, v) = step(&mut e, 10, &c, &hit(A, 1, Mode::Tcp));
    let mut job = v.unwrap().job().unwrap();
    job.quiet = false;
    let v = e.job_done(10, &job, false);
    assert_eq!(
        v.lines(),
        vec!["attackalert: ERROR: Could not block host 192.0.2.7 !!"]
    );
}

#[test]
fn a_failed_job_is_retried_on_the_next_hit() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let (_, v) = step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    let v = e.job_done(0, &job, false);
    assert_eq!(
        v.lines(),
        vec!["attackalert: ERROR: Could not block host 192.0.2.7 !!"]
    );
    assert!(v.records.is_empty(), "a failed block is not recorded");
    assert!(!e.is_blocked(ip(A)));
    let (_, v) = step(&mut e, 10, &c, &hit(A, 1, Mode::Tcp));
    assert!(v.unwrap().job().is_some(), "tried again");
}

#[test]
fn block_zero_writes_history_only_and_rate_limits_repeats() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::LogOnly);
    let h = hit(A, 1, Mode::Tcp);
    let (_, v) = step(&mut e, 0, &c, &h);
    let v = v.unwrap();
    assert_eq!(
        v.lines()[1],
        "attackalert: Ignoring TCP response per configuration file setting."
    );
    let job = v.job().unwrap();
    assert!(job.steps.is_empty());
    assert!(!job.record.blocked_file, "BLOCK=0: no blocked-file line");
    e.job_done(0, &job, true);
    assert!(!e.is_blocked(ip(A)), "BLOCK=0: host not blocked");
    // Repeats within the interval are counted silently.
    for t in 1..5 {
        assert_eq!(step(&mut e, t * 1000, &c, &h).0, Gate::Suppressed);
    }
    // After the interval it is reported again, with the count of what was suppressed.
    let (g, v) = step(&mut e, 61_000, &c, &h);
    assert!(matches!(
        g,
        Gate::Respond(Respond {
            already_blocked: false,
            suppressed: 4,
            quiet: false,
            report_only: false,
            promote: false,
            ..
        })
    ));
    let v = v.unwrap();
    assert!(
        v.lines()
            .iter()
            .any(|l| l.contains("4 further hits from host 192.0.2.7"))
    );
    assert!(v.job().is_some(), "a new history line");
}

#[test]
fn state_is_bounded_and_ages_out() {
    let l = Limits {
        max_hosts: 64,
        host_ttl_ms: 10_000,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    for i in 0..10_000u32 {
        gate(
            &mut e,
            u64::from(i),
            IpAddr::from(i.to_be_bytes()),
            Proto::Tcp,
            5,
            &none(),
        );
        // At most 64 in the table, and as many sources seen once aside.
        assert!(e.tracked_hosts() <= 64 + 64, "{}", e.tracked_hosts());
    }
    e.tick(1_000_000);
    assert_eq!(e.tracked_hosts(), 0);
}

#[test]
fn reload_forgets_blocks() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let (_, v) = step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp));
    e.job_done(0, &v.unwrap().job().unwrap(), true);
    assert_eq!(e.blocked_hosts(), 1);
    e.clear_blocked();
    assert!(!e.is_blocked(ip(A)));
    let (_, v) = step(&mut e, 1, &c, &hit(A, 1, Mode::Tcp));
    assert!(v.unwrap().job().is_some());
}

#[test]
fn banner_only_for_classic_modes_on_triggered_hits() {
    let (list, _) = ignore::parse(b"198.51.100.0/24\n");
    let c = Config {
        scan_trigger: 2,
        ..cfg(BlockMode::Block)
    };
    let p = Protected::default();
    let ctx = Context {
        cfg: &c,
        ignore: &list,
        protected: &p,
    };
    let banner = |o: Outcome| match o {
        Outcome::Done(v) => v.banner,
        Outcome::Lookup(_) => panic!("no lookup without RESOLVE_HOST"),
    };
    let mut e = Engine::new(Limits::default());
    // Below the trigger: no banner; the triggering hit and later repeats: the banner, in
    // the classic modes only, already blocked or not.
    assert!(!banner(e.observe(0, &hit(A, 1, Mode::Tcp), &ctx)));
    let o = e.observe(1, &hit(A, 1, Mode::Tcp), &ctx);
    let Outcome::Done(v) = &o else { panic!() };
    assert!(v.banner && v.job().is_some());
    e.job_done(1, &v.job().unwrap(), true);
    assert!(
        banner(e.observe(2, &hit(A, 1, Mode::Tcp), &ctx)),
        "a repeat"
    );
    assert!(!banner(e.observe(0, &hit(A, 1, Mode::Udp), &ctx)));
    assert!(
        banner(e.observe(1, &hit(A, 1, Mode::Udp), &ctx)),
        "already blocked"
    );
    // Ignored: nothing, and the verdict says why (the counters count it apart).
    for t in 0..3 {
        let o = e.observe(t, &hit(B, 1, Mode::Udp), &ctx);
        assert!(
            matches!(&o, Outcome::Done(v) if v.ignored && v.log.is_empty() && v.jobs.is_empty())
        );
        assert!(!banner(o));
    }
    assert!(matches!(e.observe(9, &hit(A, 2, Mode::Udp), &ctx), Outcome::Done(v) if !v.ignored));
    // Stealth and advanced modes never send one.
    let mut e = Engine::new(Limits::default());
    for t in 0..3 {
        assert!(!banner(e.observe(t, &hit(A, 1, Mode::Atcp), &ctx)));
    }
}

#[test]
fn a_successful_block_returns_its_record_and_a_lookup_comes_back_with_the_name() {
    let c = Config {
        resolve_host: true,
        ..cfg(BlockMode::Block)
    };
    let (list, p) = (none(), Protected::default());
    let ctx = Context {
        cfg: &c,
        ignore: &list,
        protected: &p,
    };
    let mut e = Engine::new(Limits::default());
    let Outcome::Lookup(pending) = e.observe(0, &hit(A, 11, Mode::Tcp), &ctx) else {
        panic!("RESOLVE_HOST asks for the name")
    };
    assert_eq!(pending.ip(), ip(A));
    let v = e.named(0, pending, Some("scanner.example"), &ctx);
    assert_eq!(
        v.lines(),
        vec!["attackalert: Connect from host: scanner.example/192.0.2.7 to TCP port: 11"]
    );
    let job = v.job().unwrap();
    let done = e.job_done(1, &job, true);
    assert!(done.log.is_empty());
    assert_eq!(
        done.records,
        vec![Record {
            name: "scanner.example".into(),
            ip: ip(A),
            port: 11,
            mode: Mode::Tcp,
            detail: Detail::Connect,
            blocked_file: true,
            write: true,
        }]
    );
    // A log-only report (BLOCK_TCP="0") is recorded in the history only.
    let c0 = Config {
        resolve_host: false,
        ..cfg(BlockMode::LogOnly)
    };
    let ctx = Context { cfg: &c0, ..ctx };
    let mut syn = hit(B, 1, Mode::Stcp);
    syn.detail = Detail::TcpScan(TcpScanType::Syn);
    let Outcome::Done(v) = e.observe(2, &syn, &ctx) else {
        panic!()
    };
    let r = e.job_done(2, &v.job().unwrap(), true).records;
    assert_eq!((r.len(), r[0].blocked_file, r[0].write), (1, false, true));
    // The scan kind travels with the record (a fleet alert's scenario comes from it).
    assert_eq!(r[0].detail, Detail::TcpScan(TcpScanType::Syn));
}

#[test]
fn protected_sources_are_logged_but_never_acted_on() {
    let p = Protected::new([ip(A)], [], [ip(B)]);
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    for (src, what) in [
        (A, "an address of this host"),
        (B, "a default gateway"),
        ("127.0.0.1", "a loopback address"),
    ] {
        let h = hit(src, 1, Mode::Tcp);
        let Gate::Respond(r) = gate(&mut e, 0, h.src, Proto::Tcp, 0, &none()) else {
            panic!()
        };
        let v = e.respond(0, &c, &h, r, Some(src), &p);
        assert!(v.job().is_none(), "{src}");
        assert_eq!(
            v.lines()[1],
            format!("securityalert: Refusing to block host {src}: it is {what}.")
        );
    }
}

/// Issue 24: one forged datagram "from" the LAPI, a resolver or a NEVER_BLOCK host must not
/// block it; the refusal is its own line, once per repeat interval per address.
#[test]
fn what_the_host_depends_on_is_refused_once_per_interval() {
    let d = crate::config::protect::Depends {
        lapi: vec![ip("203.0.113.1")],
        nameservers: vec![ip("2001:db8:53::53")],
        never_block: vec![crate::config::ignore::parse_net("198.18.0.0/15").unwrap()],
    };
    let p = Protected::new([ip(A)], [], []).with(&d);
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    let list = none();
    let ctx = Context {
        cfg: &c,
        ignore: &list,
        protected: &p,
    };
    for (src, what) in [
        ("203.0.113.1", "the CrowdSec LAPI"),
        ("2001:db8:53::53", "a nameserver of /etc/resolv.conf"),
        ("198.19.0.7", "in NEVER_BLOCK"),
    ] {
        let h = hit(src, 53, Mode::Sudp);
        let Outcome::Done(v) = e.observe(1000, &h, &ctx) else {
            panic!()
        };
        assert!(v.job().is_none(), "{src}");
        assert_eq!(
            v.lines().last().unwrap(),
            &format!("securityalert: Refusing to block host {src}: it is {what}.")
        );
        // More forged datagrams within the repeat interval: silent, never blocked.
        for t in [1001, 30_000, 60_999] {
            let Outcome::Done(v) = e.observe(t, &h, &ctx) else {
                panic!()
            };
            assert!(v.lines().is_empty() && v.job().is_none(), "{src} at {t}");
        }
        let Outcome::Done(v) = e.observe(61_001, &h, &ctx) else {
            panic!()
        };
        assert!(v.job().is_none());
        assert!(
            v.lines().iter().any(|l| l.contains("3 further hits")),
            "{:?}",
            v.lines()
        );
        assert!(
            v.lines()
                .last()
                .unwrap()
                .ends_with(&format!("it is {what}."))
        );
    }
}

#[test]
fn route_or_hosts_deny_without_target_is_skipped_and_the_block_fails() {
    let mut e = Engine::new(Limits::default());
    let mut c = cfg(BlockMode::Block);
    c.kill_route = Some("/sbin/route add -host reject".into());
    let (_, v) = step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp));
    let v = v.unwrap();
    assert!(v.lines().contains(
        &"adminalert: No target variable specified in KILL_ROUTE option. Skipping.".to_string()
    ));
    let job = v.job().unwrap();
    assert!(!job.preflight_ok);
    assert!(!job.steps.iter().any(|s| matches!(s, Step::Route { .. })));
    assert_eq!(job.steps.len(), 2, "hosts.deny and the command still run");
}

#[test]
fn a_flood_of_distinct_sources_is_rate_limited_with_a_summary_but_still_blocked() {
    let l = Limits {
        report_burst: 10,
        reports_per_sec: 5,
        reserve_burst: 1,
        reserve_per_sec: 0,
        summary_interval_ms: 10_000,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    // The report limits alone (BLOCK_PREFIX_BUDGET, which would refuse most of these blocks,
    // has its own tests).
    let c = Config {
        block_prefix_budget: None,
        ..cfg(BlockMode::Block)
    };
    let (mut logged, mut jobs, mut written) = (0, 0, 0);
    // 1000 forged sources within one second.
    for i in 0..1000u32 {
        let src = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let h = Hit {
            src,
            ..hit(A, 1, Mode::Tcp)
        };
        let (_, v) = step(&mut e, u64::from(i), &c, &h);
        let v = v.unwrap();
        logged += v.lines().len();
        let job = v.job().unwrap();
        jobs += 1;
        written += usize::from(job.record.write);
    }
    assert_eq!(jobs, 1000, "every host is still blocked");
    assert_eq!(written, 1000, "every block is recorded in the files");
    // Syslog: a burst of 10 plus 5/s over one second, one detection line each, and the
    // reserve's one token (a prefix that had not reported yet).
    assert!((10..=17).contains(&logged), "{logged}");
    assert!(e.tick(5_000).lines().is_empty(), "not before the interval");
    let s = e.tick(10_000).lines();
    assert_eq!(s.len(), 1);
    // The sources span 10.0.0.0/24 to 10.0.3.0/24: all four are named, the counts add up.
    let head = format!(
        "attackalert: Rate limit: {} reports suppressed in the last 10 seconds: ",
        1000 - logged
    );
    let rest = s[0].strip_prefix(&head).expect(&s[0]);
    let mut sum = 0;
    for part in rest.trim_end_matches('.').split(", ") {
        let (n, from) = part.split_once(" from ").expect(part);
        assert!(from.starts_with("10.0.") && from.ends_with(".0/24") || from == "other prefixes");
        sum += n.parse::<usize>().unwrap();
    }
    assert_eq!(sum, 1000 - logged);
    assert!(e.tick(30_000).lines().is_empty(), "nothing new to say");
}

/// Limits with one report in the global bucket and one in the reserve, never refilled: the
/// next reports are over the limits.
fn one_report_and_one_reserve() -> Limits {
    Limits {
        report_burst: 1,
        reports_per_sec: 0,
        reserve_burst: 1,
        reserve_per_sec: 0,
        ..Limits::default()
    }
}

#[test]
fn log_only_reports_over_the_rate_leave_no_job() {
    let l = one_report_and_one_reserve();
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    assert!(
        step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp))
            .1
            .unwrap()
            .job()
            .is_some()
    );
    // B's prefix has not reported: the reserve.
    assert!(
        step(&mut e, 1, &c, &hit(B, 1, Mode::Tcp))
            .1
            .unwrap()
            .job()
            .is_some()
    );
    let v = step(&mut e, 1, &c, &hit("203.0.113.1", 1, Mode::Tcp))
        .1
        .unwrap();
    assert!(v.job().is_none() && v.lines().is_empty());
}

#[test]
fn a_logged_only_udp_probe_does_not_hold_back_the_tcp_block() {
    // BLOCK_UDP=0, BLOCK_TCP=1 (found by the package test): 1.2's separate daemons kept
    // separate state, so the TCP block must still happen right after a UDP report.
    let mut e = Engine::new(Limits::default());
    let mut c = cfg(BlockMode::Block);
    c.block_udp = BlockMode::LogOnly;
    let (_, v) = step(&mut e, 0, &c, &hit(A, 7, Mode::Udp));
    let job = v.unwrap().job().unwrap();
    assert!(job.steps.is_empty());
    e.job_done(0, &job, true);
    let (g, v) = step(&mut e, 10, &c, &hit(A, 1, Mode::Tcp));
    assert!(matches!(g, Gate::Respond(_)), "{g:?}");
    let job = v.unwrap().job().unwrap();
    assert_eq!(job.steps.len(), 3);
    e.job_done(0, &job, true);
    // The block is per host: a later UDP probe finds it blocked.
    let (_, v) = step(&mut e, 70_000, &c, &hit(A, 7, Mode::Udp));
    assert!(v.unwrap().lines()[1].contains("is already blocked"));
}

fn nft_cfg(timeout: u64) -> Config {
    Config {
        block_method: crate::config::BlockMethod::Nftables,
        block_timeout: timeout,
        kill_route_undo: Some("/sbin/ip route del blackhole $TARGET$ # $PORT$ $MODE$".into()),
        ..cfg(BlockMode::Block)
    }
}

#[test]
fn nftables_adds_the_address_beside_the_other_actions() {
    let mut e = Engine::new(Limits::default());
    let (_, v) = step(&mut e, 0, &nft_cfg(30), &hit(A, 1, Mode::Tcp));
    let steps = v.unwrap().job().unwrap().steps;
    assert_eq!(
        steps,
        vec![
            Step::NftAdd {
                addr: ip(A),
                timeout_s: 30
            },
            Step::HostsDeny {
                line: "ALL: 192.0.2.7 : DENY".into()
            },
            Step::Route {
                command: "/sbin/ip route add blackhole 192.0.2.7".into()
            },
            Step::RunCmd {
                command: "/usr/local/bin/alert 192.0.2.7 1 tcp".into()
            },
        ]
    );
    // KILL_RUN_CMD_FIRST keeps its place before everything else.
    let c = Config {
        kill_run_cmd_first: true,
        ..nft_cfg(0)
    };
    let (_, v) = step(&mut e, 0, &c, &hit(B, 1, Mode::Udp));
    let steps = v.unwrap().job().unwrap().steps;
    assert!(matches!(steps[0], Step::RunCmd { .. }));
    assert_eq!(
        steps[1],
        Step::NftAdd {
            addr: ip(B),
            timeout_s: 0
        }
    );
    // BLOCK_x=2 runs KILL_RUN_CMD only: no set element.
    let c = Config {
        block_udp: BlockMode::RunCmdOnly,
        ..nft_cfg(0)
    };
    let (_, v) = step(&mut e, 0, &c, &hit("192.0.2.99", 1, Mode::Udp));
    assert_eq!(v.unwrap().job().unwrap().steps.len(), 1);
    // The command method never adds elements (1.2 configs behave as before).
    let (_, v) = step(
        &mut e,
        0,
        &cfg(BlockMode::Block),
        &hit("192.0.2.98", 1, Mode::Tcp),
    );
    let steps = v.unwrap().job().unwrap().steps;
    assert!(!steps.iter().any(|s| matches!(s, Step::NftAdd { .. })));
}

#[test]
fn blocks_expire_on_the_fake_clock_and_run_the_undo_command() {
    let mut e = Engine::new(Limits::default());
    let c = Config {
        block_method: crate::config::BlockMethod::Command,
        ..nft_cfg(10)
    };
    let (_, v) = step(&mut e, 1_000, &c, &hit(A, 7, Mode::Udp));
    let job = v.unwrap().job().unwrap();
    assert_eq!(
        job.kind,
        JobKind::Respond {
            expire_after_ms: Some(10_000),
            undo: Some("/sbin/ip route del blackhole 192.0.2.7 # 7 udp".into()),
            deny: Some(DenyLine::new("ALL: $TARGET$ : DENY", 7, Mode::Udp)),
            evidence: 2,
        }
    );
    // The job ends at 2 s: the block lasts until 12 s.
    e.job_done(2_000, &job, true);
    assert!(expire_blocks(&mut e, 11_999) == Expired::default());
    assert!(e.is_blocked(ip(A)));
    let x = expire_blocks(&mut e, 12_000);
    assert!(!e.is_blocked(ip(A)));
    assert_eq!(x.hosts, vec![ip(A)]);
    assert_eq!(
        x.log,
        vec!["attackalert: Block of host 192.0.2.7 (udp) has expired"]
    );
    assert_eq!(x.jobs.len(), 1);
    assert_eq!(x.jobs[0].kind, JobKind::Unblock);
    // Its hosts.deny line goes, then KILL_ROUTE_UNDO runs.
    assert_eq!(
        x.jobs[0].steps,
        vec![
            Step::HostsDenyRemove {
                deny: DenyLine::new("ALL: $TARGET$ : DENY", 7, Mode::Udp)
            },
            Step::Undo {
                command: "/sbin/ip route del blackhole 192.0.2.7 # 7 udp".into()
            }
        ]
    );
    // The undo job's end is not a block.
    assert!(e.job_done(12_001, &x.jobs[0], true).log.is_empty());
    assert!(!e.is_blocked(ip(A)));
    assert_eq!(expire_blocks(&mut e, 100_000), Expired::default());
    // Expired: the next scan blocks again.
    let (_, v) = step(&mut e, 13_000, &c, &hit(A, 7, Mode::Udp));
    assert!(v.unwrap().job().is_some());
}

#[test]
fn no_timeout_means_forever_and_no_undo() {
    let mut e = Engine::new(Limits::default());
    let (_, v) = step(&mut e, 0, &nft_cfg(0), &hit(A, 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    assert_eq!(
        job.kind,
        JobKind::Respond {
            expire_after_ms: None,
            undo: None,
            deny: Some(DenyLine::new("ALL: $TARGET$ : DENY", 1, Mode::Tcp)),
            evidence: 2,
        }
    );
    e.job_done(0, &job, true);
    assert_eq!(expire_blocks(&mut e, u64::MAX), Expired::default());
    assert!(e.is_blocked(ip(A)));
    // No KILL_ROUTE in the job: nothing to undo even with a timeout.
    let c = Config {
        kill_route: None,
        ..nft_cfg(5)
    };
    let (_, v) = step(&mut e, 0, &c, &hit(B, 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    assert!(matches!(job.kind, JobKind::Respond { undo: None, .. }));
    e.job_done(0, &job, true);
    let x = expire_blocks(&mut e, 5_000);
    assert_eq!(x.hosts, vec![ip(B)]);
    assert_eq!(
        x.jobs.iter().map(|j| &j.steps).collect::<Vec<_>>(),
        vec![&vec![Step::HostsDenyRemove {
            deny: DenyLine::new("ALL: $TARGET$ : DENY", 1, Mode::Tcp)
        }]]
    );
    // Without KILL_HOSTS_DENY (and KILL_ROUTE_UNDO) an expiry has no job.
    let c = Config {
        kill_route: None,
        kill_hosts_deny: None,
        ..nft_cfg(5)
    };
    let (_, v) = step(&mut e, 0, &c, &hit("192.0.2.77", 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    assert!(matches!(job.kind, JobKind::Respond { deny: None, .. }));
    e.job_done(0, &job, true);
    let x = expire_blocks(&mut e, 5_000);
    assert_eq!((x.hosts, x.jobs.len()), (vec![ip("192.0.2.77")], 0));
}

#[test]
fn a_reblock_before_expiry_keeps_only_the_newest_time() {
    let mut e = Engine::new(Limits::default());
    let c = nft_cfg(10);
    let (_, v) = step(&mut e, 0, &c, &hit(A, 1, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    e.job_done(0, &job, true);
    // Restored from the set with more time left (e.g. re-added by hand).
    e.restore_blocked(5_000, Mode::Tcp, None, [(ip(A), Some(20_000))]);
    assert!(
        expire_blocks(&mut e, 10_000).hosts.is_empty(),
        "old time is stale"
    );
    assert_eq!(expire_blocks(&mut e, 25_000).hosts, vec![ip(A)]);
}

#[test]
fn restore_rebuilds_blocked_state_without_double_counting() {
    let mut e = Engine::new(Limits {
        max_blocked: 3,
        ..Limits::default()
    });
    let c = nft_cfg(0);
    let (n, _) = e.restore_blocked(
        0,
        Mode::Tcp,
        None,
        [
            (ip(A), None),
            (ip("2001:db8::2"), Some(5_000)),
            (ip("::ffff:10.1.1.1"), None),
        ],
    );
    assert_eq!(n, 3);
    assert!(
        e.is_blocked(ip("10.1.1.1")),
        "mapped addresses are canonical"
    );
    // A restored host scanning again is "already blocked": no job, no second history line.
    let (_, v) = step(&mut e, 1, &c, &hit(A, 1, Mode::Tcp));
    let v = v.unwrap();
    assert!(v.job().is_none());
    assert!(v.lines()[1].contains("already blocked"));
    // The set is authoritative: a host deleted from it is forgotten and reported again.
    assert_eq!(e.restore_blocked(2, Mode::Tcp, None, [(ip(B), None)]).0, 1);
    assert!(!e.is_blocked(ip(A)) && e.is_blocked(ip(B)));
    let (_, v) = step(&mut e, 3, &c, &hit(A, 1, Mode::Tcp));
    assert!(v.unwrap().job().is_some());
    // Bounded.
    let many = (0..10u32).map(|i| (IpAddr::from(i.to_be_bytes()), None));
    assert_eq!(e.restore_blocked(4, Mode::Udp, None, many).0, 3);
    // Restored times expire on the same clock.
    e.restore_blocked(10, Mode::Udp, None, [(ip(A), Some(100))]);
    assert_eq!(expire_blocks(&mut e, 110).hosts, vec![ip(A)]);
}

/// `portsentry blocked del` (the sets re-read): a block lifted by hand has its hosts.deny
/// line removed; blocks that stay keep theirs; blocks made by an earlier run (known only by
/// their address) get the line KILL_HOSTS_DENY writes for any port and mode.
#[test]
fn a_block_lifted_by_hand_removes_its_hosts_deny_line() {
    let mut e = Engine::new(Limits {
        max_blocked: 2,
        ..Limits::default()
    });
    let c = nft_cfg(0);
    let (_, v) = step(&mut e, 0, &c, &hit(A, 22, Mode::Stcp));
    e.job_done(0, &v.unwrap().job().unwrap(), true);
    let t = Some("ALL: $TARGET$ : DENY");
    // A stays (its own line, even with another template now); B is new, from an earlier run.
    let (n, v) = e.restore_blocked(
        1,
        Mode::Tcp,
        Some("sshd: $TARGET$"),
        [(ip(A), None), (ip(B), None)],
    );
    assert_eq!((n, v.jobs.len()), (2, 0));
    // The set now holds B only: A was lifted by hand; a host past the maximum is kept (it
    // is still in the set).
    let (_, v) = e.restore_blocked(2, Mode::Tcp, t, [(ip(B), None)]);
    assert_eq!(v.jobs.len(), 1);
    let j = &v.jobs[0];
    assert_eq!((j.target, &j.kind), (ip(A), &JobKind::Unblock));
    assert_eq!(
        j.steps,
        vec![Step::HostsDenyRemove {
            deny: DenyLine::new("ALL: $TARGET$ : DENY", 22, Mode::Stcp)
        }]
    );
    assert!(!j.record.write && !j.record.blocked_file);
    assert!(e.job_done(3, j, true).log.is_empty());
    let (_, v) = e.restore_blocked(
        3,
        Mode::Tcp,
        t,
        [
            (ip(B), None),
            (ip("192.0.2.1"), None),
            (ip("192.0.2.2"), None),
        ],
    );
    assert!(v.jobs.is_empty(), "over the maximum is not lifted");
    // Flushed: B's line is the one its template wrote then, for any port and mode.
    let (_, v) = e.restore_blocked(4, Mode::Tcp, t, []);
    let targets: Vec<IpAddr> = v.jobs.iter().map(|j| j.target).collect();
    assert!(
        targets.contains(&ip(B)) && targets.len() == 2,
        "{targets:?}"
    );
    let b = v.jobs.iter().find(|j| j.target == ip(B)).unwrap();
    assert_eq!(
        b.steps,
        vec![Step::HostsDenyRemove {
            deny: DenyLine::unknown_hit("sshd: $TARGET$")
        }]
    );
    // No KILL_HOSTS_DENY (or one without $TARGET$, which writes nothing): nothing to remove.
    for t in [None, Some("ALL: 192.0.2.7")] {
        e.restore_blocked(5, Mode::Tcp, t, [(ip(B), None)]);
        assert!(e.restore_blocked(6, Mode::Tcp, t, []).1.jobs.is_empty());
    }
}

/// One hit from `src` on UDP port 7 (log only) at `now`: was it reported (logged)?
fn reported(e: &mut Engine, now: u64, c: &Config, src: IpAddr) -> bool {
    let h = Hit {
        src,
        ..hit(A, 7, Mode::Sudp)
    };
    match step(e, now, c, &h) {
        (Gate::Respond(r), Some(v)) => {
            assert_eq!(r.quiet, v.lines().is_empty(), "{v:?}");
            !r.quiet
        }
        (g, _) => panic!("{g:?}"),
    }
}

fn v6(prefix: u64, host: u64) -> IpAddr {
    IpAddr::V6(((u128::from(prefix) << 64) | u128::from(host)).into())
}

#[test]
fn report_prefixes_are_ipv4_24_and_ipv6_64() {
    assert_eq!(prefix_of(ip("198.51.100.77")), (ip("198.51.100.0"), 24));
    assert_eq!(
        prefix_of(ip("2001:db8:f:1:aa:bb:cc:dd")),
        (ip("2001:db8:f:1::"), 64)
    );
}

#[test]
fn a_forged_flood_from_one_prefix_cannot_silence_a_scan_from_another() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::LogOnly);
    // 100,000 forged sources from one /64 within one second (fake clock: 100 per ms).
    let mut logged = 0;
    for i in 0..100_000u64 {
        logged += usize::from(reported(&mut e, i / 100, &c, v6(0x2001_0db8_000f_0000, i)));
    }
    // The prefix's own bucket: a burst of 20, then 2 per second.
    assert!((20..=22).contains(&logged), "{logged}");
    // A real probe from another prefix, in the middle of the flood, is logged.
    assert!(reported(&mut e, 1_000, &c, ip("198.51.100.3")));
    assert!(reported(&mut e, 1_000, &c, v6(0x2001_0db8_0000_0000, 2)));
    // The summary names the flooding prefix.
    let s = e.tick(10_000).lines();
    assert_eq!(
        s,
        vec![format!(
            "attackalert: Rate limit: {n} reports suppressed in the last 10 seconds: {n} from 2001:db8:f::/64.",
            n = 100_000 - logged
        )]
    );
}

#[test]
fn when_many_prefixes_exhaust_the_global_bucket_a_quiet_prefix_uses_the_reserve() {
    // No global refill, so the test does not depend on when a token comes back.
    let l = Limits {
        reports_per_sec: 0,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    // 500 prefixes (10.0.0.0/24 ...), 30 sources each, within 100 ms: each could report 20,
    // the global bucket (200) runs dry.
    let mut logged = 0;
    for i in 0..15_000u32 {
        let src = IpAddr::from(((10 << 24) + ((i % 500) << 8) + i / 500 + 1).to_be_bytes());
        logged += usize::from(reported(&mut e, u64::from(i / 150), &c, src));
    }
    // The global burst, plus the reserve's burst drawn by the first reports of flooding
    // prefixes that had not reported yet.
    let (g, r) = (l.report_burst as usize, l.reserve_burst as usize);
    assert_eq!(logged, g + r);
    // A flooding prefix that has reported recently may not use the reserve...
    assert!(!reported(&mut e, 100, &c, ip("10.0.0.200")));
    // ...but once the reserve refills (1 s: 2 tokens), a prefix that has been quiet may.
    assert!(reported(&mut e, 1_100, &c, ip("192.0.2.1")));
    assert!(
        !reported(&mut e, 1_100, &c, ip("192.0.2.2")),
        "its prefix has just reported"
    );
    assert!(reported(&mut e, 1_100, &c, ip("198.18.0.1")));
    assert!(
        !reported(&mut e, 1_100, &c, ip("203.0.113.1")),
        "the reserve is empty"
    );
}

#[test]
fn the_report_buckets_together_bound_the_total() {
    let l = Limits::default();
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    // Over 10 s, 3 new prefixes per ms: at most the global and the reserve bucket's bursts
    // plus 10 s of their rates.
    let mut n = 0;
    for t in 0..10_000u64 {
        for j in 0..3u32 {
            let src = IpAddr::from(((11 << 24) + ((t as u32 * 3 + j) << 8) + 1).to_be_bytes());
            n += usize::from(reported(&mut e, t, &c, src));
        }
    }
    assert!(n <= 200 + 20 * 10 + 20 + 2 * 10, "{n}");
    assert!(n >= 200 + 20 * 9, "{n}");
}

/// The summary's "N from P" parts, and its "other prefixes" count.
fn summary_parts(line: &str) -> (Vec<(u64, String)>, u64) {
    let rest = line.split_once(" seconds: ").map(|x| x.1).expect(line);
    let mut named = Vec::new();
    let mut others = 0;
    for part in rest.trim_end_matches('.').split(", ") {
        let (k, from) = part.split_once(" from ").expect(part);
        let k = k.parse::<u64>().expect(part);
        if from == "other prefixes" {
            others = k;
        } else {
            named.push((k, from.to_string()));
        }
    }
    (named, others)
}

#[test]
fn a_flood_from_every_prefix_is_not_tracked_prefix_by_prefix_yet_the_summary_names_a_repeated_one()
{
    let l = one_report_and_one_reserve();
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    // Spend both global buckets.
    assert!(reported(&mut e, 0, &c, v6(1, 1)));
    assert!(reported(&mut e, 0, &c, v6(2, 1)));
    let tracked = e.tracked_prefixes();
    // 20,000 forged sources, each from a prefix of its own, and 300 from one /64 among
    // them: nothing is logged, the new prefixes seen once are not tracked (each would have
    // been a table entry), and the summary counts every report, naming the repeated /64 with
    // all 300 of its own.
    let mut logged = 0;
    for i in 0..20_000u64 {
        logged += u64::from(reported(&mut e, 1 + i / 10, &c, v6(1_000 + i, 1)));
        if i % 64 == 0 {
            logged += u64::from(reported(&mut e, 1 + i / 10, &c, v6(7, 1 + i)));
        }
    }
    assert_eq!(logged, 0);
    assert!(
        e.tracked_prefixes() <= tracked + 1,
        "{}",
        e.tracked_prefixes()
    );
    let lines = e.tick(10_000).lines();
    let (named, others) = summary_parts(&lines[0]);
    assert_eq!(named[0], (313, "0:0:0:7::/64".to_string()), "{}", lines[0]);
    assert_eq!(others, 20_000, "{}", lines[0]);
    // A note left from before the summary (the last prefix noted: its slot still holds it)
    // does not take a report from the next summary's "other prefixes".
    assert!(!reported(&mut e, 10_001, &c, v6(1_000 + 19_999, 2)));
    assert!(!reported(&mut e, 10_002, &c, v6(99_999, 1)));
    let lines = e.tick(20_001).lines();
    assert!(
        lines[0].contains("2 reports suppressed") && lines[0].contains("2 from other prefixes"),
        "{}",
        lines[0]
    );
}

#[test]
fn the_prefix_table_stays_bounded_and_the_summary_counts_evicted_prefixes() {
    let l = Limits {
        max_prefixes: 1_000,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    let mut logged = 0u64;
    // 50,000 prefixes, two sources each, within 5 s.
    for i in 0..100_000u64 {
        logged += u64::from(reported(&mut e, i / 20, &c, v6(i / 2, i)));
        assert!(e.tracked_prefixes() <= 1_000);
    }
    let s = e.tick(10_000).lines();
    let line = &s[0];
    let head = format!(
        "attackalert: Rate limit: {} reports suppressed in the last 10 seconds: ",
        100_000 - logged
    );
    let rest = line.strip_prefix(&head).expect(line);
    let mut sum = 0;
    let mut named = 0;
    for part in rest.trim_end_matches('.').split(", ") {
        let (k, from) = part.split_once(" from ").expect(part);
        sum += k.parse::<u64>().unwrap();
        named += usize::from(from.ends_with("/64"));
    }
    assert!(named <= 3, "{line}");
    assert!(rest.contains("from other prefixes"), "{line}");
    assert_eq!(sum, 100_000 - logged, "{line}");
    // Idle prefixes are forgotten.
    e.tick(100_000);
    assert_eq!(e.tracked_prefixes(), 0);
}

#[test]
fn over_the_rate_a_log_only_report_skips_the_lookup_and_the_formatting() {
    let l = one_report_and_one_reserve();
    let mut e = Engine::new(l);
    let c = cfg(BlockMode::LogOnly);
    assert!(reported(&mut e, 0, &c, ip(A)));
    assert!(reported(&mut e, 0, &c, ip(B)), "the reserve");
    let h = hit("203.0.113.5", 7, Mode::Sudp);
    let Gate::Respond(r) = gate(&mut e, 1, h.src, Proto::Udp, 0, &none()) else {
        panic!()
    };
    assert!(r.quiet);
    // A quiet report needs no name: None is the address.
    let v = e.respond(1, &c, &h, r, None, &Protected::default());
    assert_eq!(v, Verdict::default());
}

fn capped(per_minute: u32) -> Config {
    Config {
        block_rate_limit: per_minute,
        ..cfg(BlockMode::Block)
    }
}

#[test]
fn block_rate_limit_refuses_blocks_over_the_cap_logs_it_once_and_summarises() {
    let mut e = Engine::new(Limits::default());
    let c = capped(3);
    let mut blocked = Vec::new();
    let mut logs = Vec::new();
    for i in 0..10u8 {
        let h = hit(&format!("192.0.2.{}", i + 1), 1, Mode::Tcp);
        let (_, v) = step(&mut e, u64::from(i), &c, &h);
        let v = v.unwrap();
        if let Some(j) = v.job() {
            blocked.push(j.target);
        }
        logs.extend(v.lines());
    }
    assert_eq!(blocked.len(), 3, "the cap: 3 per minute");
    assert_eq!(
        logs.iter()
            .filter(|l| l.as_str()
                == "adminalert: Block rate limit of 3 per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears.")
            .count(),
        1,
        "announced once: {logs:#?}"
    );
    assert!(logs.contains(
        &"attackalert: Not blocking host: 192.0.2.4/192.0.2.4: block rate limit reached.".into()
    ));
    assert_eq!(
        e.tick(10_000).lines(),
        vec!["adminalert: Block rate limit: 7 blocks refused in the last 10 seconds."]
    );
    // 20 s later one token is back (3 per 60 s); a refused host tries again on its next
    // report (after the repeat interval), and is blocked.
    let h = hit("192.0.2.4", 1, Mode::Tcp);
    let (_, v) = step(&mut e, 70_000, &c, &h);
    let v = v.unwrap();
    assert!(v.job().is_some(), "{v:?}");
    // The cap had fully recovered, so reaching it again is announced again.
    let h = hit("192.0.2.5", 1, Mode::Tcp);
    step(&mut e, 70_001, &c, &h);
    let h = hit("192.0.2.6", 1, Mode::Tcp);
    step(&mut e, 70_002, &c, &h);
    let h = hit("192.0.2.7", 1, Mode::Tcp);
    let v = step(&mut e, 70_003, &c, &h).1.unwrap();
    assert!(v.job().is_none());
    assert!(
        v.lines()
            .iter()
            .any(|l| l.contains("Block rate limit of 3 per minute reached")),
        "{v:?}"
    );
}

#[test]
fn a_sustained_flood_announces_the_block_cap_once() {
    let mut e = Engine::new(Limits::default());
    let c = capped(60); // one token a second
    let mut announced = 0;
    let mut blocks = 0;
    // 600 forged sources over 60 s, ten a second: a token frees up every second.
    for i in 0..600u32 {
        let src = IpAddr::from((0x0a00_0000 + (i << 8) + 1).to_be_bytes());
        let h = Hit {
            src,
            ..hit(A, 1, Mode::Tcp)
        };
        let v = step(&mut e, u64::from(i) * 100, &c, &h).1.unwrap();
        blocks += usize::from(v.job().is_some());
        announced += v
            .lines()
            .iter()
            .filter(|l| l.contains("Block rate limit of 60 per minute reached"))
            .count();
    }
    assert_eq!(announced, 1);
    assert!((60..=120).contains(&blocks), "{blocks}");
}

#[test]
fn block_rate_limit_zero_is_no_cap_and_log_only_reports_do_not_count() {
    let mut e = Engine::new(Limits::default());
    let c = Config {
        block_prefix_budget: None,
        ..capped(0)
    };
    for i in 0..300u32 {
        let src = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let h = Hit {
            src,
            ..hit(A, 1, Mode::Tcp)
        };
        assert!(step(&mut e, 0, &c, &h).1.unwrap().job().is_some());
    }
    let mut c = capped(1);
    c.block_tcp = BlockMode::LogOnly;
    let mut e = Engine::new(Limits::default());
    for i in 0..5u32 {
        let src = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let h = Hit {
            src,
            ..hit(A, 1, Mode::Tcp)
        };
        let v = step(&mut e, 0, &c, &h).1.unwrap();
        assert!(v.lines()[1].contains("Ignoring TCP response"), "{v:?}");
    }
    assert!(e.tick(10_000).lines().is_empty());
}

#[test]
fn a_refused_block_over_the_report_rate_logs_only_the_announcement() {
    let l = one_report_and_one_reserve();
    let mut e = Engine::new(l);
    let c = capped(1);
    let mut lines = Vec::new();
    for i in 0..5u8 {
        let h = hit(&format!("10.{i}.0.1"), 1, Mode::Tcp);
        lines.extend(step(&mut e, 0, &c, &h).1.unwrap().lines());
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Block rate limit of 1 per minute reached"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Not blocking host: 10.4.0.1"))
    );
}

#[test]
fn the_counters_read_the_blocks_in_force_their_family_and_soonest_expiry() {
    let mut e = Engine::new(Limits::default());
    let c = nft_cfg(10);
    assert_eq!(e.soonest_expiry(), None);
    let mut t = 1_000;
    for src in [A, "192.0.2.8", "2001:db8::9"] {
        let (_, v) = step(&mut e, t, &c, &hit(src, 7, Mode::Udp));
        e.job_done(t, &v.unwrap().job().unwrap(), true);
        t += 1_000;
    }
    assert_eq!(e.blocked_by_family(), (2, 1));
    let mut list = e.blocked_list();
    list.sort();
    assert_eq!(
        list,
        vec![
            (ip(A), Mode::Udp),
            (ip("192.0.2.8"), Mode::Udp),
            (ip("2001:db8::9"), Mode::Udp)
        ]
    );
    // The first block (made at 1 s) is the soonest to expire: at 11 s.
    assert_eq!(e.soonest_expiry(), Some(11_000));
    expire_blocks(&mut e, 11_000);
    assert_eq!(e.soonest_expiry(), Some(12_000));
    assert_eq!(e.blocked_by_family(), (1, 1));
    // Without BLOCK_TIMEOUT nothing expires.
    let mut e = Engine::new(Limits::default());
    let (_, v) = step(&mut e, 0, &nft_cfg(0), &hit(A, 7, Mode::Udp));
    e.job_done(0, &v.unwrap().job().unwrap(), true);
    assert_eq!((e.blocked_hosts(), e.soonest_expiry()), (1, None));
}

/// SCTP and ICMP probes (issue 18) are reported only by default: a detection line, no job,
/// no record, a table of their own (a ping never holds back the same host's TCP report), and
/// they never count towards SCAN_TRIGGER.
#[test]
fn sctp_and_icmp_probes_are_reported_only_by_default() {
    use crate::capture::classify::OtherProbe;
    let mut c = cfg(BlockMode::Block);
    c.scan_trigger = 2;
    let mut e = Engine::new(Limits::default());
    let ping = Hit {
        detail: Detail::Other(OtherProbe::IcmpEcho),
        ..hit(A, 0, Mode::Atcp)
    };
    let (g, v) = step(&mut e, 0, &c, &ping);
    assert!(
        matches!(g, Gate::Respond(r) if r.report_only && !r.already_blocked),
        "{g:?}"
    );
    let v = v.unwrap();
    assert_eq!(
        v.lines(),
        vec!["attackalert: ICMP echo scan from host: 192.0.2.7/192.0.2.7 to ICMP port: 0"]
    );
    assert!(v.jobs.is_empty() && v.records.is_empty());
    // A repeat within the interval is silent; a ping with IP options gets no options line.
    let (g, _) = step(&mut e, 10, &c, &ping);
    assert_eq!(g, Gate::Suppressed);
    // The same host's SYNs: the first is below SCAN_TRIGGER=2 (the ping did not count),
    // the second is reported and blocked.
    let syn = Hit {
        detail: Detail::TcpScan(TcpScanType::Syn),
        ..hit(A, 11, Mode::Atcp)
    };
    assert_eq!(step(&mut e, 20, &c, &syn).0, Gate::BelowTrigger);
    let (_, v) = step(&mut e, 30, &c, &syn);
    let job = v.unwrap().job().expect("the TCP scan is blocked");
    assert_eq!(job.steps.len(), 3);
    e.job_done(30, &job, true);
    // Once blocked, after the repeat interval: the report-only probes say nothing about
    // blocking (and an SCTP probe with IP options gets no TCP/UDP options line).
    let sctp = Hit {
        detail: Detail::Other(OtherProbe::SctpInit),
        ip_options: true,
        ..hit(A, 80, Mode::Atcp)
    };
    let later = 40 + Limits::default().repeat_interval_ms;
    let (_, v) = step(&mut e, later, &c, &sctp);
    assert_eq!(
        v.unwrap().lines(),
        vec![
            "attackalert: SCTP INIT scan from host: 192.0.2.7/192.0.2.7 to SCTP port: 80",
            "attackalert: 1 further hit from host 192.0.2.7 suppressed in the last 60 seconds"
        ]
    );
}

/// With BLOCK_ICMP_SCTP they are hits like any other: they count towards SCAN_TRIGGER with
/// the host's TCP probes and are answered as BLOCK_TCP says, with the TCP mode's records.
#[test]
fn block_icmp_sctp_makes_them_count_and_block() {
    use crate::capture::classify::OtherProbe;
    let mut c = cfg(BlockMode::Block);
    c.scan_trigger = 2;
    c.block_icmp_sctp = true;
    let mut e = Engine::new(Limits::default());
    let ts = Hit {
        detail: Detail::Other(OtherProbe::IcmpTimestamp),
        ..hit(A, 0, Mode::Stcp)
    };
    assert_eq!(step(&mut e, 0, &c, &ts).0, Gate::BelowTrigger);
    let init = Hit {
        detail: Detail::Other(OtherProbe::SctpInit),
        ..hit(A, 80, Mode::Stcp)
    };
    let (_, v) = step(&mut e, 10, &c, &init);
    let v = v.unwrap();
    assert_eq!(
        v.lines()[0],
        "attackalert: SCTP INIT scan from host: 192.0.2.7/192.0.2.7 to SCTP port: 80"
    );
    let job = v.job().unwrap();
    assert_eq!(job.steps.len(), 3);
    let done = e.job_done(10, &job, true);
    // The history and blocked-file line: the TCP mode's, with the SCTP port (1.2's format,
    // fail2ban reads it as any other block).
    let r = &done.records[0];
    assert_eq!((r.port, r.mode, r.blocked_file), (80, Mode::Stcp, true));
    assert!(e.is_blocked(ip(A)));
    // BLOCK_TCP=0: reported and written to the history only.
    let mut c0 = c.clone();
    c0.block_tcp = BlockMode::LogOnly;
    c0.scan_trigger = 1;
    let (_, v) = step(&mut e, 20, &c0, &Hit { src: ip(B), ..ts });
    let v = v.unwrap();
    assert!(
        v.lines()
            .iter()
            .any(|l| l.contains("Ignoring TCP response")),
        "{v:?}"
    );
    assert!(v.job().unwrap().steps.is_empty());
}

/// Spend the global bucket and the reserve with forged one-packet sources, one per /24 of
/// 10.0.0.0/8 (as `hping3 --rand-source` does), at `now`.
fn spend_every_bucket(e: &mut Engine, now: u64, c: &Config) {
    let l = Limits::default();
    let n = (l.report_burst + l.reserve_burst) * 4;
    for i in 0..n {
        let src = IpAddr::from(((10 << 24) + (i << 8) + 1).to_be_bytes());
        step(
            e,
            now,
            c,
            &Hit {
                src,
                ..hit(A, 1, Mode::Stcp)
            },
        );
    }
    let h = Hit {
        src: ip("10.255.255.1"),
        ..hit(A, 1, Mode::Stcp)
    };
    assert!(matches!(
        step(e, now, c, &h).0,
        Gate::Respond(Respond { quiet: true, .. })
    ));
}

#[test]
fn a_flood_over_every_prefix_cannot_hide_a_source_with_more_evidence() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::LogOnly);
    spend_every_bucket(&mut e, 1_000, &c);
    // A real scanner's first probe looks like any forged one (one packet, one port): held
    // back. Its second, on another port, shows more evidence than any forged source: logged.
    let real = |port| hit("192.0.2.77", port, Mode::Stcp);
    let (g, v) = step(&mut e, 1_000, &c, &real(21));
    assert!(matches!(g, Gate::Respond(Respond { quiet: true, .. })));
    assert!(v.unwrap().lines().is_empty());
    let (g, v) = step(&mut e, 1_001, &c, &real(22));
    assert!(
        matches!(g, Gate::Respond(Respond { quiet: false, .. })),
        "{g:?}"
    );
    let lines = v.unwrap().lines();
    assert!(
        lines[0]
            .starts_with("attackalert: Connect from host: 192.0.2.77/192.0.2.77 to TCP port: 22"),
        "{lines:?}"
    );
    // Reported now: its next hits are repeats, as for any reported host.
    assert_eq!(step(&mut e, 1_002, &c, &real(23)).0, Gate::Suppressed);
    // A UDP prober that repeats one port: its second datagram (score 3) is logged too.
    let udp = hit("192.0.2.78", 7, Mode::Sudp);
    assert!(step(&mut e, 1_003, &c, &udp).1.unwrap().lines().is_empty());
    assert!(!step(&mut e, 1_004, &c, &udp).1.unwrap().lines().is_empty());
    let g = e.gate_counts();
    assert_eq!(g.on_evidence, 2, "{g:?}");
    assert_eq!(g.repeats, 1);
    assert_eq!(
        g.judged,
        g.ignored
            + g.below_trigger
            + g.repeats
            + g.reported
            + g.on_evidence
            + g.over_prefix
            + g.over_global
    );
    assert!(g.over_global > 0 && g.reported > 0, "{g:?}");
}

#[test]
fn forgers_hold_back_only_what_they_match_and_pay_per_tier() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::LogOnly);
    spend_every_bucket(&mut e, 1_000, &c);
    // Forged sources that each show two ports (score 4: the tier of 4) spend that tier and
    // the ones below it: TIER_BURST of them are logged through the lane, then no more.
    let mut through = 0;
    for i in 0..100u32 {
        let src = IpAddr::from(((172 << 24) + (16 << 16) + (i << 8) + 1).to_be_bytes());
        for port in [1, 2] {
            let h = Hit {
                src,
                ..hit(A, port, Mode::Stcp)
            };
            if let (Gate::Respond(r), _) = step(&mut e, 1_000, &c, &h) {
                through += usize::from(!r.quiet);
            }
        }
    }
    assert_eq!(through, limits::TIER_BURST as usize);
    // A real scanner with no more evidence than they had is held back...
    let real = |port| hit("192.0.2.90", port, Mode::Stcp);
    for port in [21, 22] {
        assert!(matches!(
            step(&mut e, 1_000, &c, &real(port)).0,
            Gate::Respond(Respond { quiet: true, .. })
        ));
    }
    // ...and logged as soon as it has shown more (three ports: score 6).
    assert!(matches!(
        step(&mut e, 1_000, &c, &real(23)).0,
        Gate::Respond(Respond { quiet: false, .. })
    ));
    // The lane refills: one token per tier and second (the buckets of the normal path are
    // spent again first).
    spend_every_bucket(&mut e, 2_000, &c);
    let other = hit("192.0.2.91", 1, Mode::Stcp);
    assert!(matches!(
        step(&mut e, 2_000, &c, &other).0,
        Gate::Respond(Respond { quiet: true, .. })
    ));
    assert!(matches!(
        step(&mut e, 2_000, &c, &Hit { port: 2, ..other }).0,
        Gate::Respond(Respond { quiet: false, .. })
    ));
}

#[test]
fn a_held_back_report_promotes_its_queued_block_once_its_evidence_tells() {
    let mut e = Engine::new(Limits::default());
    let c = nft_cfg(0);
    spend_every_bucket(&mut e, 1_000, &c);
    let real = |port| hit("192.0.2.77", port, Mode::Stcp);
    // First probe: blocked quietly (the forged ones are too), nothing logged.
    let v = step(&mut e, 1_000, &c, &real(21)).1.unwrap();
    let job = v.job().unwrap();
    assert!(job.quiet && v.lines().is_empty());
    // Second probe while that job waits: the detection line, and the job is promoted (not a
    // second job, and not "already blocked").
    let v = step(&mut e, 1_001, &c, &real(22)).1.unwrap();
    assert_eq!(v.promote, vec![ip("192.0.2.77")]);
    assert!(v.jobs.is_empty());
    let lines = v.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("from host: 192.0.2.77/192.0.2.77 to TCP port: 22"));
    // A scanner whose quiet block is done by then is logged as already blocked.
    let late = |port| hit("192.0.2.78", port, Mode::Stcp);
    let job = step(&mut e, 1_002, &c, &late(21)).1.unwrap().job().unwrap();
    e.job_done(1_003, &job, true);
    let v = step(&mut e, 1_004, &c, &late(22)).1.unwrap();
    assert!(v.promote.is_empty() && v.jobs.is_empty());
    let lines = v.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("is already blocked"), "{lines:?}");
}

/// A forged UDP source: one datagram, to one port, from `base` + `n` (one /64).
fn forged_v6(n: u32) -> Hit {
    Hit {
        src: IpAddr::V6((0xfd00_0024_0005_0001_0000_0000_0000_0000u128 + u128::from(n) + 1).into()),
        port: 1,
        mode: Mode::Sudp,
        detail: Detail::UdpScan,
        ip_options: false,
    }
}

#[test]
fn a_forged_flood_from_one_prefix_gets_its_block_budget_and_a_real_scanner_is_still_blocked() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::Block);
    assert_eq!(c.block_prefix_budget, Some((16, 4)), "on by default");
    let (mut jobs, mut refused_lines, mut lines) = (0, 0, Vec::new());
    // 3,000 forged sources from one /64 within 3 s.
    for n in 0..3000u32 {
        let v = step(&mut e, u64::from(n), &c, &forged_v6(n)).1.unwrap();
        jobs += v.jobs.len();
        for l in v.lines() {
            refused_lines += usize::from(l.contains("Not blocking host"));
            lines.push(l);
        }
    }
    assert_eq!(
        jobs, 16,
        "the burst, no more: routes, set elements, history lines"
    );
    let spent: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("adminalert: Block budget of fd00:24:5:1::/64 spent"))
        .collect();
    assert_eq!(spent.len(), 1, "announced once: {lines:#?}");
    // Refusals are reported like any report: within the report limits.
    assert!((1..=40).contains(&refused_lines), "{refused_lines}");
    // A real scanner from another prefix: blocked at its first report.
    let v = step(&mut e, 3000, &c, &hit("fd00:24:5:2::7", 9, Mode::Sudp))
        .1
        .unwrap();
    assert!(v.job().is_some(), "{v:?}");
    // A real scanner inside the flooded prefix: refused on its first probe, blocked on its
    // second to another port (evidence 4, twice the forged sources' 2).
    let s = "fd00:24:5:1::ffff:1";
    let v = step(&mut e, 3001, &c, &hit(s, 9, Mode::Sudp)).1.unwrap();
    assert!(v.job().is_none());
    let v = step(&mut e, 3002, &c, &hit(s, 10, Mode::Sudp)).1;
    assert!(v.unwrap().job().is_some(), "judged again, blocked");
    // The summary: every refusal, by prefix.
    let t = e.tick(10_000).lines();
    assert!(
        t.iter().any(|l| l
            == "adminalert: Block budget: 2985 blocks refused in the last 10 seconds: 2985 in fd00:24:5:1::/64."),
        "{t:#?}"
    );
    // A minute on: 4 more from the flooded prefix.
    let mut more = 0;
    for n in 3000..6000u32 {
        let v = step(&mut e, 60_000 + u64::from(n), &c, &forged_v6(n)).1;
        more += v.map_or(0, |v| v.jobs.len());
    }
    assert_eq!(more, 4);
}

#[test]
fn without_the_block_budget_every_forged_source_is_blocked() {
    let mut e = Engine::new(Limits::default());
    let c = Config {
        block_prefix_budget: None,
        block_lone_budget: None,
        ..cfg(BlockMode::Block)
    };
    let jobs: usize = (0..3000u32)
        .map(|n| {
            step(&mut e, u64::from(n), &c, &forged_v6(n))
                .1
                .unwrap()
                .jobs
                .len()
        })
        .sum();
    assert_eq!(jobs, 3000);
}

#[test]
fn the_block_budget_leaves_log_only_reports_alone() {
    let mut e = Engine::new(Limits::default());
    let c = cfg(BlockMode::LogOnly);
    let written: usize = (0..100u32)
        .map(|n| {
            let v = step(&mut e, u64::from(n) * 1000, &c, &forged_v6(n))
                .1
                .unwrap();
            v.jobs.iter().filter(|j| j.record.write).count()
        })
        .sum();
    assert_eq!(
        written, 100,
        "BLOCK_x=0: history lines, no block budget spent"
    );
    assert_eq!(e.budget_prefixes(), 0);
}

#[test]
fn a_shed_flood_block_leaves_the_host_free_to_be_blocked_when_reported() {
    let mut e = Engine::new(Limits::default());
    let c = nft_cfg(0);
    spend_every_bucket(&mut e, 1_000, &c);
    let real = |port| hit("192.0.2.77", port, Mode::Stcp);
    // Its first probe's quiet block found the flood queue full: the executor dropped it.
    let job = step(&mut e, 1_000, &c, &real(21)).1.unwrap().job().unwrap();
    assert!(job.quiet);
    e.job_shed(&job);
    // Its second probe shows more evidence than the forged sources: logged, and a new block
    // (not "already blocked", not a promotion of a job that no longer exists).
    let v = step(&mut e, 1_001, &c, &real(22)).1.unwrap();
    assert!(v.promote.is_empty(), "{:?}", v.promote);
    let job = v.job().expect("a new block");
    assert!(!job.quiet);
    let lines = v.lines();
    assert!(
        lines[0].contains("from host: 192.0.2.77/192.0.2.77 to TCP port: 22"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("already blocked")),
        "{lines:?}"
    );
    // The summary says how many the queue dropped.
    let lines: Vec<String> = e
        .tick(1_000 + 60_000)
        .log
        .iter()
        .map(crate::observe::report::event_line)
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "adminalert: Flood: 1 block of sources over the report limits not carried out in the last"
        ) && l.contains(&format!("{} were already waiting", super::FLOOD_QUEUE_MAX))),
        "{lines:?}"
    );
}

#[test]
fn a_table_full_of_hosts_with_jobs_under_way_grows_by_a_quarter_instead_of_rescanning() {
    let l = Limits {
        max_hosts: 64,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    let c = nft_cfg(0);
    // 64 hosts, each with a block under way (never evicted).
    for i in 0..64u32 {
        let h = Hit {
            src: IpAddr::from((0x0a00_0000 + (i << 8) + 1).to_be_bytes()),
            ..hit(A, 1, Mode::Stcp)
        };
        assert!(step(&mut e, 1_000, &c, &h).1.unwrap().job().is_some());
    }
    assert_eq!(e.tracked_hosts(), 64);
    // New hosts: the eviction that finds nothing to drop lets the table grow by a quarter
    // before it looks again (it would otherwise scan all 64 on every new host).
    // (Each seen twice: a source seen once would wait aside, out of the table.)
    for i in 0..16u32 {
        let src = IpAddr::from((0xac10_0000 + (i << 8) + 1).to_be_bytes());
        gate(&mut e, 1_000, src, Proto::Tcp, 5, &none());
        gate(&mut e, 1_000, src, Proto::Tcp, 5, &none());
        assert_eq!(e.tracked_hosts(), 65 + i as usize);
    }
    // The next one finds the table at 80: the 16 newer idle hosts are the least recently
    // seen half's candidates and some go; the 64 with jobs stay.
    gate(&mut e, 2_000, ip("192.0.2.1"), Proto::Tcp, 5, &none());
    assert!(
        e.tracked_hosts() < 81 && e.tracked_hosts() >= 64,
        "{}",
        e.tracked_hosts()
    );
}

#[test]
fn a_source_seen_once_whose_quiet_block_starts_is_tracked_with_its_job() {
    let l = Limits {
        max_hosts: 64,
        ..Limits::default()
    };
    let mut e = Engine::new(l);
    let c = Config {
        block_prefix_budget: None,
        block_lone_budget: None,
        ..nft_cfg(0)
    };
    // 881 sources: the table is more than half full, new sources wait aside.
    spend_every_bucket(&mut e, 1_000, &c);
    let src = ip("100.64.0.1");
    let (g, v) = step(
        &mut e,
        1_000,
        &c,
        &Hit {
            src,
            ..hit(A, 1, Mode::Stcp)
        },
    );
    assert!(matches!(g, Gate::Respond(Respond { quiet: true, .. })));
    assert!(v.unwrap().job().is_some(), "its quiet block");
    // Its block is under way: its next hits are "already blocked" (the table keeps it).
    assert!(e.already_blocked(src, Proto::Tcp));
}

#[test]
fn past_the_flood_queue_bound_a_forged_block_is_not_even_built() {
    let mut e = Engine::new(Limits::default());
    // The flood queue alone (consecutive forged sources would spend BLOCK_PREFIX_BUDGET
    // first, 16 per /24).
    let c = Config {
        block_prefix_budget: None,
        block_lone_budget: None,
        ..nft_cfg(0)
    };
    spend_every_bucket(&mut e, 1_000, &c);
    let forged = |i: u32| Hit {
        src: IpAddr::from((0x6400_0000 + i).to_be_bytes()),
        ..hit(A, 1, Mode::Stcp)
    };
    // Fill the flood queue (the buckets' own quiet jobs count too).
    let mut held = Vec::new();
    let mut i = 0;
    loop {
        let v = step(&mut e, 1_000, &c, &forged(i)).1;
        i += 1;
        match v.and_then(|v| v.job()) {
            Some(j) if j.flood => held.push(j),
            Some(_) => {}
            None => break,
        }
        assert!(i < 100_000, "the flood queue never filled");
    }
    assert!(held.len() <= super::FLOOD_QUEUE_MAX, "{}", held.len());
    // One ends: the next forged source's block is built again.
    e.job_done(1_001, &held.pop().unwrap(), true);
    assert!(
        step(&mut e, 1_001, &c, &forged(i))
            .1
            .unwrap()
            .job()
            .is_some()
    );
    assert!(
        step(&mut e, 1_001, &c, &forged(i + 1))
            .1
            .is_none_or(|v| v.job().is_none())
    );
    let lines: Vec<String> = e
        .tick(1_000 + 60_000)
        .log
        .iter()
        .map(crate::observe::report::event_line)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("adminalert: Flood: 2 blocks of sources")),
        "{lines:?}"
    );
}

/// With the nftables set full, a source with more evidence than the weakest block gets its
/// room: the oldest block of the lowest tier below its own is unblocked first (a forged
/// one-packet source's), in the same job, before the add; a source with no more evidence
/// than those blocked gets none (its add fails: the set is full).
#[test]
fn a_full_set_makes_room_for_more_evidence_and_only_for_it() {
    let mut e = Engine::new(Limits::default());
    let c = Config {
        block_method: crate::config::BlockMethod::Nftables,
        block_set_size: 3,
        kill_route: None,
        kill_hosts_deny: None,
        kill_run_cmd: None,
        ..cfg(BlockMode::Block)
    };
    let stealth = |src: &str, port: u16| Hit {
        detail: Detail::TcpScan(crate::capture::classify::TcpScanType::Syn),
        ..hit(src, port, Mode::Stcp)
    };
    // Three forged one-packet sources fill the set.
    for (i, a) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let (_, v) = step(&mut e, i as u64, &c, &stealth(a, 1));
        let job = v.unwrap().job().unwrap();
        assert_eq!(job.steps.len(), 1, "{job:?}");
        assert!(e.job_done(i as u64, &job, true).log.is_empty());
    }
    // A fourth one-packet source: no room is made for it.
    let (_, v) = step(&mut e, 10, &c, &stealth("203.0.113.4", 1));
    let job = v.unwrap().job().unwrap();
    assert!(matches!(&job.steps[..], [Step::NftAdd { .. }]), "{job:?}");
    e.job_done(10, &job, false);
    // A real scanner: its first probe shows no more than they did; its second does.
    let (_, v) = step(&mut e, 20, &c, &stealth(B, 1));
    let job = v.unwrap().job().unwrap();
    assert!(matches!(&job.steps[..], [Step::NftAdd { .. }]), "{job:?}");
    e.job_done(20, &job, false);
    let (_, v) = step(&mut e, 30, &c, &stealth(B, 2));
    let v = v.unwrap();
    let job = v.job().unwrap();
    assert_eq!(
        job.steps,
        vec![
            Step::NftDel {
                addr: ip("203.0.113.1")
            },
            Step::NftAdd {
                addr: ip(B),
                timeout_s: 0
            }
        ],
        "the oldest of the weakest goes"
    );
    assert!(
        v.lines().iter().any(|l| l
            == "attackalert: Host 203.0.113.1 unblocked to make room in nftables set inet portsentry blocked4 for host 198.51.100.9: its evidence 2 is below 4"),
        "{:?}",
        v.lines()
    );
    assert!(!e.is_blocked(ip("203.0.113.1")));
    e.job_done(30, &job, true);
    assert!(e.is_blocked(ip(B)));
    // The next room goes to the next oldest one-packet block, never to the scanner's.
    let (_, v) = step(&mut e, 40, &c, &stealth("192.0.2.50", 1));
    e.job_done(40, &v.unwrap().job().unwrap(), false);
    let (_, v) = step(&mut e, 50, &c, &stealth("192.0.2.50", 2));
    let job = v.unwrap().job().unwrap();
    assert_eq!(
        job.steps[0],
        Step::NftDel {
            addr: ip("203.0.113.2")
        }
    );
}

/// Room made for a source whose report the limits held back is not silent: no line names
/// the newcomer, so the summary counts the hosts unblocked for such sources.
#[test]
fn room_made_for_a_source_over_the_report_limits_is_counted_in_the_summary() {
    let mut e = Engine::new(Limits {
        report_burst: 14,
        reports_per_sec: 0,
        reserve_burst: 0,
        reserve_per_sec: 0,
        ..Limits::default()
    });
    let c = Config {
        block_method: crate::config::BlockMethod::Nftables,
        block_set_size: 14,
        block_lone_budget: None,
        kill_route: None,
        kill_hosts_deny: None,
        kill_run_cmd: None,
        ..cfg(BlockMode::Block)
    };
    let stealth = |src: IpAddr, port: u16| Hit {
        src,
        detail: Detail::TcpScan(crate::capture::classify::TcpScanType::Syn),
        ..hit(A, port, Mode::Stcp)
    };
    // Fourteen one-packet sources fill the set and spend the reports.
    for i in 0..14u8 {
        let (_, v) = step(&mut e, 0, &c, &stealth(IpAddr::from([203, 0, 113, i]), 1));
        let v = v.unwrap();
        assert!(!v.lines().is_empty());
        e.job_done(0, &v.job().unwrap(), true);
    }
    // Twelve scanners probe twice: their second probe shows more evidence and gets room;
    // the evidence lane logs the first ten (a line each), the last two are over it.
    let mut logged = 0;
    let mut quiet = 0;
    for i in 0..12u8 {
        let src = IpAddr::from([10, i, 0, 1]);
        let (_, v) = step(&mut e, 10, &c, &stealth(src, 1));
        e.job_done(10, &v.unwrap().job().unwrap(), false);
        let (_, v) = step(&mut e, 10, &c, &stealth(src, 2));
        let v = v.unwrap();
        let job = v.job().unwrap();
        assert!(
            matches!(&job.steps[..], [Step::NftDel { .. }, Step::NftAdd { .. }]),
            "{job:?}"
        );
        if v.lines()
            .iter()
            .any(|l| l.contains("unblocked to make room"))
        {
            logged += 1;
        } else {
            assert!(v.lines().is_empty(), "{:?}", v.lines());
            quiet += 1;
        }
        e.job_done(10, &job, true);
    }
    assert_eq!((logged, quiet), (10, 2));
    let lines: Vec<String> = e
        .tick(20_000)
        .log
        .iter()
        .map(crate::observe::report::event_line)
        .collect();
    assert!(
        lines.iter().any(|l| l
            == "attackalert: 2 hosts unblocked in the last 20 seconds to make room in full nftables sets for sources with more evidence, whose reports were held back by the report limits"),
        "{lines:?}"
    );
}

/// The command method has no set to make room in: nothing is unblocked.
#[test]
fn the_command_method_never_unblocks_to_make_room() {
    let mut e = Engine::new(Limits {
        max_blocked: 2,
        ..Limits::default()
    });
    let c = cfg(BlockMode::Block);
    for (i, a) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let (_, v) = step(&mut e, i as u64, &c, &hit(a, 1, Mode::Tcp));
        e.job_done(i as u64, &v.unwrap().job().unwrap(), true);
    }
    let (_, v) = step(&mut e, 10, &c, &hit(B, 1, Mode::Tcp));
    e.job_done(10, &v.unwrap().job().unwrap(), false);
    let (_, v) = step(&mut e, 20, &c, &hit(B, 2, Mode::Tcp));
    let job = v.unwrap().job().unwrap();
    assert!(
        !job.steps.iter().any(|s| matches!(s, Step::NftDel { .. })),
        "{job:?}"
    );
}

/// BLOCK_LONE_BUDGET: past its burst, a source seen once (one packet to one port) is
/// reported but not blocked, and judged again: its second probe shows more and is blocked.
/// Sources in prefixes of their own each: BLOCK_PREFIX_BUDGET alone would block them all.
#[test]
fn the_lone_budget_holds_back_sources_seen_once_and_only_them() {
    let mut e = Engine::new(Limits::default());
    let c = Config {
        block_lone_budget: Some((3, 60)),
        ..cfg(BlockMode::Block)
    };
    let src = |i: u32| format!("198.18.{i}.1");
    let mut blocked = 0;
    let mut lines = Vec::new();
    for i in 0..5u32 {
        let v = step(&mut e, 0, &c, &hit(&src(i), 1, Mode::Tcp)).1.unwrap();
        if let Some(job) = v.job() {
            blocked += 1;
            e.job_done(0, &job, true);
        }
        lines.extend(v.lines());
    }
    assert_eq!(blocked, 3);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("adminalert: Block budget for sources seen once spent"))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(lines.contains(
        &"attackalert: Not blocking host: 198.18.4.1/198.18.4.1: seen once, block budget for sources seen once spent."
            .to_string()
    ));
    // The fifth source's second probe, to another port: blocked.
    let v = step(&mut e, 10, &c, &hit(&src(4), 2, Mode::Tcp)).1.unwrap();
    assert!(v.job().is_some(), "{:?}", v.lines());
    // Its summary.
    let t = e.tick(20_000);
    assert!(
        t.lines()
            .contains(&"adminalert: Block budget for sources seen once: 2 blocks refused in the last 20 seconds.".to_string()),
        "{:?}",
        t.lines()
    );
}
