#!/usr/bin/env bash
# test/soak/run.sh — the soak behind `make soak` (root; never part of make test).
#
#   test/soak/run.sh                      10 minutes, writes docs/soak.{md,csv,png}
#   SOAK_DURATION=60s test/soak/run.sh    smoke run, writes /tmp/scached-soak/
#   SOAK_RACE=1 test/soak/run.sh          scached built with -race (a report
#                                         makes it exit 66: the soak fails);
#                                         writes /tmp/scached-soak/
#
# Starts the real scached on a private socket, its stderr connected to a
# private systemd-journald (test/journald/run.sh, as under systemd), with
#
#   connection_cache_ttl_limit=2s            expiry churn
#   connection_cache_status_update_time=5s   a statistics record every 5 s,
#                                            carrying SCACHED_GOROUTINES
#
# and drives it with cmd/scache-bench's realistic workload at a moderate,
# rate-limited load (SOAK_CLIENTS=6 clients, SOAK_RATE=1500 deliveries/s
# together) over SOAK_DESTS=20000 destinations drawn with zipf exponent
# SOAK_ZIPF=0.6: popular destinations are found again (handed back), the
# long tail is not and expires, so that about half of all saves end by
# expiry. Every 5 s it samples scached's descriptors (/proc/PID/fd), RSS
# (VmRSS) and threads; goroutines and the peak of cached sessions come from
# the statistics record of the same interval in the journal.
#
# It fails (exit 1, printing the series) unless, after the warm-up
# (SOAK_WARMUP, default 60s or a fifth of a shorter run):
#   - no series trends upward: the mean of the last third of the samples
#     is at most the mean of the first third plus a tolerance (descriptors
#     10% + 2*clients + 8, RSS 10% + 2 MiB, threads +2, goroutines +2);
#   - descriptors <= cached sessions (peak of the interval and the one
#     before) + 2*clients + 16, and goroutines <= clients + 12 (and at
#     least clients: the field is real);
#   - the generator saw no error, leaked no descriptor of its own, and
#     accounted for every descriptor it saved (-account): saved = handed
#     back + closed by the server, none unaccounted;
#   - after the run scached holds no more descriptors than before it;
#   - the shutdown: a second scached (connection_cache_ttl_limit=1h) takes
#     the same load for SOAK_TERM_DURATION (20s), then the generator sends
#     it SIGTERM (scache-bench -term): every descriptor it held is closed
#     by the shutdown (saved = handed back + closed at shutdown, none
#     unaccounted), no warning, exit status 0.
#
# Output: SOAK_OUT (docs/ for a full run, /tmp/scached-soak otherwise):
# soak.csv (the series), soak.png (gnuplot), soak.md (the command, date,
# figures and the series); the raw files of the last run (samples, the
# journal's records, the generator's JSON) stay in /tmp/scached-soak-raw.
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME with a decimal point
cd "$(dirname "$0")/../.."
ROOT=$PWD

command="make soak"
[[ -n ${SOAK_DURATION:-} ]] && command="SOAK_DURATION=$SOAK_DURATION $command"
[[ -n ${SOAK_RACE:-} ]] && command="SOAK_RACE=$SOAK_RACE $command"
SOAK_DURATION=${SOAK_DURATION:-10m}
SOAK_CLIENTS=${SOAK_CLIENTS:-6}
SOAK_RATE=${SOAK_RATE:-1500}
SOAK_DESTS=${SOAK_DESTS:-20000}
SOAK_ZIPF=${SOAK_ZIPF:-0.6}
SOAK_TTL=${SOAK_TTL:-2}
SOAK_EVERY=5

info() { echo "soak: $*"; }
die() { echo "soak: FAIL: $*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: $0 needs root (a private journald carries the goroutine figures)" >&2
    exit 0
fi

# Re-run inside a private mount namespace next to a private journald.
if [[ -z ${SCACHED_JOURNALD_PID:-} ]]; then
    rc=0
    test/journald/run.sh "$BASH" "$ROOT/test/soak/run.sh" "$@" || rc=$?
    if [[ $rc -eq 77 ]]; then
        echo "SKIP: $0: no private journald here (see above)" >&2
        exit 0
    fi
    exit "$rc"
fi

secs() { # a Go duration (10m, 60s, 1m30s) -> seconds
    python3 -c '
import re, sys
s = sys.argv[1]; t = 0.0
for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", s):
    t += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u]
print(int(t))' "$1"
}
dur_s=$(secs "$SOAK_DURATION")
# The trend check needs 6 samples after the warm-up (a fifth of the run).
[[ $dur_s -ge 45 ]] || die "SOAK_DURATION=$SOAK_DURATION: at least 45s"
if [[ -n ${SOAK_WARMUP:-} ]]; then
    warm_s=$(secs "$SOAK_WARMUP")
else
    warm_s=$((dur_s / 5 < 60 ? dur_s / 5 : 60))
fi
if [[ -z ${SOAK_OUT:-} ]]; then
    if [[ $dur_s -ge 600 && -z ${SOAK_RACE:-} ]]; then SOAK_OUT=$ROOT/docs; else SOAK_OUT=/tmp/scached-soak; fi
fi
mkdir -p "$SOAK_OUT"

work=$(mktemp -d /tmp/scached-soak.XXXXXX)
scached_pid="" gen_pid=""
cleanup() {
    local rc=$?
    set +e
    [[ -n $gen_pid ]] && kill "$gen_pid" 2>/dev/null && wait "$gen_pid" 2>/dev/null
    [[ -n $scached_pid ]] && kill "$scached_pid" 2>/dev/null && wait "$scached_pid" 2>/dev/null
    # The raw files (samples, journal, generator results) of the last
    # run, for a second look.
    rm -rf /tmp/scached-soak-raw
    cp -r "$work" /tmp/scached-soak-raw
    rm -f /tmp/scached-soak-raw/scached /tmp/scached-soak-raw/scache-bench
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

info "building"
# The tree scached is built from: the commit, and the packages with
# uncommitted changes (tracked or not) that go into it.
tree="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=$(git status --porcelain -- cmd/scached pkg 2>/dev/null | awk '{print $2}' |
    grep -v '_test\.go$' | xargs -r -n1 dirname | sort -u | paste -sd, - | sed 's/,/, /g' || true)
[[ -n $dirty ]] && tree+=" plus uncommitted changes in $dirty"
tree+=", $(go env GOVERSION)"
race=()
[[ -n ${SOAK_RACE:-} ]] && race=(-race)
go build "${race[@]}" -o "$work/scached" ./cmd/scached
go build -o "$work/scache-bench" ./cmd/scache-bench
mkdir -p "$work/etc"
sock=$work/scached.sock

# stderr_tail: what scached wrote to its stderr (a panic, a race report).
stderr_tail() {
    journalctl --sync
    echo "soak: scached's stderr:" >&2
    journalctl -o cat --no-pager SYSLOG_IDENTIFIER=scached-soak | tail -60 >&2
}

# start_scached TTL_LIMIT: starts scached on $sock (sets scached_pid).
# systemd-cat connects stdout and stderr to journald and execs the
# command; JOURNAL_STREAM tells scached so, as systemd does for a service.
# The PID is scached's once the two execs are done.
start_scached() {
    rm -f "$sock"
    # shellcheck disable=SC2016 # expanded by that sh
    systemd-cat -t scached-soak sh -c \
        'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM; exec "$0" "$@"' \
        "$work/scached" -c "$work/etc" -listen "$sock" \
        -o "connection_cache_ttl_limit=$1" \
        -o "connection_cache_status_update_time=${SOAK_EVERY}s" \
        -o "scached_authorized_users=root" &
    scached_pid=$!
    for _ in $(seq 250); do
        [[ -S $sock && $(cat /proc/$scached_pid/comm 2>/dev/null) == scached ]] && break
        kill -0 "$scached_pid" 2>/dev/null || die "scached exited at start"
        sleep 0.02
    done
    [[ -S $sock ]] || die "scached did not listen on $sock"
    [[ $(cat /proc/$scached_pid/comm) == scached ]] || die "PID $scached_pid is not scached"
}
start_scached "${SOAK_TTL}s"

sample() { # PHASE: one line of the series
    local now fds rss thr
    now=$EPOCHREALTIME
    fds=$(find "/proc/$scached_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    rss=$(awk '/^VmRSS:/ {print $2}' /proc/$scached_pid/status)
    thr=$(awk '/^Threads:/ {print $2}' /proc/$scached_pid/status)
    echo "$now,$1,$fds,$rss,$thr" >>"$work/proc.csv"
}
echo "time,phase,fds,rss_kib,threads" >"$work/proc.csv"
sample before

cmd=("$work/scache-bench" -socket "$sock" -workload realistic -clients "$SOAK_CLIENTS"
    -rate "$SOAK_RATE" -dests "$SOAK_DESTS" -zipf "$SOAK_ZIPF" -ttl "$SOAK_TTL"
    -warmup 0s -duration "$SOAK_DURATION" -drain 3s -account -pid "$scached_pid"
    -name soak -o "$work/result.json")
info "scached PID $scached_pid; load: ${cmd[*]#"$work/"}"
start=$EPOCHREALTIME
start_us=${start/./}
"${cmd[@]}" >"$work/generator.txt" 2>&1 &
gen_pid=$!

# Sample every SOAK_EVERY seconds, on a fixed grid, while the load runs
# (and its drain: phase "drain" after SOAK_DURATION).
n=0
while kill -0 "$gen_pid" 2>/dev/null; do
    n=$((n + 1))
    next_us=$((start_us + n * SOAK_EVERY * 1000000))
    while kill -0 "$gen_pid" 2>/dev/null; do
        now_us=${EPOCHREALTIME/./}
        ((now_us >= next_us)) && break
        # At most 0.2 s at a time, to notice the generator's end.
        left_us=$((next_us - now_us))
        ((left_us > 200000)) && left_us=200000
        sleep "$(printf '0.%06d' "$left_us")"
    done
    kill -0 "$gen_pid" 2>/dev/null || break
    # The sample at the very end of the load belongs to the drain.
    if (( n * SOAK_EVERY < dur_s )); then sample load; else sample drain; fi
    if (( n % 12 == 0 )); then
        IFS=, read -r _ phase fds rss thr < <(tail -1 "$work/proc.csv")
        info "$((n * SOAK_EVERY))s ($phase): $fds descriptors, RSS $rss KiB, $thr threads"
    fi
done
gen_rc=0
wait "$gen_pid" || gen_rc=$?
gen_pid=""
cat "$work/generator.txt"
sleep 0.5
sample after

kill -TERM "$scached_pid"
rc=0
wait "$scached_pid" || rc=$?
scached_pid=""
[[ $rc -eq 0 ]] || { stderr_tail; die "scached exited with status $rc after SIGTERM"; }
scached_pid=""
journalctl --sync
journalctl -o json --no-pager SYSLOG_IDENTIFIER=postfix/scache >"$work/journal.json"

# The shutdown: a fresh scached whose sessions do not expire for an hour
# takes the same load for SOAK_TERM_DURATION (default 20s); then the
# generator sends it SIGTERM (-term), and every descriptor it still holds
# must be closed by its shutdown (the kept ends hang up), with exit 0.
SOAK_TERM_DURATION=${SOAK_TERM_DURATION:-20s}
start_scached 1h
term_pid=$scached_pid
term_cmd=("$work/scache-bench" -socket "$sock" -workload realistic -clients "$SOAK_CLIENTS"
    -rate "$SOAK_RATE" -dests "$SOAK_DESTS" -zipf "$SOAK_ZIPF" -ttl 3600
    -warmup 0s -duration "$SOAK_TERM_DURATION" -drain 5s -account -term -pid "$term_pid"
    -name soak-term -o "$work/term.json")
info "shutdown: scached PID $term_pid (ttl limit 1h); load: ${term_cmd[*]#"$work/"}"
term_rc=0
"${term_cmd[@]}" >"$work/term.txt" 2>&1 || term_rc=$?
cat "$work/term.txt"
# The generator sent SIGTERM (unless it failed first): scached must exit
# within 10 s, or it is killed and the check fails.
for _ in $(seq 500); do
    state=$(awk '{print $3}' "/proc/$term_pid/stat" 2>/dev/null || true)
    [[ -z $state || $state == Z ]] && break
    sleep 0.02
done
if [[ -n $state && $state != Z ]]; then
    info "shutdown: scached (PID $term_pid) still runs 10 s after the load: killed"
    kill -KILL "$term_pid"
fi
term_exit=0
wait "$term_pid" || term_exit=$?
[[ $term_exit -eq 0 ]] || stderr_tail
scached_pid=""
journalctl --sync
journalctl -o json --no-pager SYSLOG_IDENTIFIER=postfix/scache "_PID=$term_pid" >"$work/term-journal.json"

rc=0
python3 "$ROOT/test/soak/analyze.py" \
    --proc "$work/proc.csv" --journal "$work/journal.json" --result "$work/result.json" \
    --generator-rc "$gen_rc" --start "$start" --duration "$dur_s" --warmup "$warm_s" \
    --term-result "$work/term.json" --term-journal "$work/term-journal.json" \
    --term-rc "$term_rc" --term-exit "$term_exit" \
    --term-load "scache-bench -workload realistic -clients $SOAK_CLIENTS -rate $SOAK_RATE -dests $SOAK_DESTS -zipf $SOAK_ZIPF -ttl 3600 -warmup 0s -duration $SOAK_TERM_DURATION -drain 5s -account -term -pid PID" \
    --clients "$SOAK_CLIENTS" --out "$SOAK_OUT" \
    --command "$command" \
    --load "scache-bench -workload realistic -clients $SOAK_CLIENTS -rate $SOAK_RATE -dests $SOAK_DESTS -zipf $SOAK_ZIPF -ttl $SOAK_TTL -warmup 0s -duration $SOAK_DURATION -drain 3s -account" \
    --daemon "scached -listen SOCK -o connection_cache_ttl_limit=${SOAK_TTL}s -o connection_cache_status_update_time=${SOAK_EVERY}s -o scached_authorized_users=root (stderr on a private journald${SOAK_RACE:+; built with -race})" \
    --tree "$tree" \
    || rc=$?

if command -v gnuplot >/dev/null; then
    term="pngcairo size 1200,900 font 'DejaVu Sans,11'"
    gnuplot -e "set terminal $term" -e "quit" 2>/dev/null || term="png size 1200,900"
    (cd "$SOAK_OUT" && gnuplot -e "set terminal $term" -e "set output 'soak.png'" "$ROOT/test/soak/soak.gp") \
        || info "gnuplot failed: no plot"
else
    info "gnuplot is not installed (apt-get install gnuplot-nox): no plot"
fi
if [[ $rc -ne 0 ]]; then
    die "see above"
fi
info "PASS: $SOAK_OUT/soak.md"
