package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scached/scached/pkg/journal"
)

func TestParseFlags(t *testing.T) {
	tcs := []struct {
		args []string
		want options
	}{
		{nil, options{configDir: "/etc/postfix"}},
		{[]string{"-c", "/etc/postfix-out"}, options{configDir: "/etc/postfix-out"}},
		{[]string{"-o", "max_idle=5s", "-o", "syslog_name=x"}, options{configDir: "/etc/postfix", overrides: []string{"max_idle=5s", "syslog_name=x"}}},
		{[]string{"-v"}, options{configDir: "/etc/postfix", verbose: 1}},
		{[]string{"-v", "-v", "-v=false", "-v"}, options{configDir: "/etc/postfix", verbose: 3}},
		{[]string{"-listen", "/tmp/s"}, options{configDir: "/etc/postfix", listen: "/tmp/s"}},
		{[]string{"--listen=/tmp/s"}, options{configDir: "/etc/postfix", listen: "/tmp/s"}},
		{[]string{"-version"}, options{configDir: "/etc/postfix", version: true}},
	}
	for _, tc := range tcs {
		var stderr bytes.Buffer
		got, err := parseFlags(tc.args, &stderr)
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("parseFlags(%q) = %+v, want %+v", tc.args, *got, tc.want)
		}
		if stderr.Len() > 0 {
			t.Errorf("parseFlags(%q) wrote %q", tc.args, stderr.String())
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"-x"}, "flag provided but not defined: -x\n" + usage},
		{[]string{"-c"}, "flag needs an argument: -c\n" + usage},
		{[]string{"-v=maybe"}, `invalid boolean value "maybe" for -v`},
		{[]string{"extra"}, "scached: unexpected command-line argument: extra\n" + usage},
		{[]string{"-v", "--", "-o"}, "scached: unexpected command-line argument: -o\n" + usage},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.HasPrefix(stderr.String(), tc.stderr) {
			t.Errorf("run(%q) stderr %q, want it to start with %q", tc.args, stderr.String(), tc.stderr)
		}
	}
	var stderr bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if code := run([]string{"-help"}, io.Discard, &stderr); code != exitOK {
		t.Errorf("run(-help) = %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), usage) {
		t.Errorf("-h printed %q, want the usage", stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run(-version) = %d; stderr %q", code, stderr.String())
	}
	if got := stdout.String(); got != "scached "+versionString()+"\n" || versionString() == "" {
		t.Errorf("-version printed %q", got)
	}
	defer func(v string) { version = v }(version)
	version = "1.2.3"
	stdout.Reset()
	run([]string{"-version"}, &stdout, &stderr)
	if stdout.String() != "scached 1.2.3\n" {
		t.Errorf("-version with -X main.version=1.2.3 printed %q", stdout.String())
	}
}

// fakeLog records what run logs. Its Fatalf does not exit.
type fakeLog struct {
	mu    sync.Mutex
	name  string
	lines []string
}

func (l *fakeLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *fakeLog) Debugf(f string, a ...any)   { l.add("debug: " + fmt.Sprintf(f, a...)) }
func (l *fakeLog) Infof(f string, a ...any)    { l.add("info: " + fmt.Sprintf(f, a...)) }
func (l *fakeLog) Warnf(f string, a ...any)    { l.add("warning: " + fmt.Sprintf(f, a...)) }
func (l *fakeLog) Fatalf(f string, a ...any)   { l.add("fatal: " + fmt.Sprintf(f, a...)) }
func (l *fakeLog) Statistics(s journal.Stats)  { l.add(fmt.Sprintf("statistics: %+v", s)) }
func (l *fakeLog) text() string                { l.mu.Lock(); defer l.mu.Unlock(); return strings.Join(l.lines, "\n") }
func (l *fakeLog) has(prefix, sub string) bool { return hasLine(l.text(), prefix, sub) }
func hasLine(text, prefix, sub string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, sub) {
			return true
		}
	}
	return false
}

// useFakeLog makes run log to a fakeLog, which it returns.
func useFakeLog(t *testing.T) *fakeLog {
	t.Helper()
	l := &fakeLog{}
	old := newLogger
	newLogger = func(name string, verbose int) logger {
		l.mu.Lock()
		l.name = name
		l.mu.Unlock()
		return l
	}
	t.Cleanup(func() { newLogger = old })
	return l
}

// noSystemd clears what systemd would have set.
func noSystemd(t *testing.T) {
	for _, v := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

func TestRunConfigError(t *testing.T) {
	noSystemd(t)
	log := useFakeLog(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("syslog_name = postfix-out\nmax_idle = 10x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"-c", dir}, io.Discard, io.Discard); code != exitFailure {
		t.Errorf("run = %d, want %d", code, exitFailure)
	}
	want := "fatal: " + filepath.Join(dir, "main.cf") + `:2: invalid max_idle value "10x": bad time unit 'x' (use s, m, h, d or w)`
	if log.text() != want {
		t.Errorf("logged %q, want %q", log.text(), want)
	}
	if log.name != "postfix" {
		t.Errorf("config error logged as %q, want Postfix's default syslog_name", log.name)
	}
}

func TestRunUnknownOverride(t *testing.T) {
	noSystemd(t)
	log := useFakeLog(t)
	if code := run([]string{"-c", t.TempDir(), "-o", "myhostname=x"}, io.Discard, io.Discard); code != exitFailure {
		t.Errorf("run = %d, want %d", code, exitFailure)
	}
	if !log.has("fatal: ", `-o myhostname=x: unknown parameter "myhostname"`) {
		t.Errorf("logged %q", log.text())
	}
}

func TestRunWithoutSocket(t *testing.T) {
	noSystemd(t)
	log := useFakeLog(t)
	if code := run([]string{"-c", t.TempDir()}, io.Discard, io.Discard); code != exitFailure {
		t.Errorf("run = %d, want %d", code, exitFailure)
	}
	if want := "fatal: no socket passed by systemd (LISTEN_FDS unset): use -listen PATH"; log.text() != want {
		t.Errorf("logged %q, want %q", log.text(), want)
	}
}

func TestRunListenAndSystemdSocket(t *testing.T) {
	noSystemd(t)
	t.Setenv("LISTEN_FDS", "1")
	log := useFakeLog(t)
	path := filepath.Join(shortTempDir(t), "s")
	if code := run([]string{"-c", t.TempDir(), "-listen", path}, io.Discard, io.Discard); code != exitFailure {
		t.Errorf("run = %d, want %d", code, exitFailure)
	}
	if !log.has("fatal: ", "-listen "+path+": systemd passed a socket already (LISTEN_FDS=1); drop -listen") {
		t.Errorf("logged %q", log.text())
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file created anyway: %v", err)
	}
}

func TestRunListenOnNonSocket(t *testing.T) {
	noSystemd(t)
	log := useFakeLog(t)
	path := filepath.Join(t.TempDir(), "file")
	os.WriteFile(path, nil, 0o644)
	if code := run([]string{"-c", t.TempDir(), "-listen", path}, io.Discard, io.Discard); code != exitFailure {
		t.Errorf("run = %d, want %d", code, exitFailure)
	}
	if !log.has("fatal: ", "refusing to replace a file that is not a socket") {
		t.Errorf("logged %q", log.text())
	}
}

// shortTempDir is a temporary directory short enough for socket paths.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

const greeting = "protocol\x00connection_cache_protocol\x00\x00"

// readGreeting connects to path and checks the server's greeting.
func readGreeting(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(greeting))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != greeting {
		t.Fatalf("greeting %q, %v", buf, err)
	}
	return c
}

// notifySocket points NOTIFY_SOCKET at a datagram socket of the test.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return pc
}

func readNotify(t *testing.T, pc *net.UnixConn) string {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := pc.Read(buf)
	if err != nil {
		t.Fatalf("read sd_notify message: %v", err)
	}
	return string(buf[:n])
}

// TestRunListenUntilSIGTERM runs the daemon in-process on its own socket
// and stops it the way systemd does.
func TestRunListenUntilSIGTERM(t *testing.T) {
	noSystemd(t)
	notify := notifySocket(t)
	log := useFakeLog(t)
	path := filepath.Join(shortTempDir(t), "scached")
	done := make(chan int, 1)
	go func() { done <- run([]string{"-v", "-c", t.TempDir(), "-listen", path}, io.Discard, io.Discard) }()

	if got := readNotify(t, notify); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// READY=1 comes after signal.NotifyContext: SIGTERM now stops run
	// instead of the test.
	c := readGreeting(t, path)
	c.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file: %v, %v; want mode 0666", fi, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("run = %d, want 0; log:\n%s", code, log.text())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if got := readNotify(t, notify); got != "STOPPING=1" {
		t.Errorf("second notification %q, want STOPPING=1", got)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
	if !log.has("info: ", "idle exit disabled") {
		t.Errorf("no info about the disabled idle exit; log:\n%s", log.text())
	}
	if !log.has("debug: ", "starting scached") {
		t.Errorf("no debug start record; log:\n%s", log.text())
	}
	if log.has("fatal: ", "") || log.has("warning: ", "") {
		t.Errorf("unexpected problems logged:\n%s", log.text())
	}
}

// binDir holds the daemon built by buildScached; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildScached builds the daemon once per test binary.
var buildScached = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "scached-bin")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "scached")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestSocketActivation runs the real binary under systemd's own socket
// activator, with sd_notify and the idle exit.
func TestSocketActivation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	bin, err := buildScached()
	if err != nil {
		t.Fatal(err)
	}
	noSystemd(t)
	notify := notifySocket(t)
	dir := shortTempDir(t)
	path := filepath.Join(dir, "scached")
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("max_idle = 1s\nsyslog_name = postfix-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "-l", path, "--fdname=scache",
		"-E", "NOTIFY_SOCKET", bin, "-v", "-c", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Lstat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s; stderr:\n%s", path, stderr.String())
		}
	}
	c := readGreeting(t, path)
	if got := readNotify(t, notify); got != "READY=1" {
		t.Errorf("notification %q, want READY=1", got)
	}
	start := time.Now()
	c.Close()
	if got := readNotify(t, notify); got != "STOPPING=1" {
		t.Errorf("notification %q, want STOPPING=1", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scached: %v; stderr:\n%s", err, stderr.String())
	}
	if idle := time.Since(start); idle < 900*time.Millisecond {
		t.Errorf("exited %v after the last client left, want max_idle = 1s", idle)
	}
	log := stderr.String()
	if !hasLine(stripActivator(log), "postfix-test/scache[", "starting scached") {
		t.Errorf("stderr lacks the debug start record with syslog_name postfix-test:\n%s", log)
	}
	if strings.Contains(log, "warning:") || strings.Contains(log, "fatal:") {
		t.Errorf("problems logged:\n%s", log)
	}
}

// stripActivator drops systemd-socket-activate's own lines.
func stripActivator(s string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "postfix") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "\n")
}
