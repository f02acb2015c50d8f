#!/bin/sh
# install-check.sh: "make install" and "make uninstall" into a staging
# directory, with the default PREFIX and with PREFIX=/usr/local: every file
# where Debian puts it, with its mode, ExecStart= pointing at the installed
# binary, the man page readable; uninstall leaves no file behind.
# No root needed (DESTDIR). Exit status 0 when all holds, 1 otherwise.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
bad() {
	echo "FAIL: install-check: $*" >&2
	fail=1
}

# A stand-in binary: the rule that builds bin/scached is not exercised here.
printf '#!/bin/sh\nexit 0\n' >"$work/scached"

for prefix in /usr /usr/local; do
	d=$work/root$(echo "$prefix" | tr / _)
	make -s -C "$top" install DESTDIR="$d" PREFIX="$prefix" BIN="$work/scached" >"$work/out" 2>&1 ||
		{ cat "$work/out" >&2; bad "make install PREFIX=$prefix failed"; continue; }
	for f in "sbin/scached 755" "lib/systemd/system/scached.socket 644" \
		"lib/systemd/system/scached.service 644" "share/man/man8/scached.8.gz 644"; do
		set -- $f
		p=$d$prefix/$1
		if [ ! -f "$p" ]; then
			bad "PREFIX=$prefix: $prefix/$1 not installed"
		elif [ "$(stat -c %a "$p")" != "$2" ]; then
			bad "PREFIX=$prefix: $prefix/$1 has mode $(stat -c %a "$p"), want $2"
		fi
	done
	grep -qx "ExecStart=$prefix/sbin/scached" "$d$prefix/lib/systemd/system/scached.service" ||
		bad "PREFIX=$prefix: ExecStart= does not name $prefix/sbin/scached"
	gzip -dc "$d$prefix/share/man/man8/scached.8.gz" | cmp -s - "$top/dist/scached.8" ||
		bad "PREFIX=$prefix: the installed man page is not dist/scached.8"
	if command -v mandoc >/dev/null 2>&1; then
		out=$(mandoc -T lint -W warning "$d$prefix/share/man/man8/scached.8.gz" 2>&1) ||
			bad "PREFIX=$prefix: mandoc -T lint: $out"
	fi
	make -s -C "$top" uninstall DESTDIR="$d" PREFIX="$prefix" >"$work/out" 2>&1 ||
		{ cat "$work/out" >&2; bad "make uninstall PREFIX=$prefix failed"; continue; }
	left=$(find "$d" -type f -o -type l)
	[ -z "$left" ] || bad "PREFIX=$prefix: uninstall left: $left"
done
[ "$fail" -eq 0 ] || exit 1
echo "ok: make install/uninstall with DESTDIR, PREFIX=/usr and /usr/local"
