#!/usr/bin/python3
"""Where the daemon's CPU goes, by activity: reads `perf script -F comm,tid,ip,sym` output of
a `perf record --call-graph dwarf` of the daemon (see doc/benchmarks.md, "Where the time goes") and
attributes each sample of the daemon's own threads to the innermost frame that names an
activity. Prints the share of samples per activity.

    perf script -i perf.data --comm portsentry -F comm,tid,ip,sym | bench/profile-split.py
"""
import collections
import sys

# (activity, substrings of a frame). A sample goes to the first frame, from the leaf up, that
# matches any rule; ties within one frame go to the earlier rule.
RULES = [
    ("Smart-Verify bind test (socket, bind, close)", ["port_in_use", "watch::Local>::in_use"]),
    ("starting a shell (posix_spawn, pipes, /dev/null)", ["Command>::spawn", "posix_spawn",
                                                         "spawn_spare", "to_child_stdio"]),
    ("reaping commands (wait4 per running job)", ["try_wait", "wait4"]),
    ("handing a command to the spare shell", ["ChildStdin", "exec::start"]),
    ("syslog", ["Logger::log", "UnixDatagram", "syslog::"]),
    ("history and blocked-file lines", ["history_line", "Appends", "flush_files",
                                        "Daemon::finish", "local_time", "localtime"]),
    ("ignore file stat", ["IgnoreFile::refresh", "statx"]),
    ("engine (host table, limits, respond)", ["engine::Engine", "engine::", "report::"]),
    ("executor bookkeeping", ["exec::Executor", "exec::advance"]),
    ("interface addresses", ["read_addrs", "if_addrs"]),
    ("socket table (sock_diag)", ["read_listeners", "diag_listeners", "read_table"]),
    ("capture: ring walk, de-duplication, parse", ["Capture::drain", "walk_block", "dedup::",
                                                   "wire::parse"]),
    ("capture: doorbell recvmsg", ["ring_bell", "recv_stamped"]),
    ("judge (classification)", ["watch::judge", "classify::"]),
    ("signals", ["read_signal", "signalfd"]),
    ("poll", ["poll::poll", "__poll", "do_sys_poll"]),
    ("clock", ["Instant", "clock_gettime", "now_ms"]),
    ("capture tick, filter", ["Stealth::tick", "set_filter"]),
    ("event loop, other", ["Daemon::run", "Daemon::hit", "Daemon::pump"]),
]


def main():
    samples, cur = [], None
    for line in sys.stdin:
        if line and not line[0].isspace():
            cur = []
            samples.append(cur)
        elif line.strip() and cur is not None:
            parts = line.split(None, 1)
            cur.append(parts[1].strip() if len(parts) > 1 else "")
    count = collections.Counter()
    for st in samples:
        cat = "no user-space stack (context switch, page fault, vfork wait)"
        for frame in st:
            hit = next((name for name, keys in RULES if any(k in frame for k in keys)), None)
            if hit:
                cat = hit
                break
        count[cat] += 1
    n = len(samples) or 1
    print(f"{len(samples)} samples")
    for k, v in count.most_common():
        print(f"{100 * v / n:5.1f}%  {k}")


if __name__ == "__main__":
    main()
