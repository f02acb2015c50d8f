#!/usr/bin/env bash
# test/postfix/e2e.sh — real smtp(8) and lmtp(8) deliveries through scached
# and through Postfix's own scache(8), then both side by side.
#
#   test/postfix/e2e.sh [--messages N] [--sessions S] [--out DIR]
#
# Root only (it reconfigures and restarts this machine's Postfix, purges its
# queue, and restores main.cf/master.cf afterwards): run it on a test
# machine, as CI does. Without root or Postfix it prints SKIP and exits 0.
# scached is built from this checkout and listens on
# /var/spool/postfix/private/scached with Postfix's main.cf; it logs its
# statistics every second so that delivery.sh can add them up.
set -euo pipefail
cd "$(dirname "$0")/../.."

messages=500 sessions=10 out=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --messages) messages=${2:?}; shift 2 ;;
        --sessions) sessions=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        *) echo "usage: $0 [--messages N] [--sessions S] [--out DIR]" >&2; exit 2 ;;
    esac
done

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: $0 needs root (it runs and reconfigures Postfix)"
    exit 0
fi
if ! command -v postfix >/dev/null || ! command -v smtp-sink >/dev/null; then
    echo "SKIP: $0 needs Postfix (run .ci/install-deps)"
    exit 0
fi

work=$(mktemp -d /tmp/scached-e2e.XXXXXX)
out=${out:-$work}
mkdir -p "$out"
sock=/var/spool/postfix/private/scached
pid=""
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -f "$sock"
    rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/scached" ./cmd/scached

run_scached() { # MODE
    local log=$out/scached-$1.log
    : >"$log"
    "$work/scached" -c /etc/postfix -o connection_cache_status_update_time=1s -listen "$sock" 2>"$log" &
    pid=$!
    for _ in $(seq 100); do
        [[ -S $sock ]] && break
        sleep 0.05
    done
    [[ -S $sock ]] || { echo "FAIL: scached did not listen on $sock"; cat "$log"; exit 1; }
    local flags=()
    [[ $1 == lmtp ]] && flags=(--lmtp)
    test/postfix/delivery.sh --service scached "${flags[@]}" --messages "$messages" \
        --sessions "$sessions" --server-pid "$pid" --stats-file "$log" \
        --stats-cmd "sleep 1.5" --report "$out/scached-$1.report"
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    pid=""
    [[ $status -eq 0 ]] || { echo "FAIL: scached exited with $status"; cat "$log"; exit 1; }
}

run_postfix() { # MODE
    local flags=()
    [[ $1 == lmtp ]] && flags=(--lmtp)
    test/postfix/delivery.sh --service scache "${flags[@]}" --messages "$messages" \
        --sessions "$sessions" --report "$out/scache-$1.report"
}

for mode in smtp lmtp; do
    echo "=== $mode: scached"
    run_scached "$mode"
    echo "=== $mode: Postfix's scache"
    run_postfix "$mode"
    echo "=== $mode: side by side"
    test/postfix/compare.sh "$out/scache-$mode.report" "$out/scached-$mode.report"
done
echo "e2e: real $messages-message smtp and lmtp deliveries through scached and Postfix's scache passed"
