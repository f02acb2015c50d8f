#!/usr/bin/env bash
# shellcheck disable=SC2317 # the checks are functions called through check()
# test/systemd/e2e.sh: scached under a real booted systemd, checked as an
# operator would.
#
# Boots Debian 12 with systemd-nspawn (a debootstrap root with Postfix, built
# once at /var/tmp/scached-root and reused; --volatile=overlay keeps it
# clean; --private-network gives the container only lo), installs scached
# into it with "make install DESTDIR=/proc/$LEADER/root", and checks:
#
#   0. the installed layout; systemd-analyze verify and security inside;
#      the socket stays off and creates nothing when the spool is missing
#   1. systemctl start scached.socket: listening, postfix:postfix 0660, the
#      service inactive until the first client
#   2. the first client activates it: MainPID, InvocationID, the
#      descriptor name (FileDescriptorName and LISTEN_FDNAMES)
#   3. requests with real descriptors work; the postfix user may connect,
#      others may not; real Postfix pointed at scached delivers 20 messages
#      to smtp-sink with connection reuse (conn_use=)
#   4. max_idle=1s (a test drop-in, with StartLimitIntervalSec=0): 50
#      activations each exit on idle with Result=success while the socket
#      listens, each with a new MainPID and InvocationID, 3 simultaneous
#      clients each, then 20 clients timed around the idle exit; no client
#      refused, reset or failed
#   5. journalctl -u scached -o json: statistics records with the SCACHE_*
#      fields and Postfix's message text
#   6. systemctl stop logs statistics and closes every cached connection;
#      systemctl restart under load: no request fails (clients reconnect
#      and retry once, as Postfix's do), new MainPID
#   7. from /proc: the dynamic user, no capabilities, NoNewPrivs, seccomp,
#      its own network namespace, RLIMIT_NOFILE soft = hard; Go's raise of a
#      lower soft limit is not killed by the system call filter
#
# and measures the activation latency (client connect to greeting), cold
# (service not running) and warm, hardened and with a drop-in that removes
# the sandbox.
#
# Root only: otherwise it prints "SKIP: ..." and exits 0, as it does when
# systemd-nspawn, debootstrap or nsenter is missing (then set
# SCACHED_REQUIRE_E2E=1 to fail instead). Exits non-zero when any check
# fails. Cold (no root yet) it runs debootstrap (~45 s, needs the Debian
# mirror that apt uses here); warm it takes about 2.5 minutes.
#
# Environment: SCACHED_E2E_ROOT (default /var/tmp/scached-root),
# SCACHED_E2E_ACTIVATIONS (default 50), SCACHED_E2E_KEEP=1 keeps the work
# directory (logs, journal) also on success.
set -uo pipefail

T0=$(date +%s.%N)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${SCACHED_E2E_ROOT:-/var/tmp/scached-root}
ACTIVATIONS=${SCACHED_E2E_ACTIVATIONS:-50}
RACY=20
UNHARDENED_ACTIVATIONS=20
STAMP_WANT="complete v1 bookworm minbase systemd,systemd-sysv,dbus,postfix"
SOCK=/var/spool/postfix/private/scached

skip() {
	echo "SKIP: test/systemd/e2e.sh: $*: scached NOT tested under a booted systemd" >&2
	if [[ ${SCACHED_REQUIRE_E2E:-0} == 1 ]]; then
		exit 1
	fi
	exit 0
}

if [[ $(id -u) -ne 0 ]]; then
	skip "needs root (systemd-nspawn, debootstrap)"
fi
for tool in systemd-nspawn debootstrap nsenter go make gzip; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not found (apt-get install --no-install-recommends systemd-container debootstrap)"
done

# ---------------------------------------------------------------- output

FAILS=0
SUMMARY=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%5.1fs] %s\n' "$(elapsed "$T0")" "$*"; }
pass() {
	say "  ok    $*"
	SUMMARY+=("ok    $*")
}
fail() {
	say "  FAIL  $*"
	SUMMARY+=("FAIL  $*")
	FAILS=$((FAILS + 1))
}
# check DESCRIPTION COMMAND...: pass or fail by COMMAND's status.
check() {
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}
die() {
	fail "$*"
	finish
}

# ---------------------------------------------------------------- the root

WORK=$(mktemp -d /tmp/scached-e2e.XXXXXX)
NSPAWN=
LEADER=

# One run at a time per root: the root is shared, nspawn locks it anyway.
exec 9>"$ROOT.lock"
if ! flock -w 900 9; then
	echo "FAIL: another test/systemd/e2e.sh holds $ROOT.lock" >&2
	exit 1
fi

# A container left behind by an interrupted run (its nspawn PID recorded
# by that run): halt it, by that PID only.
if [[ -s $ROOT.nspawn.pid ]]; then
	old=$(cat "$ROOT.nspawn.pid")
	if [[ -r /proc/$old/cmdline ]] && tr '\0' ' ' <"/proc/$old/cmdline" | grep -q "systemd-nspawn.*--directory=$ROOT "; then
		say "halting the container left by an earlier run (nspawn PID $old)"
		kill -TERM "$old" 2>/dev/null
		for _ in $(seq 50); do [[ -d /proc/$old ]] || break; sleep 0.1; done
		kill -KILL "$old" 2>/dev/null
	fi
	rm -f "$ROOT.nspawn.pid"
fi

# The Debian mirror apt uses here (deb822 .sources or sources.list).
mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print u; exit } }' "$f"
	done | head -n 1 | grep . && return
	grep -hE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^ ]+[[:space:]]+bookworm[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{ print $1; exit }'
}

ROOT_STATE=reused
if [[ $(cat "$ROOT/.scached-e2e-stamp" 2>/dev/null) != "$STAMP_WANT" ]]; then
	ROOT_STATE=built
	url=$(mirror)
	[[ -n $url ]] || die "no bookworm mirror in /etc/apt/sources.list(.d): cannot debootstrap"
	say "building the root $ROOT with debootstrap from $url (once; about 45 s)"
	t=$(now)
	rm -rf "$ROOT" "$ROOT.new"
	mkdir -p "$ROOT.new"
	echo "incomplete" >"$ROOT.new/.scached-e2e-stamp"
	# minbase, no recommends (debootstrap installs none): the recommended
	# libnss-mymachines would edit the host's nsswitch.conf.
	if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,postfix \
		bookworm "$ROOT.new" "$url" >"$WORK/debootstrap.log" 2>&1; then
		tail -n 20 "$WORK/debootstrap.log"
		rm -rf "$ROOT.new"
		die "debootstrap failed (log above; $WORK/debootstrap.log)"
	fi
	rm -f "$ROOT.new"/var/cache/apt/archives/*.deb
	echo "$STAMP_WANT" >"$ROOT.new/.scached-e2e-stamp"
	mv "$ROOT.new" "$ROOT"
	ROOT_BUILD_SECONDS=$(elapsed "$t")
	say "root built in ${ROOT_BUILD_SECONDS}s ($(du -sh "$ROOT" | cut -f1))"
else
	say "reusing the root $ROOT (stamp: $STAMP_WANT)"
fi

# ---------------------------------------------------------------- binaries

say "building scached and the test client (CGO_ENABLED=0, static)"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$WORK/scached" ./cmd/scached &&
	CGO_ENABLED=0 go build -o "$WORK/scached-client" ./test/systemd/client) ||
	die "go build failed"

# ---------------------------------------------------------------- the container

in_ct() {
	timeout --kill-after=5 120 nsenter -t "$LEADER" -a -r -w \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
show() { in_ct systemctl show -p "$2" --value "$1"; }
CT=

halt() {
	if [[ -n $NSPAWN ]] && [[ -d /proc/$NSPAWN ]]; then
		if [[ $FAILS -gt 0 || ${SCACHED_E2E_KEEP:-0} == 1 ]] && [[ -n $LEADER ]]; then
			in_ct journalctl -b --no-pager >"$WORK/journal.txt" 2>&1
		fi
		kill -TERM "$NSPAWN" 2>/dev/null
		for _ in $(seq 100); do [[ -d /proc/$NSPAWN ]] || break; sleep 0.1; done
		kill -KILL "$NSPAWN" 2>/dev/null
		wait "$NSPAWN" 2>/dev/null
	fi
	NSPAWN=
	rm -f "$ROOT.nspawn.pid"
}

finish() {
	halt
	echo
	echo "=== test/systemd/e2e.sh summary ==="
	printf '  %s\n' "${SUMMARY[@]}"
	if [[ -n ${LAT_TABLE:-} ]]; then
		echo
		echo "=== activation latency (client connect to greeting; medians, min-max) ==="
		printf '%s\n' "$LAT_TABLE"
	fi
	echo
	echo "root: $ROOT_STATE${ROOT_BUILD_SECONDS:+ in ${ROOT_BUILD_SECONDS}s}; total $(elapsed "$T0")s; $FAILS failed"
	if [[ $FAILS -gt 0 || ${SCACHED_E2E_KEEP:-0} == 1 ]]; then
		echo "logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	[[ $FAILS -eq 0 ]]
	exit
}
trap 'FAILS=$((FAILS + 1)); SUMMARY+=("FAIL  interrupted"); finish' INT TERM
trap halt EXIT

say "booting Debian 12 in systemd-nspawn"
tboot=$(now)
systemd-nspawn --quiet --boot --directory="$ROOT" --machine=scachedtest \
	--register=no --keep-unit --volatile=overlay --private-network \
	--console=pipe </dev/null >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
echo "$NSPAWN" >"$ROOT.nspawn.pid"

# The container's PID 1: nspawn's child whose innermost PID is 1.
for _ in $(seq 200); do
	for s in /proc/[0-9]*/status; do
		if awk -v p="$NSPAWN" '/^PPid:/ { pp = $2 } /^NSpid:/ { last = $NF; n = NF } END { exit !(pp == p && last == 1 && n > 2) }' "$s" 2>/dev/null; then
			LEADER=${s#/proc/}
			LEADER=${LEADER%/status}
			break 2
		fi
	done
	[[ -d /proc/$NSPAWN ]] || break
	sleep 0.05
done
[[ -n $LEADER ]] || {
	cat "$WORK/boot.log"
	die "the container did not start (boot log above)"
}
CT=/proc/$LEADER/root
# PID 1 may not listen on its private bus yet: ask again until it answers.
for _ in $(seq 100); do
	state=$(in_ct systemctl is-system-running --wait 2>&1)
	[[ $state == *"Failed to connect to bus"* ]] || break
	sleep 0.1
done
BOOT_SECONDS=$(elapsed "$tboot")
if [[ $state == running ]]; then
	pass "booted to 'running' in ${BOOT_SECONDS}s, 0 failed units (container PID 1 is host PID $LEADER)"
else
	fail "booted to '$state' in ${BOOT_SECONDS}s; failed units: $(in_ct systemctl --failed --no-legend | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- 0. install

say "0. make install DESTDIR=$CT"
if grep -Eq '^[[:space:]]*-?include[[:space:]]+dist/install\.mk' "$REPO/Makefile"; then
	mk=(make -C "$REPO")
else
	mk=(make -C "$REPO" -f dist/install.mk)
fi
if "${mk[@]}" install DESTDIR="$CT" BIN="$WORK/scached" >"$WORK/install.log" 2>&1; then
	pass "${mk[*]} install DESTDIR=/proc/\$LEADER/root"
else
	cat "$WORK/install.log"
	die "make install failed (output above)"
fi
install -m 0755 "$WORK/scached-client" "$CT/usr/local/bin/scached-client"
layout_ok() {
	in_ct test -x /usr/sbin/scached &&
		in_ct test -f /usr/lib/systemd/system/scached.socket &&
		in_ct test -f /usr/lib/systemd/system/scached.service &&
		in_ct test -f /lib/systemd/system/scached.service &&
		[[ $(in_ct stat -c %a /usr/lib/systemd/system/scached.service) == 644 ]] &&
		in_ct sh -c 'gzip -dc /usr/share/man/man8/scached.8.gz | grep -q "^\.TH SCACHED 8"' &&
		{ ! command -v man >/dev/null || [[ $(MANPATH=$CT/usr/share/man man -w scached 2>/dev/null) == "$CT/usr/share/man/man8/scached.8.gz" ]]; }
}
check "layout: /usr/sbin/scached, /usr/lib/systemd/system/scached.{socket,service} (= /lib/systemd/system, merged /usr), /usr/share/man/man8/scached.8.gz (man -w finds it)" layout_ok
in_ct systemctl daemon-reload
out=$(in_ct systemd-analyze verify --man=no scached.socket scached.service 2>&1)
check "systemd-analyze verify (booted systemd): no output${out:+: $out}" test -z "$out"
score=$(in_ct systemd-analyze security --no-pager scached.service 2>&1 | sed -n 's/.*Overall exposure level for scached.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security scached.service (running manager): ${score:-none} (at most 0.4)" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 0.4) }'

# The socket with the spool missing: an empty /var/spool in the
# container's mount namespace, Postfix stopped meanwhile.
in_ct systemctl stop postfix.service
in_ct mount -t tmpfs -o mode=0755 e2e-nospool /var/spool
in_ct systemctl start scached.socket
nospool_ok() {
	[[ $(show scached.socket ActiveState) == inactive ]] &&
		[[ $(show scached.socket ConditionResult) == no ]] &&
		[[ -z $(in_ct find /var/spool -mindepth 1) ]]
}
check "spool missing: systemctl start scached.socket skips it (condition failed, not failed) and creates nothing" nospool_ok
in_ct umount /var/spool

# ---------------------------------------------------------------- 1. the socket

say "1. systemctl start scached.socket"
in_ct systemctl start scached.socket
sock_ok() {
	[[ $(show scached.socket ActiveState) == active ]] &&
		[[ $(show scached.socket SubState) == listening ]] &&
		[[ $(in_ct stat -c '%U:%G %a %F' "$SOCK") == "postfix:postfix 660 socket" ]] &&
		[[ $(in_ct stat -c '%U:%G %a' /var/spool/postfix/private) == "postfix:root 700" ]]
}
check "scached.socket active (listening); $SOCK postfix:postfix 0660 in private/ postfix:root 0700" sock_ok
sleep 1
check "scached.service inactive until the first client (1 s later: $(show scached.service ActiveState), MainPID $(show scached.service MainPID))" \
	test "$(show scached.service ActiveState)" = inactive

# ---------------------------------------------------------------- 2. activation

say "2. the first client"
out=$(in_ct scached-client ping -conc 1 -warm 3)
check "first client served: $out" grep -q '^ping ok=4 fail=0' <<<"$out"
MAINPID=$(show scached.service MainPID)
INV=$(show scached.service InvocationID)
fdname=$(show scached.socket FileDescriptorName)
envnames=$(in_ct cat "/proc/$MAINPID/environ" | tr '\0' '\n' | sed -n 's/^LISTEN_FDNAMES=//p')
act_ok() {
	[[ $(show scached.service ActiveState) == active && $(show scached.service SubState) == running ]] &&
		[[ $MAINPID -gt 0 && -n $INV && $fdname == scache && $envnames == scache ]]
}
check "activated: MainPID=$MAINPID InvocationID=$INV FileDescriptorName=$fdname LISTEN_FDNAMES=$envnames" act_ok

# ---------------------------------------------------------------- 7. sandbox

say "7. the hardened service, from /proc/$MAINPID"
status=$(in_ct cat "/proc/$MAINPID/status")
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' <<<"$status"; }
uid=$(field Uid | awk '{ print $1 }')
dyn=$(in_ct readlink /run/systemd/dynamic-uid/direct:scached)
postfix_uid=$(in_ct id -u postfix)
user_ok() {
	[[ $(field Uid) == "$uid $uid $uid $uid" ]] && [[ $(field Gid) == "$uid $uid $uid $uid" ]] &&
		[[ $uid == "$dyn" ]] && [[ $uid -ge 61184 && $uid -le 65519 ]] && [[ $uid != "$postfix_uid" ]] &&
		[[ $(show scached.service UID) == "$uid" ]]
}
check "runs as the dynamic user scached (uid $uid, in 61184-65519; postfix is $postfix_uid; Groups: $(field Groups))" user_ok
caps_ok() {
	local c
	for c in CapInh CapPrm CapEff CapBnd CapAmb; do
		[[ $(field "$c") == 0000000000000000 ]] || return 1
	done
	[[ $(field NoNewPrivs) == 1 && $(field Seccomp) == 2 && $(field Seccomp_filters) -gt $filters1 ]]
}
# nspawn filters system calls of the whole container: count the service's own.
filters1=$(in_ct grep '^Seccomp_filters:' /proc/1/status | awk '{ print $2 }')
check "no capabilities (CapInh/Prm/Eff/Bnd/Amb all 0), NoNewPrivs 1, system call filter (Seccomp 2, $(field Seccomp_filters) filters, the container's PID 1 has $filters1)" caps_ok
netns=$(in_ct readlink "/proc/$MAINPID/ns/net")
netns1=$(in_ct readlink /proc/1/ns/net)
netdevs=$(in_ct nsenter -t "$MAINPID" -n cat /proc/net/dev | awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' | tr '\n' ' ')
check "own network namespace ($netns, PID 1 has $netns1; devices: $netdevs)" \
	test "$netns" != "$netns1" -a "$netdevs" = "lo "
limits=$(in_ct grep '^Max open files' "/proc/$MAINPID/limits" | awk '{ print $4, $5 }')
hard1=$(in_ct grep '^Max open files' /proc/1/limits | awk '{ print $5 }')
want=$((hard1 < 65536 ? hard1 : 65536))
check "RLIMIT_NOFILE soft = hard = $want (LimitNOFILE=65536, capped by PID 1's hard limit $hard1): $limits" \
	test "$limits" = "$want $want"
mounts=$(in_ct cat "/proc/$MAINPID/mountinfo")
# opt MOUNTPOINT OPTION: the topmost mount there has the option.
opt() { awk -v m="$1" -v o="$2" '$5 == m { f = "," $6 "," } END { exit !(index(f, "," o ",")) }' <<<"$mounts"; }
fs_ok() { opt / ro && opt /run ro && opt /var ro && opt /dev/shm ro && opt /tmp noexec && opt /var/tmp noexec; }
check "file system: / /run /var /dev/shm read-only, the private /tmp and /var/tmp noexec (the service's mountinfo)" fs_ok

# ---------------------------------------------------------------- 3. requests, Postfix

say "3. requests through the socket, then real Postfix"
out=$(in_ct scached-client ops)
check "save_endp/find_endp/save_dest/find_dest hand back the very descriptors saved: $out" grep -q '^ops ok' <<<"$out"
out=$(in_ct setpriv --reuid=postfix --regid=postfix --clear-groups scached-client ping)
check "the postfix user may connect: $out" grep -q '^ping ok=1 fail=0' <<<"$out"
out=$(in_ct setpriv --reuid=nobody --regid=nogroup --clear-groups scached-client ping 2>&1)
check "other users may not (nobody: permission denied)" grep -q 'permission denied' <<<"$out"

in_ct postconf -e myhostname=scachedtest.example mydestination=localhost \
	'relayhost=[127.0.0.1]:2525' inet_interfaces=loopback-only inet_protocols=ipv4 \
	smtp_tls_security_level=none smtpd_tls_security_level=none \
	connection_cache_service_name=scached smtp_connection_cache_destinations=127.0.0.1
in_ct systemd-run --quiet --unit=e2e-smtp-sink /usr/sbin/smtp-sink -u postfix 127.0.0.1:2525 64
in_ct systemctl start postfix.service
for _ in $(seq 50); do in_ct grep -q ':09DD 00000000:0000 0A' /proc/net/tcp && break; sleep 0.1; done
out=$(in_ct postfix check 2>&1)
check "postfix check is silent with scached's socket in private/${out:+: $out}" test -z "$out"
# One message after the other: each delivery finds the connection that
# the one before saved in scached (smtp_connection_cache_destinations).
since=$(in_ct date '+%Y-%m-%d %H:%M:%S')
for i in $(seq 20); do
	printf 'From: e2e@scachedtest.example\nSubject: e2e %d\n\nscached e2e\n' "$i" |
		in_ct sendmail -f e2e@scachedtest.example "rcpt$i@example.com"
	for _ in $(seq 40); do
		in_ct postqueue -p | grep -q 'Mail queue is empty' && break
		sleep 0.05
	done
done
for _ in $(seq 120); do
	smtplog=$(in_ct journalctl --no-pager -o cat --since "$since" SYSLOG_IDENTIFIER=postfix/smtp)
	sent=$(grep -c 'status=sent' <<<"$smtplog")
	[[ $sent -ge 20 ]] && break
	sleep 0.25
done
reused=$(grep -c 'conn_use=' <<<"$smtplog")
warned=$(grep -c 'warning' <<<"$smtplog")
check "Postfix (connection_cache_service_name=scached) delivered $sent/20 to smtp-sink, $reused over a connection from the cache (conn_use=), $warned warnings" \
	test "$sent" -eq 20 -a "$reused" -ge 10 -a "$warned" -eq 0
grep 'conn_use=' <<<"$smtplog" | tail -n 1 | sed 's/^/          /'
in_ct systemctl stop postfix.service

# ---------------------------------------------------------------- 6a / 5. stop, statistics

say "6. systemctl stop scached.service (statistics), then 5. the journal"
pid=$(show scached.service MainPID)
in_ct systemctl stop scached.service 2>/dev/null
stop_ok() {
	[[ $(show scached.service ActiveState) == inactive && $(show scached.service Result) == success ]] &&
		[[ $(show scached.socket SubState) == listening ]]
}
check "stopped with Result=success; the socket keeps listening" stop_ok
# journald takes the records asynchronously: poll until the four
# statistics lines of the stop are there (at most 5 s).
for _ in $(seq 50); do
	json=$(in_ct journalctl -u scached.service -o json --no-pager "_PID=$pid")
	stats=$(grep '"MESSAGE":"statistics: ' <<<"$json")
	[[ $(grep -c . <<<"$stats") -ge 4 ]] && break
	sleep 0.1
done
stats_ok() {
	local f
	grep '"MESSAGE":"statistics: domain lookup hits=[0-9]* miss=[0-9]* success=[0-9]*%"' <<<"$stats" |
		grep '"SYSLOG_IDENTIFIER":"postfix/scache"' | grep -q '"_SYSTEMD_UNIT":"scached.service"' || return 1
	for f in DEST_HITS DEST_MISSES ENDP_HITS ENDP_MISSES PEAK_DESTS PEAK_ENDPS PEAK_SESSIONS INTERVAL_SECONDS; do
		grep -q "\"SCACHE_$f\":\"[0-9]*\"" <<<"$stats" || return 1
	done
}
check "journalctl -u scached -o json: $(grep -c . <<<"$stats") statistics records at stop (PID $pid) with SCACHE_* fields, SYSLOG_IDENTIFIER=postfix/scache" stats_ok
in_ct journalctl -u scached.service -o cat --no-pager "_PID=$pid" | grep 'statistics:' | sed 's/^/          /'
hits=$(grep -o '"SCACHE_DEST_HITS":"[0-9]*"' <<<"$stats" | head -n 1 | grep -o '[0-9]*')
byfield=$(in_ct journalctl -u scached.service -o cat --no-pager "_PID=$pid" "SCACHE_DEST_HITS=${hits:-x}" | grep -c 'statistics:')
check "Postfix's $reused reuses are cache hits (SCACHE_DEST_HITS=$hits, one of them the ops client's); journalctl SCACHE_DEST_HITS=$hits finds the $byfield records" \
	test "${hits:-0}" -ge "$reused" -a "$byfield" -ge 1

# ---------------------------------------------------------------- restart policy

# The shipped unit (no drop-in yet): killed more often than the default
# start limit allows (5 in 10 s), it is restarted every time, the socket
# never fails, and a client waiting meanwhile is served.
say "6. the restart policy: SIGKILL 6 times in a row"
crash_bad=0
prev=
for i in $(seq 6); do
	out=$(in_ct scached-client ping)
	pid=$(show scached.service MainPID)
	if ! grep -q '^ping ok=1 fail=0' <<<"$out" || [[ $pid -eq 0 || $pid == "$prev" ]]; then
		say "    crash $i: MainPID $pid: $(tr '\n' ' ' <<<"$out")"
		crash_bad=$((crash_bad + 1))
	fi
	prev=$pid
	in_ct systemctl kill --signal=SIGKILL scached.service
done
out=$(in_ct scached-client ping -timeout 10s)
crash_state="service $(show scached.service ActiveState) NRestarts=$(show scached.service NRestarts), socket $(show scached.socket ActiveState)/$(show scached.socket SubState)"
check "killed 6 times: restarted each time (Restart=on-failure, no start limit), every client served (the last after $(grep -o 'cold_min_us=[0-9]*' <<<"$out" | cut -d= -f2) us); $crash_state" \
	test "$crash_bad" -eq 0 -a "$(grep -c '^ping ok=1 fail=0' <<<"$out")" -eq 1 -a "$crash_state" = "service active NRestarts=6, socket active/running"
in_ct systemctl stop scached.service 2>/dev/null

# ---------------------------------------------------------------- the test drop-in

mkdir -p "$CT/run/systemd/system/scached.service.d"
cat >"$CT/run/systemd/system/scached.service.d/50-e2e.conf" <<'EOF'
# test/systemd/e2e.sh: a short idle time for many activations, a long ttl
# for the stop check; no start limit (the shipped unit has none either).
[Unit]
StartLimitIntervalSec=0
[Service]
ExecStart=
ExecStart=/usr/sbin/scached -o max_idle=1s -o connection_cache_ttl_limit=300s
EOF
in_ct systemctl daemon-reload

out=$(mktemp "$WORK/hold.XXXXXX")
in_ct scached-client hold -k 8 -wait 20s >"$out" 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q '^hold saved' "$out" && break; sleep 0.05; done
pid=$(show scached.service MainPID)
in_ct systemctl stop scached.service 2>/dev/null
wait "$holder"
hold_rc=$?
for _ in $(seq 50); do
	peak=$(in_ct journalctl -u scached.service -o cat --no-pager "_PID=$pid" | grep -o 'connection=[0-9]*' | tail -n 1)
	[[ -n $peak ]] && break
	sleep 0.1
done
check "stop closes every cached connection: $(tr '\n' ' ' <"$out")(statistics at stop: $peak)" \
	test "$hold_rc" -eq 0 -a "$peak" = connection=8

out=$(mktemp "$WORK/restart.XXXXXX")
in_ct scached-client persist -for 4s -every 10ms >"$out.1" 2>&1 &
p1=$!
in_ct scached-client persist -for 4s -every 10ms -fresh >"$out.2" 2>&1 &
p2=$!
sleep 1.5
pid=$(show scached.service MainPID)
in_ct systemctl restart scached.service
newpid=$(show scached.service MainPID)
wait "$p1"
r1=$?
wait "$p2"
r2=$?
check "systemctl restart under load (PID $pid -> $newpid): $(tail -n 1 "$out.1" | tr '\n' ' ')/ $(tail -n 1 "$out.2")" \
	test "$r1" -eq 0 -a "$r2" -eq 0 -a "$newpid" != "$pid" -a "$newpid" -gt 0
grep -h '^retry' "$out.1" "$out.2" | sed 's/^/          /'

# ---------------------------------------------------------------- 4. activations

# wait_inactive: until the service has exited (on idle); inside the
# container, polling every 20 ms, at most ~6 s.
wait_inactive() {
	# shellcheck disable=SC2016 # expanded by the shell in the container
	in_ct sh -c 'i=0; while [ "$(systemctl show -p ActiveState --value scached.service)" != inactive ]; do
		i=$((i + 1)); [ $i -gt 300 ] && exit 1; sleep 0.02; done'
}

# activations N LABEL: N paced activations with 3 simultaneous clients and
# 5 warm ones each; collects cold (first greeting) and warm latencies.
activations() {
	local n=$1 label=$2 i out pid inv prev_pid='' prev_inv='' bad=0 cold=() warm=() t
	t=$(now)
	for i in $(seq "$n"); do
		if ! wait_inactive; then
			say "    activation $i: the service did not exit on idle ($(show scached.service ActiveState))"
			bad=$((bad + 1))
			continue
		fi
		if [[ -n $prev_pid ]]; then
			if [[ $(show scached.service Result) != success || $(show scached.socket SubState) != listening ]]; then
				say "    activation $i: after the idle exit: service Result=$(show scached.service Result), socket $(show scached.socket SubState)"
				bad=$((bad + 1))
			fi
		fi
		out=$(in_ct scached-client ping -conc 3 -warm 5)
		pid=$(show scached.service MainPID)
		inv=$(show scached.service InvocationID)
		if ! grep -q '^ping ok=8 fail=0' <<<"$out" || [[ $pid == "$prev_pid" || $inv == "$prev_inv" || $pid -eq 0 ]]; then
			say "    activation $i: MainPID $pid InvocationID $inv: $(tr '\n' ' ' <<<"$out")"
			bad=$((bad + 1))
		fi
		cold+=("$(grep -o 'cold_min_us=[0-9]*' <<<"$out" | cut -d= -f2)")
		warm+=("$(grep -o 'warm_median_us=[0-9]*' <<<"$out" | cut -d= -f2)")
		prev_pid=$pid
		prev_inv=$inv
	done
	ACT_BAD=$bad
	ACT_SECONDS=$(elapsed "$t")
	LAT_COLD=$(printf '%s\n' "${cold[@]}" | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.1f ms (%.1f-%.1f, n=%d)", a[int((NR + 1) / 2)] / 1000, a[1] / 1000, a[NR] / 1000, NR }')
	LAT_WARM=$(printf '%s\n' "${warm[@]}" | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.2f ms (%.2f-%.2f, n=%d)", a[int((NR + 1) / 2)] / 1000, a[1] / 1000, a[NR] / 1000, NR }')
	say "    $label: $n activations in ${ACT_SECONDS}s; cold $LAT_COLD; warm $LAT_WARM"
}

say "4. $ACTIVATIONS activations with max_idle=1s (hardened)"
activations "$ACTIVATIONS" hardened
HARD_COLD=$LAT_COLD
HARD_WARM=$LAT_WARM
check "$ACTIVATIONS activations: each exited on idle with Result=success, the socket listening; new MainPID and InvocationID each; $((ACTIVATIONS * 8)) clients, none refused, reset or failed" \
	test "$ACT_BAD" -eq 0

say "4. $RACY clients timed around the idle exit (0.90-1.10 s after the previous one)"
racy_bad=0
invs=()
for i in $(seq "$RACY"); do
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.9 + (r % 200) / 1000 }')"
	out=$(in_ct scached-client ping -conc 1)
	if ! grep -q '^ping ok=1 fail=0' <<<"$out"; then
		say "    client $i: $(tr '\n' ' ' <<<"$out")"
		racy_bad=$((racy_bad + 1))
	fi
	invs+=("$(show scached.service InvocationID)")
done
racy_acts=$(printf '%s\n' "${invs[@]}" | sort -u | grep -c .)
sock_state="$(show scached.socket ActiveState) Result=$(show scached.socket Result) NRefused=$(show scached.socket NRefused)"
check "$RACY clients around the idle exit ($racy_acts activations among them): none failed; socket $sock_state" \
	test "$racy_bad" -eq 0 -a "$sock_state" = "active Result=success NRefused=0"

# Go raises a lower soft RLIMIT_NOFILE itself (prlimit64): the filter
# must let it, even with SIGSYS for what it forbids.
cat >"$CT/run/systemd/system/scached.service.d/60-rlimit.conf" <<EOF
[Service]
LimitNOFILE=1024:$want
SystemCallErrorNumber=
EOF
in_ct systemctl daemon-reload
wait_inactive
out=$(in_ct scached-client ping)
pid=$(show scached.service MainPID)
limits=$(in_ct grep '^Max open files' "/proc/$pid/limits" | awk '{ print $4, $5 }')
check "Go raises soft RLIMIT_NOFILE 1024 to $limits under the filter with SIGSYS (no EPERM fallback): not killed, serving" \
	test "$limits" = "$((want - 1)) $want" -a "$(show scached.service ActiveState)" = active
rm -f "$CT/run/systemd/system/scached.service.d/60-rlimit.conf"

# ---------------------------------------------------------------- unhardened

say "latency without the sandbox: a drop-in resetting every sandbox setting"
cat >"$CT/run/systemd/system/scached.service.d/70-unhardened.conf" <<'EOF'
# test/systemd/e2e.sh: scached.service without its sandbox, for comparison.
[Service]
DynamicUser=no
CapabilityBoundingSet=~
NoNewPrivileges=no
PrivateNetwork=no
IPAddressDeny=
RestrictAddressFamilies=
ProtectSystem=no
ReadOnlyPaths=
ProtectHome=no
TemporaryFileSystem=
PrivateTmp=no
NoExecPaths=
PrivateDevices=no
DevicePolicy=auto
PrivateMounts=no
PrivateIPC=no
ProtectProc=default
ProcSubset=all
ProtectKernelTunables=no
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectClock=no
ProtectHostname=no
LockPersonality=no
MemoryDenyWriteExecute=no
RestrictNamespaces=no
RestrictRealtime=no
RestrictSUIDSGID=no
RemoveIPC=no
SystemCallArchitectures=
SystemCallFilter=
SystemCallErrorNumber=
UMask=0022
EOF
in_ct systemctl daemon-reload
unscore=$(in_ct systemd-analyze security --no-pager scached.service 2>&1 | sed -n 's/.*Overall exposure level for scached.service: \([0-9.]*\).*/\1/p')
wait_inactive
in_ct scached-client ping >/dev/null
pid=$(show scached.service MainPID)
status=$(in_ct cat "/proc/$pid/status")
unhard_ok() {
	[[ $(field Uid) == "0 0 0 0" && $(field CapEff) != 0000000000000000 && $(field Seccomp_filters) -eq $filters1 ]] &&
		[[ $(in_ct readlink "/proc/$pid/ns/net") == "$netns1" ]]
}
check "unhardened drop-in in effect: root, CapEff $(field CapEff), no filter of its own, the container's network namespace; exposure $unscore" unhard_ok
activations "$UNHARDENED_ACTIVATIONS" unhardened
check "$UNHARDENED_ACTIVATIONS unhardened activations, none failed" test "$ACT_BAD" -eq 0
LAT_TABLE=$(printf '  %-12s %-34s %s\n' "" "cold (not running)" "warm (running)" \
	"hardened" "$HARD_COLD" "$HARD_WARM" \
	"unhardened" "$LAT_COLD" "$LAT_WARM")

finish
