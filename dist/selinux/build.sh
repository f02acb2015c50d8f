#!/bin/sh
# build.sh: build the scached policy module (and, on request, the module
# that calls every interface, and the interface documentation) with the
# reference policy development Makefile, treating any warning as an error.
#
# Usage: dist/selinux/build.sh OUTDIR TARGET...
#
#   TARGET  scached.pp          the module (copied to OUTDIR)
#           scached_iftest.pp   test/scached_iftest.te, which calls every
#                               interface of scached.if (copied to OUTDIR)
#           xml                 the documentation of scached.if, generated
#                               and validated against the policy DTD
#
# The development Makefile treats every subdirectory of its working
# directory as a policy layer and every *.te as a module, so this builds
# in a fresh temporary directory that holds only the module files. It
# prints only its own status lines; any other output of the build (m4,
# checkmodule, segenxml and xmllint warnings and errors) is shown and makes
# it fail.
#
# Exit status: 0 when every target built cleanly, 1 otherwise.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
devel=${SELINUX_DEVEL_MAKEFILE:-/usr/share/selinux/devel/Makefile}

if [ $# -lt 2 ]; then
	echo "usage: $0 OUTDIR TARGET..." >&2
	exit 2
fi
out=$1
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ ! -f "$devel" ]; then
	echo "FAIL: $devel not found (package selinux-policy-dev)" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/scached-selinux-build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

cp "$here/scached.te" "$here/scached.if" "$here/scached.fc" "$work/"
pps=
for t in "$@"; do
	case $t in
	scached.pp) pps="$pps $t" ;;
	scached_iftest.pp)
		cp "$here/test/scached_iftest.te" "$work/"
		pps="$pps $t"
		;;
	xml) ;;
	*)
		echo "$0: unknown target $t" >&2
		exit 2
		;;
	esac
done

# A clean environment for the inner make: no jobserver or flags of an
# outer make, no "Entering directory" lines, and NAME fixed rather than
# read from /etc/selinux/config (it only names the policy in messages).
status=0
log=$(cd "$work" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	make --no-print-directory -f "$devel" NAME=default "$@" 2>&1) || status=$?

# The development Makefile's own status lines; anything else is a
# warning or an error.
unexpected=$(printf '%s\n' "$log" | grep -Ev \
	-e '^$' \
	-e '^Compiling default [a-z0-9_]+ module$' \
	-e '^Creating default [a-z0-9_]+\.pp policy package$' \
	-e '^Creating policy\.xml$' \
	-e '^rm( -f)? tmp/[a-z0-9_./ -]+$' || true)
if [ "$status" -ne 0 ] || [ -n "$unexpected" ]; then
	echo "FAIL: building $* (exit status $status):" >&2
	printf '%s\n' "$log" >&2
	exit 1
fi

for pp in $pps; do
	cp "$work/$pp" "$out/$pp"
	echo "ok: built $pp with no warnings"
done
case " $* " in
*" xml "*) echo "ok: scached.if documentation is valid policy XML" ;;
esac
