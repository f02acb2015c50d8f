#!/usr/bin/env bash
# test/journald/run.sh — run a command next to a private systemd-journald.
#
#   test/journald/run.sh CMD [ARGS...]
#
# Starts /lib/systemd/systemd-journald in a private mount namespace, with
# tmpfs over /run/systemd, /run/log and /var/log/journal, so that the
# journal socket go-systemd hard-codes (/run/systemd/journal/socket) and the
# journal files belong to this run only. CMD runs inside that namespace:
# what it sends to the journal, and what `journalctl` run by CMD reads back,
# never touch the host's journal. journald is killed (by PID) when CMD ends;
# the mounts vanish with the namespace.
#
# Exit status: CMD's; 77 (with a "SKIP:" line on stderr) when not root or a
# tool is missing; 1 when journald does not come up.
#
# Environment: SCACHED_JOURNALD (default /lib/systemd/systemd-journald).
# CMD gets SCACHED_JOURNALD_PID, the PID of the private journald.
#
# Reading back inside CMD: there is no _SYSTEMD_UNIT without systemd, so
# filter by SYSLOG_IDENTIFIER=, _PID= or a custom field, e.g.
#   journalctl --sync; journalctl -o json --no-pager SYSLOG_IDENTIFIER=postfix/scache
# (journalctl --sync returns once everything sent before it is stored).
#
# Recipe and pitfalls: /work/shared/reference/testing-under-real-systemd.md
# section 3. Never pass journald an argument: `systemd-journald --help`
# starts a journald for a journal namespace named "--help" on the host.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

journald=${SCACHED_JOURNALD:-/lib/systemd/systemd-journald}

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: $0 needs root (mount namespace, tmpfs mounts)" >&2
    exit 77
fi
for tool in unshare mount journalctl; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $0 needs $tool" >&2
        exit 77
    fi
done
if [[ ! -x $journald ]]; then
    echo "SKIP: $0 needs $journald (package systemd)" >&2
    exit 77
fi

# Re-exec inside a private mount namespace. Private propagation keeps the
# mounts below from showing up on the host (and the host's from leaking in).
if [[ -z ${SCACHED_JOURNALD_NS:-} ]]; then
    # Root without CAP_SYS_ADMIN (an unprivileged container) cannot.
    if ! unshare --mount --propagation private true 2>/dev/null; then
        echo "SKIP: $0: unshare --mount is not permitted here" >&2
        exit 77
    fi
    export SCACHED_JOURNALD_NS=$$
    exec unshare --mount --propagation private -- "$BASH" "$(realpath "$0")" "$@"
fi
unset SCACHED_JOURNALD_NS

# A missing mount point is created on the host's file system (the namespace
# shares it); /run is volatile, so that is harmless there. /var/log/journal
# is NOT created: its existence makes the host's journald keep persistent
# logs. Without it this journald (Storage=volatile) never looks at /var.
for dir in /run/systemd /run/log; do
    [[ -d $dir ]] || mkdir -p "$dir"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$dir"
done
if [[ -d /var/log/journal ]]; then
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /var/log/journal
fi

# Configuration through a drop-in in /run (now our tmpfs): /etc untouched.
mkdir -p /run/systemd/journald.conf.d
cat >/run/systemd/journald.conf.d/90-scached-test.conf <<'EOF'
[Journal]
Storage=volatile
ReadKMsg=no
RateLimitBurst=0
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
EOF

jlog=/run/systemd/scached-test-journald.log
"$journald" </dev/null >"$jlog" 2>&1 &
jpid=$!
trap 'kill -TERM "$jpid" 2>/dev/null || true; wait "$jpid" 2>/dev/null || true' EXIT

# journald binds its sockets itself when none are passed; wait for the
# native one (< 20 ms measured), giving up after 5 s.
for ((i = 0; i < 1000; i++)); do
    [[ -S /run/systemd/journal/socket ]] && break
    if ! kill -0 "$jpid" 2>/dev/null; then
        echo "$0: systemd-journald exited:" >&2
        cat "$jlog" >&2
        exit 1
    fi
    sleep 0.005
done
if [[ ! -S /run/systemd/journal/socket ]]; then
    echo "$0: no /run/systemd/journal/socket after 5 s:" >&2
    cat "$jlog" >&2
    exit 1
fi

export SCACHED_JOURNALD_PID=$jpid
rc=0
"$@" || rc=$?
exit "$rc"
