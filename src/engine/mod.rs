//! The per-host state engine: the decision for one hit, read top to bottom in
//! [`Engine::observe`]:
//!
//! 1. ignore list: an ignored source is completely silent (§5.1);
//! 2. host table ([`hosts`]): below SCAN_TRIGGER, or a repeat within the repeat interval:
//!    counted, silent (a classic mode still sends its banner to a repeat);
//! 3. report limits ([`limits`]): over them the hit is still acted on, but not logged, and
//!    the host stays owed a report: its next hit asks again, with more evidence (distinct
//!    ports, hits), so a flood of one-packet forged sources cannot hide a real scanner;
//! 4. with RESOLVE_HOST the shell looks the name up and comes back ([`Engine::named`]);
//! 5. the response ([`respond`]): already blocked, protected, over the source prefix's
//!    BLOCK_PREFIX_BUDGET ([`budget`]), over BLOCK_RATE_LIMIT, BLOCK_x="0", or a [`Job`] of ordered steps for the shell to carry out;
//! 6. when the job ends the shell calls [`Engine::job_done`]: the block is remembered
//!    ([`blocks`], with BLOCK_TIMEOUT) and the blocked-file and history [`Record`]s come back
//!    to be written.
//!
//! [`Engine::tick`] does the periodic work: expired blocks (with their KILL_ROUTE_UNDO jobs),
//! the summaries of what the limits held back, housekeeping. Every call returns a
//! [`Verdict`]: typed log [`Event`]s, jobs, records. The engine never formats a line.
//!
//! Pure: it never touches sockets, files, processes or the clock. Time comes in as
//! milliseconds on a monotonic clock (`now`), so tests drive it with a fake clock.
//!
//! Differences from 1.2 (reference §4, §5.2, §10.1 items 8, 9, 14), all deliberate:
//! - per-host hit counters in a time window instead of one shared 50-slot ring, so unrelated
//!   hosts cannot evict a scanner's history; the table is bounded and entries age out;
//! - "already blocked" is an exact address match in memory, not a substring search of a file;
//! - with BLOCK_x=0 the history line is still written (fail2ban reads it) but the host is not
//!   marked blocked, so a later scan is logged again; repeats from one host are rate-limited,
//!   and reports per source prefix and overall (see [`Limits`]), so forged sources from one
//!   network can neither fill the disk nor silence a scan from another;
//! - SCTP and ICMP probes ([`Detail::Other`], issue 18) are reported only, counted in a host
//!   table of their own (so a ping never holds back the same host's TCP report), unless
//!   BLOCK_ICMP_SCTP makes them hits like the others.

use std::net::IpAddr;

use crate::config::Config;
use crate::config::ignore::IgnoreList;
use crate::config::mode::{Kind, Mode, Proto};
use crate::config::protect::Protected;

pub mod blocks;
pub mod budget;
pub mod event;
pub mod hosts;
pub mod limits;
pub mod respond;
pub mod verdict;

pub use event::{Action, Event, Host};
pub use limits::{Admission, Bucket, EVIDENCE_TIERS, Evidence, Limits, prefix_of};
pub use verdict::{Detail, Hit, Job, JobKind, Outcome, Pending, Record, Step, Verdict};

use blocks::Blocks;
use budget::{Budget, Lone};
use hosts::{Count, Hosts};
use limits::RateLimits;

/// How often [`Engine::tick`] does its housekeeping (idle hosts and prefixes).
const HOUSEKEEPING_MS: u64 = 60_000;

/// What the engine needs to know besides the hit: the configuration, the ignore list and
/// the addresses never to block, as the shell last read them.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The configuration in force.
    pub cfg: &'a Config,
    /// The ignore file's entries.
    pub ignore: &'a IgnoreList,
    /// This host's addresses, gateways, ...
    pub protected: &'a Protected,
}

/// The gate decision for a hit, before any name lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// The source is in the ignore list: completely silent (§5.1).
    Ignored,
    /// Counted, but SCAN_TRIGGER is not reached yet: silent (§4).
    BelowTrigger,
    /// A repeat from a host reported within the repeat interval: counted, silent.
    Suppressed,
    /// Respond: log, and dispose unless the host is already blocked.
    Respond(Respond),
}

/// A hit the gate lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respond {
    already_blocked: bool,
    /// Hits from this host that were suppressed since it was last reported.
    suppressed: u32,
    /// Over the report limits (per prefix, global, reserve): act and record a block, but log
    /// nothing (counted for the periodic summary).
    quiet: bool,
    /// An SCTP or ICMP probe without BLOCK_ICMP_SCTP: the detection line and nothing else.
    report_only: bool,
    /// Reported now, after a report held back by the limits whose block job is still under
    /// way: that job is to be run first and logged (`Verdict::promote`), not a second one.
    promote: bool,
    /// The source's evidence score (distinct ports plus hits), for BLOCK_PREFIX_BUDGET.
    evidence: u32,
}

/// What the engine did with the hits it judged, since it was made (the packet path's last
/// stages in `portsentry status` and the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateCounts {
    /// Hits judged.
    pub judged: u64,
    /// From a source in the ignore file.
    pub ignored: u64,
    /// Counted towards SCAN_TRIGGER, not reached yet.
    pub below_trigger: u64,
    /// Repeats from a host reported within the repeat interval.
    pub repeats: u64,
    /// Reported within the report limits.
    pub reported: u64,
    /// Reported over the buckets, through the evidence lane.
    pub on_evidence: u64,
    /// Held back by the source prefix's bucket.
    pub over_prefix: u64,
    /// Held back by the global bucket and the reserve.
    pub over_global: u64,
}

/// Blocks of reports over the report limits (a flood's, run after the others, a few at a
/// time) that may wait at once; more are dropped and counted (`Engine::job_shed`). 4,096
/// is about 4 s of `KILL_ROUTE` commands at the rate this 2-core machine runs them (~1,000
/// a second) and a few milliseconds of nftables elements; without a bound, a flood of
/// forged sources grew the queue to 89,000 commands in 5 s, each pinning its host.
pub const FLOOD_QUEUE_MAX: usize = 4096;

/// Per-host state for one daemon (all its modes).
#[derive(Debug, Clone)]
pub struct Engine {
    limits: Limits,
    hosts: Hosts,
    /// The report-only SCTP and ICMP probes, per host.
    probes: Hosts,
    blocks: Blocks,
    rates: RateLimits,
    budget: Budget,
    /// BLOCK_LONE_BUDGET.
    lone: Lone,
    last_housekeeping: u64,
    /// Flood blocks (`Job::flood`) made and not ended yet: at most [`FLOOD_QUEUE_MAX`].
    flood_jobs: usize,
    counts: GateCounts,
}

impl Engine {
    /// An engine with no history.
    pub fn new(limits: Limits) -> Engine {
        Engine {
            limits,
            hosts: Hosts::new(limits),
            probes: Hosts::new(limits),
            blocks: Blocks::new(limits.max_blocked),
            rates: RateLimits::new(limits),
            budget: Budget::new(limits.max_prefixes),
            lone: Lone::default(),
            last_housekeeping: 0,
            flood_jobs: 0,
            counts: GateCounts::default(),
        }
    }

    /// One hit at `now`: everything the shell must do about it, or, with RESOLVE_HOST, the
    /// name to look up first (then [`Engine::named`]).
    pub fn observe(&mut self, now: u64, hit: &Hit, ctx: &Context) -> Outcome {
        let classic = hit.mode.kind() == Kind::Classic;
        match self.gate(now, hit, ctx.cfg, ctx.ignore) {
            Gate::Ignored => Outcome::Done(Verdict {
                ignored: true,
                ..Verdict::default()
            }),
            Gate::BelowTrigger => Outcome::Done(Verdict::default()),
            // Classic modes send PORT_BANNER to every triggered hit, repeats included
            // (§3.1, §6.5).
            Gate::Suppressed => Outcome::Done(Verdict {
                banner: classic,
                ..Verdict::default()
            }),
            // Over the report rate nothing is logged: no lookup (a flood of forged sources
            // would queue one per source).
            Gate::Respond(r) if ctx.cfg.resolve_host && !r.quiet => Outcome::Lookup(Pending {
                hit: *hit,
                respond: r,
            }),
            Gate::Respond(r) => {
                Outcome::Done(self.respond(now, ctx.cfg, hit, r, None, ctx.protected))
            }
        }
    }

    /// The second half of [`Engine::observe`] for a hit that waited for its name (None: no
    /// name, or the lookup failed: the address is used).
    pub fn named(&mut self, now: u64, p: Pending, name: Option<&str>, ctx: &Context) -> Verdict {
        self.respond(now, ctx.cfg, &p.hit, p.respond, name, ctx.protected)
    }

    /// Ignore list, SCAN_TRIGGER, already-blocked, repeat and report limits. A report-only
    /// SCTP or ICMP probe is reported on its first hit, in its own table.
    fn gate(&mut self, now: u64, hit: &Hit, cfg: &Config, ignore: &IgnoreList) -> Gate {
        let src = hit.src;
        let c = &mut self.counts;
        c.judged += 1;
        if ignore.contains(src) {
            c.ignored += 1;
            return Gate::Ignored;
        }
        let report_only = matches!(hit.detail, Detail::Other(_)) && !cfg.block_icmp_sctp;
        let (table, trigger) = if report_only {
            (&mut self.probes, 1)
        } else {
            (&mut self.hosts, cfg.scan_trigger)
        };
        let rates = &mut self.rates;
        let proto = hit.mode.proto();
        let mut evidence = 0;
        let count = table.count(now, src, proto, hit.port, trigger, |ev| {
            evidence = ev.score();
            rates.admit(now, src, ev)
        });
        match count {
            Count::BelowTrigger => {
                c.below_trigger += 1;
                Gate::BelowTrigger
            }
            Count::Repeat => {
                c.repeats += 1;
                Gate::Suppressed
            }
            Count::Report {
                suppressed,
                pending,
                admission,
                owed,
            } => {
                match admission {
                    Admission::Allowed => c.reported += 1,
                    Admission::Evidence => c.on_evidence += 1,
                    Admission::OverPrefix => c.over_prefix += 1,
                    Admission::OverGlobal => c.over_global += 1,
                }
                let quiet = !admission.allowed();
                Gate::Respond(Respond {
                    already_blocked: !report_only && (pending || self.blocks.contains(src)),
                    suppressed,
                    quiet,
                    promote: !report_only && !quiet && owed && pending,
                    evidence,
                    report_only,
                })
            }
        }
    }

    /// The shell finished a job at `now` (`ok`: every step succeeded). A blocking job that
    /// succeeded marks the host blocked (until `now` + BLOCK_TIMEOUT when that is set) and
    /// returns its blocked-file and history record; on failure nothing is remembered, so the
    /// next hit tries again (§6.1 item 7).
    pub fn job_done(&mut self, now: u64, job: &Job, ok: bool) -> Verdict {
        let mut v = Verdict::default();
        let ip = job.target;
        let (expire_after_ms, undo, deny, evidence) = match &job.kind {
            JobKind::Unblock => return v,
            JobKind::Respond {
                expire_after_ms,
                undo,
                deny,
                evidence,
            } => (*expire_after_ms, undo.clone(), deny.clone(), *evidence),
        };
        let r = &job.record;
        self.hosts.job_ended(ip, r.mode.proto());
        self.flood_jobs = self.flood_jobs.saturating_sub(usize::from(job.flood));
        if !ok {
            // A quiet job's report was never logged (a flood's forged source over the report
            // limits): neither is its failure, or a flood past a full nftables set would
            // write a line per forged source (measured: 1,995 for 3,000 sources).
            if !job.quiet {
                v.log.push(Event::CouldNotBlock {
                    host: Host {
                        ip,
                        name: Some(r.name.clone()),
                    },
                    mode: r.mode,
                });
            }
            return v;
        }
        if r.blocked_file
            && let Err(max) =
                self.blocks
                    .insert(now, ip, r.mode, expire_after_ms, (undo, deny), evidence)
        {
            v.log.push(Event::MemoryFull { max });
            return v;
        }
        if r.write {
            v.records.push(r.clone());
        }
        v
    }

    /// The executor dropped `job`, a block of a report over the report limits, because its
    /// flood queue was full: the host has no job under way any more (it can be evicted, and
    /// its next report, if the limits admit it, blocks it), and the summary counts it.
    pub fn job_shed(&mut self, job: &Job) {
        if let JobKind::Respond { .. } = job.kind {
            self.hosts.job_ended(job.target, job.record.mode.proto());
            self.rates.note_shed();
            self.flood_jobs = self.flood_jobs.saturating_sub(usize::from(job.flood));
        }
    }

    /// Periodic work at `now` (cheap when nothing is due; call it on every loop turn): blocks
    /// whose BLOCK_TIMEOUT ran out (logged, with their KILL_ROUTE_UNDO jobs), the summaries of
    /// what the limits held back, and once a minute the housekeeping of idle hosts.
    pub fn tick(&mut self, now: u64) -> Verdict {
        let mut v = Verdict::default();
        let x = self.blocks.expire(now);
        v.log.extend(
            x.hosts
                .iter()
                .map(|&(ip, mode)| Event::Expired { ip, mode }),
        );
        v.jobs = x.jobs;
        v.log.extend(self.rates.summaries(now));
        v.log
            .extend(self.budget.summary(now, self.limits.summary_interval_ms));
        v.log
            .extend(self.lone.summary(now, self.limits.summary_interval_ms));
        if now.saturating_sub(self.last_housekeeping) >= HOUSEKEEPING_MS {
            self.last_housekeeping = now;
            self.hosts.expire(now);
            self.probes.expire(now);
            self.rates.expire(now);
            self.budget.expire(now);
        }
        v
    }

    /// Forget every block (SIGHUP and start-up clear the blocked files; §7.1).
    pub fn clear_blocked(&mut self) {
        self.blocks.clear();
        self.hosts.forget_reports();
        self.probes.forget_reports();
    }

    /// Make the remembered blocks exactly `hosts` (address, time left in ms or None for
    /// never): at start-up from the nftables set, so a restart neither re-blocks nor counts a
    /// host twice, and after `portsentry blocked del|add|flush`. A host that stays keeps its
    /// KILL_ROUTE_UNDO and hosts.deny line; `mode` and the line `kill_hosts_deny` writes are
    /// recorded for hosts not known before. Returns how many are remembered (at most
    /// `max_blocked`) and the jobs that remove the hosts.deny lines of the blocks lifted.
    pub fn restore_blocked(
        &mut self,
        now: u64,
        mode: Mode,
        kill_hosts_deny: Option<&str>,
        hosts: impl IntoIterator<Item = (IpAddr, Option<u64>)>,
    ) -> (usize, Verdict) {
        let deny = kill_hosts_deny.filter(|t| crate::block::template::has_target(t));
        let (n, lifted) = self.blocks.restore(now, mode, deny, hosts);
        // A host unblocked by hand is reported again on its next hit.
        let blocks = &self.blocks;
        self.hosts.report_again(|ip| !blocks.contains(ip));
        let v = Verdict {
            jobs: lifted.jobs,
            ..Verdict::default()
        };
        (n, v)
    }

    /// Is `ip` blocked?
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocks.contains(ip)
    }

    /// Would a hit from `ip` only be "already blocked"? (Blocked, or its block under way.)
    /// The shell skips the costlier facts of such a hit.
    pub fn already_blocked(&self, ip: IpAddr, proto: Proto) -> bool {
        self.blocks.contains(ip) || self.hosts.pending(ip, proto)
    }

    /// How many host and protocol pairs the host table tracks.
    pub fn tracked_hosts(&self) -> usize {
        self.hosts.len()
    }

    /// How many blocks are in force.
    pub fn blocked_hosts(&self) -> usize {
        self.blocks.len()
    }

    /// The addresses blocked now, with the mode that blocked them (O(n): for SIGUSR1, to
    /// tell which blocks were lifted by hand).
    pub fn blocked_list(&self) -> Vec<(IpAddr, Mode)> {
        self.blocks.hosts()
    }

    /// Blocks in force by address family, (IPv4, IPv6): with BLOCK_METHOD="nftables" the
    /// fill of the sets blocked4 and blocked6. O(n).
    pub fn blocked_by_family(&self) -> (usize, usize) {
        self.blocks.by_family()
    }

    /// When the soonest block in force expires (ms on the engine's clock); None when no block
    /// expires (BLOCK_TIMEOUT="0", or none in force).
    pub fn soonest_expiry(&self) -> Option<u64> {
        self.blocks.soonest()
    }

    /// How many source prefixes are tracked for their report buckets.
    pub fn tracked_prefixes(&self) -> usize {
        self.rates.tracked_prefixes()
    }

    /// How many source prefixes are tracked for their block budgets.
    pub fn budget_prefixes(&self) -> usize {
        self.budget.tracked()
    }

    /// What became of the hits judged so far.
    pub fn gate_counts(&self) -> GateCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests;
