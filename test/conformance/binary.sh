#!/usr/bin/env bash
# test/conformance/binary.sh — run the conformance suite against the real
# scached binary on a socket of its own (no root needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/scached-conform.XXXXXX)
pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/scached" ./cmd/scached
echo "scached_authorized_users = root, $(id -u)" >"$work/main.cf"
go build -o "$work/scache-conform" ./test/conformance/cmd/scache-conform
"$work/scached" -c "$work" -listen "$work/scached.sock" 2>"$work/scached.log" &
pid=$!
for _ in $(seq 100); do [[ -S $work/scached.sock ]] && break; sleep 0.05; done
status=0
"$work/scache-conform" -socket "$work/scached.sock" || status=$?
kill -TERM "$pid"
wait "$pid" || { echo "FAIL: scached exited with $?"; cat "$work/scached.log"; exit 1; }
pid=""
exit $status
