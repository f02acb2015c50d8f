package journal

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	sdjournal "github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

// syslogFacilityMail is LOG_MAIL >> 3, Postfix's default syslog_facility.
// With it, journald's syslog forwarding and rsyslog's imjournal file the
// records under mail.*, next to the rest of Postfix's.
const syslogFacilityMail = "2"

// sink holds what both outputs need: the tag, and stderr for text records
// and for journal records that could not be sent.
type sink struct {
	ident  string // SYSLOG_IDENTIFIER, "postfix/scache"
	pid    string // SYSLOG_PID, decimal
	prefix string // "postfix/scache[PID]: "
	send   func(string, sdjournal.Priority, map[string]string) error

	mu      sync.Mutex // serializes the hook's writes to stderr
	stderr  io.Writer
	failing atomic.Bool // the last journal send failed
}

// levelText is the text Postfix puts before the message of each level
// (msg_output's level names); debug records are plain msg_info() text.
func levelText(l logrus.Level) string {
	switch l {
	case logrus.WarnLevel:
		return "warning: "
	case logrus.ErrorLevel:
		return "error: "
	case logrus.FatalLevel:
		return "fatal: "
	case logrus.PanicLevel:
		return "panic: "
	}
	return ""
}

// priority maps a level to its syslog priority.
func priority(l logrus.Level) sdjournal.Priority {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return sdjournal.PriCrit
	case logrus.ErrorLevel:
		return sdjournal.PriErr
	case logrus.WarnLevel:
		return sdjournal.PriWarning
	case logrus.InfoLevel:
		return sdjournal.PriInfo
	}
	return sdjournal.PriDebug
}

// message is a record's syslog message text: "warning: text".
func message(l logrus.Level, text string) string {
	return levelText(l) + printable(text)
}

// line is a record in Postfix's stderr format, newline included.
func (s *sink) line(l logrus.Level, text string) []byte {
	return []byte(s.prefix + message(l, text) + "\n")
}

// textFormatter formats records for stderr.
type textFormatter struct{ s *sink }

func (f textFormatter) Format(e *logrus.Entry) ([]byte, error) {
	return f.s.line(e.Level, e.Message), nil
}

// discardFormatter skips formatting when logrus's output is io.Discard.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// journalHook sends every record to the journal, and to stderr instead if
// the journal refuses it. It never returns an error: logrus would only
// print it.
type journalHook struct{ s *sink }

func (journalHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h journalHook) Fire(e *logrus.Entry) error {
	s := h.s
	vars := make(map[string]string, len(e.Data)+3)
	for k, v := range e.Data {
		vars[k] = fmt.Sprint(v)
	}
	vars["SYSLOG_IDENTIFIER"] = s.ident
	vars["SYSLOG_PID"] = s.pid
	vars["SYSLOG_FACILITY"] = syslogFacilityMail
	err := s.send(message(e.Level, e.Message), priority(e.Level), vars)
	if err == nil {
		if s.failing.Load() {
			s.failing.Store(false)
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failing.Swap(true) {
		// Say once per outage why records appear on stderr.
		_, _ = s.stderr.Write(s.line(logrus.WarnLevel,
			fmt.Sprintf("cannot write to the journal: %v; logging to stderr", err)))
	}
	_, _ = s.stderr.Write(s.line(e.Level, e.Message))
	return nil
}

// printable returns text with every byte that is neither printable ASCII
// nor part of a printable UTF-8 character replaced by '?', as Postfix's
// printable() does to every message (msg_output.c:msg_text(); Postfix keeps
// UTF-8 when smtputf8 is enabled). A label from a client can thus neither
// break a record into two lines nor carry terminal escapes.
func printable(text string) string {
	clean := true
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return text
	}
	b := make([]byte, 0, len(text))
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
			i++
		case c >= 0x80:
			r, n := utf8.DecodeRuneInString(text[i:])
			if n > 1 && unicode.IsPrint(r) {
				b = append(b, text[i:i+n]...)
			} else {
				b = append(b, '?')
			}
			i += n
		default:
			b = append(b, '?')
			i++
		}
	}
	return string(b)
}
