// Package journal writes scached's log records the way Postfix's scache(8)
// writes its own, so that the log parsers and monitoring written for
// Postfix keep working when scached replaces it.
//
// # Outputs
//
// Under systemd, stderr of a service is a stream to journald. When New sees
// that (JOURNAL_STREAM names descriptor 2, and the journal socket answers),
// each record becomes a native journal entry:
//
//	MESSAGE=warning: bad or missing request parameter
//	PRIORITY=4
//	SYSLOG_IDENTIFIER=postfix/scache
//	SYSLOG_PID=1234
//	SYSLOG_FACILITY=2
//
// MESSAGE is exactly the text Postfix hands to syslog(3): "warning: ",
// "error: " or "fatal: " before the text at those levels, nothing at info
// and debug level; PRIORITY is 7 (debug), 6 (info), 4 (warning), 3 (error)
// or 2 (fatal). SYSLOG_IDENTIFIER is syslog_name + "/scache", so
// "journalctl SYSLOG_IDENTIFIER=postfix/scache" and the classic
// "postfix/scache[1234]: ..." syslog lines look as they do with Postfix. A
// record the journal refuses (journald restarting, socket gone) is written
// to stderr instead, after one warning saying so: no record is lost.
//
// Anywhere else (a terminal, systemd-socket-activate, a test) records are
// Postfix's stderr lines:
//
//	postfix/scache[1234]: warning: bad or missing request parameter
//	postfix/scache[1234]: statistics: start interval Nov 28 13:09:27
//
// As in Postfix, non-printable characters in a message are replaced by '?'.
//
// # Statistics
//
// Stats is one interval of scache(8)'s usage statistics. Logger.Statistics
// logs it as the same up to four info lines as scache.c:scache_status_dump()
// (Stats.Lines gives their text), and adds the counters to each of those
// entries as journal fields, so they can be queried without parsing text:
//
//	journalctl -o json SYSLOG_IDENTIFIER=postfix/scache SCACHE_DEST_MISSES=0
//
// The fields are SCACHE_DEST_HITS, SCACHE_DEST_MISSES, SCACHE_ENDP_HITS,
// SCACHE_ENDP_MISSES, SCACHE_PEAK_DESTS, SCACHE_PEAK_ENDPS,
// SCACHE_PEAK_SESSIONS and SCACHE_INTERVAL_SECONDS, all decimal. scached
// adds two figures of its own, SCACHED_GOROUTINES (Stats.Goroutines) and
// SCACHED_CACHE_BYTES (Stats.CacheBytes), which Postfix's text never
// shows; with Verbose a debug record
// "statistics (scached): goroutines=N cache_bytes=M" carries them to
// stderr as well.
//
// # Engine
//
// A logrus.Logger does the level gating (debug only when Verbose, with the
// arguments then not even formatted), the serialization of writes and the
// exit after Fatalf; this package adds a Formatter for the stderr format
// and a Hook that sends journal entries with go-systemd's journal package.
//
// The test script test/journald/run.sh runs any command next to a private
// systemd-journald; TestRealJournald uses it to read the entries back.
package journal
