//! The response to a reported hit (§5, §6): the log events, and the ordered steps of the job
//! that blocks the host (KILL_HOSTS_DENY, KILL_ROUTE, KILL_RUN_CMD, the nftables element),
//! or why nothing is done: already blocked, protected, over BLOCK_PREFIX_BUDGET or
//! BLOCK_RATE_LIMIT, BLOCK_x="0".

use std::net::IpAddr;

use crate::block::hosts_deny::DenyLine;
use crate::block::template;
use crate::config::mode::{Kind, Proto};
use crate::config::protect::Protected;
use crate::config::{BlockMethod, BlockMode, Config};

use super::budget::Answer;
use super::event::{Action, Event, Host};
use super::limits::prefix_of;
use super::verdict::{Detail, Hit, Job, JobKind, Record, Step, Verdict};
use super::{Engine, Respond};

impl Engine {
    /// Build the response for a hit the gate let through. `name` is the resolved name (None:
    /// the address is used: RESOLVE_HOST off, §6.6, or a report over the rate limit, which is
    /// not worth a lookup). A protected source (this host, loopback, a gateway, ...) is
    /// logged but never acted on. `now` is for BLOCK_RATE_LIMIT.
    pub(super) fn respond(
        &mut self,
        now: u64,
        cfg: &Config,
        hit: &Hit,
        r: Respond,
        name: Option<&str>,
        protected: &Protected,
    ) -> Verdict {
        let ip = hit.src;
        let proto = hit.mode.proto();
        let mut v = Verdict {
            // 1.2 sends the banner on every triggered hit, blocked hosts included (§3.1).
            banner: hit.mode.kind() == Kind::Classic,
            ..Verdict::default()
        };
        let block = match proto {
            Proto::Tcp => cfg.block_tcp,
            Proto::Udp => cfg.block_udp,
        };
        // Asked once (a flood of forged sources comes through here).
        let refusal = protected.reason(ip);
        // Over the rate nothing is logged: only a block is still carried out and recorded,
        // so skip building the events.
        if r.quiet
            && (r.report_only
                || r.already_blocked
                || block == BlockMode::LogOnly
                || refusal.is_some())
        {
            return v;
        }
        let host = Host {
            ip,
            name: name.map(str::to_string),
        };
        // A quiet report's events would only be dropped again (`quiet`): a flood of forged
        // sources comes through here, so they are not built (no allocation per packet).
        if !r.quiet {
            v.log.push(Event::Detected {
                host: host.clone(),
                port: hit.port,
                mode: hit.mode,
                detail: hit.detail,
            });
            // 1.2's line names a TCP or UDP port; an SCTP or ICMP probe has none of its own.
            if hit.ip_options
                && hit.mode.kind() != Kind::Classic
                && !matches!(hit.detail, Detail::Other(_))
            {
                v.log.push(Event::IpOptions {
                    host: host.clone(),
                    proto,
                    port: hit.port,
                });
            }
            if r.suppressed > 0 {
                v.log.push(Event::HitsSuppressed {
                    ip,
                    count: u64::from(r.suppressed),
                    seconds: self.limits.repeat_interval_ms / 1000,
                });
            }
        }
        if r.report_only {
            return v;
        }
        if r.promote {
            // Its block is under way, queued quietly when its first report was held back:
            // the detection line now, the block's own lines when it is done.
            v.promote.push(ip);
            return v;
        }
        if r.already_blocked {
            v.log.push(Event::AlreadyBlocked {
                host,
                mode: hit.mode,
            });
            return quiet(v, r);
        }
        if let Some(reason) = refusal {
            v.log.push(Event::Refused { ip, reason });
            return quiet(v, r);
        }
        let budget = if block == BlockMode::LogOnly {
            Answer::Within
        } else {
            self.budget
                .check(now, ip, r.evidence, cfg.block_prefix_budget)
        };
        if budget == Answer::Over {
            // BLOCK_PREFIX_BUDGET spent: reported, not acted on, not recorded; the host's next
            // hit is judged again (with more evidence, it may pass the bar).
            self.hosts.judge_again(ip, proto);
            if r.quiet {
                v.log.clear();
            }
            let (prefix, len) = prefix_of(ip);
            if self.budget.announce(ip)
                && let Some((burst, per_minute)) = cfg.block_prefix_budget
            {
                v.log.push(Event::BudgetSpent {
                    prefix,
                    len,
                    burst,
                    per_minute,
                });
            }
            if !r.quiet {
                v.log.push(Event::BudgetRefused { host, prefix, len });
            }
            return v;
        }
        if block != BlockMode::LogOnly
            && super::limits::seen_once(r.evidence)
            && !self.lone.take(now, cfg.block_lone_budget)
        {
            // BLOCK_LONE_BUDGET spent: a source seen once (one packet, one port) is reported,
            // not acted on, not recorded; its next probe shows more and is judged again.
            self.hosts.judge_again(ip, proto);
            if r.quiet {
                v.log.clear();
            }
            if self.lone.announce()
                && let Some((burst, per_minute)) = cfg.block_lone_budget
            {
                v.log.push(Event::LoneBudgetSpent { burst, per_minute });
            }
            if !r.quiet {
                v.log.push(Event::LoneRefused { host });
            }
            return v;
        }
        if block != BlockMode::LogOnly && !self.rates.block_allowed(now, cfg.block_rate_limit) {
            // BLOCK_RATE_LIMIT reached: reported, not acted on, not recorded; the host's next
            // report (after the repeat interval) tries again.
            if r.quiet {
                v.log.clear();
            }
            if self.rates.announce_cap() {
                v.log.push(Event::BlockCapReached {
                    per_minute: cfg.block_rate_limit,
                });
            }
            if !r.quiet {
                v.log.push(Event::BlockCapRefused { host });
            }
            return v;
        }
        if r.quiet && block != BlockMode::LogOnly {
            // A flood's block: at most FLOOD_QUEUE_MAX wait; past that it is not even built
            // (a forged source each packet would otherwise cost a job built to be dropped).
            if self.flood_jobs >= super::FLOOD_QUEUE_MAX {
                self.rates.note_shed();
                return quiet(v, r);
            }
            self.flood_jobs += 1;
        }
        let subst = |t: &str| template::substitute(t, ip, hit.port, hit.mode);
        let mut steps = Vec::new();
        // Jobs that end the block unblocked to make room (its hosts.deny line, its undo).
        let mut ended = Vec::new();
        let mut preflight_ok = true;
        let run_cmd = cfg
            .kill_run_cmd
            .as_deref()
            .map(|c| Step::RunCmd { command: subst(c) });
        match block {
            BlockMode::LogOnly => v.log.push(Event::LogOnly { proto }),
            BlockMode::RunCmdOnly => steps.extend(run_cmd),
            BlockMode::Block => {
                let first = cfg.kill_run_cmd_first;
                if first {
                    steps.extend(run_cmd.clone());
                }
                if cfg.block_method == BlockMethod::Nftables {
                    if let Some((old, old_evidence, end)) = self.make_room(cfg, ip, r.evidence) {
                        steps.push(Step::NftDel { addr: old });
                        if r.quiet {
                            // No line names the newcomer: counted for the summary.
                            self.rates.note_quiet_eviction();
                        } else {
                            v.log.push(Event::Evicted {
                                old,
                                old_evidence,
                                new: ip,
                                new_evidence: r.evidence,
                            });
                        }
                        ended.extend(end);
                    }
                    steps.push(Step::NftAdd {
                        addr: ip,
                        timeout_s: cfg.block_timeout,
                    });
                }
                // These two need $TARGET$; without it 1.2 skips them and the block fails.
                let targeted = [
                    (Action::HostsDeny, cfg.kill_hosts_deny.as_deref()),
                    (Action::Route, cfg.kill_route.as_deref()),
                ];
                for (action, t) in targeted {
                    let Some(t) = t else { continue };
                    if !template::has_target(t) {
                        v.log.push(Event::NoTarget { action });
                        preflight_ok = false;
                    } else if action == Action::HostsDeny {
                        // IPv6 in brackets, as hosts_access(5) reads it (issue 24).
                        let line = template::substitute_hosts_deny(t, ip, hit.port, hit.mode);
                        steps.push(Step::HostsDeny { line });
                    } else {
                        steps.push(Step::Route { command: subst(t) });
                    }
                }
                if !first {
                    steps.extend(run_cmd);
                }
            }
        }
        let blocking = block != BlockMode::LogOnly;
        if blocking {
            self.budget.spend(now, ip, r.evidence);
            self.hosts.job_started(ip, proto);
        }
        let timed = blocking && cfg.block_timeout > 0;
        let undo = match (&cfg.kill_route_undo, timed) {
            (Some(u), true) if steps.iter().any(|s| matches!(s, Step::Route { .. })) => {
                Some(subst(u))
            }
            _ => None,
        };
        // The line is removed when the block ends (BLOCK_TIMEOUT, `portsentry blocked del`).
        let deny = cfg
            .kill_hosts_deny
            .as_deref()
            .filter(|_| steps.iter().any(|s| matches!(s, Step::HostsDeny { .. })))
            .map(|t| DenyLine::new(t, hit.port, hit.mode));
        let kind = JobKind::Respond {
            expire_after_ms: timed.then(|| cfg.block_timeout.saturating_mul(1000)),
            undo,
            deny,
            evidence: r.evidence,
        };
        // Log only, and over the rate: nothing left to do.
        if !r.quiet || blocking {
            v.jobs.push(Job {
                kind,
                target: ip,
                steps,
                record: Record {
                    name: name.map_or_else(|| ip.to_string(), str::to_string),
                    ip,
                    port: hit.port,
                    mode: hit.mode,
                    detail: hit.detail,
                    blocked_file: blocking,
                    // A real block is always recorded (fail2ban and admins rely on the files;
                    // their size is bounded by the block caps); over the rate limit only a
                    // log-only report loses its history line, and syslog stays quiet.
                    write: blocking || !r.quiet,
                },
                quiet: r.quiet,
                flood: r.quiet && blocking,
                preflight_ok,
            });
        }
        v.jobs.extend(ended);
        quiet(v, r)
    }

    /// When the nftables set of `ip`'s family is full (as far as the blocks remembered here
    /// say: BLOCK_SET_SIZE, or the blocked-host memory), the block of less evidence than
    /// `score` to unblock first (`engine::blocks`), with its evidence and the job that ends
    /// it. None: there is room, or no block of less evidence.
    fn make_room(
        &mut self,
        cfg: &Config,
        ip: IpAddr,
        score: u32,
    ) -> Option<(IpAddr, u32, Option<Job>)> {
        let max = self.limits.max_blocked;
        let cap = usize::try_from(cfg.block_set_size).unwrap_or(max).min(max);
        let full = self.blocks.family_len(ip) >= cap || self.blocks.len() >= max;
        if !full {
            return None;
        }
        self.blocks.evict_weaker(ip, score)
    }
}

/// Over the report limits: keep the actions, drop the log events.
fn quiet(mut v: Verdict, r: Respond) -> Verdict {
    if r.quiet {
        v.log.clear();
    }
    v
}

/// The kind of a detection, for lines and counters.
pub fn scan_kind(detail: Detail) -> Option<crate::capture::classify::ScanKind> {
    match detail {
        Detail::Connect => None,
        Detail::TcpScan(t) => Some(crate::capture::classify::ScanKind::Tcp(t)),
        Detail::UdpScan => Some(crate::capture::classify::ScanKind::Udp),
        Detail::Other(_) => None,
    }
}
