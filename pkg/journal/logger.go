package journal

import (
	"io"
	"os"
	"strconv"

	sdjournal "github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

// Mode selects where a Logger writes its records.
type Mode int

const (
	// JournalAuto (the zero value) writes native journal entries when
	// stderr is connected to journald, and text on stderr otherwise. See
	// New for the rule.
	JournalAuto Mode = iota
	// JournalOff always writes text on stderr.
	JournalOff
	// JournalForce always tries the journal first, whatever stderr is;
	// records the journal refuses still go to stderr. For tests.
	JournalForce
)

// Options configures New. The zero value of each field means the default
// given in its comment.
type Options struct {
	// SyslogName is Postfix's syslog_name ("postfix"). Records are tagged
	// SyslogName + "/scache", as Postfix tags scache(8)'s.
	SyslogName string
	// Verbose enables debug records, like Postfix's -v. Without it Debugf
	// does not even format its arguments.
	Verbose bool
	// Stderr receives the text records, and journal records that could not
	// be sent (os.Stderr).
	Stderr io.Writer
	// Journal selects the output (JournalAuto).
	Journal Mode

	// Test seams; nil means the go-systemd function named.
	stderrIsJournal func() (bool, error)                                      // journal.StderrIsJournalStream
	journalEnabled  func() bool                                               // journal.Enabled
	send            func(string, sdjournal.Priority, map[string]string) error // journal.Send
}

// Logger writes scached's records the way Postfix writes scache(8)'s, to
// the systemd journal or to stderr. It satisfies the server's logger
// interface. It is safe for concurrent use.
type Logger struct {
	log     *logrus.Logger
	journal bool
}

// New returns a Logger configured by opts.
//
// With JournalAuto it writes native journal entries only when both hold,
// checked once here:
//   - stderr is connected to journald: JOURNAL_STREAM is set and its
//     "device:inode" is that of descriptor 2 (systemd.exec(5)), so a
//     service whose stderr is redirected elsewhere, or a child that merely
//     inherited the variable, keeps logging text;
//   - the journal socket /run/systemd/journal/socket accepts a connection
//     (journal.Enabled, which dials on every call, hence only here).
//
// Otherwise, and with JournalOff, it writes Postfix's stderr format:
//
//	postfix/scache[1234]: warning: text
func New(opts Options) *Logger {
	if opts.SyslogName == "" {
		opts.SyslogName = "postfix"
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.stderrIsJournal == nil {
		opts.stderrIsJournal = sdjournal.StderrIsJournalStream
	}
	if opts.journalEnabled == nil {
		opts.journalEnabled = sdjournal.Enabled
	}
	if opts.send == nil {
		opts.send = sdjournal.Send
	}

	ident := opts.SyslogName + "/scache"
	pid := strconv.Itoa(os.Getpid())
	s := &sink{
		ident:  ident,
		pid:    pid,
		prefix: ident + "[" + pid + "]: ",
		stderr: opts.Stderr,
		send:   opts.send,
	}

	lr := logrus.New()
	lr.SetLevel(logrus.InfoLevel)
	if opts.Verbose {
		lr.SetLevel(logrus.DebugLevel)
	}
	l := &Logger{log: lr, journal: useJournal(opts)}
	if l.journal {
		// The hook sends each record, and writes it to stderr itself
		// if the journal refuses it; logrus's own output is unused.
		lr.AddHook(journalHook{s})
		lr.SetFormatter(discardFormatter{})
		lr.SetOutput(io.Discard)
	} else {
		lr.SetFormatter(textFormatter{s})
		lr.SetOutput(opts.Stderr)
	}
	return l
}

// useJournal applies New's rule. It dials the journal socket at most once,
// and only when stderr is the journal.
func useJournal(opts Options) bool {
	switch opts.Journal {
	case JournalForce:
		return true
	case JournalOff:
		return false
	}
	// A malformed JOURNAL_STREAM or a failing fstat(2) counts as "not the
	// journal": text on stderr can never be lost.
	if ok, err := opts.stderrIsJournal(); err != nil || !ok {
		return false
	}
	return opts.journalEnabled()
}

// Journal reports whether l writes native journal entries.
func (l *Logger) Journal() bool { return l.journal }

// Debugf logs a debug record (priority 7, no level prefix) if the Logger is
// Verbose; otherwise it returns without formatting.
func (l *Logger) Debugf(format string, args ...any) { l.log.Debugf(format, args...) }

// Infof logs an informational record (priority 6), Postfix's msg_info().
func (l *Logger) Infof(format string, args ...any) { l.log.Infof(format, args...) }

// Warnf logs "warning: text" (priority 4), Postfix's msg_warn().
func (l *Logger) Warnf(format string, args ...any) { l.log.Warnf(format, args...) }

// Errorf logs "error: text" (priority 3), Postfix's msg_error().
func (l *Logger) Errorf(format string, args ...any) { l.log.Errorf(format, args...) }

// Fatalf logs "fatal: text" (priority 2) and exits with status 1, like
// Postfix's msg_fatal().
func (l *Logger) Fatalf(format string, args ...any) { l.log.Fatalf(format, args...) }

// Statistics logs one interval as Postfix does (see Stats.Lines), one
// informational record per line. Each record also carries the interval's
// counters as journal fields (see Stats.Fields); text output shows only the
// line. When Goroutines or CacheBytes is set, a debug record follows
// (Verbose only) with what is set:
//
//	statistics (scached): goroutines=12 cache_bytes=1048576
//
// so that the figure also reaches stderr; Postfix's lines stay as they
// are. A Zero interval logs nothing.
func (l *Logger) Statistics(s Stats) {
	lines := s.Lines()
	if len(lines) == 0 {
		return
	}
	fields := make(logrus.Fields)
	for k, v := range s.Fields() {
		fields[k] = v
	}
	e := l.log.WithFields(fields)
	for _, line := range lines {
		e.Info(line)
	}
	if s.Goroutines > 0 || s.CacheBytes > 0 {
		text := "statistics (scached):"
		if s.Goroutines > 0 {
			text += " goroutines=" + strconv.Itoa(s.Goroutines)
		}
		if s.CacheBytes > 0 {
			text += " cache_bytes=" + strconv.FormatInt(s.CacheBytes, 10)
		}
		e.Debug(text)
	}
}
