package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdjournal "github.com/coreos/go-systemd/v22/journal"
)

// The server's logger interface (pkg/server/logger.go), restated here so
// this package's tests do not depend on the server's.
var _ interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	Statistics(Stats)
} = (*Logger)(nil)

// And what cmd/scached needs besides.
var _ interface {
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Journal() bool
} = (*Logger)(nil)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// sent is one journal.Send call.
type sent struct {
	msg  string
	pri  sdjournal.Priority
	vars map[string]string
}

// fakeJournal records journal.Send calls, failing them while err is set.
type fakeJournal struct {
	mu   sync.Mutex
	err  error
	sent []sent
}

func (j *fakeJournal) send(msg string, pri sdjournal.Priority, vars map[string]string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	j.sent = append(j.sent, sent{msg, pri, vars})
	return nil
}

func (j *fakeJournal) setErr(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.err = err
}

func (j *fakeJournal) records() []sent {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]sent(nil), j.sent...)
}

// newText returns a Logger writing text into the returned buffer.
func newText(verbose bool) (*Logger, *lockedBuffer) {
	var out lockedBuffer
	return New(Options{Verbose: verbose, Stderr: &out, Journal: JournalOff}), &out
}

// newJournal returns a Logger sending to the returned fake journal, and
// writing what it refuses into the returned buffer.
func newJournal(verbose bool) (*Logger, *fakeJournal, *lockedBuffer) {
	var out lockedBuffer
	j := &fakeJournal{}
	l := New(Options{Verbose: verbose, Stderr: &out, Journal: JournalForce, send: j.send})
	return l, j, &out
}

// prefix is the stderr tag of this process with the default syslog_name.
func prefix() string { return fmt.Sprintf("postfix/scache[%d]: ", os.Getpid()) }

func TestStderrFormat(t *testing.T) {
	l, out := newText(true)
	if l.Journal() {
		t.Fatal("JournalOff logger writes to the journal")
	}
	l.Debugf("debug %s", "one")
	l.Infof("info %d", 2)
	l.Warnf("bad or missing request parameter")
	l.Errorf("error %q", "three")
	l.Infof("100%% literal")
	p := prefix()
	want := p + "debug one\n" +
		p + "info 2\n" +
		p + "warning: bad or missing request parameter\n" +
		p + "error: error \"three\"\n" +
		p + "100% literal\n"
	if got := out.String(); got != want {
		t.Errorf("stderr =\n%s\nwant\n%s", got, want)
	}
}

func TestSyslogName(t *testing.T) {
	var out lockedBuffer
	j := &fakeJournal{}
	New(Options{SyslogName: "postfix-out", Stderr: &out, Journal: JournalOff}).Warnf("w")
	New(Options{SyslogName: "postfix-out", Stderr: &out, Journal: JournalForce, send: j.send}).Infof("i")
	want := fmt.Sprintf("postfix-out/scache[%d]: warning: w\n", os.Getpid())
	if got := out.String(); got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if r := j.records(); len(r) != 1 || r[0].vars["SYSLOG_IDENTIFIER"] != "postfix-out/scache" {
		t.Errorf("journal records = %+v, want SYSLOG_IDENTIFIER=postfix-out/scache", r)
	}
}

// countingStringer counts how often it is formatted.
type countingStringer struct{ n *int }

func (c countingStringer) String() string { *c.n++; return "label" }

func TestVerboseGating(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		t.Run(fmt.Sprint("verbose=", verbose), func(t *testing.T) {
			var formatted int
			arg := countingStringer{&formatted}

			tl, out := newText(verbose)
			tl.Debugf("find_dest %s", arg)
			jl, j, jout := newJournal(verbose)
			jl.Debugf("find_dest %s", arg)

			var wantText string
			var wantSent []sent
			wantFormatted := 0
			if verbose {
				wantText = prefix() + "find_dest label\n"
				wantSent = []sent{{"find_dest label", sdjournal.PriDebug, baseVars()}}
				wantFormatted = 2
			}
			if got := out.String(); got != wantText {
				t.Errorf("text: %q, want %q", got, wantText)
			}
			if got := j.records(); !reflect.DeepEqual(got, wantSent) {
				t.Errorf("journal: %+v, want %+v", got, wantSent)
			}
			if got := jout.String(); got != "" {
				t.Errorf("journal logger wrote to stderr: %q", got)
			}
			if formatted != wantFormatted {
				t.Errorf("arguments formatted %d times, want %d", formatted, wantFormatted)
			}
		})
	}
}

// baseVars are the fields of every journal record of this process.
func baseVars() map[string]string {
	return map[string]string{
		"SYSLOG_IDENTIFIER": "postfix/scache",
		"SYSLOG_PID":        fmt.Sprint(os.Getpid()),
		"SYSLOG_FACILITY":   "2",
	}
}

func TestJournalLevels(t *testing.T) {
	//lint:ignore SA4006 Fatalf returns here: the test replaces logrus's ExitFunc
	l, j, out := newJournal(true)
	var exits []int
	l.log.ExitFunc = func(code int) { exits = append(exits, code) }
	l.Debugf("debug %d", 7)
	l.Infof("info %d", 6)
	l.Warnf("warn %d", 4)
	l.Errorf("error %d", 3)
	l.Fatalf("fatal %d", 2)
	want := []sent{
		{"debug 7", sdjournal.PriDebug, baseVars()},
		{"info 6", sdjournal.PriInfo, baseVars()},
		{"warning: warn 4", sdjournal.PriWarning, baseVars()},
		{"error: error 3", sdjournal.PriErr, baseVars()},
		{"fatal: fatal 2", sdjournal.PriCrit, baseVars()},
	}
	if got := j.records(); !reflect.DeepEqual(got, want) {
		t.Errorf("journal records:\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(exits, []int{1}) {
		t.Errorf("exit codes %v, want [1]", exits)
	}
	if got := out.String(); got != "" {
		t.Errorf("stderr %q, want nothing", got)
	}
	if !l.Journal() {
		t.Error("JournalForce logger does not write to the journal")
	}
}

func TestFatalfText(t *testing.T) {
	//lint:ignore SA4006 Fatalf returns here: the test replaces logrus's ExitFunc
	l, out := newText(false)
	var exits []int
	l.log.ExitFunc = func(code int) { exits = append(exits, code) }
	l.Fatalf("open %s: %v", "/run/x", syscall.EACCES)
	if want := prefix() + "fatal: open /run/x: permission denied\n"; out.String() != want {
		t.Errorf("stderr %q, want %q", out.String(), want)
	}
	if !reflect.DeepEqual(exits, []int{1}) {
		t.Errorf("exit codes %v, want [1]", exits)
	}
}

var testStats = Stats{
	Start:    time.Date(2024, time.November, 8, 13, 9, 27, 0, time.Local),
	Interval: 600 * time.Second,
	DestHits: 182, DestMisses: 18, EndpHits: 10, EndpMisses: 8,
	PeakDests: 1, PeakEndps: 1, PeakSessions: 8,
}

var testStatsLines = []string{
	"statistics: start interval Nov  8 13:09:27",
	"statistics: domain lookup hits=182 miss=18 success=91%",
	"statistics: address lookup hits=10 miss=8 success=55%",
	"statistics: max simultaneous domains=1 addresses=1 connection=8",
}

func TestStatisticsJournal(t *testing.T) {
	l, j, out := newJournal(false)
	l.Statistics(testStats)
	vars := baseVars()
	for k, v := range testStats.Fields() {
		vars[k] = v
	}
	var want []sent
	for _, line := range testStatsLines {
		want = append(want, sent{line, sdjournal.PriInfo, vars})
	}
	if got := j.records(); !reflect.DeepEqual(got, want) {
		t.Errorf("journal records:\n%+v\nwant\n%+v", got, want)
	}
	if out.String() != "" {
		t.Errorf("stderr %q, want nothing", out.String())
	}
}

func TestStatisticsText(t *testing.T) {
	l, out := newText(false)
	l.Statistics(testStats)
	want := prefix() + strings.Join(testStatsLines, "\n"+prefix()) + "\n"
	if got := out.String(); got != want {
		t.Errorf("stderr =\n%s\nwant\n%s", got, want)
	}
}

func TestStatisticsZero(t *testing.T) {
	tl, out := newText(true)
	jl, j, jout := newJournal(true)
	zero := Stats{Start: time.Now(), Interval: time.Minute}
	tl.Statistics(zero)
	jl.Statistics(zero)
	if out.String() != "" || jout.String() != "" || len(j.records()) != 0 {
		t.Errorf("a zero interval was logged: %q %q %+v", out, jout, j.records())
	}
}

func TestJournalFallback(t *testing.T) {
	l, j, out := newJournal(false)
	p := prefix()

	// The journal refuses: each record goes to stderr, after one notice.
	j.setErr(errors.New("sendmsg: connection refused"))
	l.Warnf("first")
	l.Statistics(Stats{Start: testStats.Start, PeakSessions: 1})
	notice := p + "warning: cannot write to the journal: sendmsg: connection refused; logging to stderr\n"
	want := notice +
		p + "warning: first\n" +
		p + "statistics: start interval Nov  8 13:09:27\n" +
		p + "statistics: max simultaneous domains=0 addresses=0 connection=1\n"
	if got := out.String(); got != want {
		t.Fatalf("stderr =\n%s\nwant\n%s", got, want)
	}

	// The journal is back: nothing more on stderr.
	j.setErr(nil)
	l.Infof("second")
	if got := out.String(); got != want {
		t.Errorf("stderr after recovery =\n%s\nwant\n%s", got, want)
	}
	if r := j.records(); len(r) != 1 || r[0].msg != "second" {
		t.Errorf("journal records %+v, want only \"second\"", r)
	}

	// A new outage is announced again.
	j.setErr(errors.New("gone"))
	l.Infof("third")
	want += p + "warning: cannot write to the journal: gone; logging to stderr\n" + p + "third\n"
	if got := out.String(); got != want {
		t.Errorf("stderr after second outage =\n%s\nwant\n%s", got, want)
	}
}

// TestJournalSocketAbsent forces the journal with go-systemd's real Send
// where no journald listens: every record must reach stderr.
func TestJournalSocketAbsent(t *testing.T) {
	const socket = "/run/systemd/journal/socket"
	if _, err := os.Stat(socket); err == nil {
		t.Skip("SKIP: " + socket + " exists; this test would write to the host's journal")
	}
	var out lockedBuffer
	l := New(Options{Stderr: &out, Journal: JournalForce})
	l.Warnf("socket %s", "absent")
	l.Infof("still here")
	got := out.String()
	p := prefix()
	if !strings.HasPrefix(got, p+"warning: cannot write to the journal: ") {
		t.Errorf("stderr %q does not start with the notice", got)
	}
	if !strings.HasSuffix(got, "; logging to stderr\n"+p+"warning: socket absent\n"+p+"still here\n") {
		t.Errorf("stderr %q does not end with both records", got)
	}
	if n := strings.Count(got, "\n"); n != 3 {
		t.Errorf("stderr has %d lines, want 3:\n%s", n, got)
	}
}

func TestDetect(t *testing.T) {
	notStream := func() (bool, error) { return false, nil }
	stream := func() (bool, error) { return true, nil }
	broken := func() (bool, error) { return false, errors.New(`failed to parse JOURNAL_STREAM="x"`) }
	for _, tc := range []struct {
		name     string
		mode     Mode
		isStream func() (bool, error)
		answers  bool
		want     bool
		dials    int
	}{
		{"auto, stderr not the journal", JournalAuto, notStream, true, false, 0},
		{"auto, bad JOURNAL_STREAM", JournalAuto, broken, true, false, 0},
		{"auto, journal stream, socket answers", JournalAuto, stream, true, true, 1},
		{"auto, journal stream, socket silent", JournalAuto, stream, false, false, 1},
		{"off", JournalOff, stream, true, false, 0},
		{"force", JournalForce, notStream, false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dials := 0
			var out lockedBuffer
			j := &fakeJournal{}
			l := New(Options{
				Stderr:          &out,
				Journal:         tc.mode,
				stderrIsJournal: tc.isStream,
				journalEnabled:  func() bool { dials++; return tc.answers },
				send:            j.send,
			})
			if l.Journal() != tc.want {
				t.Errorf("Journal() = %v, want %v", l.Journal(), tc.want)
			}
			if dials != tc.dials {
				t.Errorf("journal socket dialled %d times, want %d", dials, tc.dials)
			}
			// Logging never dials again.
			l.Infof("x")
			l.Infof("y")
			if dials != tc.dials {
				t.Errorf("journal socket dialled %d times after logging, want %d", dials, tc.dials)
			}
			if tc.want && (len(j.records()) != 2 || out.String() != "") {
				t.Errorf("journal mode: records %+v, stderr %q", j.records(), out.String())
			}
			if !tc.want && (len(j.records()) != 0 || strings.Count(out.String(), "\n") != 2) {
				t.Errorf("text mode: records %+v, stderr %q", j.records(), out.String())
			}
		})
	}
}

// TestDetectJournalStream runs go-systemd's real JOURNAL_STREAM check
// against this process's descriptor 2.
func TestDetectJournalStream(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, tc := range []struct {
		env   string
		want  bool
		dials int
	}{
		{"", false, 0},
		{match, true, 1},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false, 0}, // another stream: stderr was redirected
		{"garbage", false, 0},
	} {
		t.Run("JOURNAL_STREAM="+tc.env, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.env)
			dials := 0
			l := New(Options{
				Stderr:         &lockedBuffer{},
				journalEnabled: func() bool { dials++; return true },
				send:           (&fakeJournal{}).send,
			})
			if l.Journal() != tc.want || dials != tc.dials {
				t.Errorf("Journal() = %v after %d dials, want %v after %d", l.Journal(), dials, tc.want, tc.dials)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, 100%", "plain text, 100%"},
		{"", ""},
		{"two\nlines", "two?lines"},
		{"cr\r\x00nul\ttab\x7fdel", "cr??nul?tab?del"},
		{"\x1b[31mred", "?[31mred"},
		{"smtp:[2001:db8::1]:25", "smtp:[2001:db8::1]:25"},
		{"b\u00fccher.example", "b\u00fccher.example"}, // valid UTF-8 stays
		{"bad \xff\xfe utf8", "bad ?? utf8"},           // one '?' per invalid byte
		{"cut \xc3", "cut ?"},
		{"ls\u2028sep", "ls?sep"}, // a non-printable rune becomes one '?'
	} {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	// Both outputs sanitize; the level prefix is outside the message.
	tl, out := newText(false)
	tl.Warnf("label %q", "a\nb") // %q already escapes
	tl.Warnf("label %s", "a\nb")
	jl, j, _ := newJournal(false)
	jl.Warnf("label %s", "a\nb")
	if want := prefix() + "warning: label \"a\\nb\"\n" + prefix() + "warning: label a?b\n"; out.String() != want {
		t.Errorf("stderr %q, want %q", out.String(), want)
	}
	if r := j.records(); len(r) != 1 || r[0].msg != "warning: label a?b" {
		t.Errorf("journal %+v, want MESSAGE \"warning: label a?b\"", r)
	}
}

// TestConcurrent logs from many goroutines, in both modes and through the
// fallback; run with -race. Every record must arrive whole.
func TestConcurrent(t *testing.T) {
	const workers, each = 8, 200
	tl, tout := newText(true)
	jl, j, jout := newJournal(true)
	fl, f, fout := newJournal(true)
	f.setErr(errors.New("down"))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for _, l := range []*Logger{tl, jl, fl} {
					l.Debugf("worker %d record %d", w, i)
					if i%50 == 0 {
						l.Statistics(Stats{Start: testStats.Start, EndpHits: w + 1})
					}
				}
			}
		}()
	}
	wg.Wait()
	// Per goroutine: each debug records, 4 statistics intervals of 2 lines.
	const records = workers * (each + 4*2)
	check := func(name, text string, extra int) {
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != records+extra {
			t.Errorf("%s: %d lines, want %d", name, len(lines), records+extra)
		}
		for _, line := range lines {
			if !strings.HasPrefix(line, prefix()) {
				t.Errorf("%s: torn line %q", name, line)
				break
			}
		}
	}
	check("text", tout.String(), 0)
	check("fallback", fout.String(), 1) // plus the notice
	if n := len(j.records()); n != records || jout.String() != "" {
		t.Errorf("journal: %d records, want %d; stderr %q", n, records, jout.String())
	}
}
