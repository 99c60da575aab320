#!/bin/sh
# /etc/network/if-up.d/portsentry: an interface came up (ifupdown, or
# NetworkManager's dispatcher). Reload a running portsentry so the new
# addresses are in its ignore file. A reload, not 1.2's restart: the
# daemon keeps running, only the blocked files are cleared.

# Each reload also empties the blocked files, so skip the events that bring
# no new address: loopback, and ifupdown's "--all" pass after the interfaces
# have had their own calls.
case "${IFACE:-}" in
    lo|--all) exit 0 ;;
esac

[ -x /usr/sbin/portsentry ] || exit 0
[ -x /etc/init.d/portsentry ] || exit 0
# At boot interfaces come up before portsentry starts; start builds the file.
# Instances of portsentry@.service (one daemon per mode) reload too: each
# rebuilds the ignore file. systemctl matches the pattern against running units.
if [ -d /run/systemd/system ]; then
    systemctl --no-block reload 'portsentry@*.service' >/dev/null 2>&1 || true
fi
start-stop-daemon --status --pidfile /run/portsentry.pid --name portsentry || exit 0

if command -v invoke-rc.d >/dev/null 2>&1; then
    invoke-rc.d portsentry reload || true
else
    /etc/init.d/portsentry reload || true
fi
exit 0
