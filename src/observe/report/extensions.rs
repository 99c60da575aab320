//! Lines of features 1.2 does not have: BLOCK_RATE_LIMIT, the RESOLVE_HOST back-off, the
//! capabilities a container withholds, systemd's STATUS= line, nftables blocking and block
//! expiry.

use std::fmt::Display;
use std::net::IpAddr;
use std::path::Path;

use crate::block::nft::{FAMILY, Set, TABLE};
use crate::config::mode::Mode;

use super::host;

/// `adminalert: Block rate limit of {n} per minute reached (BLOCK_RATE_LIMIT): further blocks
/// are refused until it clears.` Logged once each time the cap is reached.
pub fn block_rate_limit_reached(per_minute: u32) -> String {
    format!(
        "adminalert: Block rate limit of {per_minute} per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears."
    )
}

/// `attackalert: Not blocking host: {name}/{ip}: block rate limit reached.` The report line of
/// a scan whose block the cap refused (in place of the response lines).
pub fn block_refused_rate(name: &str, ip: IpAddr) -> String {
    format!(
        "attackalert: Not blocking host: {}: block rate limit reached.",
        host(name, ip)
    )
}

/// `adminalert: Block rate limit: {n} blocks refused in the last {s} seconds.`
pub fn blocks_refused(n: u64, seconds: u64) -> String {
    format!(
        "adminalert: Block rate limit: {} refused in the last {seconds} seconds.",
        super::count(n, "block", "blocks")
    )
}

/// BLOCK_PREFIX_BUDGET spent by a prefix, once per episode: what a forger there can and
/// cannot do.
pub fn block_budget_spent(prefix: IpAddr, len: u8, burst: u32, per_minute: u32) -> String {
    format!(
        "adminalert: Block budget of {prefix}/{len} spent (BLOCK_PREFIX_BUDGET=\"{burst},{per_minute}\": {burst} blocks, then {per_minute} per minute): its further scanners are reported but not blocked, unless one shows twice the evidence (ports and hits) of those blocked; other prefixes are blocked as before."
    )
}

/// `attackalert: Not blocking host: {name}/{ip}: block budget of {prefix}/{len} spent.` The
/// report line of a scan whose block the prefix budget refused.
pub fn block_refused_budget(name: &str, ip: IpAddr, prefix: IpAddr, len: u8) -> String {
    format!(
        "attackalert: Not blocking host: {}: block budget of {prefix}/{len} spent.",
        host(name, ip)
    )
}

/// Once per episode, when BLOCK_LONE_BUDGET is spent.
pub fn lone_budget_spent(burst: u32, per_minute: u32) -> String {
    format!(
        "adminalert: Block budget for sources seen once spent (BLOCK_LONE_BUDGET=\"{burst},{per_minute}\": {burst} blocks, then {per_minute} per minute, over all prefixes): a source that sent one packet to one port is reported but not blocked until it shows more; other scanners are blocked as before."
    )
}

/// `attackalert: Not blocking host: {name}/{ip}: seen once, block budget for sources seen
/// once spent.` The report line of a one-probe scan whose block BLOCK_LONE_BUDGET refused.
pub fn block_refused_lone(name: &str, ip: IpAddr) -> String {
    format!(
        "attackalert: Not blocking host: {}: seen once, block budget for sources seen once spent.",
        host(name, ip)
    )
}

/// `adminalert: Block budget for sources seen once: {n} blocks refused in the last {s} seconds.`
pub fn lone_refusals(n: u64, seconds: u64) -> String {
    format!(
        "adminalert: Block budget for sources seen once: {} refused in the last {seconds} seconds.",
        super::count(n, "block", "blocks")
    )
}

/// `adminalert: Block budget: {n} blocks refused in the last {s} seconds: {k} in {prefix}/{len}, ...`
pub fn budget_refusals(
    n: u64,
    seconds: u64,
    by_prefix: &[(IpAddr, u8, u64)],
    others: u64,
) -> String {
    let head = format!(
        "adminalert: Block budget: {} refused in the last {seconds} seconds",
        super::count(n, "block", "blocks")
    );
    super::by_prefix_line(head, "in", by_prefix, others)
}

/// `adminalert: Flood: {n} blocks not carried out in the last {s} seconds: ...`
pub fn blocks_shed(n: u64, seconds: u64, queue: usize) -> String {
    format!(
        "adminalert: Flood: {} of sources over the report limits not carried out in the last {seconds} seconds: {queue} were already waiting. A source reported later is blocked then.",
        super::count(n, "block", "blocks")
    )
}

/// RESOLVE_HOST: the resolver did not answer in time; lookups rest for a while.
pub fn resolve_timed_out(ip: IpAddr, timeout_ms: u128, rest_s: u64) -> String {
    format!(
        "adminalert: WARNING: reverse lookup of {ip} timed out after {timeout_ms} ms (RESOLVE_HOST): names are not looked up for the next {rest_s} s"
    )
}

/// A capability of KEEP_CAPABILITIES the process does not have (a container, or
/// `CapabilityBoundingSet=` in the unit), logged once at start:
/// `adminalert: WARNING: capability {cap} is not available: {what it disables}.`
pub fn capability_missing(cap: &str, disables: &str) -> String {
    format!("adminalert: WARNING: capability {cap} is not available: {disables}.")
}

/// A watched port of a stealth or advanced mode that a local socket (a TCP listener, an
/// unconnected UDP socket) has taken since start: not watched while it is, said once per run
/// (the ports busy at start get 1.2's start-up lines instead; issue 24):
/// `adminalert: WARNING: TCP port {p} is in use by a local socket and will not be monitored by -{mode} while it is.`
pub fn port_now_in_use(mode: Mode, port: u16) -> String {
    format!(
        "adminalert: WARNING: {} port {port} is in use by a local socket and will not be monitored by -{} while it is.",
        mode.proto(),
        mode.as_str()
    )
}

/// The `STATUS=` line systemd shows (`systemctl status`): the modes with their watched port
/// counts and the blocks in force, e.g. `Watching tcp: 8 ports, udp: 9 ports; 2 blocks in force`.
pub fn systemd_status(watched: &[(Mode, usize)], blocks: usize) -> String {
    let modes: Vec<String> = watched
        .iter()
        .map(|(m, n)| {
            let s = if *n == 1 { "" } else { "s" };
            format!("{}: {n} port{s}", m.as_str())
        })
        .collect();
    let s = if blocks == 1 { "" } else { "s" };
    format!("Watching {}; {blocks} block{s} in force", modes.join(", "))
}

// -- nftables blocking (BLOCK_METHOD="nftables") and block expiry ----------------------------

/// `attackalert: Host {ip} has been blocked via nftables set inet portsentry blocked4` (with
/// ` for {s} seconds` when BLOCK_TIMEOUT is set).
pub fn nft_blocked(ip: IpAddr, timeout: u64) -> String {
    let set = Set::hosts_for(ip).name();
    if timeout == 0 {
        format!("attackalert: Host {ip} has been blocked via nftables set {FAMILY} {TABLE} {set}")
    } else {
        format!(
            "attackalert: Host {ip} has been blocked via nftables set {FAMILY} {TABLE} {set} for {timeout} seconds"
        )
    }
}

/// A set reached BLOCK_SET_SIZE (logged once until it has room again).
pub fn nft_set_full(set: Set, size: u32) -> String {
    format!(
        "adminalert: WARNING: nftables set {FAMILY} {TABLE} {} is full ({size} elements, BLOCK_SET_SIZE): new hosts cannot be blocked until elements expire or are removed; hosts already in it stay blocked",
        set.name()
    )
}

/// `adminalert: nftables set inet portsentry {set} has room again`
pub fn nft_set_room(set: Set) -> String {
    format!(
        "adminalert: nftables set {FAMILY} {TABLE} {} has room again",
        set.name()
    )
}

/// `adminalert: ERROR: cannot add {ip} to nftables set: {why}`
pub fn nft_add_failed(ip: IpAddr, why: &str) -> String {
    format!("adminalert: ERROR: cannot add {ip} to nftables set: {why}")
}

/// `adminalert: ERROR: cannot remove {ip} from nftables set: {why}` (room made for a
/// source with more evidence, see `engine::blocks`).
pub fn nft_del_failed(ip: IpAddr, why: &str) -> String {
    format!("adminalert: ERROR: cannot remove {ip} from nftables set: {why}")
}

/// `attackalert: Host {old} unblocked to make room in nftables set inet portsentry {set} for
/// host {new}: its evidence {e_old} is below {e_new}` (the set is full; the weakest block,
/// one a forged one-packet source could have caused, goes first).
pub fn nft_evicted(old: IpAddr, new: IpAddr, e_old: u32, e_new: u32) -> String {
    format!(
        "attackalert: Host {old} unblocked to make room in nftables set {FAMILY} {TABLE} {} for host {new}: its evidence {e_old} is below {e_new}",
        Set::hosts_for(new).name()
    )
}

/// Every summary interval, the blocks unblocked to make room for sources whose reports the
/// limits held back: `attackalert: {n} hosts unblocked in the last {seconds} seconds to make
/// room in full nftables sets for sources with more evidence, whose reports were held back
/// by the report limits`.
pub fn nft_evicted_quietly(n: u64, seconds: u64) -> String {
    format!(
        "attackalert: {} unblocked in the last {seconds} seconds to make room in full nftables sets for sources with more evidence, whose reports were held back by the report limits",
        super::count(n, "host", "hosts")
    )
}

/// At start-up: `adminalert: nftables table inet portsentry ready; {n} hosts blocked from
/// before are kept`
pub fn nft_ready(hosts: usize) -> String {
    format!(
        "adminalert: nftables table {FAMILY} {TABLE} ready; {} blocked from before {} kept",
        super::count(hosts as u64, "host", "hosts"),
        if hosts == 1 { "is" } else { "are" }
    )
}

/// After `portsentry blocked` changed the sets (SIGUSR1):
/// `adminalert: blocked hosts re-read from nftables: {n} hosts`
pub fn nft_blocks_reread(hosts: usize) -> String {
    format!(
        "adminalert: blocked hosts re-read from nftables: {}",
        super::count(hosts as u64, "host", "hosts")
    )
}

/// Why the nftables table could not be worked on: `cannot {what} nftables table inet
/// portsentry: {err}` (`what`: set up, list, delete).
pub fn nft_table_reason(what: &str, err: impl Display) -> String {
    format!("cannot {what} nftables table {FAMILY} {TABLE}: {err}")
}

/// `adminalert: ERROR: cannot {what} nftables table inet portsentry: {err}`
pub fn nft_table_failed(what: &str, err: impl Display) -> String {
    super::error(nft_table_reason(what, err))
}

/// `attackalert: Host {ip} block expired; KILL_ROUTE_UNDO run: {cmd}`
pub fn undo_run(ip: IpAddr, cmd: &str) -> String {
    format!("attackalert: Host {ip} block expired; KILL_ROUTE_UNDO run: {cmd}")
}

/// `attackalert: Block of host {ip} ({mode}) has expired` (BLOCK_TIMEOUT)
pub fn block_expired(ip: IpAddr, mode: Mode) -> String {
    format!("attackalert: Block of host {ip} ({mode}) has expired")
}

// -- status socket, METRICS_FILE and EVENTS_FILE (adminalert, as every line about the
// daemon's own files) ---------------------------------------------------------------------

/// `adminalert: ERROR: cannot write metrics file {path}: {err}` (logged once until it works
/// again).
pub fn metrics_failed(path: &Path, err: impl std::fmt::Display) -> String {
    format!(
        "adminalert: ERROR: cannot write metrics file {}: {err}",
        path.display()
    )
}

/// `adminalert: metrics file {path} written again`
pub fn metrics_recovered(path: &Path) -> String {
    format!("adminalert: metrics file {} written again", path.display())
}

/// `adminalert: ERROR: cannot write events file {path}: {err}; {n} event lines lost`
pub fn events_failed(path: &str, err: impl std::fmt::Display, lost: u64) -> String {
    format!("adminalert: ERROR: cannot write events file {path}: {err}; {lost} event lines lost")
}

/// `adminalert: events file {path} written again; {n} event lines were lost`
pub fn events_recovered(path: &str, lost: u64) -> String {
    format!("adminalert: events file {path} written again; {lost} event lines were lost")
}

/// `adminalert: WARNING: EVENTS_FILE ...` (a value that cannot be used, e.g. `-` without -f)
pub fn events_unusable(why: &str) -> String {
    format!("adminalert: WARNING: {why}")
}

/// `adminalert: ERROR: cannot open status socket {path}: {err}; portsentry status will not see this daemon`
pub fn status_socket_failed(path: &Path, err: impl std::fmt::Display) -> String {
    format!(
        "adminalert: ERROR: cannot open status socket {}: {err}; portsentry status will not see this daemon",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::fixtures::*;

    #[test]
    fn port_now_in_use_line() {
        assert_eq!(
            port_now_in_use(Mode::Stcp, 8080),
            "adminalert: WARNING: TCP port 8080 is in use by a local socket and will not be monitored by -stcp while it is."
        );
        assert_eq!(
            port_now_in_use(Mode::Audp, 53),
            "adminalert: WARNING: UDP port 53 is in use by a local socket and will not be monitored by -audp while it is."
        );
    }

    #[test]
    fn capability_and_systemd_status_lines() {
        assert_eq!(
            capability_missing(
                "CAP_NET_ADMIN",
                "KILL_ROUTE with ip, iptables or nft will fail"
            ),
            "adminalert: WARNING: capability CAP_NET_ADMIN is not available: KILL_ROUTE with ip, iptables or nft will fail."
        );
        assert_eq!(
            systemd_status(&[(Mode::Tcp, 8), (Mode::Audp, 1)], 1),
            "Watching tcp: 8 ports, audp: 1 port; 1 block in force"
        );
        assert_eq!(
            systemd_status(&[(Mode::Stcp, 0)], 0),
            "Watching stcp: 0 ports; 0 blocks in force"
        );
    }

    #[test]
    fn block_cap_lines() {
        assert_eq!(
            block_rate_limit_reached(30),
            "adminalert: Block rate limit of 30 per minute reached (BLOCK_RATE_LIMIT): further blocks are refused until it clears."
        );
        assert_eq!(
            block_refused_rate("a\nb", v4(192, 0, 2, 1)),
            "attackalert: Not blocking host: a\\x0ab/192.0.2.1: block rate limit reached."
        );
        assert_eq!(
            blocks_refused(12, 10),
            "adminalert: Block rate limit: 12 blocks refused in the last 10 seconds."
        );
    }

    #[test]
    fn block_budget_lines() {
        let p: IpAddr = "2001:db8:1:2::".parse().unwrap();
        assert_eq!(
            block_budget_spent(p, 64, 16, 4),
            "adminalert: Block budget of 2001:db8:1:2::/64 spent (BLOCK_PREFIX_BUDGET=\"16,4\": 16 blocks, then 4 per minute): its further scanners are reported but not blocked, unless one shows twice the evidence (ports and hits) of those blocked; other prefixes are blocked as before."
        );
        assert_eq!(
            block_refused_budget("2001:db8:1:2::9", "2001:db8:1:2::9".parse().unwrap(), p, 64),
            "attackalert: Not blocking host: 2001:db8:1:2::9/2001:db8:1:2::9: block budget of 2001:db8:1:2::/64 spent."
        );
        assert_eq!(
            budget_refusals(2984, 10, &[(p, 64, 2980)], 4),
            "adminalert: Block budget: 2984 blocks refused in the last 10 seconds: 2980 in 2001:db8:1:2::/64, 4 in other prefixes."
        );
    }

    #[test]
    fn lone_budget_lines() {
        assert_eq!(
            lone_budget_spent(1000, 6000),
            "adminalert: Block budget for sources seen once spent (BLOCK_LONE_BUDGET=\"1000,6000\": 1000 blocks, then 6000 per minute, over all prefixes): a source that sent one packet to one port is reported but not blocked until it shows more; other scanners are blocked as before."
        );
        assert_eq!(
            block_refused_lone("192.0.2.5", v4(192, 0, 2, 5)),
            "attackalert: Not blocking host: 192.0.2.5/192.0.2.5: seen once, block budget for sources seen once spent."
        );
        assert_eq!(
            lone_refusals(1, 10),
            "adminalert: Block budget for sources seen once: 1 block refused in the last 10 seconds."
        );
    }

    #[test]
    fn resolver_back_off_line() {
        assert_eq!(
            resolve_timed_out("2001:db8::1".parse().unwrap(), 1000, 30),
            "adminalert: WARNING: reverse lookup of 2001:db8::1 timed out after 1000 ms (RESOLVE_HOST): names are not looked up for the next 30 s"
        );
    }

    #[test]
    fn nftables_and_expiry_lines() {
        let ip = v4(192, 0, 2, 2);
        assert_eq!(
            nft_blocked(ip, 0),
            "attackalert: Host 192.0.2.2 has been blocked via nftables set inet portsentry blocked4"
        );
        assert_eq!(
            nft_blocked(v6("::1"), 5),
            "attackalert: Host ::1 has been blocked via nftables set inet portsentry blocked6 for 5 seconds"
        );
        assert_eq!(
            nft_set_full(Set::Hosts4, 2),
            "adminalert: WARNING: nftables set inet portsentry blocked4 is full (2 elements, BLOCK_SET_SIZE): new hosts cannot be blocked until elements expire or are removed; hosts already in it stay blocked"
        );
        assert_eq!(
            nft_set_room(Set::Hosts6),
            "adminalert: nftables set inet portsentry blocked6 has room again"
        );
        assert_eq!(
            nft_evicted(ip, v4(198, 51, 100, 9), 2, 4),
            "attackalert: Host 192.0.2.2 unblocked to make room in nftables set inet portsentry blocked4 for host 198.51.100.9: its evidence 2 is below 4"
        );
        assert_eq!(
            nft_evicted(v6("2001:db8::1"), v6("2001:db8::2"), 3, 40),
            "attackalert: Host 2001:db8::1 unblocked to make room in nftables set inet portsentry blocked6 for host 2001:db8::2: its evidence 3 is below 40"
        );
        assert_eq!(
            nft_del_failed(ip, "netlink: x"),
            "adminalert: ERROR: cannot remove 192.0.2.2 from nftables set: netlink: x"
        );
        assert_eq!(
            nft_add_failed(ip, "netlink: x"),
            "adminalert: ERROR: cannot add 192.0.2.2 to nftables set: netlink: x"
        );
        assert_eq!(
            nft_ready(3),
            "adminalert: nftables table inet portsentry ready; 3 hosts blocked from before are kept"
        );
        assert_eq!(
            nft_blocks_reread(2),
            "adminalert: blocked hosts re-read from nftables: 2 hosts"
        );
        // One: the singular.
        assert_eq!(
            nft_ready(1),
            "adminalert: nftables table inet portsentry ready; 1 host blocked from before is kept"
        );
        assert_eq!(
            nft_blocks_reread(1),
            "adminalert: blocked hosts re-read from nftables: 1 host"
        );
        assert_eq!(
            blocks_refused(1, 60),
            "adminalert: Block rate limit: 1 block refused in the last 60 seconds."
        );
        assert_eq!(
            nft_table_failed("list", "no such table"),
            "adminalert: ERROR: cannot list nftables table inet portsentry: no such table"
        );
        assert_eq!(
            undo_run(ip, "ip route del blackhole 192.0.2.2"),
            "attackalert: Host 192.0.2.2 block expired; KILL_ROUTE_UNDO run: ip route del blackhole 192.0.2.2"
        );
        assert_eq!(
            block_expired(ip, Mode::Sudp),
            "attackalert: Block of host 192.0.2.2 (sudp) has expired"
        );
    }
    #[test]
    fn status_metrics_and_events_writer_lines() {
        let p = Path::new("/var/lib/prometheus/node-exporter/portsentry.prom");
        assert_eq!(
            metrics_failed(p, "No such file or directory (os error 2)"),
            "adminalert: ERROR: cannot write metrics file /var/lib/prometheus/node-exporter/portsentry.prom: No such file or directory (os error 2)"
        );
        assert_eq!(
            events_failed(
                "/var/log/portsentry/events.jsonl",
                "No space left on device (os error 28)",
                3
            ),
            "adminalert: ERROR: cannot write events file /var/log/portsentry/events.jsonl: No space left on device (os error 28); 3 event lines lost"
        );
    }
}
