package conformance_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/server"
	"github.com/scached/scached/test/conformance"
)

// TestMain checks that the suite and the in-process server together leak
// no descriptor and no goroutine of this process.
func TestMain(m *testing.M) {
	// Start the runtime's network poller first: its descriptors are not
	// leaks.
	if ln, err := net.Listen("unix", filepath.Join(os.TempDir(), fmt.Sprintf("conform-warmup-%d", os.Getpid()))); err == nil {
		ln.Close()
	}
	fds, goroutines := countFDs(), runtime.NumGoroutine()
	code := m.Run()
	deadline := time.Now().Add(5 * time.Second)
	for (countFDs() > fds || runtime.NumGoroutine() > goroutines) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := countFDs(); n > fds {
		fmt.Fprintf(os.Stderr, "FAIL: descriptors leaked: %d before the tests, %d after\n", fds, n)
		code = 1
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<16)
		fmt.Fprintf(os.Stderr, "FAIL: goroutines leaked: %d before the tests, %d after\n%s\n", goroutines, n, buf[:runtime.Stack(buf, true)])
		code = 1
	}
	os.Exit(code)
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// memLog is the in-process server's log.
type memLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *memLog) add(prefix, format string, args []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+fmt.Sprintf(format, args...))
}
func (l *memLog) Debugf(f string, a ...any)  { l.add("debug: ", f, a) }
func (l *memLog) Infof(f string, a ...any)   { l.add("", f, a) }
func (l *memLog) Warnf(f string, a ...any)   { l.add("warning: ", f, a) }
func (l *memLog) Statistics(s journal.Stats) { l.add("", "statistics: %+v", []any{s}) }
func (l *memLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// report prints the report and fails the test for every failed scenario.
func report(t *testing.T, rep conformance.Report) {
	t.Helper()
	t.Log("\n" + rep.String())
	fmt.Printf("%s: %s (%s, %.1fs)\n", rep.Server, rep.Summary(), rep.Path, rep.Elapsed.Seconds())
	for _, res := range rep.Results {
		if res.Outcome == conformance.Fail {
			t.Errorf("%s: %s", res.Name, res.Reason)
		}
	}
}

// TestScached runs the suite against scached (pkg/server) on a temporary
// socket.
func TestScached(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "scache")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	srv, err := server.New(server.Config{Log: log, MaxIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	rep := conformance.Run(path, conformance.Options{Server: conformance.Scached})
	report(t, rep)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if t.Failed() {
		t.Logf("server log:\n%s", log)
	}
}

// TestPostfix runs the suite against Postfix's own scache(8), starting
// Postfix if it is installed but not running. It needs root.
func TestPostfix(t *testing.T) {
	t.Parallel()
	path, limit := postfixScache(t)
	opts := conformance.Options{
		Server:   conformance.Postfix,
		TTLLimit: limit,
		Instance: conformance.PostfixInstance(path),
		// Someone else may stop, start or reload Postfix meanwhile.
		Recover: func() error {
			if err := startPostfix(); err != nil {
				return err
			}
			return conformance.WaitReady(path, 20*time.Second)
		},
	}
	report(t, conformance.Run(path, opts))
}

func skipLoudly(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := "SKIP: " + fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
}

// postfixScache returns the socket of Postfix's scache(8) and its ttl
// limit, starting Postfix when needed; it skips the test when that is not
// possible.
func postfixScache(t *testing.T) (string, time.Duration) {
	if os.Geteuid() != 0 {
		skipLoudly(t, "Postfix's scache(8) leg needs root")
	}
	if _, err := exec.LookPath("postfix"); err != nil {
		skipLoudly(t, "Postfix is not installed (apt-get install postfix)")
	}
	if out, err := postconf("-M", "scache/unix"); err != nil || out == "" {
		skipLoudly(t, "master.cf has no scache service (%v)", err)
	}
	queue, err := postconf("-h", "queue_directory")
	if err != nil {
		skipLoudly(t, "postconf: %v", err)
	}
	path := filepath.Join(queue, "private", "scache")
	limit := 2 * time.Second
	if v, err := postconf("-h", "connection_cache_ttl_limit"); err == nil {
		if d, err := parsePostfixTime(v); err == nil {
			limit = d
		}
	}
	if err := startPostfix(); err != nil {
		skipLoudly(t, "cannot start Postfix: %v", err)
	}
	if err := conformance.WaitReady(path, 20*time.Second); err != nil {
		skipLoudly(t, "Postfix's scache(8) does not answer at %s: %v", path, err)
	}
	return path, limit
}

// startPostfix starts master(8) unless `postfix status` says it runs. A
// master we start is left running: other users of the machine may have
// come to rely on it meanwhile.
func startPostfix() error {
	if exec.Command("postfix", "status").Run() == nil {
		return nil
	}
	out, err := exec.Command("postfix", "start").CombinedOutput()
	if err != nil && exec.Command("postfix", "status").Run() != nil {
		return fmt.Errorf("postfix start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func postconf(args ...string) (string, error) {
	out, err := exec.Command("postconf", args...).Output()
	return strings.TrimSpace(string(out)), err
}

// parsePostfixTime parses a Postfix time value: a number with an optional
// unit s, m, h, d or w (seconds by default).
func parsePostfixTime(v string) (time.Duration, error) {
	unit := time.Second
	if v != "" {
		switch v[len(v)-1] {
		case 's':
			v = v[:len(v)-1]
		case 'm':
			unit, v = time.Minute, v[:len(v)-1]
		case 'h':
			unit, v = time.Hour, v[:len(v)-1]
		case 'd':
			unit, v = 24*time.Hour, v[:len(v)-1]
		case 'w':
			unit, v = 7*24*time.Hour, v[:len(v)-1]
		}
	}
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("bad time value %q", v)
	}
	return time.Duration(n) * unit, nil
}

// The table of deliberate differences and README.md list the same
// differences, and each has its scenario.
func TestDifferencesDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sc := range conformance.Scenarios() {
		if names[sc.Name] {
			t.Errorf("scenario %s listed twice", sc.Name)
		}
		names[sc.Name] = true
	}
	for _, d := range conformance.Differences {
		if !names[d.Name] {
			t.Errorf("difference %s has no scenario", d.Name)
		}
		if !strings.Contains(string(readme), "`"+d.Name+"`") {
			t.Errorf("README.md does not list the difference %s", d.Name)
		}
	}
	for _, sc := range conformance.Scenarios() {
		if !strings.Contains(string(readme), "`"+sc.Name+"`") {
			t.Errorf("README.md does not list the scenario %s", sc.Name)
		}
	}
}

func TestSummary(t *testing.T) {
	rep := conformance.Report{Results: []conformance.Result{
		{Outcome: conformance.Pass}, {Outcome: conformance.Pass}, {Outcome: conformance.Fail},
	}}
	if got := rep.Summary(); got != "2 passed, 1 failed" {
		t.Errorf("Summary %q", got)
	}
	rep.Results = append(rep.Results, conformance.Result{Outcome: conformance.Skip})
	if got := rep.Summary(); got != "2 passed, 1 failed, 1 skipped" {
		t.Errorf("Summary %q", got)
	}
}

func TestShow(t *testing.T) {
	if got := conformance.Show(conformance.W("status^@0^@\n\xff\"^@")); got != `"status^@0^@\n\xff\"^@"` {
		t.Errorf("Show: %s", got)
	}
}
