#!/bin/sh
# check.sh: build the scached SELinux policy module, link it into a private
# copy of the full reference policy, and assert what it allows and denies.
#
# Usage: dist/selinux/check.sh
#
#  1. build scached.pp and test/scached_iftest.te (which calls every
#     interface of scached.if, so that each one is expanded and compiled)
#     with the reference policy development Makefile; any warning fails;
#  2. generate and validate the interface documentation (make xml), check
#     that every parameter an interface uses is documented and that the
#     test module calls every interface;
#  3. link both modules into a private copy of the full policy store with
#     expand-check = 1 (Debian ships 0, which skips neverallow checks),
#     never touching /etc/selinux or /var/lib/selinux and never loading
#     anything (semodule -n -p);
#  4. check the file contexts (matchpathcon) and assert the rules on the
#     linked policy (test/check_policy.py: domain transition, socket
#     creation, connectto, descriptors passed both ways, journal, notify,
#     main.cf; no network, no capabilities).
#
# Exit status: 0 when everything passes, or when a tool is missing (a loud
# SKIP on stderr; set SCACHED_REQUIRE_SELINUX=1 to make that a failure);
# 1 when a check fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
start=$(date +%s.%N)

skip() {
	echo "SKIP: $*: the SELinux policy module is NOT checked" >&2
	echo "SKIP: install selinux-policy-dev checkpolicy semodule-utils policycoreutils setools selinux-policy-default libxml2-utils" >&2
	if [ "${SCACHED_REQUIRE_SELINUX:-0}" = 1 ]; then
		exit 1
	fi
	exit 0
}
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

for t in make m4 checkmodule semodule_package semodule sesearch matchpathcon xmllint; do
	command -v "$t" >/dev/null 2>&1 || skip "$t not found"
done
[ -f /usr/share/selinux/devel/Makefile ] || skip "/usr/share/selinux/devel/Makefile not found (selinux-policy-dev)"
store=default
if [ ! -d "/etc/selinux/$store/policy" ]; then
	skip "no $store policy in /etc/selinux (selinux-policy-default)"
fi
# sesearch is a setools script: its interpreter has the setools module.
py=$(sed -n '1s/^#! *//p' "$(command -v sesearch)" | cut -d' ' -f1)
case $py in
*/env) py=python3 ;;
esac
"$py" -c 'import setools' 2>/dev/null || skip "setools not importable by $py"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scached-selinux-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- 1, 2: build, documentation ------------------------------------------
"$here/build.sh" "$tmp/pp" scached.pp scached_iftest.pp xml

# The highest $N an interface uses must be its number of <param> docs.
bad=$(awk '
	/^## *<param / { params++ }
	/^interface\(`/ {
		name = $0; sub(/^interface\(`/, "", name); sub(/'"'"'.*/, "", name)
		inbody = 1; used = 0; next
	}
	inbody && /^'"'"'\)/ {
		if (used != params) printf "%s uses $%d but documents %d parameter(s)\n", name, used, params
		inbody = 0; params = 0; next
	}
	inbody {
		line = $0
		while (match(line, /\$[1-9]/)) {
			n = substr(line, RSTART + 1, 1) + 0
			if (n > used) used = n
			line = substr(line, RSTART + RLENGTH)
		}
	}
' "$here/scached.if")
[ -z "$bad" ] || fail "scached.if: $bad"
interfaces=$(sed -n 's/^interface(`\([a-z0-9_]*\).*/\1/p' "$here/scached.if" | tr '\n' ' ' | sed 's/ $//')
[ -n "$interfaces" ] || fail "no interface found in scached.if"
for i in $interfaces; do
	grep -q "^[[:space:]]*$i(" "$here/test/scached_iftest.te" ||
		fail "test/scached_iftest.te does not call $i: it would never be compiled"
done
echo "ok: every interface documented and called by the test module: $interfaces"

# --- 3: link into a private copy of the full policy ------------------------
# The store is root's alone (0700).
if ! [ -r "/var/lib/selinux/$store/active" ] || ! [ -x "/var/lib/selinux/$store/active" ]; then
	echo "SKIP: /var/lib/selinux/$store/active is not readable (not root?): the module is built but NOT linked into the full policy, its rules NOT checked" >&2
	if [ "${SCACHED_REQUIRE_SELINUX:-0}" = 1 ]; then
		exit 1
	fi
	exit 0
fi
root=$tmp/root
mkdir -p "$root/etc/selinux" "$root/var/lib/selinux"
cp -a "/etc/selinux/$store" "$root/etc/selinux/"
cp -a "/var/lib/selinux/$store" "$root/var/lib/selinux/"
printf 'module-store = direct\nexpand-check = 1\n' >"$root/etc/selinux/semanage.conf"
touch "$tmp/stamp"
status=0
out=$(semodule -n -p "$root" -s "$store" -i "$tmp/pp/scached.pp" -i "$tmp/pp/scached_iftest.pp" 2>&1) || status=$?
# genhomedircon complains about users of the stock seusers missing from
# this host's passwd: not about these modules. Anything else fails.
unexpected=$(printf '%s\n' "$out" | grep -Ev -e '^$' \
	-e '^libsemanage\.add_user: user [^ ]+ not in password file$' || true)
if [ "$status" -ne 0 ] || [ -n "$unexpected" ]; then
	fail "semodule: linking scached.pp and scached_iftest.pp into the $store policy (exit status $status):
$out"
fi
touched=$(find "/etc/selinux/$store" "/var/lib/selinux/$store" -newer "$tmp/stamp" -print 2>/dev/null | head -5)
[ -z "$touched" ] || fail "the system policy store was modified: $touched"
policy=$(find "$root/etc/selinux/$store/policy" -name 'policy.[0-9]*' | sort | tail -1)
[ -n "$policy" ] || fail "semodule produced no kernel policy under $root"
echo "ok: scached.pp and scached_iftest.pp link into the full $store policy with neverallow checks (expand-check = 1)"

# --- 4: file contexts, rules -----------------------------------------------
fc=$root/etc/selinux/$store/contexts/files/file_contexts
expect_fc() { # path mode type
	got=$(matchpathcon -f "$fc" -m "$2" "$1" | awk '{print $2}')
	case $got in
	*:"$3":*) ;;
	*) fail "file context of $1 ($2): $got, want $3" ;;
	esac
}
expect_fc /usr/sbin/scached file scached_exec_t
expect_fc /var/spool/postfix/private/scached sock_file scached_runtime_t
expect_fc /var/spool/postfix/private/smtp sock_file postfix_private_t
expect_fc /var/spool/postfix/private dir postfix_private_t
echo "ok: file contexts: /usr/sbin/scached scached_exec_t, private/scached scached_runtime_t, the rest of private/ unchanged"

"$py" "$here/test/check_policy.py" "$policy"

end=$(date +%s.%N)
echo "ok: dist/selinux/check.sh passed in $(echo "$start $end" | awk '{printf "%.1f", $2 - $1}') s"
