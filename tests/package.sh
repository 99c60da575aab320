#!/bin/bash
# Package test (issue 3): build the .deb, lint it, install it with apt into a
# fresh Debian 12 chroot and drive the init script through start, mode
# changes, reload, stop, reinstall and purge. See tests/PACKAGE.md.
#
# Run as root from anywhere:  bash tests/package.sh
# Environment:
#   CI=true           a missing tool or a non-root user is a FAILURE (default: SKIP)
#   PACKAGE_DEB=FILE  test this .deb instead of building one with `cargo deb`
#   KEEP_WORK=1       keep the work chroot after the run (for debugging)
#
# Prints one PASS:/FAIL: line per check and ends with "N passed, M failed".

set -u
umask 022

TEST_NAME="package test"
# shellcheck source=tests/lib-pkg.sh
. "$(dirname "$0")/lib-pkg.sh"
BASE=$CACHE_DIR/chroot-base        # debootstrap result, reused between runs
NS=portsentry-pkgtest-$$           # network namespace the chroot's daemons run in
WORK=""
ROOT=""
MOUNTS=()

# ---------------------------------------------------------------- cleanup
cleanup() {
    local pid m i
    # Daemons started in the chroot live in our network namespace: end them
    # (by pid, only ours) before unmounting what they use.
    if ip netns list 2>/dev/null | grep -qw "$NS"; then
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null
        done
        sleep 0.5
        for pid in $(ip netns pids "$NS" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns delete "$NS" 2>/dev/null
    fi
    ip netns delete "$NS-scan" 2>/dev/null
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[i]}
        umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${KEEP_WORK:-}" = 1 ]; then
            echo "work chroot kept in $WORK/root (mounts removed)"
        elif ! grep -q " $WORK/" /proc/self/mounts; then
            rm -rf --one-file-system "$WORK"
        else
            echo "WARNING: mounts left under $WORK, not removing it" >&2
        fi
    fi
}
trap cleanup EXIT
trap 'fail "interrupted by a signal"; summary; exit 130' INT TERM HUP

# ---------------------------------------------------------- prerequisites
require_tools cargo lintian debootstrap dpkg-deb ip chroot mount systemd-analyze

# -------------------------------------------------------------- the .deb
build_deb

contents=$(dpkg-deb -c "$DEB")
for path in ./usr/sbin/portsentry ./usr/lib/portsentry/portsentry-build-ignore-file \
    ./etc/init.d/portsentry ./etc/portsentry/portsentry.conf \
    ./etc/portsentry/portsentry.ignore.static ./usr/lib/systemd/system/portsentry.service \
    ./usr/lib/systemd/system/portsentry@.service \
    ./usr/share/man/man8/portsentry.8.gz ./usr/share/man/man5/portsentry.conf.5.gz \
    ./usr/share/man/man8/portsentry-build-ignore-file.8.gz; do
    check "package contains $path" grep -q " $path\$" <<<"$contents"
done
# DEP 17 (merged /usr): nothing under the aliased /lib, /bin, /sbin (issue 19).
aliased=$(awk '{ print $6 }' <<<"$contents" | grep -E '^\./(lib|lib32|lib64|libx32|bin|sbin)(/|$)')
check "package ships nothing under /lib, /bin or /sbin (DEP 17)${aliased:+: $aliased}" [ -z "$aliased" ]
conffiles=$(dpkg-deb -I "$DEB" conffiles 2>/dev/null)
for path in /etc/portsentry/portsentry.conf /etc/portsentry/portsentry.ignore.static \
    /etc/init.d/portsentry; do
    check "$path is a conffile" grep -qx "$path" <<<"$conffiles"
done

# Lintian: no errors and no warnings. The only warning this package would
# get, initial-upload-closes-no-bugs (no ITP bug: it is not uploaded to
# Debian), is overridden in debian/lintian-overrides with that reason.
# Info tags (hardening-*, no-md5sums-control-file) are not failures.
echo "== lintian"
lint=$(lintian --fail-on error,warning "$DEB" 2>&1)
rc=$?
printf '%s\n' "$lint" | grep -v '^running with root privileges' | sed 's/^/   /'
check "lintian reports no errors and no warnings" [ $rc -eq 0 ]

# The systemd units (not run here: the chroot has no systemd; tests/systemd.sh
# runs them) must at least parse and name executables the package ships.
# verify reads them from the unpacked package, beside the host's targets and
# a /bin/sh and /bin/kill; the template through an instance of it.
unit_root=$(mktemp -d)
dpkg-deb -x "$DEB" "$unit_root"
mkdir -p "$unit_root/bin"
cp /bin/sh /bin/kill "$unit_root/bin/" 2>/dev/null
cp -n /lib/systemd/system/*.target "$unit_root/usr/lib/systemd/system/" 2>/dev/null
# It exits 0 even on parse errors, so any output counts as a failure.
verify=$(systemd-analyze verify --man=no --root="$unit_root" portsentry.service portsentry@stcp.service 2>&1)
rc=$?
rm -rf "$unit_root"
printf '%s\n' "$verify" | grep -v '^$' | sed 's/^/   /'
check "systemd-analyze verify portsentry.service portsentry@stcp.service: clean" eval '[ $rc -eq 0 ] && [ -z "$verify" ]'

# ------------------------------------------------------- the base chroot
# iproute2 and nftables are in the base for the shipped KILL_ROUTE and its
# nft example: installed later, they would have to come from the network.
cached_root "$BASE" iproute2,nftables || abort "debootstrap $SUITE base chroot"
pass "debootstrap base chroot ready"

# A fresh copy per run, so the cache stays clean.
mkdir -p "$CACHE_DIR"
WORK=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
ROOT=$WORK/root
cp -a "$BASE" "$ROOT" || { fail "copy the base chroot"; summary; exit 1; }

mount_in() { # mount_in TARGET MOUNT-ARGS...
    mkdir -p "$ROOT$1"
    mount "${@:2}" "$ROOT$1" && MOUNTS+=("$ROOT$1")
}
mount_in /proc -t proc proc || { fail "mount proc"; summary; exit 1; }
mount_in /sys -t sysfs sysfs || { fail "mount sysfs"; summary; exit 1; }
# Recursive (with /dev/pts, which apt and dpkg use for their logs), and a
# slave, so nothing mounted under the chroot's /dev reaches the host's.
mount_in /dev --rbind /dev && mount --make-rslave "$ROOT/dev" || { fail "bind /dev"; summary; exit 1; }

# The daemon binds real ports (tcp mode) and the ignore file lists interface
# addresses: run everything in a network namespace of our own (the target),
# joined by a veth pair to a second one (the scanner). Addresses are from the
# documentation ranges (RFC 5737, RFC 3849) and exist only in these namespaces.
SCAN_NS=$NS-scan
nsx() { ip netns exec "$NS" "$@"; }
scanx() { ip netns exec "$SCAN_NS" "$@"; }
IFACE=ps0
ip netns add "$NS" && ip netns add "$SCAN_NS" &&
    nsx ip link set lo up && scanx ip link set lo up &&
    nsx ip link add "$IFACE" type veth peer name ps1 &&
    nsx ip link set ps1 netns "$SCAN_NS" &&
    nsx ip addr add 203.0.113.10/24 dev "$IFACE" &&
    nsx ip -6 addr add 2001:db8:1::10/64 dev "$IFACE" nodad &&
    scanx ip addr add 203.0.113.20/24 dev ps1 &&
    scanx ip -6 addr add 2001:db8:1::20/64 dev ps1 nodad &&
    nsx ip addr add 198.51.100.10/24 dev "$IFACE" &&
    nsx ip -6 addr add 2001:db8:2::10/64 dev "$IFACE" nodad &&
    scanx ip addr add 198.51.100.20/24 dev ps1 &&
    scanx ip -6 addr add 2001:db8:2::20/64 dev ps1 nodad &&
    nsx ip link set "$IFACE" up && scanx ip link set ps1 up ||
    { fail "create the test network namespaces"; summary; exit 1; }

# Run a command inside the chroot, inside the namespace.
inroot() { ip netns exec "$NS" chroot "$ROOT" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# Starts are allowed (invoke-rc.d asks this script).
printf '#!/bin/sh\nexit 0\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp "$DEB" "$ROOT/tmp/"
DEB_IN=/tmp/$(basename "$DEB")

# ---------------------------------------------------------------- helpers
PIDFILE=/run/portsentry.pid
daemon_pid() { # prints the live daemon's pid, or fails
    local pid
    pid=$(cat "$ROOT$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = portsentry ] || return 1
    echo "$pid"
}
daemon_args() { # the running daemon's arguments, one line
    local pid
    pid=$(daemon_pid) || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline"
}
# No process of that name in our namespace (the pid file may be stale).
no_daemon() {
    local pid
    for pid in $(ip netns pids "$NS"); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = portsentry ] && return 1
    done
    return 0
}
has_mode() { grep -qE -- "(^| )-$1( |$)" <<<"$(daemon_args)"; }
set_modes() { # set_modes TCP UDP
    sed -i -E "s/^TCP_MODE=.*/TCP_MODE=\"$1\"/; s/^UDP_MODE=.*/UDP_MODE=\"$2\"/" \
        "$ROOT/etc/default/portsentry"
}
init() { inroot /etc/init.d/portsentry "$@"; }

# ------------------------------------------------------------------ install
echo "== apt install $DEB_IN"
if inroot apt-get install -y --no-install-recommends "$DEB_IN" >"$WORK/install.log" 2>&1; then
    pass "apt install ./$(basename "$DEB") in a $SUITE chroot"
else
    sed 's/^/   /' "$WORK/install.log" | tail -n 30
    fail "apt install ./$(basename "$DEB") in a $SUITE chroot"
    summary
    exit 1
fi

check "/etc/default/portsentry written with TCP_MODE=tcp, UDP_MODE=udp" \
    grep -qx 'TCP_MODE="tcp"' "$ROOT/etc/default/portsentry"
check "/var/lib/portsentry exists with mode 0755" \
    [ "$(stat -c %a "$ROOT/var/lib/portsentry" 2>/dev/null)" = 755 ]
check "rc links registered" quiet compgen -G "$ROOT/etc/rc2.d/S*portsentry"
check "daemon started by the package runs" quiet daemon_pid
check "daemon runs the modes from /etc/default (-tcp and -udp)" \
    eval 'has_mode tcp && has_mode udp'
check "init status says running (exit 0)" quiet init status

# ------------------------------------------------------------ ignore file
IGN=$ROOT/etc/portsentry/portsentry.ignore
listed() { grep -qE "^$(sed 's/\./\\./g' <<<"$1")(/[0-9]+)?([[:space:]#]|\$)" "$IGN"; }
for a in 127.0.0.1/32 ::1/128 0.0.0.0; do
    check "ignore file has static entry $a" grep -qx "$a" "$IGN"
done
for a in 127.0.0.1 ::1 203.0.113.10 2001:db8:1::10; do
    check "ignore file lists interface address $a" listed "$a"
done
# The v6 link-local address of the test interface, if the kernel gave one.
ll=$(nsx ip -6 -o addr show dev "$IFACE" scope link | awk '{print $4}' | cut -d/ -f1 | head -n 1)
if [ -n "$ll" ]; then
    check "ignore file lists link-local address $ll" listed "$ll"
fi

# ------------------------------------------------------------------ modes
set_modes tcp ""
init restart >/dev/null 2>&1
check "TCP_MODE=tcp UDP_MODE='' + restart: only -tcp" \
    eval 'has_mode tcp && ! has_mode udp'
set_modes "" udp
init restart >/dev/null 2>&1
check "TCP_MODE='' UDP_MODE=udp + restart: only -udp" \
    eval 'has_mode udp && ! has_mode tcp'

pid_before=$(daemon_pid)
set_modes bogus udp
msg=$(init restart 2>&1)
rc=$?
check "invalid TCP_MODE: restart exits 1" [ $rc -eq 1 ]
check "invalid TCP_MODE: message names the bad mode" grep -q 'TCP_MODE="bogus".*not a valid mode' <<<"$msg"
check "invalid TCP_MODE: running daemon left alone" [ "$(daemon_pid)" = "$pid_before" ]
inroot /usr/lib/portsentry/portsentry-modes --systemd >/dev/null 2>&1
rc=$?
check "invalid mode: unit's ExecCondition fails the unit (exit 255)" [ $rc -eq 255 ]

# The file is read, never run: shell code in it is refused with its line.
cp "$ROOT/etc/default/portsentry" "$WORK/default.saved"
printf 'TCP_MODE="$(touch /tmp/pwned)"\nUDP_MODE=udp\n' >"$ROOT/etc/default/portsentry"
msg=$(init restart 2>&1)
rc=$?
check "shell code in /etc/default: restart exits 1" [ $rc -eq 1 ]
check "shell code in /etc/default: message names file, line and key" \
    grep -q '/etc/default/portsentry:1: TCP_MODE: expansion' <<<"$msg"
check "shell code in /etc/default: never run" [ ! -e "$ROOT/tmp/pwned" ]
check "shell code in /etc/default: running daemon left alone" [ "$(daemon_pid)" = "$pid_before" ]
cp "$WORK/default.saved" "$ROOT/etc/default/portsentry"

set_modes "" ""
msg=$(init restart 2>&1)
rc=$?
check "no modes: restart exits 0" [ $rc -eq 0 ]
check "no modes: says so" grep -q 'no modes' <<<"$msg"
check "no modes: no daemon left" no_daemon
inroot /usr/lib/portsentry/portsentry-modes --systemd >/dev/null 2>&1
rc=$?
check "no modes: unit's ExecCondition skips the unit (exit 1)" [ $rc -eq 1 ]
msg=$(init start 2>&1)
rc=$?
check "no modes: start exits 0 and starts nothing" eval '[ $rc -eq 0 ] && no_daemon'

set_modes tcp udp
msg=$(init start 2>&1)
rc=$?
check "start with tcp+udp exits 0" [ $rc -eq 0 ]
check "start reports the modes" grep -q -- '-tcp -udp' <<<"$msg"
check "one daemon with both modes" eval 'has_mode tcp && has_mode udp'
count_daemons() {
    local pid n=0
    for pid in $(ip netns pids "$NS"); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = portsentry ] && n=$((n + 1))
    done
    echo "$n"
}
init start >/dev/null 2>&1
rc=$?
check "second start: exit 0, still one daemon" eval '[ $rc -eq 0 ] && [ "$(count_daemons)" = 1 ]'

# ----------------------------------------------------------------- reload
V=$ROOT/var/lib/portsentry
line="1795383542 - 11/22/2026 21:39:02 Host: 203.0.113.99/203.0.113.99 Port: 1 TCP Blocked"
echo "$line" >"$V/portsentry.blocked.tcp"
echo "$line" >"$V/portsentry.blocked.udp"
echo "$line" >"$V/portsentry.history"
echo "203.0.113.77 # added for the reload test" >>"$ROOT/etc/portsentry/portsentry.ignore.static"
pid_before=$(daemon_pid)
msg=$(init reload 2>&1)
rc=$?
check "reload exits 0" [ $rc -eq 0 ]
check "reload with unchanged modes: no mode warning" eval '! grep -q "use restart" <<<"$msg"'
sleep 0.5
check "reload keeps the pid" [ "$(daemon_pid)" = "$pid_before" ]
check "reload clears portsentry.blocked.tcp" [ ! -s "$V/portsentry.blocked.tcp" ]
check "reload clears portsentry.blocked.udp" [ ! -s "$V/portsentry.blocked.udp" ]
check "reload keeps the history" grep -qxF "$line" "$V/portsentry.history"
check "reload rebuilds the ignore file from the static file" listed 203.0.113.77
check "force-reload keeps the pid" eval 'init force-reload >/dev/null && [ "$(daemon_pid)" = "$pid_before" ]'

# A reload cannot change modes: it says so, and works even with an invalid
# /etc/default (the address hooks rely on it).
set_modes tcp ""
msg=$(init reload 2>&1)
rc=$?
check "reload after a mode change: exit 0, same pid, modes kept" \
    eval '[ $rc -eq 0 ] && [ "$(daemon_pid)" = "$pid_before" ] && has_mode tcp && has_mode udp'
check "reload after a mode change: tells to restart" grep -q 'use restart' <<<"$msg"
set_modes bogus udp
check "reload with an invalid mode in /etc/default still reloads" \
    eval 'init reload >/dev/null 2>&1 && [ "$(daemon_pid)" = "$pid_before" ]'
set_modes tcp udp

# Address hooks: a new address appears in the ignore file through a reload.
nsx ip addr add 203.0.113.11/24 dev "$IFACE"
check "if-up.d hook exits 0" quiet inroot env IFACE="$IFACE" MODE=start PHASE=post-up /etc/network/if-up.d/portsentry
check "if-up.d hook adds the new address to the ignore file" listed 203.0.113.11
check "if-up.d hook keeps the pid (reload, not restart)" [ "$(daemon_pid)" = "$pid_before" ]
echo "$line" >"$V/portsentry.blocked.tcp"
inroot env IFACE=lo MODE=start PHASE=post-up /etc/network/if-up.d/portsentry >/dev/null 2>&1
check "if-up.d hook ignores lo (no reload: blocked file kept)" grep -qxF "$line" "$V/portsentry.blocked.tcp"
nsx ip addr add 203.0.113.12/24 dev "$IFACE"
check "ppp ip-up.d hook exits 0" quiet inroot /etc/ppp/ip-up.d/portsentry ppp0 /dev/ttyS0 38400 203.0.113.12 203.0.113.1
check "ppp ip-up.d hook adds the new address to the ignore file" listed 203.0.113.12
check "ppp ip-up.d hook keeps the pid" [ "$(daemon_pid)" = "$pid_before" ]

# ------------------------------------------------------- detection, blocking
# The installed package end to end: with BLOCK_TCP="1" (the shipped
# KILL_ROUTE and KILL_HOSTS_DENY otherwise unchanged), connections from the
# scanner namespace are detected, recorded in 1.2's line format and blocked
# by a blackhole route in the target namespace. UDP keeps the shipped
# BLOCK_UDP="0": recorded, not blocked. A local connection is ignored.
CONF=$ROOT/etc/portsentry/portsentry.conf
sed -i -E 's/^BLOCK_TCP=.*/BLOCK_TCP="1"/' "$CONF"
check "reload with BLOCK_TCP=1" quiet init reload
sleep 0.5
H=$V/portsentry.history
recorded() { # recorded IP PORT PROTO: wait up to 5 s for its history line
    local i
    for i in $(seq 50); do
        grep -qE "^[0-9]+ - [0-9]{2}/[0-9]{2}/[0-9]{4} [0-9:]{8} Host: [^ ]*/$1 Port: $2 $3 Blocked\$" "$H" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# Connections are made with bash's /dev/tcp and /dev/udp, from the host's bash
# inside the namespaces (the chroot is not needed on that side). UDP goes
# first: once the scanner's address has a blackhole route, reverse-path
# filtering may drop its later packets. That order also checks that a host
# whose UDP probe was only logged (BLOCK_UDP=0) is still blocked for its TCP
# probe right after, as 1.2's separate tcp and udp daemons did: one daemon's
# repeat limiting must not swallow the other protocol's response.
nsx timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/1' 2>/dev/null
scanx timeout 3 bash -c 'echo probe >/dev/udp/203.0.113.10/1' 2>/dev/null
check "UDP datagram from 203.0.113.20 to port 1 recorded in the history" recorded 203.0.113.20 1 UDP
check "... not routed away (BLOCK_UDP=0)" eval '! nsx ip route show type blackhole | grep -qw 203.0.113.20'
scanx timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.10/1' 2>/dev/null
check "TCP connect from 203.0.113.20 (UDP hit logged just before) recorded in the history" recorded 203.0.113.20 1 TCP
check "... and in portsentry.blocked.tcp" grep -q "/203.0.113.20 Port: 1 TCP Blocked" "$V/portsentry.blocked.tcp"
check "... and blocked by a blackhole route in the target namespace" \
    eval 'nsx ip route show type blackhole | grep -qw 203.0.113.20'
check "... and by a hosts.deny line" grep -qx "ALL: 203.0.113.20 : DENY" "$ROOT/etc/hosts.deny"
check "connection from 127.0.0.1 (ignore file) not recorded" eval '! grep -q "/127.0.0.1 " "$H"'
scanx timeout 3 bash -c 'exec 3<>/dev/tcp/2001:db8:1::10/1' 2>/dev/null
check "IPv6 TCP connect from 2001:db8:1::20 recorded" recorded 2001:db8:1::20 1 TCP
check "... and blocked by an IPv6 blackhole route" \
    eval 'nsx ip -6 route show type blackhole | grep -qw 2001:db8:1::20'
check "history keeps the line from before the reload" grep -qxF "$line" "$H"

# The shipped nftables example, taken literally from the shipped conf: the
# ruleset from its comment is loaded in the target namespace, its KILL_ROUTE
# line uncommented instead of the ip route one. A second subnet gives the
# scanner fresh addresses (198.51.100.20, 2001:db8:2::20).
awk '/^#   table inet portsentry \{$/ { on = 1 } on { print substr($0, 5) } on && /^#   \}$/ { exit }' \
    "$CONF" >"$ROOT/tmp/portsentry.nft"
check "nft ruleset from the conf's comment loads" quiet nsx chroot "$ROOT" nft -f /tmp/portsentry.nft
sed -i -E -e 's|^KILL_ROUTE="/sbin/ip|#&|' -e 's|^#(KILL_ROUTE=".*nft add element)|\1|' "$CONF"
check "conf now has exactly one active KILL_ROUTE, the nft one" \
    eval '[ "$(grep -c "^KILL_ROUTE=" "$CONF")" = 1 ] && grep -q "^KILL_ROUTE=.*nft" "$CONF"'
check "reload with the nft KILL_ROUTE" quiet init reload
sleep 0.5
in_set() { nsx chroot "$ROOT" nft list set inet portsentry "$1" 2>/dev/null | grep -qw -- "$2"; }
scanx timeout 3 bash -c 'exec 3<>/dev/tcp/198.51.100.10/1' 2>/dev/null
check "TCP connect from 198.51.100.20 recorded" recorded 198.51.100.20 1 TCP
check "... and its address put in the nft set blocked4" in_set blocked4 198.51.100.20
check "... and its next connection dropped by the nft rule" \
    eval '! scanx timeout 2 bash -c "exec 3<>/dev/tcp/198.51.100.10/1" 2>/dev/null'
scanx timeout 3 bash -c 'exec 3<>/dev/tcp/2001:db8:2::10/1' 2>/dev/null
check "IPv6 TCP connect from 2001:db8:2::20 recorded" recorded 2001:db8:2::20 1 TCP
check "... and its address put in the nft set blocked6" in_set blocked6 2001:db8:2::20

# ------------------------------------------------------------------- stop
check "stop exits 0" quiet init stop
check "stop leaves no process" no_daemon
check "stop removes the pid file" [ ! -e "$ROOT$PIDFILE" ]
init status >/dev/null 2>&1
rc=$?
check "status after stop: exit 3 (not running)" [ $rc -eq 3 ]
check "reload when stopped: exit 7" eval 'init reload >/dev/null 2>&1; [ $? -eq 7 ]'
check "stop when stopped: exit 0" quiet init stop
check "start again" quiet init start

# -------------------------------------------------------------- reinstall
echo "# edited by the package test" >>"$ROOT/etc/portsentry/portsentry.conf"
set_modes tcp ""
echo "== apt reinstall"
if inroot apt-get install -y --reinstall --no-install-recommends "$DEB_IN" >"$WORK/reinstall.log" 2>&1; then
    pass "reinstall over itself"
else
    sed 's/^/   /' "$WORK/reinstall.log" | tail -n 30
    fail "reinstall over itself"
fi
check "reinstall keeps the edited conffile" \
    grep -qx '# edited by the package test' "$ROOT/etc/portsentry/portsentry.conf"
check "reinstall keeps /etc/default/portsentry" grep -qx 'UDP_MODE=""' "$ROOT/etc/default/portsentry"
check "daemon runs again after reinstall, with the edited modes" \
    eval 'has_mode tcp && ! has_mode udp'

# A real upgrade (prerm upgrade, postinst configure OLD-VERSION): the same
# package repacked with a higher version.
ver=$(dpkg-deb -f "$DEB" Version)
rm -rf "$WORK/repack"
dpkg-deb -R "$DEB" "$WORK/repack" &&
    sed -i "s/^Version: .*/Version: $ver+test1/" "$WORK/repack/DEBIAN/control" &&
    dpkg-deb -b --root-owner-group "$WORK/repack" "$ROOT/tmp/portsentry-upgrade.deb" >/dev/null
pid_before=$(daemon_pid)
echo "== apt upgrade to $ver+test1"
if inroot apt-get install -y --no-install-recommends /tmp/portsentry-upgrade.deb >"$WORK/upgrade.log" 2>&1 &&
    [ "$(inroot dpkg-query -W -f '${Version}' portsentry)" = "$ver+test1" ]; then
    pass "upgrade from $ver to $ver+test1"
else
    sed 's/^/   /' "$WORK/upgrade.log" | tail -n 30
    fail "upgrade from $ver to $ver+test1"
fi
check "upgrade keeps the edited conffile" \
    grep -qx '# edited by the package test' "$ROOT/etc/portsentry/portsentry.conf"
check "upgrade restarts the daemon (new pid, edited modes)" \
    eval '[ "$(daemon_pid)" != "$pid_before" ] && has_mode tcp && ! has_mode udp'
check "upgrade leaves one daemon" [ "$(count_daemons)" = 1 ]

# DEP 17: an upgrade from a build that shipped the unit under /lib (1.3.0-1)
# to this one (/usr/lib) must not lose the unit. On a merged-/usr system the
# two paths are one file, and dpkg removes the old package's paths after
# unpacking the new one's: it must see that /lib/systemd/system/x is the
# file it has just written (same inode) and keep it. The old build is this
# package repacked with the unit moved back to lib/ and a lower version.
rm -rf "$WORK/oldlayout"
dpkg-deb -R "$DEB" "$WORK/oldlayout" &&
    mkdir -p "$WORK/oldlayout/lib/systemd" &&
    mv "$WORK/oldlayout/usr/lib/systemd/system" "$WORK/oldlayout/lib/systemd/system" &&
    rmdir "$WORK/oldlayout/usr/lib/systemd" &&
    sed -i "s/^Version: .*/Version: ${ver%-*}-1~oldlayout/" "$WORK/oldlayout/DEBIAN/control" &&
    dpkg-deb -b --root-owner-group "$WORK/oldlayout" "$ROOT/tmp/portsentry-oldlayout.deb" >/dev/null
echo "== apt install the /lib layout, then upgrade to /usr/lib"
check "the chroot is merged-/usr (/lib is a link to usr/lib)" [ "$(readlink "$ROOT/lib")" = usr/lib ]
if inroot apt-get install -y --allow-downgrades --no-install-recommends /tmp/portsentry-oldlayout.deb >"$WORK/oldlayout.log" 2>&1 &&
    inroot apt-get install -y --no-install-recommends "$DEB_IN" >"$WORK/newlayout.log" 2>&1; then
    pass "install with the unit in /lib/systemd/system, then upgrade to $ver"
else
    sed 's/^/   /' "$WORK/oldlayout.log" "$WORK/newlayout.log" | tail -n 30
    fail "install with the unit in /lib/systemd/system, then upgrade to $ver"
fi
check "... the units are still there after the upgrade (/usr/lib/systemd/system)" \
    eval '[ -s "$ROOT/usr/lib/systemd/system/portsentry.service" ] && [ -s "$ROOT/usr/lib/systemd/system/portsentry@.service" ]'
check "... and dpkg lists them at /usr/lib only" \
    eval 'inroot dpkg -L portsentry | grep -qx /usr/lib/systemd/system/portsentry.service &&
          ! inroot dpkg -L portsentry | grep -q "^/lib/"'

# ------------------------------------------------------------ remove, purge
echo "== apt remove, then purge"
inroot apt-get remove -y portsentry >"$WORK/remove.log" 2>&1
check "remove stops the daemon" no_daemon
check "remove keeps the conffiles" [ -f "$ROOT/etc/portsentry/portsentry.conf" ]
check "remove makes the init script (a conffile) non-executable" \
    eval '[ -f "$ROOT/etc/init.d/portsentry" ] && [ ! -x "$ROOT/etc/init.d/portsentry" ]'
# Installed again after a remove (dpkg state config-files): preinst makes
# the init script executable again and postinst starts the daemon.
if inroot apt-get install -y --no-install-recommends "$DEB_IN" >"$WORK/reinstall-removed.log" 2>&1; then
    pass "install again after remove"
else
    sed 's/^/   /' "$WORK/reinstall-removed.log" | tail -n 30
    fail "install again after remove"
fi
check "... init script executable again" [ -x "$ROOT/etc/init.d/portsentry" ]
check "... daemon runs again" quiet daemon_pid
inroot apt-get purge -y portsentry >"$WORK/purge.log" 2>&1
check "purge succeeds" eval '! inroot dpkg -s portsentry >/dev/null 2>&1'
check "purge removes /var/lib/portsentry" [ ! -e "$ROOT/var/lib/portsentry" ]
check "purge removes the generated ignore file" [ ! -e "$IGN" ]
check "purge removes /etc/portsentry" [ ! -e "$ROOT/etc/portsentry" ]
check "purge removes /etc/default/portsentry" [ ! -e "$ROOT/etc/default/portsentry" ]
check "purge removes the rc links" eval '! compgen -G "$ROOT/etc/rc?.d/*portsentry" >/dev/null'
check "purge leaves no process" no_daemon

# ---------------------------------------------- a daemon that cannot start
# Under sysvinit, debhelper's default would end postinst with "exit 1" and
# leave the package half-configured. Here an invalid mode makes the init
# script fail: apt must still succeed, the package be installed, and the
# output say that the daemon did not start and where to look.
echo "== apt install with an invalid mode in /etc/default/portsentry"
printf 'TCP_MODE="bogus"\nUDP_MODE="udp"\n' >"$ROOT/etc/default/portsentry"
inroot apt-get install -y --no-install-recommends "$DEB_IN" >"$WORK/install-bogus.log" 2>&1
rc=$?
check "daemon cannot start: apt install still exits 0" [ $rc -eq 0 ]
check "... the package is installed and configured" \
    eval '[ "$(inroot dpkg-query -W -f "\${Status}" portsentry)" = "install ok installed" ]'
check "... the init script's reason is shown (the bad mode)" \
    grep -q 'TCP_MODE="bogus".*not a valid mode' "$WORK/install-bogus.log"
check "... postinst says the daemon did not start and where to look" \
    grep -q 'portsentry: the daemon did not start .*the package is installed anyway' "$WORK/install-bogus.log"
check "... no daemon runs" no_daemon
[ $rc -eq 0 ] || sed 's/^/   /' "$WORK/install-bogus.log" | tail -n 30
inroot apt-get purge -y portsentry >"$WORK/purge-bogus.log" 2>&1
check "... and purge succeeds" eval '! inroot dpkg -s portsentry >/dev/null 2>&1'

summary
