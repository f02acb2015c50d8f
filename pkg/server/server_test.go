package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/protocol"
)

// memLog records what the server logs.
type memLog struct {
	mu    sync.Mutex
	lines []string
	stats []journal.Stats
}

func (l *memLog) add(prefix, format string, args []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+fmt.Sprintf(format, args...))
}
func (l *memLog) Debugf(f string, a ...any) { l.add("debug: ", f, a) }
func (l *memLog) Infof(f string, a ...any)  { l.add("", f, a) }
func (l *memLog) Warnf(f string, a ...any)  { l.add("warning: ", f, a) }
func (l *memLog) Statistics(s journal.Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats = append(l.stats, s)
}

// warnings returns the warnings logged so far.
func (l *memLog) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var w []string
	for _, s := range l.lines {
		if strings.HasPrefix(s, "warning: ") {
			w = append(w, strings.TrimPrefix(s, "warning: "))
		}
	}
	return w
}

type testServer struct {
	path   string
	log    *memLog
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned, with its error in err
	err    error
}

// startServer runs a server on a fresh socket; it is stopped at the end of
// the test, which then checks that no goroutine and no descriptor leaked.
func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "scache")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{path: path, log: &memLog{}, done: make(chan struct{})}
	cfg := Config{Log: ts.log, MaxIdle: -1, IPCTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() {
		ts.err = srv.Serve(ctx, ln)
		close(ts.done)
	}()
	t.Cleanup(func() {
		ts.stop(t)
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > goroutinesBefore && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutinesBefore {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines: %d before, %d after\n%s", goroutinesBefore, n, buf[:runtime.Stack(buf, true)])
		}
		if n := countFDs(t); n > fdsBefore {
			t.Errorf("descriptors: %d before, %d after", fdsBefore, n)
		}
	})
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.cancel()
	select {
	case <-ts.done:
		if ts.err != nil {
			t.Errorf("Serve: %v", ts.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func (ts *testServer) dial(t *testing.T) *protocol.Client {
	t.Helper()
	cl, err := protocol.Dial(ts.path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// raw connects without speaking; it returns the connection after reading
// the greeting.
func (ts *testServer) raw(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ts.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	expect(t, c, "protocol^@connection_cache_protocol^@^@")
	return c
}

func wire(s string) []byte { return []byte(strings.ReplaceAll(s, "^@", "\x00")) }

// expect reads exactly the expected bytes (no descriptor in flight).
func expect(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	buf := make([]byte, len(wire(want)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if got := strings.ReplaceAll(string(buf), "\x00", "^@"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// expectNothing checks that no byte arrives within d.
func expectNothing(t *testing.T, c *net.UnixConn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1)
	if n, err := c.Read(buf); n > 0 || err == nil {
		t.Fatalf("unexpected reply byte %q", buf[:n])
	}
}

// pair is a connected socket pair standing for an SMTP connection: the
// cache gets near, the test keeps far to identify what comes back.
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

// is checks that fd is p.near by writing through it and reading at p.far.
func (p pair) is(t *testing.T, fd int) {
	t.Helper()
	msg := []byte(fmt.Sprint("hello ", fd))
	if _, err := unix.Write(fd, msg); err != nil {
		t.Fatalf("write through fd %d: %v", fd, err)
	}
	buf := make([]byte, 64)
	unix.SetNonblock(p.far, true)
	defer unix.SetNonblock(p.far, false)
	n, err := unix.Read(p.far, buf)
	if err != nil || string(buf[:n]) != string(msg) {
		t.Fatalf("fd %d is not the saved connection (%q, %v)", fd, buf[:max(n, 0)], err)
	}
}

// save stores p.near under label and closes the test's copy, as smtp(8)
// does.
func save(t *testing.T, cl *protocol.Client, ttl int, label, prop string, p pair) {
	t.Helper()
	st, err := cl.SaveEndp(ttl, label, prop, p.near)
	unix.Close(p.near)
	if err != nil || st != protocol.StatusOK {
		t.Fatalf("save_endp: %d %v", st, err)
	}
}

// Serve reserves the descriptor table for RLIMIT_NOFILE descriptors up
// front (/proc/self/status FDSize), so that no request waits while Linux
// grows it.
func TestDescriptorTableReserved(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, nil)
	ts.dial(t).Close()
	if size, want := procStatus("FDSize"), int64(min(rl.Cur, maxReservedDescriptors)); size < want {
		t.Errorf("descriptor table holds %d, want at least RLIMIT_NOFILE %d", size, want)
	}
}

// procStatus returns a field of /proc/self/status (VmRSS in KiB, FDSize),
// or -1.
func procStatus(field string) int64 { return procStatusFile("/proc/self/status", field) }

// procStatusFile returns a field of a /proc/PID/status file, or -1.
func procStatusFile(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
