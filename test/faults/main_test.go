// Package faults is the fault and hostile-input matrix of scached: every
// case runs against the real binary (built once, with -race, so that races
// inside the daemon show up on its stderr) while a second client, the
// canary, keeps doing requests and checks its answers. After each case the
// daemon must still serve a fresh client, its descriptor count must be
// back where it was, the canary must have seen no error and no request
// slower than the case's bound, and the sessions cached before the case
// (the witnesses) must still be there, once, under their own labels.
//
// The cases: disconnects and stalls at every point of every request,
// garbage (random bytes, token soup, oversized names and values, missing
// terminators, descriptors on every message, descriptors of every kind),
// thousands of idle clients, a connect/disconnect storm, SIGTERM under
// load and with hostile clients, SIGKILL and restart, and the descriptor
// flags of a session across the cache.
//
// At the end the package prints a summary table (go test -v shows it; set
// FAULTS_SUMMARY=path to also write it to a file). A case that exposes a
// scached bug fails with "BUG: ..." and its evidence; there is no list of
// tolerated failures.
package faults

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin is the scached binary built for this run (with -race).
var bin string

func TestMain(m *testing.M) {
	raiseNofile()
	dir, err := os.MkdirTemp("", "scached-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "scached")
	build := exec.Command("go", "build", "-race", "-o", bin, "github.com/scached/scached/cmd/scached")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build scached:", err)
		os.Exit(1)
	}
	start := time.Now()
	code := m.Run()
	summary := renderSummary(time.Since(start))
	fmt.Print(summary)
	if p := os.Getenv("FAULTS_SUMMARY"); p != "" {
		if err := os.WriteFile(p, []byte(summary), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "FAULTS_SUMMARY:", err)
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// raiseNofile raises RLIMIT_NOFILE to the hard limit (as root, to at least
// 16384): the crowd cases hold thousands of connections.
func raiseNofile() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if os.Geteuid() == 0 && rl.Max < 16384 {
		want := syscall.Rlimit{Cur: 16384, Max: 16384}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			return
		}
	}
	rl.Cur = rl.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
}

// knownBug fails the test with the evidence of a scached bug. (Two were
// found this way and fixed: an off-by-one in scached_request_size_limit,
// and SIGTERM waiting behind a client that never reads its replies.)
func knownBug(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatal("BUG: " + fmt.Sprintf(format, args...))
}

// ---- the daemon ----

// syncBuffer collects a daemon's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is one running scached process.
type daemon struct {
	cmd    *exec.Cmd
	path   string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to timeout for the daemon to exit and reports whether
// it did.
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop sends SIGTERM and requires exit status 0 within timeout; a daemon
// that does not exit gets SIGQUIT (goroutine dump to stderr), then SIGKILL.
func (d *daemon) stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	if d.exited() {
		t.Errorf("scached had exited already: %v", d.err)
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if !d.waitExit(timeout) {
		d.quit()
		t.Errorf("scached did not exit within %v of SIGTERM; stderr tail:\n%s", timeout, tail(d.stderr.String(), 60))
		return
	}
	if d.err != nil {
		t.Errorf("scached exit after SIGTERM: %v; stderr tail:\n%s", d.err, tail(d.stderr.String(), 60))
	}
}

// quit makes a hung daemon dump its goroutines, then kills it.
func (d *daemon) quit() {
	d.cmd.Process.Signal(syscall.SIGQUIT)
	if !d.waitExit(3 * time.Second) {
		d.cmd.Process.Kill()
		<-d.done
	}
}

// configDir is a config directory of the test's own: main.cf names root
// and the user running the test as authorized users.
func configDir(t testing.TB) string {
	dir := t.TempDir()
	cf := fmt.Sprintf("scached_authorized_users = root, %d\n", os.Geteuid())
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// daemonOpts describes how to start scached.
type daemonOpts struct {
	path   string   // socket path; a new one under t.TempDir() when empty
	params []string // -o name=value
	nofile uint64   // start through prlimit --nofile=N:N when > 0
}

// startDaemon runs scached -listen and waits until it accepts clients.
// The daemon is killed when the test ends (if it still runs).
func startDaemon(t testing.TB, o daemonOpts) *daemon {
	t.Helper()
	d := spawn(t, o)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", d.path); err == nil {
			c.Close()
			return d
		}
		if d.exited() || time.Now().After(deadline) {
			t.Fatalf("scached did not start listening on %s (%v); stderr:\n%s", d.path, d.err, d.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spawn starts scached without waiting for it.
func spawn(t testing.TB, o daemonOpts) *daemon {
	t.Helper()
	path := o.path
	if path == "" {
		path = filepath.Join(t.TempDir(), "scached")
	}
	args := []string{"-c", configDir(t), "-listen", path}
	for _, p := range o.params {
		args = append(args, "-o", p)
	}
	var cmd *exec.Cmd
	if o.nofile > 0 {
		cmd = exec.Command("prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", o.nofile, o.nofile), bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	// A race-built binary otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	// If the test binary dies (a -timeout panic skips the cleanups), the
	// daemon goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d := &daemon{cmd: cmd, path: path, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.exited() {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("scached stderr (tail):\n%s", tail(d.stderr.String(), 80))
		}
	})
	return d
}

// healthy reports what is wrong in the daemon's stderr: a data race found
// by the race detector, a panic, a fatal error.
func (d *daemon) healthy() error {
	out := d.stderr.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:", "]: fatal: ", "]: panic: "} {
		if i := strings.Index(out, bad); i >= 0 {
			return fmt.Errorf("scached stderr has %q:\n%s", bad, out[i:min(len(out), i+4000)])
		}
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ---- the summary ----

// row is one line of the summary table.
type row struct {
	group, name string
	result      string
	canaryReqs  int
	canaryMax   time.Duration
	bound       time.Duration
	fdBefore    string
	fdAfter     string
	took        time.Duration
	figures     string
}

var (
	summaryMu sync.Mutex
	summary   []row
)

func record(r row) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	summary = append(summary, r)
}

func renderSummary(total time.Duration) string {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nscached fault matrix (%d cases, %v)\n\n", len(summary), total.Round(100*time.Millisecond))
	b.WriteString("| case | result | canary requests | canary max latency (bound) | daemon fds before → after | took | figures |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	counts := map[string]int{}
	for _, r := range summary {
		counts[strings.Fields(r.result)[0]]++
		lat := "-"
		if r.canaryReqs > 0 {
			lat = fmt.Sprintf("%v (%v)", r.canaryMax.Round(100*time.Microsecond), r.bound)
		}
		fmt.Fprintf(&b, "| %s/%s | %s | %d | %s | %s → %s | %v | %s |\n",
			r.group, r.name, r.result, r.canaryReqs, lat, r.fdBefore, r.fdAfter,
			r.took.Round(10*time.Millisecond), strings.ReplaceAll(r.figures, "|", "/"))
	}
	fmt.Fprintf(&b, "\n%d PASS, %d FAIL, %d SKIP\n", counts["PASS"], counts["FAIL"], counts["SKIP"])
	return b.String()
}
