// Package integration runs the real scached binary over real sockets: its
// own socket (-listen), sockets handed over like systemd does (LISTEN_FDS),
// idle exit and re-activation with clients waiting in the backlog, signals,
// and, as root, a real journald.
package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// bin is the scached binary built for this test run.
var bin string

func TestMain(m *testing.M) {
	if os.Getenv(journalStageEnv) != "" {
		os.Exit(journalStage())
	}
	dir, err := os.MkdirTemp("", "scached-integration")
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
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

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
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func (d *daemon) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		// SIGQUIT makes a Go program print every goroutine's stack.
		d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.done:
		case <-time.After(2 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		t.Fatalf("scached did not exit within %v; stderr:\n%s", timeout, d.stderr)
		return nil
	}
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// emptyConfig is a config directory of the test's own, so that the host's
// Postfix configuration does not leak into the test. Its main.cf sets
// only scached_authorized_users: root (the default's first user, and CI's)
// and whoever runs the test.
func emptyConfig(t *testing.T) string {
	dir := t.TempDir()
	cf := fmt.Sprintf("scached_authorized_users = root, %d\n", os.Geteuid())
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startListen runs scached on its own socket (-listen).
func startListen(t *testing.T, args ...string) (*daemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scached")
	d := run(t, nil, nil, append([]string{"-c", emptyConfig(t), "-listen", path}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || d.exited() {
			t.Fatalf("scached did not start listening; stderr:\n%s", d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d, path
}

// run starts the binary. With a held socket file f it is passed as fd 3
// with LISTEN_FDS=1, LISTEN_FDNAMES=scache and the right LISTEN_PID, the way
// systemd does: the shell learns its own PID and keeps it across exec.
func run(t *testing.T, files []*os.File, env []string, args ...string) *daemon {
	t.Helper()
	var cmd *exec.Cmd
	if files != nil {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$@"`, "sh", bin}, args...)...)
		cmd.ExtraFiles = files
		names := make([]string, len(files))
		for i := range names {
			names[i] = "scache"
		}
		cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	} else {
		cmd = exec.Command(bin, args...)
		cmd.Env = os.Environ()
	}
	// Race-built binaries otherwise sleep a second at exit.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
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
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("scached stderr:\n%s", d.stderr)
		}
	})
	return d
}

func dial(t *testing.T, path string) *protocol.Client {
	t.Helper()
	cl, err := protocol.Dial(path, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func wire(s string) []byte { return []byte(strings.ReplaceAll(s, "^@", "\x00")) }

func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, len(wire(want)))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if got := strings.ReplaceAll(string(buf), "\x00", "^@"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// pair is a socketpair standing for an SMTP connection.
type pair struct{ near, far int }

func newPair(t *testing.T) pair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return pair{fds[0], fds[1]}
}

// is proves that fd is p's near end by writing through it.
func (p pair) is(t *testing.T, fd int) {
	t.Helper()
	if _, err := unix.Write(fd, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, err := unix.Read(p.far, buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("not the saved connection: %q %v", buf[:max(n, 0)], err)
	}
}

// closedByPeer waits until the cache closed its copy of p.near.
func (p pair) closedByPeer(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	tv := unix.NsecToTimeval(int64(timeout))
	unix.SetsockoptTimeval(p.far, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 1)
	n, err := unix.Read(p.far, buf)
	return n == 0 && err == nil
}

func save(t *testing.T, cl *protocol.Client, label string, p pair) {
	t.Helper()
	st, err := cl.SaveEndp(2, label, "prop", p.near)
	unix.Close(p.near)
	if err != nil || st != 0 {
		t.Fatalf("save_endp: %d %v", st, err)
	}
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
