# dist/install.mk: "make install" and "make uninstall" for scached,
# included by the top Makefile (include dist/install.mk). Usable on its own
# from any directory too: make -f dist/install.mk install BIN=path/to/scached
#
# Layout (Debian's, with the default PREFIX=/usr):
#
#   $(PREFIX)/sbin/scached                      the daemon (0755)
#   $(SYSTEMDUNITDIR)/scached.socket            the units (0644), ExecStart=
#   $(SYSTEMDUNITDIR)/scached.service           pointing at $(SBINDIR)/scached
#   $(PREFIX)/share/man/man8/scached.8.gz       the man page, gzip -9n as
#                                               Debian ships man pages
#
# SYSTEMDUNITDIR defaults to $(PREFIX)/lib/systemd/system, which with
# PREFIX=/usr is the directory Debian 12's systemd.pc names
# (pkg-config --variable=systemdsystemunitdir systemd: /lib/systemd/system;
# /lib is /usr/lib on Debian 12's merged /usr). For a Debian 12 package,
# stage with SYSTEMDUNITDIR=/lib/systemd/system, where dpkg expects it; with
# PREFIX=/usr/local the units go to /usr/local/lib/systemd/system, which
# systemd also reads.
#
# Everything honours DESTDIR (staging) and PREFIX. install builds nothing
# itself beyond $(BIN)'s rule in the top Makefile; uninstall removes what
# install put there and the units' enablement links (systemctl --root
# disable, files only: it does not stop running units), never directories.
# Neither runs "systemctl daemon-reload"; they print what to run.

SCACHED_TOPDIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)

PREFIX         ?= /usr
DESTDIR        ?=
BIN            ?= bin/scached
SBINDIR        ?= $(PREFIX)/sbin
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR         ?= $(PREFIX)/share/man
INSTALL        ?= install
GZIP_MAN       ?= gzip -9n

SCACHED_UNITS  := scached.socket scached.service

.PHONY: install uninstall

install: $(BIN)
	$(INSTALL) -d -m 0755 '$(DESTDIR)$(SBINDIR)' '$(DESTDIR)$(SYSTEMDUNITDIR)' '$(DESTDIR)$(MANDIR)/man8'
	$(INSTALL) -m 0755 '$(BIN)' '$(DESTDIR)$(SBINDIR)/scached'
	set -e; for u in $(SCACHED_UNITS); do \
		sed -e 's|/usr/sbin/scached|$(SBINDIR)/scached|g' '$(SCACHED_TOPDIR)/dist/systemd/'$$u >'$(DESTDIR)$(SYSTEMDUNITDIR)/'$$u.tmp; \
		chmod 0644 '$(DESTDIR)$(SYSTEMDUNITDIR)/'$$u.tmp; \
		mv -f '$(DESTDIR)$(SYSTEMDUNITDIR)/'$$u.tmp '$(DESTDIR)$(SYSTEMDUNITDIR)/'$$u; \
	done
	$(GZIP_MAN) <'$(SCACHED_TOPDIR)/dist/scached.8' >'$(DESTDIR)$(MANDIR)/man8/scached.8.gz.tmp'
	chmod 0644 '$(DESTDIR)$(MANDIR)/man8/scached.8.gz.tmp'
	mv -f '$(DESTDIR)$(MANDIR)/man8/scached.8.gz.tmp' '$(DESTDIR)$(MANDIR)/man8/scached.8.gz'
	@if [ -z '$(DESTDIR)' ]; then \
		echo "scached installed; now: systemctl daemon-reload && systemctl enable --now scached.socket"; \
		echo "then: postconf connection_cache_service_name=scached && postfix reload"; \
	fi

uninstall:
	@if [ -f '$(DESTDIR)$(SYSTEMDUNITDIR)/scached.service' ] && command -v systemctl >/dev/null 2>&1; then \
		echo "systemctl --root='$(or $(DESTDIR),/)' disable $(SCACHED_UNITS)"; \
		systemctl --root='$(or $(DESTDIR),/)' --quiet disable $(SCACHED_UNITS) || true; \
	fi
	rm -f '$(DESTDIR)$(SBINDIR)/scached'
	rm -f $(foreach u,$(SCACHED_UNITS),'$(DESTDIR)$(SYSTEMDUNITDIR)/$(u)')
	rm -f '$(DESTDIR)$(MANDIR)/man8/scached.8.gz'
	@if [ -z '$(DESTDIR)' ]; then \
		echo "scached uninstalled; if it was running: systemctl stop scached.socket scached.service && systemctl daemon-reload"; \
	fi
