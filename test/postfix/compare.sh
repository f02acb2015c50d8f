#!/usr/bin/env bash
# test/postfix/compare.sh — side-by-side table of two delivery.sh reports,
# typically Postfix's own scache(8) vs scached for the same scenario.
#
# Usage: test/postfix/compare.sh REPORT_A REPORT_B
#
# Prints sessions opened (smtp-sink sessions = new connections), reused
# deliveries and their share, max conn_use, domain/address lookup hits/misses
# and hit rates, peak cached connections, runtime and result. Exit status 0,
# or 2 on a usage error. It judges nothing: delivery.sh asserts.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    sed -n '5p' "$0" | sed 's/^# //' >&2
    exit 2
fi
for f in "$1" "$2"; do
    [[ -r $f ]] || { echo "compare.sh: cannot read $f" >&2; exit 2; }
done

get() {   # get FILE KEY -> value or "-"
    local v
    v=$(sed -n "s/^$2=//p" "$1" | tail -n 1)
    echo "${v:--}"
}
pct() {   # pct PART WHOLE -> "12.3%"
    awk -v p="$1" -v w="$2" 'BEGIN { if (w + 0 > 0) printf "%.1f%%", 100 * p / w; else printf "-" }'
}
hitmiss() {   # hitmiss FILE PREFIX -> "hits/miss (rate)"
    local h m
    h=$(get "$1" "$2_hits"); m=$(get "$1" "$2_miss")
    if [[ $h == - || $(get "$1" stats_lines) == 0 ]]; then echo "-"; return; fi
    echo "$h/$m ($(pct "$h" $((h + m))))"
}

A=$1 B=$2
col() { echo "$(get "$1" service) ($(get "$1" mode))"; }
row() { printf '%-28s %-24s %s\n' "$1" "$2" "$3"; }
stat() {   # a statistics value, "-" without statistics
    if [[ $(get "$1" stats_lines) == 0 ]]; then echo "-"; else get "$1" "$2"; fi
}

[[ $(get "$A" mode) == "$(get "$B" mode)" ]] ||
    echo "note: the reports are of different modes" >&2
[[ $(get "$A" messages) == "$(get "$B" messages)" ]] ||
    echo "note: the reports are of different message counts" >&2

row "" "$(col "$A")" "$(col "$B")"
row "messages (sessions)" "$(get "$A" messages) ($(get "$A" sessions))" "$(get "$B" messages) ($(get "$B" sessions))"
row "delivered" "$(get "$A" delivered)" "$(get "$B" delivered)"
row "sessions opened (sink)" "$(get "$A" sink_sessions)" "$(get "$B" sink_sessions)"
row "reused deliveries" \
    "$(get "$A" reused) ($(pct "$(get "$A" reused)" "$(get "$A" delivered)"))" \
    "$(get "$B" reused) ($(pct "$(get "$B" reused)" "$(get "$B" delivered)"))"
row "max conn_use" "$(get "$A" max_conn_use)" "$(get "$B" max_conn_use)"
row "domain lookups hit/miss" "$(hitmiss "$A" domain)" "$(hitmiss "$B" domain)"
row "address lookups hit/miss" "$(hitmiss "$A" address)" "$(hitmiss "$B" address)"
row "max cached connections" "$(stat "$A" max_connections)" "$(stat "$B" max_connections)"
row "deliver seconds" "$(get "$A" deliver_seconds)" "$(get "$B" deliver_seconds)"
row "runtime seconds" "$(get "$A" runtime_seconds)" "$(get "$B" runtime_seconds)"
row "result" "$(get "$A" result)" "$(get "$B" result)"
