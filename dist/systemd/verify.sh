#!/bin/sh
# verify.sh: check the shipped systemd units with "systemd-analyze verify".
#
# Usage: dist/systemd/verify.sh [SCACHED_BINARY]
#
# systemd-analyze resolves ExecStart= and the units' dependencies on the
# host unless given a root, so this builds a throwaway one: the host's
# stock units, the units from this directory, and at /usr/sbin/scached the
# given binary or a dummy executable. systemd-analyze exits 0 on unknown
# keys and unparsable values and only prints warnings: any output at all
# is a failure here. Then it runs security.sh next to it, which asserts
# the service's "systemd-analyze security --offline=true" exposure level.
#
# Exit status: 0 when the units pass, or when systemd-analyze is missing
# (a loud SKIP on stderr; set SCACHED_REQUIRE_SYSTEMD_ANALYZE=1 to make
# that a failure); 1 when they fail.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
units="scached.socket scached.service"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found: $units NOT verified" >&2
	if [ "${SCACHED_REQUIRE_SYSTEMD_ANALYZE:-0}" = 1 ]; then
		exit 1
	fi
	exit 0
fi

stock=
for d in /usr/lib/systemd/system /lib/systemd/system; do
	if [ -d "$d" ]; then
		stock=$d
		break
	fi
done
if [ -z "$stock" ]; then
	echo "FAIL: no stock unit directory (/usr/lib/systemd/system) to verify against" >&2
	exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/scached-verify.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/usr/lib/systemd" "$root/usr/sbin" "$root/etc/systemd/system"
cp -a "$stock" "$root/usr/lib/systemd/system"
if [ $# -ge 1 ]; then
	cp "$1" "$root/usr/sbin/scached"
else
	printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/scached"
fi
chmod 0755 "$root/usr/sbin/scached"

paths=
for u in $units; do
	cp "$here/$u" "$root/etc/systemd/system/$u"
	paths="$paths $root/etc/systemd/system/$u"
done

status=0
# shellcheck disable=SC2086 # $paths is a list of paths without blanks
out=$(systemd-analyze verify --man=no --root="$root" $paths 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify $units (exit status $status):" >&2
	printf '%s\n' "$out" >&2
	exit 1
fi
echo "ok: systemd-analyze verify $units"

exec sh "$here/security.sh"
