#!/bin/bash
# systemd package test (issue 10): the .deb under a real systemd. Two Debian 12
# containers boot with systemd-nspawn -b, each in a network namespace made
# here, one with CAP_NET_ADMIN (what a host has), one without (the default
# of systemd-nspawn and Docker). In both: apt-get install of the .deb, the
# unit active, a scan from a second namespace detected (journal, history),
# systemctl reload, restart, stop, apt-get purge. With CAP_NET_ADMIN also
# the upgrade from Debian's own portsentry 1.2-14 and an install whose
# daemon cannot start; without it, the daemon names the missing capability.
# See tests/PACKAGE.md.
#
# Run as root from anywhere:  bash tests/systemd.sh
# Environment:
#   CI=true                 a missing tool or a non-root user is a FAILURE (default: SKIP)
#   PACKAGE_DEB=FILE        test this .deb instead of building one with `cargo deb`
#   SYSTEMD_TEST_SERIAL=1   run the two containers one after the other (default: side by side)
#   SYSTEMD_TEST_TIMEOUT=S  give up on a container after S seconds (default 420)
#   KEEP_WORK=1             keep the containers' root directories and logs after the run
#   SYSTEMD_TEST_DEBUG=1    systemd's debug log level during the upgrade from 1.2 (diagnosis only:
#                           the flood of debug lines can make journal checks miss lines)
#   SYSTEMD_TEST_INIT_ARGS  extra arguments for the containers' systemd, e.g. "-- systemd.log_level=debug"
#   SYSTEMD_TEST_JOURNAL_LINES=N  unit journal lines printed at the first failure (default 60)
#
# Prints one PASS:/FAIL: line per check (prefixed [cap] or [nocap]), the
# timings, and ends with "N passed, M failed".

# Checks are often eval'd strings, expanded when they run:
# shellcheck disable=SC2016,SC2034
set -u
umask 022

TEST_NAME="systemd package test"
# shellcheck source=tests/lib-pkg.sh
. "$(dirname "$0")/lib-pkg.sh"
# A failed check inside a container prints what the unit says (once per container), so a
# failure on a CI machine can be understood from the log alone.
dumped=
fail() {
    echo "FAIL: $CHECK_PREFIX$*"
    failed=$((failed + 1))
    if [ -z "$dumped" ] && [ -n "${INIT:-}" ]; then
        dumped=1
        echo "--- systemctl status, journal and processes at the first failure:"
        inc systemctl status --no-pager -l portsentry.service 2>&1 | tail -n 25 | sed 's/^/    /'
        # The whole journal's tail, not only the unit's: what systemd itself
        # said (a failed exec step names its reason there) and what ran beside.
        inc journalctl --no-pager -o short-precise -n ${SYSTEMD_TEST_JOURNAL_LINES:-60} -u portsentry.service 2>&1 | sed 's/^/    /'
        echo "--- the whole journal's last lines:"
        inc journalctl --no-pager -o short-precise -n 40 2>&1 | sed 's/^/    /'
        inc ps -eo pid,ppid,stat,args 2>&1 | grep -i -e portsentry -e ' sh ' | sed 's/^/    /'
    fi
}
SELF=$REPO/tests/systemd.sh
BASE=$CACHE_DIR/nspawn-base
# Packages of the container's root beyond minbase: systemd as init, dbus for
# systemctl and logind, iproute2 and nftables for KILL_ROUTE, procps.
BASE_PACKAGES=systemd,systemd-sysv,dbus,iproute2,nftables,procps
LABELS=(cap nocap)

# ----------------------------------------------------------- one container
# Everything below up to "the test" runs in a child process per container
# ($SELF --container LABEL), so the two can run side by side. The parent
# passes WORK, RUN_ID, DEB_NAME and OLD_DEB_NAME in the environment.

# Host-side names of one container's pieces.
names() { # names LABEL
    CDIR=$WORK/$1
    CROOT=$CDIR/root
    NS=$RUN_ID-$1         # the container's network namespace
    SCAN_NS=$RUN_ID-$1-s  # the scanner's
    MACHINE=$RUN_ID-$1
    cgroup_dirs
}

# Each container boots in a control group of its own, below this test's.
# systemd-nspawn with --keep-unit and without machined (--register=no) puts
# the container below its caller's cgroup (in payload/): two containers
# started from one cgroup shared one tree, and the systemd of one removed
# the other's system.slice/portsentry.service whenever it went empty, so the
# other's next ExecStart failed with 219/CGROUP ("Failed to attach to cgroup
# ... No such file or directory"), at a restart or after an upgrade, in about
# one run in six (tests/PACKAGE.md). CG_DIRS: the container's directories in
# the hierarchies systemd tracks units in (name=systemd and the unified one).
cgroup_dirs() {
    local id hier path
    CG_DIRS=()
    while IFS=: read -r id hier path; do
        case $hier in
            name=systemd) CG_DIRS+=("/sys/fs/cgroup/systemd${path%/}/$MACHINE") ;;
            "")
                if [ -e /sys/fs/cgroup/unified/cgroup.procs ]; then
                    CG_DIRS+=("/sys/fs/cgroup/unified${path%/}/$MACHINE")
                else
                    CG_DIRS+=("/sys/fs/cgroup${path%/}/$MACHINE")
                fi
                ;;
        esac
    done </proc/self/cgroup
}

# Removes the container's cgroups (deepest first) once it is off.
remove_cgroups() {
    local dir
    for dir in "${CG_DIRS[@]}"; do
        [ -d "$dir" ] || continue
        find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$dir" ] && echo "warning: could not remove the container's cgroup $dir" >&2
    done
    return 0
}

# Stops the container of CDIR: poweroff (nspawn turns SIGTERM into one),
# then SIGKILL to its init and to nspawn if it is still there after 30 s.
# Only the pids this test recorded, and only if they still are those
# programs.
stop_container() {
    local nspawn init i
    nspawn=$(cat "$CDIR/nspawn.pid" 2>/dev/null) || return 0
    init=$(cat "$CDIR/init.pid" 2>/dev/null)
    if [ "$(cat "/proc/$nspawn/comm" 2>/dev/null)" = systemd-nspawn ]; then
        kill -TERM "$nspawn" 2>/dev/null
        for i in $(seq 300); do
            [ -d "/proc/$nspawn" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$nspawn" ]; then
            echo "container $MACHINE did not power off in 30 s: killing it" >&2
            if [ -n "$init" ] && [ "$(cat "/proc/$init/comm" 2>/dev/null)" = systemd ]; then
                kill -KILL "$init" 2>/dev/null
            fi
            kill -KILL "$nspawn" 2>/dev/null
            for i in $(seq 50); do
                [ -d "/proc/$nspawn" ] || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$CDIR/nspawn.pid" "$CDIR/init.pid"
}

# Everything of one container goes: the container, its namespaces (the
# processes left in them by pid first), and its root directory unless
# KEEP_WORK=1.
teardown_container() {
    local ns pid
    stop_container
    remove_cgroups
    for ns in "$NS" "$SCAN_NS"; do
        if ip netns list 2>/dev/null | grep -qw -- "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null
            done
            ip netns delete "$ns" 2>/dev/null
        fi
    done
    if [ "${KEEP_WORK:-}" != 1 ] && [ -d "$CROOT" ]; then
        rm -rf --one-file-system "$CROOT"
    fi
}

# Runs a command inside the booted container: in all of its namespaces,
# as its root, with a clean environment, stdin on /dev/null, at most 120 s.
inc() {
    timeout 120 nsenter -t "$INIT" -m -u -i -n -p -- /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@" </dev/null
}
scanx() { ip netns exec "$SCAN_NS" "$@"; }
# tcp_connect IP PORT / udp_send IP PORT: from the scanner namespace, with
# bash's /dev/tcp and /dev/udp (no tool needed on that side).
tcp_connect() { scanx timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
udp_send() { scanx timeout 3 bash -c "echo probe >/dev/udp/$1/$2" 2>/dev/null; }

# wait_for SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds.
# (An eval'd COMMAND sees its caller's locals: no common names here.)
wait_for() {
    local _wait_tries=$(($1 * 10))
    shift
    while [ "$_wait_tries" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        _wait_tries=$((_wait_tries - 1))
    done
    return 1
}

unit() { inc systemctl show -p "$1" --value portsentry.service 2>/dev/null; }
active() { [ "$(inc systemctl is-active portsentry.service 2>/dev/null)" = active ]; }
main_pid() { # the unit's main pid (in the container), if it is the daemon
    local pid
    pid=$(unit MainPID)
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    [ "$(inc cat "/proc/$pid/comm" 2>/dev/null)" = portsentry ] || return 1
    echo "$pid"
}
main_args() { local pid; pid=$(main_pid) && inc cat "/proc/$pid/cmdline" | tr '\0' ' '; }
# Daemons in the container (host pids), by their command name.
daemons() {
    local pid
    for pid in $(ip netns pids "$NS" 2>/dev/null); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = portsentry ] && echo "$pid"
    done
}
no_daemon() { [ -z "$(daemons)" ]; }
# daemon_running ARGS: a daemon whose command line ends in ARGS.
daemon_running() {
    local pid
    for pid in $(daemons); do
        [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *" $1 " ]] && return 0
    done
    return 1
}
# The unit's journal (daemon syslog lines, its stderr, systemd's lines).
journal() { inc journalctl -q --no-pager -o cat -u portsentry.service 2>/dev/null; }
journal_count() { journal | grep -cE -- "$1"; }
# journal_more PATTERN N: more than N lines match (wait up to 10 s).
journal_more() {
    local pattern=$1 count=$2
    wait_for 10 eval '[ "$(journal_count "$pattern")" -gt "$count" ]'
}
V=/var/lib/portsentry
history_has() { # history_has IP PORT PROTO: its 1.2-format line (wait up to 5 s)
    wait_for 5 grep -qsE "^[0-9]+ - [0-9]{2}/[0-9]{2}/[0-9]{4} [0-9:]{8} Host: [^ ]*/$1 Port: $2 $3 Blocked\$" \
        "$CROOT$V/portsentry.history"
}
route_blocked() { ip -n "$NS" route show table all | grep -qE "^(unreachable|prohibit|blackhole) $1( |\$)"; }
installed_version() { inc dpkg-query -W -f '${Version}' portsentry 2>/dev/null; }

# apt_get LOG ARGS...: apt-get -y in the container; the log keeps its output,
# shown when it fails.
apt_get() {
    local log=$CDIR/$1 rc
    shift
    inc apt-get -y --no-install-recommends "$@" >"$log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || sed 's/^/   /' "$log" | tail -n 25
    return $rc
}

booted() {
    BOOT_STATE=$(inc systemctl is-system-running 2>/dev/null)
    [ "$BOOT_STATE" = running ] || [ "$BOOT_STATE" = degraded ]
}
boot() {
    local caps=() i pid t0=$EPOCHREALTIME
    [ "$LABEL" = cap ] && caps=(--capability=CAP_NET_ADMIN)
    # setsid: a ^C on the terminal reaches this test, which powers the
    # container off, not nspawn directly.
    # The shell moves itself into the container's own cgroups (see
    # cgroup_dirs), then becomes nspawn (same pid).
    local dir
    for dir in "${CG_DIRS[@]}"; do
        mkdir -p "$dir" || { echo "cannot create the container's cgroup $dir" >&2; return 1; }
    done
    setsid "$BASH" -c 'n=$1; shift
        while [ "$n" -gt 0 ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; n=$((n - 1)); done
        exec "$@"' cgroup-enter "${#CG_DIRS[@]}" "${CG_DIRS[@]}" \
        systemd-nspawn -b --register=no --keep-unit --machine="$MACHINE" \
        --network-namespace-path="/run/netns/$NS" "${caps[@]}" --console=read-only \
        -D "$CROOT" ${SYSTEMD_TEST_INIT_ARGS:-} </dev/null >"$CDIR/boot.log" 2>&1 &
    echo $! >"$CDIR/nspawn.pid"
    # The container's init: nspawn's child, once it has exec'd systemd (so
    # its mount namespace is the container's). At most 30 s.
    INIT=""
    for i in $(seq 300); do
        for pid in $(pgrep -P "$(cat "$CDIR/nspawn.pid")"); do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] && INIT=$pid
        done
        [ -n "$INIT" ] && break
        sleep 0.1
    done
    [ -n "$INIT" ] || { tail -n 20 "$CDIR/boot.log"; return 1; }
    echo "$INIT" >"$CDIR/init.pid"
    # Booted: "running", or "degraded" (a unit that does not fit a
    # container failed; listed in the output). At most 60 s.
    if ! wait_for 60 booted; then
        tail -n 20 "$CDIR/boot.log"
        return 1
    fi
    [ "$BOOT_STATE" = degraded ] && inc systemctl --failed --no-legend | sed 's/^/   degraded: /'
    echo "TIME: ${CHECK_PREFIX}boot to $BOOT_STATE: $(since "$t0") s"
}

# ------------------------------------------------------------------ phases
# The package's own life cycle, from a fresh install to purge. Scanner
# SCAN, the container's address TARGET (192.0.2.0/24).
lifecycle() {
    local t0=$EPOCHREALTIME pid_before n line TARGET=192.0.2.10 SCAN=192.0.2.20
    echo "== [$LABEL] apt-get install ./$DEB_NAME"
    check "apt-get install ./$DEB_NAME exits 0" apt_get install.log install "/root/$DEB_NAME"
    check "unit is active" wait_for 10 active
    check "its main process is the daemon, with -tcp -udp from /etc/default/portsentry" \
        eval 'main_args | grep -qE -- "-tcp -udp( |\$)"'
    # Type=notify: the daemon's STATUS= line is what systemctl status shows.
    check "systemctl status shows the daemon's status line (modes, ports)" \
        eval 'inc systemctl status portsentry.service 2>/dev/null | grep -qE "Status: \"Watching tcp: [0-9]+ ports, udp: [0-9]+ ports"'
    if [ "$LABEL" = nocap ]; then
        # The daemon keeps what it has and names what it lacks (issue 10,
        # item 1), in its log and so in the journal.
        check "journal: the daemon names the missing CAP_NET_ADMIN and what it disables" \
            journal_more 'capability CAP_NET_ADMIN is not available: KILL_ROUTE' 0
    fi

    tcp_connect "$TARGET" 1
    check "TCP connect from $SCAN: journal has the attackalert" \
        journal_more "attackalert: Connect from host: $SCAN/$SCAN to TCP port: 1\$" 0
    check "... and the history file its line" history_has "$SCAN" 1 TCP
    udp_send "$TARGET" 1
    check "UDP datagram from $SCAN: journal has the attackalert" \
        journal_more "attackalert: Connect from host: $SCAN/$SCAN to UDP port: 1\$" 0
    check "... and the history file its line" history_has "$SCAN" 1 UDP

    line="1795383542 - 11/22/2026 21:39:02 Host: 198.18.0.1/198.18.0.1 Port: 1 TCP Blocked"
    echo "$line" >"$CROOT$V/portsentry.blocked.tcp"
    pid_before=$(main_pid)
    n=$(journal_count 'PortSentry reloaded its configuration\.')
    check "systemctl reload exits 0" quiet inc systemctl reload portsentry.service
    check "... the daemon says it reloaded" journal_more 'PortSentry reloaded its configuration\.' "$n"
    check "... same main pid, still active" eval '[ -n "$pid_before" ] && [ "$(main_pid)" = "$pid_before" ] && active'
    check "... portsentry.blocked.tcp emptied" wait_for 5 eval '[ ! -s "$CROOT$V/portsentry.blocked.tcp" ]'
    check "... history kept" history_has "$SCAN" 1 TCP

    check "systemctl restart exits 0" quiet inc systemctl restart portsentry.service
    check "... active with a new main pid" \
        eval 'active && [ -n "$(main_pid)" ] && [ "$(main_pid)" != "$pid_before" ]'
    check "... one daemon" eval '[ "$(daemons | wc -l)" = 1 ]'
    # The init script under systemd: init-functions hand it to systemctl.
    check "/etc/init.d/portsentry status: exit 0 (running)" quiet inc /etc/init.d/portsentry status

    check "systemctl stop exits 0" quiet inc systemctl stop portsentry.service
    check "... unit inactive" eval '[ "$(inc systemctl is-active portsentry.service)" = inactive ]'
    check "... no daemon left" wait_for 5 no_daemon
    check "/etc/init.d/portsentry status: exit 3 (stopped)" \
        eval 'inc /etc/init.d/portsentry status >/dev/null 2>&1; [ $? -eq 3 ]'

    echo "== [$LABEL] apt-get purge portsentry"
    check "apt-get purge exits 0" apt_get purge.log purge portsentry
    check "... package gone" eval '! inc dpkg -s portsentry >/dev/null 2>&1'
    check "... /var/lib/portsentry, /etc/portsentry, /etc/default/portsentry removed" \
        eval '[ ! -e "$CROOT$V" ] && [ ! -e "$CROOT/etc/portsentry" ] && [ ! -e "$CROOT/etc/default/portsentry" ]'
    check "... the enable symlink and systemd's knowledge of the unit removed" \
        eval '[ ! -e "$CROOT/etc/systemd/system/multi-user.target.wants/portsentry.service" ] &&
              [ "$(unit LoadState)" = not-found ]'
    echo "TIME: ${CHECK_PREFIX}install to purge: $(since "$t0") s"
}

# Debian's portsentry 1.2-14 installed, edited the way an admin would
# (stealth modes, blocking on), scanned; then upgraded to this package.
# 1.2 sees scanner 203.0.113.20, ours 198.51.100.20.
upgrade_from_debian() {
    local t0=$EPOCHREALTIME n old_line new_ver CONF=$CROOT/etc/portsentry/portsentry.conf
    echo "== [$LABEL] apt-get install ./$OLD_DEB_NAME (Debian's 1.2)"
    check "Debian's 1.2 installs from the container's apt cache (no network)" \
        apt_get install-1.2.log install "/root/$OLD_DEB_NAME"
    check "... its unit (made from its init script by the sysv generator) is active" \
        eval 'wait_for 10 active && [ "$(unit SourcePath)" = /etc/init.d/portsentry ]'
    check "... its debconf answers are in the database (debconf-show portsentry)" \
        eval 'inc debconf-show portsentry | grep -q "portsentry/warn_no_block"'
    sed -i -E 's/^TCP_MODE=.*/TCP_MODE="stcp"/; s/^UDP_MODE=.*/UDP_MODE="sudp"/' "$CROOT/etc/default/portsentry"
    sed -i -E 's/^BLOCK_TCP=.*/BLOCK_TCP="1"/' "$CONF"
    # Each of 1.2's two daemons says when it listens; the unit is active
    # before that (its init script does not wait).
    n=$(journal_count '^adminalert: PortSentry is now active and listening\.$')
    check "1.2 restarted (systemctl restart) in stcp and sudp mode" \
        eval 'inc systemctl restart portsentry.service &&
              wait_for 5 daemon_running -stcp && wait_for 5 daemon_running -sudp'
    check "... both of its daemons listening" \
        journal_more '^adminalert: PortSentry is now active and listening\.$' $((n + 1))
    tcp_connect 203.0.113.10 1
    check "1.2 records a scan from 203.0.113.20 in the history" history_has 203.0.113.20 1 TCP
    check "... and blocks it with its KILL_ROUTE (route add ... reject)" wait_for 5 route_blocked 203.0.113.20
    old_line=$(grep -m 1 "/203.0.113.20 Port: 1 TCP Blocked" "$CROOT$V/portsentry.history")

    new_ver=$(dpkg-deb -f "$DEB" Version)
    echo "== [$LABEL] upgrade to ./$DEB_NAME (edited conffile kept: --force-confold)"
    [ -n "${SYSTEMD_TEST_DEBUG:-}" ] && inc systemctl log-level debug
    check "upgrade with apt-get install exits 0" \
        apt_get upgrade.log -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install "/root/$DEB_NAME"
    check "... version is now $new_ver" eval '[ "$(installed_version)" = "$new_ver" ]'
    check "... /etc/default/portsentry keeps TCP_MODE=\"stcp\" UDP_MODE=\"sudp\"" \
        eval 'grep -qx "TCP_MODE=\"stcp\"" "$CROOT/etc/default/portsentry" &&
              grep -qx "UDP_MODE=\"sudp\"" "$CROOT/etc/default/portsentry"'
    check "... portsentry.conf keeps the edit (BLOCK_TCP=\"1\") and 1.2's KILL_ROUTE" \
        eval 'grep -qx "BLOCK_TCP=\"1\"" "$CONF" &&
              grep -qxF "KILL_ROUTE=\"/sbin/route add -host \$TARGET\$ reject\"" "$CONF"'
    check "... history keeps 1.2's line" eval '[ -n "$old_line" ] && grep -qxF "$old_line" "$CROOT$V/portsentry.history"'
    # 30 s: on a loaded machine the restart after the upgrade (1.2's two daemons stopped, the
    # ignore file rebuilt, the ring set up) has taken longer than 10 s once.
    check "... the unit is the package's own now, and active" \
        eval 'wait_for 30 active && [ "$(unit FragmentPath)" = /lib/systemd/system/portsentry.service ]'
    [ -n "${SYSTEMD_TEST_DEBUG:-}" ] && inc systemctl log-level info
    check "... its main process is the daemon, with -stcp -sudp" eval 'main_args | grep -qE -- "-stcp -sudp( |\$)"'
    check "... one daemon (1.2's are gone)" eval '[ "$(daemons | wc -l)" = 1 ]'

    tcp_connect 198.51.100.10 1
    check "SYN from 198.51.100.20: journal has the stealth attackalert" \
        journal_more 'attackalert: TCP SYN/Normal scan from host: 198.51.100.20/198.51.100.20 to TCP port: 1$' 0
    check "... history and portsentry.blocked.stcp have its line" \
        eval 'history_has 198.51.100.20 1 TCP && grep -q "/198.51.100.20 Port: 1 TCP Blocked" "$CROOT$V/portsentry.blocked.stcp"'
    check "... 1.2's KILL_ROUTE ran: a reject route in the container's namespace" \
        wait_for 5 route_blocked 198.51.100.20
    check "... and the journal says so" \
        journal_more 'Host 198.51.100.20 has been blocked via dropped route using command: "/sbin/route add -host 198.51.100.20 reject"' 0

    check "apt-get purge after the upgrade exits 0" apt_get purge-upgraded.log purge portsentry
    check "... and removes 1.2's debconf answers" eval '[ -z "$(inc debconf-show portsentry 2>&1)" ]'
    echo "TIME: ${CHECK_PREFIX}1.2 install, upgrade, purge: $(since "$t0") s"
}

# A daemon that cannot start (an invalid mode: the unit's ExecCondition
# fails it) must leave apt successful, the reason in systemctl status and
# the journal.
cannot_start() {
    local out
    echo "== [$LABEL] apt-get install with an invalid mode in /etc/default/portsentry"
    printf 'TCP_MODE="bogus"\nUDP_MODE="udp"\n' >"$CROOT/etc/default/portsentry"
    check "daemon cannot start: apt-get install still exits 0" apt_get install-bogus.log install "/root/$DEB_NAME"
    check "... the package is installed and configured" \
        eval '[ "$(inc dpkg-query -W -f "\${Status}" portsentry)" = "install ok installed" ]'
    check "... postinst says the unit did not start and where to look" \
        grep -q 'portsentry.service did not start; the package is installed anyway' "$CDIR/install-bogus.log"
    check "... the unit is failed" eval '[ "$(inc systemctl is-failed portsentry.service)" = failed ]'
    out=$(inc systemctl status portsentry.service 2>&1)
    check "... systemctl status shows why (the bad mode)" grep -q 'TCP_MODE="bogus".*not a valid mode' <<<"$out"
    check "... so does the journal" journal_more 'TCP_MODE="bogus".*not a valid mode' 0
    check "... purge exits 0" apt_get purge-bogus.log purge portsentry
}

# The container's namespace and the scanner's, joined by a veth pair;
# addresses from the documentation ranges, only inside these two.
make_netns() {
    local net
    ip netns add "$NS" && ip netns add "$SCAN_NS" &&
        ip -n "$NS" link set lo up && ip -n "$SCAN_NS" link set lo up &&
        ip -n "$NS" link add ps0 type veth peer name ps1 &&
        ip -n "$NS" link set ps1 netns "$SCAN_NS" || return 1
    for net in 203.0.113 198.51.100 192.0.2; do
        ip -n "$NS" addr add "$net.10/24" dev ps0 &&
            ip -n "$SCAN_NS" addr add "$net.20/24" dev ps1 || return 1
    done
    ip -n "$NS" link set ps0 up && ip -n "$SCAN_NS" link set ps1 up
}

# The child process: one container from boot to teardown.
container_main() {
    LABEL=$1
    CHECK_PREFIX="[$LABEL] "
    names "$LABEL"
    local t0=$EPOCHREALTIME
    trap teardown_container EXIT
    trap 'fail "interrupted by a signal"; summary; exit 130' INT TERM HUP

    make_netns || abort "create the network namespaces $NS and $SCAN_NS"
    # What apt installs in the container must come from its own cache.
    check "the container's namespace has no route out (no default route)" \
        eval '[ -z "$(ip -n "$NS" route show default; ip -n "$NS" -6 route show default)" ]'

    boot || abort "boot the container with systemd-nspawn -b (log: $CDIR/boot.log)"
    pass "container booted with systemd as PID 1 ($( [ "$LABEL" = cap ] && echo with || echo without) CAP_NET_ADMIN)"
    check "... in a control group of its own (none shared with the other container)" \
        eval 'grep -qE "^[0-9]+:(name=systemd)?:.*/$MACHINE/" "/proc/$INIT/cgroup"'

    if [ "$LABEL" = cap ]; then
        upgrade_from_debian
    fi
    lifecycle
    if [ "$LABEL" = cap ]; then
        cannot_start
    fi

    local t1=$EPOCHREALTIME
    stop_container
    echo "TIME: ${CHECK_PREFIX}poweroff: $(since "$t1") s"
    echo "TIME: ${CHECK_PREFIX}container total: $(since "$t0") s"
    summary
}

if [ "${1:-}" = --container ]; then
    container_main "$2"
    exit
fi

# ---------------------------------------------------------------- the test
T0=$EPOCHREALTIME
WORK=""
CHILDREN=()

cleanup() {
    local pid label
    # The children tear down their own containers; one still running after
    # the deadline or an interrupt is killed (its process group, by pid),
    # and its container is torn down from here.
    for pid in "${CHILDREN[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    done
    [ -n "$WORK" ] || return 0
    for label in "${LABELS[@]}"; do
        names "$label"
        teardown_container
    done
    if [ "${KEEP_WORK:-}" = 1 ]; then
        echo "work directory kept: $WORK"
    elif [ -d "$WORK" ]; then
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'fail "interrupted by a signal"; summary; exit 130' INT TERM HUP

require_tools systemd-nspawn debootstrap dpkg-deb ip nsenter setsid pgrep timeout
build_deb

# Debian's portsentry 1.2-14 (tests/fetch-reference downloads it with apt).
REF=$("$REPO/tests/fetch-reference") || missing "Debian's portsentry .deb could not be downloaded (tests/fetch-reference)"
old_debs=("$(dirname "$REF")"/portsentry_1.2-*.deb)
OLD_DEB=${old_debs[0]}
[ -f "$OLD_DEB" ] || missing "no portsentry_1.2-*.deb beside $REF"

# The containers have no network: their root carries what apt will need,
# Debian's 1.2 and its dependencies in its apt cache.
prepare_base() {
    local root=$1 name
    name=$(basename "$OLD_DEB")
    chroot "$root" apt-get clean &&
        cp "$OLD_DEB" "$root/tmp/$name" &&
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --download-only --no-install-recommends "/tmp/$name" &&
        rm -f "$root/tmp/$name"
}
t=$EPOCHREALTIME
CACHED_ROOT_RECIPE="old=$(basename "$OLD_DEB")" cached_root "$BASE" "$BASE_PACKAGES" prepare_base ||
    abort "debootstrap $SUITE container root"
pass "container root ready ($BASE_PACKAGES, Debian's 1.2 in its apt cache)"
echo "TIME: container root (debootstrap, or the cache): $(since "$t") s"

mkdir -p "$CACHE_DIR"
WORK=$(mktemp -d "$CACHE_DIR/systemd.XXXXXX")
export WORK DEB DEB_NAME OLD_DEB_NAME RUN_ID
RUN_ID=psd$$
DEB_NAME=$(basename "$DEB")
OLD_DEB_NAME=$(basename "$OLD_DEB")
t=$EPOCHREALTIME
for label in "${LABELS[@]}"; do
    names "$label"
    mkdir -p "$CDIR"
    if ! { cp -a "$BASE" "$CROOT" && cp "$DEB" "$OLD_DEB" "$CROOT/root/"; }; then
        abort "copy the container root for $label"
    fi
done
echo "TIME: copies of the container root: $(since "$t") s"

# The children, each in its own session (so a deadline can end all of it).
run_child() { # run_child LABEL: starts it, appends its pid to CHILDREN
    setsid "$BASH" "$SELF" --container "$1" >"$WORK/$1/test.log" 2>&1 &
    CHILDREN+=($!)
    disown   # polled with kill -0, never waited for: no job messages
}
# wait_child PID: waits until it exits or the deadline passes.
DEADLINE=$((SECONDS + ${SYSTEMD_TEST_TIMEOUT:-420}))
wait_child() {
    while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $DEADLINE ]; do
        sleep 0.5
    done
    ! kill -0 "$1" 2>/dev/null
}
t=$EPOCHREALTIME
if [ "${SYSTEMD_TEST_SERIAL:-}" = 1 ]; then
    for label in "${LABELS[@]}"; do
        run_child "$label"
        wait_child "${CHILDREN[-1]}"
    done
else
    for label in "${LABELS[@]}"; do
        run_child "$label"
    done
    for pid in "${CHILDREN[@]}"; do
        wait_child "$pid"
    done
fi
containers_time=$(since "$t")

# Their reports, one after the other, and their counts added to ours.
for i in "${!LABELS[@]}"; do
    label=${LABELS[i]}
    log=$WORK/$label/test.log
    echo "================================ container $label"
    cat "$log"
    passed=$((passed + $(grep -c '^PASS:' "$log")))
    failed=$((failed + $(grep -c '^FAIL:' "$log")))
    if kill -0 "${CHILDREN[i]}" 2>/dev/null; then
        fail "[$label] container test did not finish within ${SYSTEMD_TEST_TIMEOUT:-420} s"
    elif ! grep -qE '^[0-9]+ passed, [0-9]+ failed$' "$log"; then
        fail "[$label] container test ended without its summary"
    fi
done
echo "================================"
echo "TIME: containers ($([ "${SYSTEMD_TEST_SERIAL:-}" = 1 ] && echo one after the other || echo side by side)): $containers_time s"
echo "TIME: whole test: $(since "$T0") s"
summary
