package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a helper process instead of running the
// tests: "main" and "auto" are the two stages of TestRealJournald's helper.
const helperEnv = "SCACHED_JOURNAL_TEST_HELPER"

func TestMain(m *testing.M) {
	if stage := os.Getenv(helperEnv); stage != "" {
		os.Exit(journaldHelper(stage))
	}
	os.Exit(m.Run())
}

// realStats is the interval the helper logs; realStatsLines its text.
var (
	realStats = Stats{
		Start:    time.Date(2024, time.November, 8, 9, 5, 7, 0, time.Local),
		Interval: 600 * time.Second,
		DestHits: 182, DestMisses: 18, EndpHits: 10, EndpMisses: 8,
		PeakDests: 1, PeakEndps: 3, PeakSessions: 8,
	}
	realStatsLines = []string{
		"statistics: start interval Nov  8 09:05:07",
		"statistics: domain lookup hits=182 miss=18 success=91%",
		"statistics: address lookup hits=10 miss=8 success=55%",
		"statistics: max simultaneous domains=1 addresses=3 connection=8",
	}
	realStatsFields = map[string]string{
		"SCACHE_DEST_HITS":        "182",
		"SCACHE_DEST_MISSES":      "18",
		"SCACHE_ENDP_HITS":        "10",
		"SCACHE_ENDP_MISSES":      "8",
		"SCACHE_PEAK_DESTS":       "1",
		"SCACHE_PEAK_ENDPS":       "3",
		"SCACHE_PEAK_SESSIONS":    "8",
		"SCACHE_INTERVAL_SECONDS": "600",
	}
)

// realEntry is one record TestRealJournald expects, in journal order.
type realEntry struct {
	msg   string
	pri   string
	stats bool // carries realStatsFields
	auto  bool // logged by the "auto" stage
}

var realEntries = func() []realEntry {
	e := []realEntry{
		{msg: "debug record", pri: "7"},
		{msg: "info record 6", pri: "6"},
		{msg: "warning: bad or missing request parameter", pri: "4"},
		{msg: "error: error record", pri: "3"},
		{msg: "fatal: fatal record", pri: "2"},
		{msg: "two?lines", pri: "6"},
	}
	for _, line := range realStatsLines {
		e = append(e, realEntry{msg: line, pri: "6", stats: true})
	}
	return append(e, realEntry{msg: "warning: auto-detected", pri: "4", auto: true})
}()

// journaldHelper runs inside test/journald/run.sh, next to a private
// journald, and returns the exit status.
//
// Stage "main" logs with JournalForce, runs stage "auto" with its stderr
// connected to journald by systemd-cat, then prints the journal as JSON.
// Stage "auto" sets JOURNAL_STREAM from its descriptor 2 (systemd-cat
// connects the stream but does not set the variable, as systemd does for
// a service) and checks that JournalAuto picks the journal.
func journaldHelper(stage string) int {
	switch stage {
	case "main":
		l := New(Options{Verbose: true, Journal: JournalForce})
		l.log.ExitFunc = func(int) {}
		l.Debugf("debug record")
		l.Infof("info record %d", 6)
		l.Warnf("bad or missing request parameter")
		l.Errorf("error record")
		l.Fatalf("fatal record")
		l.Infof("two\nlines")
		l.Statistics(realStats)

		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		auto := exec.Command("systemd-cat", "--identifier=scached-stream", exe)
		auto.Env = append(os.Environ(), helperEnv+"=auto")
		if out, err := auto.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "helper: auto stage: %v (exit 3: JournalAuto chose stderr) %s\n", err, out)
			return 1
		}

		// journalctl --sync returns once journald has stored everything
		// sent before it; poll a little in case it is not supported.
		var out []byte
		for deadline := time.Now().Add(2 * time.Second); ; {
			_ = exec.Command("journalctl", "--sync").Run()
			out, err = exec.Command("journalctl", "-o", "json", "--no-pager",
				"SYSLOG_IDENTIFIER=postfix/scache").Output()
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper: journalctl:", err)
				return 1
			}
			if bytes.Count(out, []byte("\n")) >= len(realEntries) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, _ = os.Stdout.Write(out)
		return 0

	case "auto":
		var st syscall.Stat_t
		if err := syscall.Fstat(2, &st); err != nil {
			return 2
		}
		os.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
		l := New(Options{})
		if !l.Journal() {
			return 3
		}
		l.Warnf("auto-detected")
		return 0
	}
	fmt.Fprintf(os.Stderr, "helper: unknown stage %q\n", stage)
	return 1
}

// TestRealJournald sends records to a real systemd-journald, private to
// the test (test/journald/run.sh), and reads them back with journalctl.
func TestRealJournald(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root: test/journald/run.sh starts a private systemd-journald in a mount namespace")
	}
	for _, tool := range []string{"bash", "unshare", "mount", "journalctl", "systemd-cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: needs %s (package systemd / util-linux): %v", tool, err)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd-journald"); err != nil {
		t.Skipf("SKIP: needs systemd-journald: %v", err)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "test", "journald", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, exe)
	// Under -race each helper process would sleep 1 s at exit
	// (atexit_sleep_ms); the helpers start no goroutines worth waiting for.
	cmd.Env = append(os.Environ(), helperEnv+"=main",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// On timeout kill the whole process group: the script's journald and
	// helpers too, not only the script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	began := time.Now()
	out, err := cmd.Output()
	t.Logf("run.sh with journald, helper and journalctl took %v", time.Since(began).Round(time.Millisecond))
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skipf("%s", strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", script, err, stderr.String())
	}

	var got []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("journalctl output %q: %v", sc.Text(), err)
		}
		e := make(map[string]string)
		for k, v := range raw {
			if s, ok := v.(string); ok { // non-UTF-8 values come as arrays
				e[k] = s
			}
		}
		got = append(got, e)
	}
	if len(got) != len(realEntries) {
		t.Fatalf("journal has %d entries for SYSLOG_IDENTIFIER=postfix/scache, want %d:\n%s\nstderr:\n%s",
			len(got), len(realEntries), out, stderr.String())
	}

	var mainPID, autoPID string
	for i, want := range realEntries {
		e := got[i]
		if e["MESSAGE"] != want.msg || e["PRIORITY"] != want.pri {
			t.Errorf("entry %d: MESSAGE=%q PRIORITY=%s, want MESSAGE=%q PRIORITY=%s",
				i, e["MESSAGE"], e["PRIORITY"], want.msg, want.pri)
		}
		for k, v := range map[string]string{
			"SYSLOG_IDENTIFIER": "postfix/scache",
			"SYSLOG_FACILITY":   "2",
			"SYSLOG_PID":        e["_PID"], // journald's own view of the sender
			"_TRANSPORT":        "journal", // native protocol, not the stdout stream
		} {
			if e[k] != v {
				t.Errorf("entry %d (%q): %s=%q, want %q", i, want.msg, k, e[k], v)
			}
		}
		if _, err := strconv.Atoi(e["SYSLOG_PID"]); err != nil {
			t.Errorf("entry %d: SYSLOG_PID=%q", i, e["SYSLOG_PID"])
		}
		scache := make(map[string]string)
		for k, v := range e {
			if strings.HasPrefix(k, "SCACHE_") {
				scache[k] = v
			}
		}
		if want.stats && !reflect.DeepEqual(scache, realStatsFields) {
			t.Errorf("entry %d (%q): fields %v, want %v", i, want.msg, scache, realStatsFields)
		}
		if !want.stats && len(scache) != 0 {
			t.Errorf("entry %d (%q): unexpected fields %v", i, want.msg, scache)
		}
		pid := &mainPID
		if want.auto {
			pid = &autoPID
		}
		if *pid == "" {
			*pid = e["_PID"]
		} else if *pid != e["_PID"] {
			t.Errorf("entry %d (%q): _PID=%s, want %s", i, want.msg, e["_PID"], *pid)
		}
	}
	if mainPID == autoPID {
		t.Errorf("both stages logged as PID %s", mainPID)
	}
}
