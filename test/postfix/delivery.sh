#!/usr/bin/env bash
# test/postfix/delivery.sh — real Postfix smtp(8)/lmtp(8) deliveries through a
# connection cache server (Postfix's own scache(8), or scached).
#
# Usage:
#   test/postfix/delivery.sh --service NAME --report FILE
#       [--messages N] [--sessions S] [--lmtp] [--server-pid PID]
#       [--stats-file FILE] [--stats-cmd CMD] [--stats-reset-cmd CMD]
#       [--port PORT] [--timeout SECS]
#       [--keep-config]
#
#   --service NAME   connection_cache_service_name Postfix is pointed at.
#                    "scache" = Postfix's own scache(8) (started by master);
#                    anything else (e.g. "scached") must ALREADY listen on
#                    $queue_directory/private/NAME (checked before Postfix
#                    is pointed at it).
#   --messages N     messages to inject (default 500)
#   --sessions S     parallel smtp-source sessions (default 10)
#   --lmtp           deliver with lmtp(8) over a UNIX-domain socket to
#                    smtp-sink -L instead of smtp(8) over TCP
#   --server-pid PID descriptor checks on the cache server process: once the
#                    TTL has passed it holds nothing beyond its baseline but
#                    its client connections (no cached descriptor left), and
#                    after a `postfix reload` ended the clients /proc/PID/fd
#                    is back to the count before the run
#   --stats-file F   statistics lines ("statistics: domain lookup hits=..."
#                    in Postfix's format, any prefix) of the cache server;
#                    read after the run, only what was appended to F during
#                    the run if F existed before it. Default for scache: the
#                    mail log (a `postfix reload` at the end makes scache
#                    dump them).
#   --stats-cmd CMD  shell command run after the run (TTL passed, clients
#                    gone) and before --stats-file is read (e.g. to make
#                    scached dump its statistics)
#   --stats-reset-cmd CMD  shell command run just before injection (Postfix
#                    configured), e.g. to make a long-running server dump and
#                    reset its counters; the statistics must cover exactly
#                    this run, else the lookup-count assertions fail
#   --port PORT      TCP port of smtp-sink in smtp mode (default 2525)
#   --timeout SECS   delivery timeout (default 120)
#   --keep-config    leave Postfix configured/running for inspection
#   --report FILE    key=value report (written also on failure, result=fail)
#
# Assertions: all N messages delivered (status=sent); more than N/2 of them
# over a reused connection (conn_use=); smtp-sink's session count (sessions
# are counted when they END, i.e. at cache expiry) = N - reused; smtp-sink's
# message count = N; no "problem talking to service", "disabling connection
# caching", "connect to private/", fatal or panic in the mail log; for a
# service other than scache nothing logged by postfix/scache[; with
# statistics: domain hits = reused - address hits, one domain lookup per
# delivery, and (smtp) address misses = new connections = domain misses -
# address hits, or (lmtp, UNIX socket) no address lookups and domain misses =
# new connections; the --server-pid descriptor checks above.
#
# Report keys: service mode postfix_version messages sessions delivered
# reused new_connections sink_sessions sink_messages sink_quit max_conn_use
# stats_source stats_lines domain_{hits,miss,success} address_{hits,miss,
# success} max_{domains,addresses,connections} stats_line_N [server_fd_*]
# postfix_started_by_test inject_seconds deliver_seconds runtime_seconds
# maillog sink_output result failures. Compare two with compare.sh.
#
# Exit status: 0 all assertions held; 1 an assertion failed; 2 usage or
# environment error. Needs root and the postfix package (.ci/install-deps).
#
# Side effects (restored on exit): /etc/postfix/main.cf, master.cf (backed up
# and restored byte for byte), Postfix's run state (started -> stopped again;
# running -> reloaded, or restarted when inet_interfaces/inet_protocols had to
# change). THE MAIL QUEUE IS PURGED if it is not empty at the start: run this
# only on a test machine. Everything listens on loopback or UNIX sockets.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

PROG=${0##*/}
SERVICE=""
MESSAGES=500
SESSIONS=10
LMTP=0
SERVER_PID=""
STATS_FILE=""
STATS_CMD=""
STATS_RESET_CMD=""
REPORT=""
SINK_PORT=2525
TIMEOUT=120
KEEP_CONFIG=0
RCPT="rcpt@sink.test"
SENDER="sender@test.example"

die_usage() { echo "$PROG: $*" >&2; sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die_env() { echo "$PROG: ERROR: $*" >&2; exit 2; }
T_START=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }
info() { echo "$PROG: [$(elapsed "$T_START")s] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --service) SERVICE=${2:?}; shift 2 ;;
        --messages) MESSAGES=${2:?}; shift 2 ;;
        --sessions) SESSIONS=${2:?}; shift 2 ;;
        --lmtp) LMTP=1; shift ;;
        --server-pid) SERVER_PID=${2:?}; shift 2 ;;
        --stats-file) STATS_FILE=${2:?}; shift 2 ;;
        --stats-cmd) STATS_CMD=${2:?}; shift 2 ;;
        --stats-reset-cmd) STATS_RESET_CMD=${2:?}; shift 2 ;;
        --report) REPORT=${2:?}; shift 2 ;;
        --port) SINK_PORT=${2:?}; shift 2 ;;
        --timeout) TIMEOUT=${2:?}; shift 2 ;;
        --keep-config) KEEP_CONFIG=1; shift ;;
        -h|--help) sed -n '2,69p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done

[[ -n $SERVICE ]] || die_usage "--service is required"
[[ -n $REPORT ]] || die_usage "--report is required"
[[ $SERVICE =~ ^[A-Za-z0-9._-]+$ ]] || die_usage "bad service name: $SERVICE"
for v in MESSAGES SESSIONS SINK_PORT TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die_usage "--${v,,} must be a positive integer"
done
[[ -z $SERVER_PID || $SERVER_PID =~ ^[1-9][0-9]*$ ]] || die_usage "bad --server-pid"
[[ $(id -u) -eq 0 ]] || die_env "needs root (it reconfigures and starts Postfix)"
for c in postconf postfix postqueue postsuper smtp-sink smtp-source pgrep ss; do
    command -v "$c" >/dev/null || die_env "$c not found (run .ci/install-deps)"
done
[[ -n $(postconf -M postlog/unix-dgram 2>/dev/null) ]] ||
    die_env "master.cf has no postlog service: maillog_file would not work"
if [[ -n $SERVER_PID && ! -d /proc/$SERVER_PID/fd ]]; then
    die_env "--server-pid $SERVER_PID: no such process"
fi

CONFIG_DIR=$(postconf -h config_directory)
QUEUE_DIR=$(postconf -h queue_directory)
if [[ $LMTP -eq 1 ]]; then MODE=lmtp; LOG=/var/log/postfix-test-$SERVICE-lmtp.log
else MODE=smtp; LOG=/var/log/postfix-test-$SERVICE.log; fi
SINK_OUT=${LOG%.log}.sink
# lmtp(8) is chrooted to the queue directory in Debian's master.cf and its cwd
# is the queue directory either way, so the next-hop is a path RELATIVE to the
# queue directory (an absolute path would not exist inside the chroot).
LMTP_DIR_REL=scached-test
LMTP_SOCK_REL=$LMTP_DIR_REL/lmtp-sink.sock
LMTP_SOCK=$QUEUE_DIR/$LMTP_SOCK_REL

if [[ $SERVICE != scache ]]; then
    [[ -S $QUEUE_DIR/private/$SERVICE ]] ||
        die_env "$QUEUE_DIR/private/$SERVICE is not a socket: start the cache server first (a missing socket silently disables caching)"
fi

# One run at a time on a machine: runs share main.cf, the queue, port 25 and
# the sink's port/socket.
LOCK=/run/lock/scached-postfix-delivery.lock
[[ -d /run/lock ]] || LOCK=/tmp/scached-postfix-delivery.lock
exec 9>"$LOCK"
if ! flock -n 9; then
    info "waiting for another delivery.sh run to finish ($LOCK)"
    flock -w 600 9 || die_env "another delivery.sh run holds $LOCK"
fi
T_START=$(date +%s.%N)   # runtime excludes waiting for the lock

# ------------------------------------------------------------------ cleanup
BACKUP=$(mktemp -d /tmp/postfix-delivery.XXXXXX)
cp -p "$CONFIG_DIR/main.cf" "$CONFIG_DIR/master.cf" "$BACKUP/"
WAS_RUNNING=0
postfix status >/dev/null 2>&1 9>&- && WAS_RUNNING=1
ORIG_NET="$(postconf -h inet_interfaces) / $(postconf -h inet_protocols)"
SINK_PID=""
CONFIGURED=0

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local rc=$?
    set +e
    if [[ -n $SINK_PID ]]; then
        kill "$SINK_PID" 2>/dev/null
        wait "$SINK_PID" 2>/dev/null
    fi
    if [[ $KEEP_CONFIG -eq 1 ]]; then
        info "--keep-config: leaving Postfix configured; originals in $BACKUP"
        exit "$rc"
    fi
    cp -p "$BACKUP/main.cf" "$BACKUP/master.cf" "$CONFIG_DIR/"
    if [[ $CONFIGURED -eq 1 ]]; then
        if [[ $WAS_RUNNING -eq 0 ]]; then
            pf stop >/dev/null 2>&1
        elif [[ $ORIG_NET != "loopback-only / ipv4" ]]; then
            pf stop >/dev/null 2>&1; pf start >/dev/null 2>&1
        else
            pf reload >/dev/null 2>&1
        fi
    fi
    rm -rf "${QUEUE_DIR:?}/$LMTP_DIR_REL" "$BACKUP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------------ helpers
# Children must not inherit the lock descriptor (9): a master(8) started here
# would hold the lock for its whole life.
pf() { postfix "$@" 9>&-; }
log_since() { tail -c +$((LOG_OFFSET + 1)) "$LOG" 2>/dev/null || true; }
our_deliveries() { log_since | grep -F "to=<$RCPT>" | grep -F 'status=sent' || true; }
count_lines() { grep -c . || true; }
sink_counters() {   # -> "sess quit mesg" of the last counter record
    tr '\r' '\n' <"$SINK_OUT" 2>/dev/null |
        sed -n 's/^sess=\([0-9]*\) quit=\([0-9]*\) mesg=\([0-9]*\).*/\1 \2 \3/p' | tail -n 1
}
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
CACHE_SOCK=$QUEUE_DIR/private/$SERVICE
client_conns() { ss -xH state established src "$CACHE_SOCK" 2>/dev/null | wc -l; }
# descriptors of the server minus its connections from cache clients, taken
# when two samples agree (clients come and go concurrently)
server_fds_wo_clients() {
    local a b c
    for _ in $(seq 20); do
        a=$(client_conns); b=$(fd_count "$SERVER_PID"); c=$(client_conns)
        [[ $a -eq $c ]] && { echo $((b - a)) "$a" "$b"; return; }
        sleep 0.05
    done
    echo $((b - c)) "$c" "$b"
}
queue_empty() { [[ -z $(postqueue -j 2>/dev/null | head -c 1) ]]; }
seconds_of() {   # Postfix time value -> seconds
    local v=$1
    case $v in
        *s) echo "${v%s}" ;; *m) echo $((${v%m} * 60)) ;; *h) echo $((${v%h} * 3600)) ;;
        *d) echo $((${v%d} * 86400)) ;; *w) echo $((${v%w} * 604800)) ;; *) echo "$v" ;;
    esac
}

# ------------------------------------------------------------------ sink
if [[ $MODE == smtp ]]; then
    if ss -Htln "sport = :$SINK_PORT" | grep -q .; then
        die_env "TCP port $SINK_PORT is already in use (use --port)"
    fi
    smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 256 >"$SINK_OUT" 2>&1 9>&- &
    SINK_PID=$!
    for _ in $(seq 50); do
        ss -Htln "sport = :$SINK_PORT" | grep -q . && break
        sleep 0.1
    done
    ss -Htln "sport = :$SINK_PORT" | grep -q . || die_env "smtp-sink did not start: $(cat "$SINK_OUT")"
else
    rm -rf "${QUEUE_DIR:?}/$LMTP_DIR_REL"
    mkdir -m 0755 "$QUEUE_DIR/$LMTP_DIR_REL"
    smtp-sink -L -c -u nobody "unix:$LMTP_SOCK" 256 >"$SINK_OUT" 2>&1 9>&- &
    SINK_PID=$!
    for _ in $(seq 50); do [[ -S $LMTP_SOCK ]] && break; sleep 0.1; done
    [[ -S $LMTP_SOCK ]] || die_env "smtp-sink did not create $LMTP_SOCK: $(cat "$SINK_OUT")"
    # connect(2) to a UNIX socket needs write permission; lmtp runs as postfix.
    chmod 0666 "$LMTP_SOCK"
fi
kill -0 "$SINK_PID" 2>/dev/null || die_env "smtp-sink exited: $(cat "$SINK_OUT")"

# ------------------------------------------------------------------ postfix
if ! queue_empty; then
    info "WARNING: mail queue not empty, purging it (postsuper -d ALL)"
    postsuper -d ALL >/dev/null 2>&1 || true
fi

: >"$LOG"   # fresh log; postlogd appends (O_APPEND), so truncation is safe
chmod 0600 "$LOG"

settings=(
    "inet_interfaces = loopback-only"
    "inet_protocols = ipv4"
    "mydestination = localhost"
    "mynetworks = 127.0.0.0/8"
    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"
    "smtpd_peername_lookup = no"
    "smtpd_tls_security_level = none"
    "smtp_tls_security_level = none"
    "lmtp_tls_security_level = none"
    "biff = no"
    "relay_transport = relay"
    "maillog_file = $LOG"
    "connection_cache_service_name = $SERVICE"
)
if [[ $MODE == smtp ]]; then
    settings+=(
        "default_transport = smtp"
        "relayhost = [127.0.0.1]:$SINK_PORT"
        # the bare next-hop host: no [], no port
        "smtp_connection_cache_destinations = 127.0.0.1"
        "smtp_connection_cache_on_demand = yes"
    )
    TTL_PARAM=smtp_connection_cache_time_limit
else
    settings+=(
        # default_transport's next-hop wins over relayhost; keep it empty anyway
        "default_transport = lmtp:unix:$LMTP_SOCK_REL"
        "relayhost ="
        # lmtp matches UNIX-domain destinations on the path WITHOUT "unix:"
        "lmtp_connection_cache_destinations = $LMTP_SOCK_REL"
        "lmtp_connection_cache_on_demand = yes"
    )
    TTL_PARAM=lmtp_connection_cache_time_limit
fi
postconf -e "${settings[@]}"
CONFIGURED=1
# Postfix re-reads a main.cf whose mtime is the current second in 0.3 s steps
# until it is older (a guard against half-written files): ~2 s for each of
# the next postconf/postfix commands. We are done writing, so backdate it.
touch -d "@$(( $(date +%s) - 2 ))" "$CONFIG_DIR/main.cf"
TTL=$(seconds_of "$(postconf -h "$TTL_PARAM")")

# scache processes of the previous generation (an earlier test's): they
# exit on the reload below and log their statistics, possibly after the log
# offset is taken (the log is written asynchronously); their lines are not
# this run's.
OLD_SCACHE_PIDS=$(pgrep -x scache | tr '\n' ' ' || true)
PF_OUT=$BACKUP/postfix.out
if [[ $WAS_RUNNING -eq 0 ]] || ! pf status >/dev/null 2>&1; then
    pf start >"$PF_OUT" 2>&1 || die_env "postfix start failed: $(cat "$PF_OUT"; tail -n 5 "$LOG")"
    STARTED_BY_US=1
elif [[ $ORIG_NET != "loopback-only / ipv4" ]]; then
    # inet_interfaces/inet_protocols need stop+start, reload is not enough
    pf stop >/dev/null 2>&1 || true
    pf start >"$PF_OUT" 2>&1 || die_env "postfix restart failed: $(cat "$PF_OUT"; tail -n 5 "$LOG")"
    STARTED_BY_US=0
else
    pf reload >"$PF_OUT" 2>&1 || die_env "postfix reload failed: $(cat "$PF_OUT")"
    STARTED_BY_US=0
fi
# A scache of the previous generation exits (and dumps statistics) on
# reload/stop; let it go before the log offset is taken.
for _ in $(seq 100); do pgrep -x scache >/dev/null || break; sleep 0.1; done
pgrep -x scache >/dev/null && info "WARNING: a scache process is still running before the run"
for _ in $(seq 50); do ss -Htln 'sport = :25' | grep -q 127.0.0.1 && break; sleep 0.1; done
sleep 0.3
LOG_OFFSET=$(stat -c %s "$LOG")
FD_BEFORE=""
if [[ -n $SERVER_PID ]]; then
    read -r FD_BEFORE _ _ <<<"$(server_fds_wo_clients)"
fi
if [[ -n $STATS_RESET_CMD ]]; then
    bash -c "$STATS_RESET_CMD" 9>&- || info "WARNING: --stats-reset-cmd exited non-zero"
fi
if [[ -n $STATS_FILE ]]; then
    STATS_OFFSET=0
    [[ -f $STATS_FILE ]] && STATS_OFFSET=$(stat -c %s "$STATS_FILE")
fi

# ------------------------------------------------------------------ inject
T_INJECT=$(date +%s.%N)
info "$SERVICE/$MODE: injecting $MESSAGES messages with $SESSIONS sessions"
if ! smtp-source -s "$SESSIONS" -m "$MESSAGES" -f "$SENDER" -t "$RCPT" 127.0.0.1:25 >"$BACKUP/source.out" 2>&1; then
    cat "$BACKUP/source.out" >&2
    echo "$PROG: FAIL: smtp-source failed" >&2
    exit 1
fi
INJECT_SECONDS=$(elapsed "$T_INJECT")

# ------------------------------------------------------------------ deliver
delivered=0
empty_since=""
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    delivered=$(our_deliveries | count_lines)
    [[ $delivered -ge $MESSAGES ]] && break
    if queue_empty; then
        # the log (datagrams to postlogd) can lag the queue a little
        [[ -z $empty_since ]] && empty_since=$(date +%s)
        [[ $(( $(date +%s) - empty_since )) -ge 3 ]] && break
    else
        empty_since=""
    fi
    [[ $(date +%s) -ge $deadline ]] && break
    sleep 0.2
done
DELIVER_SECONDS=$(elapsed "$T_INJECT")
info "$SERVICE/$MODE: $delivered/$MESSAGES delivered after ${DELIVER_SECONDS}s"

reused=$(our_deliveries | grep -c 'conn_use=' || true)
max_conn_use=$(our_deliveries | sed -n 's/.*conn_use=\([0-9]*\).*/\1/p' | sort -n | tail -n 1)
max_conn_use=${max_conn_use:-1}
new_conns=$((delivered - reused))

# ------------------------------------------------------------------ expiry
# smtp-sink counts a session when it ENDS; cached sessions end when the cache
# server closes them after the TTL (no QUIT).
sleep $((TTL + 1))
sink=""
for _ in $(seq 50); do
    sink=$(sink_counters)
    [[ -n $sink && ${sink%% *} -eq $new_conns ]] && break
    sleep 0.2
done
read -r sink_sessions sink_quit sink_messages <<<"${sink:-0 0 0}"
info "after expiry: smtp-sink sessions=$sink_sessions (expected $new_conns)"

# No cached descriptor may be left once the TTL has passed: everything the
# server holds beyond its idle baseline must be a connection from a client.
# (smtp(8)/lmtp(8) keep that connection well past ipc_idle: idle Postfix
# daemons block in the accept lock (flock on pid/unix.smtp), so their
# auto_clnt idle timer does not fire until they get the lock; only
# max_idle/reload ends them.)
FD_TTL=""; FD_CLIENTS=""; FD_CACHED=""
if [[ -n $SERVER_PID ]]; then
    for _ in $(seq 15); do
        read -r fds_wo FD_CLIENTS FD_TTL <<<"$(server_fds_wo_clients)"
        FD_CACHED=$((fds_wo - FD_BEFORE))
        [[ $FD_CACHED -eq 0 ]] && break
        sleep 0.2
    done
fi

# Reload: smtp(8)/lmtp(8) processes of the old generation exit at once and
# close their cache client connections; Postfix's scache exits and logs its
# statistics.
[[ -n $SERVER_PID ]] && info "server fds at TTL: $FD_TTL ($FD_CLIENTS client connections, baseline $FD_BEFORE)"
pf reload >/dev/null 2>&1 || info "WARNING: postfix reload failed"

FD_AFTER=""
if [[ -n $SERVER_PID ]]; then
    for _ in $(seq 50); do
        FD_AFTER=$(fd_count "$SERVER_PID")
        [[ $FD_AFTER -eq $FD_BEFORE ]] && break
        sleep 0.2
    done
fi

[[ -n $SERVER_PID ]] && info "server fds after reload: $FD_AFTER"
# ------------------------------------------------------------------ statistics
if [[ -n $STATS_CMD ]]; then
    bash -c "$STATS_CMD" 9>&- || info "WARNING: --stats-cmd exited non-zero"
fi
stats_text=""
if [[ -n $STATS_FILE ]]; then
    STATS_SOURCE=$STATS_FILE
    if [[ -f $STATS_FILE ]]; then
        size=$(stat -c %s "$STATS_FILE")
        [[ $size -lt $STATS_OFFSET ]] && STATS_OFFSET=0
        stats_text=$(tail -c +$((STATS_OFFSET + 1)) "$STATS_FILE" | grep 'statistics: ' || true)
    fi
elif [[ $SERVICE == scache ]]; then
    STATS_SOURCE=maillog
    # scache dumps its statistics when it exits: the reload above ends it.
    for _ in $(seq 100); do
        if ! pgrep -x scache >/dev/null && log_since | grep -q 'postfix/scache\[.*statistics: '; then
            break
        fi
        sleep 0.1
    done
    sleep 0.3
    stats_text=$(log_since | grep 'postfix/scache\[.*statistics: ' || true)
else
    STATS_SOURCE=none
fi

stat_sum() {   # $1 = sed expression extracting one number per line
    local s
    s=$(sed -n "$1" <<<"$stats_text" | awk '{t += $1} END {print t + 0}')
    echo "${s:-0}"
}
stat_max() {
    local s
    s=$(sed -n "$1" <<<"$stats_text" | awk 'BEGIN{m=0} {if ($1 > m) m = $1} END {print m}')
    echo "${s:-0}"
}
rate() { if [[ $(( $1 + $2 )) -gt 0 ]]; then echo $(( $1 * 100 / ($1 + $2) )); else echo 0; fi; }
domain_hits=$(stat_sum 's/.*statistics: domain lookup hits=\([0-9]*\) .*/\1/p')
domain_miss=$(stat_sum 's/.*statistics: domain lookup hits=[0-9]* miss=\([0-9]*\).*/\1/p')
address_hits=$(stat_sum 's/.*statistics: address lookup hits=\([0-9]*\) .*/\1/p')
address_miss=$(stat_sum 's/.*statistics: address lookup hits=[0-9]* miss=\([0-9]*\).*/\1/p')
max_domains=$(stat_max 's/.*statistics: max simultaneous domains=\([0-9]*\).*/\1/p')
max_addresses=$(stat_max 's/.*statistics: max simultaneous domains=[0-9]* addresses=\([0-9]*\).*/\1/p')
max_connections=$(stat_max 's/.*statistics: max simultaneous .* connection=\([0-9]*\).*/\1/p')
stats_lines=$(grep -c 'statistics: ' <<<"$stats_text" || true)

info "statistics: $stats_lines line(s) from $STATS_SOURCE"
# ------------------------------------------------------------------ assertions
failures=()
fail() { failures+=("$*"); echo "$PROG: FAIL: $*" >&2; }

[[ $delivered -eq $MESSAGES ]] ||
    fail "delivered $delivered of $MESSAGES messages (status=sent to <$RCPT>); see $LOG"
[[ $reused -gt $((MESSAGES / 2)) ]] ||
    fail "only $reused of $MESSAGES deliveries reused a cached connection (need > $((MESSAGES / 2)))"
[[ $sink_sessions -eq $new_conns ]] ||
    fail "smtp-sink counted $sink_sessions sessions, expected delivered-reused = $new_conns"
[[ $sink_messages -eq $delivered ]] ||
    fail "smtp-sink counted $sink_messages messages, expected $delivered"

bad=$(log_since | grep -E 'problem talking to service|disabling connection caching|connect to private/|(fatal|panic):' || true)
[[ -z $bad ]] || fail "cache/daemon trouble in $LOG:"$'\n'"$(head -n 10 <<<"$bad")"
if [[ $SERVICE != scache ]]; then
    sc=$(log_since | grep -F 'postfix/scache[' || true)
    for p in $OLD_SCACHE_PIDS; do
        sc=$(grep -vF "postfix/scache[$p]:" <<<"$sc" || true)
    done
    [[ -z $sc ]] || fail "postfix/scache logged while $SERVICE was in use:"$'\n'"$(head -n 5 <<<"$sc")"
fi
if [[ -n $SERVER_PID ]]; then
    [[ $FD_CACHED -eq 0 ]] ||
        fail "server pid $SERVER_PID still holds $FD_CACHED descriptor(s) beyond its $FD_CLIENTS client connection(s) $((TTL + 1))s+ after the last delivery ($FD_TTL open, $FD_BEFORE at start): cached connections not closed at expiry?"
    [[ $FD_AFTER -eq $FD_BEFORE ]] ||
        fail "server pid $SERVER_PID has $FD_AFTER descriptors after the clients went away, $FD_BEFORE before the run"
fi
if [[ $STATS_SOURCE != none ]]; then
    if [[ $stats_lines -eq 0 ]]; then
        fail "no statistics lines found in $STATS_SOURCE"
    else
        # Every delivery asks find_dest first; a miss falls back to find_endp
        # (smtp only; lmtp over UNIX sockets never does address lookups);
        # an address miss means a new connection.
        [[ $domain_hits -eq $((reused - address_hits)) ]] ||
            fail "domain lookup hits=$domain_hits, expected reused-address_hits = $((reused - address_hits))"
        [[ $((domain_hits + domain_miss)) -eq $delivered ]] ||
            fail "domain lookups hits+miss=$((domain_hits + domain_miss)), expected one per delivery = $delivered"
        if [[ $MODE == smtp ]]; then
            [[ $address_miss -eq $new_conns ]] ||
                fail "address lookup miss=$address_miss, expected new connections = $new_conns"
            [[ $((address_hits + address_miss)) -eq $domain_miss ]] ||
                fail "address lookups=$((address_hits + address_miss)), expected one per domain miss = $domain_miss"
        else
            [[ $((address_hits + address_miss)) -eq 0 ]] ||
                fail "lmtp over a UNIX socket made $((address_hits + address_miss)) address lookups, expected 0"
            [[ $domain_miss -eq $new_conns ]] ||
                fail "domain lookup miss=$domain_miss, expected new connections = $new_conns"
        fi
    fi
fi

RUNTIME=$(elapsed "$T_START")
result=pass
[[ ${#failures[@]} -eq 0 ]] || result=fail

# ------------------------------------------------------------------ report
{
    echo "service=$SERVICE"
    echo "mode=$MODE"
    echo "postfix_version=$(postconf -h mail_version)"
    echo "messages=$MESSAGES"
    echo "sessions=$SESSIONS"
    echo "delivered=$delivered"
    echo "reused=$reused"
    echo "new_connections=$new_conns"
    echo "sink_sessions=$sink_sessions"
    echo "sink_messages=$sink_messages"
    echo "sink_quit=$sink_quit"
    echo "max_conn_use=$max_conn_use"
    echo "stats_source=$STATS_SOURCE"
    echo "stats_lines=$stats_lines"
    echo "domain_hits=$domain_hits"
    echo "domain_miss=$domain_miss"
    echo "domain_success=$(rate "$domain_hits" "$domain_miss")"
    echo "address_hits=$address_hits"
    echo "address_miss=$address_miss"
    echo "address_success=$(rate "$address_hits" "$address_miss")"
    echo "max_domains=$max_domains"
    echo "max_addresses=$max_addresses"
    echo "max_connections=$max_connections"
    i=0
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        i=$((i + 1))
        echo "stats_line_$i=statistics: ${line#*statistics: }"
    done <<<"$stats_text"
    if [[ -n $SERVER_PID ]]; then
        echo "server_fd_before=$FD_BEFORE"
        echo "server_fd_at_ttl=$FD_TTL"
        echo "server_client_conns_at_ttl=$FD_CLIENTS"
        echo "server_cached_fds_at_ttl=$FD_CACHED"
        echo "server_fd_after=$FD_AFTER"
    fi
    echo "postfix_started_by_test=$STARTED_BY_US"
    echo "inject_seconds=$INJECT_SECONDS"
    echo "deliver_seconds=$DELIVER_SECONDS"
    echo "runtime_seconds=$RUNTIME"
    echo "maillog=$LOG"
    echo "sink_output=$SINK_OUT"
    echo "result=$result"
    echo "failures=${#failures[@]}"
} >"$REPORT"

summary="$SERVICE/$MODE: delivered=$delivered/$MESSAGES reused=$reused sink_sessions=$sink_sessions max_conn_use=$max_conn_use domain=$domain_hits/$domain_miss address=$address_hits/$address_miss runtime=${RUNTIME}s"
if [[ $result == pass ]]; then
    echo "PASS: $summary"
    exit 0
fi
echo "FAIL: $summary (${#failures[@]} failed assertion(s), report $REPORT)" >&2
exit 1
