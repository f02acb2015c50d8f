package activation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The socket activation tests run Listener in a child process, the test
// binary itself, with real sockets of every kind on descriptor 3 and up,
// as systemd hands them over (ExtraFiles). The child reports what Listener
// returned as JSON on stdout and, on success, greets one client on the
// listener it got.

const childEnv = "SCACHED_TEST_ACTIVATION_CHILD"

// childReport is what the child prints.
type childReport struct {
	Skip     string            `json:"skip,omitempty"`
	Err      string            `json:"err,omitempty"`
	Kinds    []string          `json:"kinds,omitempty"` // sentinels errors.Is matches
	Name     string            `json:"name,omitempty"`
	Env      map[string]string `json:"env"` // LISTEN_* still set after Listener
	Accepted bool              `json:"accepted"`
}

var sentinels = map[string]error{
	"ErrNoSocket":    ErrNoSocket,
	"ErrEnvironment": ErrEnvironment,
	"ErrNotOurs":     ErrNotOurs,
	"ErrSocketCount": ErrSocketCount,
	"ErrSocketKind":  ErrSocketKind,
	"EBADF":          unix.EBADF,
	"ENOTSOCK":       unix.ENOTSOCK,
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(activationChild())
	}
	os.Exit(m.Run())
}

// activationChild runs in the child process.
func activationChild() int {
	var rep childReport
	if os.Getenv("SCACHED_TEST_CLOSE_FD3") != "" {
		// Go 1.25+ keeps cgroup files open from start-up, so descriptor
		// 3 is never free in a fresh Go process: the parent passes a
		// placeholder there and we close it.
		if err := unix.Close(3); err != nil {
			rep.Skip = "cannot close the placeholder on descriptor 3: " + err.Error()
			return report(rep)
		}
	}
	ln, name, err := Listener()
	rep.Env = map[string]string{}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if s, ok := os.LookupEnv(v); ok {
			rep.Env[v] = s
		}
	}
	if err != nil {
		if ln != nil || name != "" {
			rep.Err = fmt.Sprintf("Listener returned %v, %q with error %v", ln, name, err)
			return report(rep)
		}
		rep.Err = err.Error()
		for k, e := range sentinels {
			if errors.Is(err, e) {
				rep.Kinds = append(rep.Kinds, k)
			}
		}
		return report(rep)
	}
	rep.Name = name
	if os.Getenv("SCACHED_TEST_ACCEPT") != "" {
		ln.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.AcceptUnix()
		if err != nil {
			rep.Err = "accept: " + err.Error()
			return report(rep)
		}
		fmt.Fprintf(c, "hello %s\n", name)
		c.Close()
		rep.Accepted = true
	}
	ln.Close()
	return report(rep)
}

func report(rep childReport) int {
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// activation describes one hand-over to the child.
type activation struct {
	files []*os.File // become descriptors 3, 4, ...
	pid   string     // "self": the child's own pid; "": unset; else literal
	env   []string   // LISTEN_FDS=..., LISTEN_FDNAMES=..., other test knobs
	// connect, if set, is dialled once the child runs; the child greets.
	connect string
}

// cleanEnv is the test's environment without anything systemd may have set.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LISTEN_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func runChild(t *testing.T, a activation) childReport {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	switch a.pid {
	case "self":
		// LISTEN_PID cannot be known before fork: let the shell set its
		// own pid, which the exec keeps.
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c",
			`LISTEN_PID=$$; export LISTEN_PID; exec "$@"`, "sh", exe, "-test.run=^$")
	default:
		cmd = exec.CommandContext(ctx, exe, "-test.run=^$")
	}
	// The race detector sleeps a second at exit unless told not to.
	cmd.Env = append(cleanEnv(), childEnv+"=1", "GORACE=atexit_sleep_ms=0")
	if a.pid != "self" && a.pid != "" {
		cmd.Env = append(cmd.Env, "LISTEN_PID="+a.pid)
	}
	cmd.Env = append(cmd.Env, a.env...)
	if a.connect != "" {
		cmd.Env = append(cmd.Env, "SCACHED_TEST_ACCEPT=1")
	}
	cmd.ExtraFiles = a.files
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if a.connect != "" {
		greet(t, a.connect)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\nstderr: %s", err, stderr.String())
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("child output %q: %v\nstderr: %s", stdout.String(), err, stderr.String())
	}
	if rep.Skip != "" {
		t.Skip(rep.Skip)
	}
	return rep
}

// greet connects to path, where the child listens (the connection may
// wait in the backlog until it does), and checks its greeting.
func greet(t *testing.T, path string) {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Errorf("connect to child: %v", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(b), "hello ") {
		t.Errorf("child greeting: %q, %v", b, err)
	}
}

// shortDir is a temporary directory with a path short enough for sun_path
// (108 bytes), which t.TempDir() may exceed.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "act")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// unixListenerFile returns a listening UNIX stream socket as a file, and
// its path. The test keeps its own listener open, as systemd does.
func unixListenerFile(t *testing.T, dir, name string) (*os.File, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// rawSocketFile creates a socket with socket(2) directly; bind binds it to
// a path in dir, listen makes it listen.
func rawSocketFile(t *testing.T, dir string, domain, typ int, bind, listen bool) *os.File {
	t.Helper()
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "raw")
	t.Cleanup(func() { f.Close() })
	if bind {
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, "raw")}); err != nil {
			t.Fatal(err)
		}
	}
	if listen {
		if err := unix.Listen(fd, 5); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestListenerSuccess(t *testing.T) {
	dir := shortDir(t)
	f, path := unixListenerFile(t, dir, "scached")
	rep := runChild(t, activation{
		files:   []*os.File{f},
		pid:     "self",
		env:     []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"},
		connect: path,
	})
	if rep.Err != "" {
		t.Fatalf("Listener: %s", rep.Err)
	}
	if rep.Name != "scache" || !rep.Accepted {
		t.Errorf("got name %q accepted %v, want scache, true", rep.Name, rep.Accepted)
	}
	if len(rep.Env) != 0 {
		t.Errorf("LISTEN_* left in the environment: %v", rep.Env)
	}
	// The socket file belongs to systemd: closing the child's listener
	// must not remove it.
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket file after the child closed its listener: %v, %v", fi, err)
	}
}

func TestListenerDefaultName(t *testing.T) {
	dir := shortDir(t)
	f, path := unixListenerFile(t, dir, "scached")
	rep := runChild(t, activation{
		files:   []*os.File{f},
		pid:     "self",
		env:     []string{"LISTEN_FDS=1"},
		connect: path,
	})
	if rep.Err != "" {
		t.Fatalf("Listener: %s", rep.Err)
	}
	if rep.Name != "LISTEN_FD_3" {
		t.Errorf("name %q, want LISTEN_FD_3", rep.Name)
	}
}

// TestListenerErrors covers every way a hand-over can be wrong, with real
// sockets of the wrong kind.
func TestListenerErrors(t *testing.T) {
	type tc struct {
		name  string
		setup func(t *testing.T, dir string) activation
		kinds []string // sentinels the error must match
		text  string   // the error text
	}
	listening := func(t *testing.T, dir string) []*os.File {
		f, _ := unixListenerFile(t, dir, "ok")
		return []*os.File{f}
	}
	tcs := []tc{
		{
			name: "no LISTEN_FDS",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir)}
			},
			kinds: []string{"ErrNoSocket"},
			text:  "no socket passed by systemd (LISTEN_FDS unset): use -listen PATH",
		},
		{
			name: "LISTEN_FDS empty",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), env: []string{"LISTEN_FDS="}}
			},
			kinds: []string{"ErrNoSocket"},
			text:  "no socket passed by systemd (LISTEN_FDS unset): use -listen PATH",
		},
		{
			name: "LISTEN_PID without LISTEN_FDS",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), pid: "self"}
			},
			kinds: []string{"ErrNoSocket"},
			text:  "no socket passed by systemd (LISTEN_FDS unset): use -listen PATH",
		},
		{
			name: "LISTEN_PID empty",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), env: []string{"LISTEN_PID=", "LISTEN_FDS=1"}}
			},
			kinds: []string{"ErrEnvironment"},
			text:  "bad socket activation environment: LISTEN_FDS=1 but LISTEN_PID unset",
		},
		{
			name: "LISTEN_FDS not a number",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), pid: "self", env: []string{"LISTEN_FDS=one"}}
			},
			kinds: []string{"ErrEnvironment"},
			text:  `bad socket activation environment: LISTEN_FDS="one" is not a number of descriptors`,
		},
		{
			name: "LISTEN_PID unset",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), env: []string{"LISTEN_FDS=1"}}
			},
			kinds: []string{"ErrEnvironment"},
			text:  "bad socket activation environment: LISTEN_FDS=1 but LISTEN_PID unset",
		},
		{
			name: "LISTEN_PID not a number",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), pid: "me", env: []string{"LISTEN_FDS=1"}}
			},
			kinds: []string{"ErrEnvironment"},
			text:  `bad socket activation environment: LISTEN_PID="me" is not a process id`,
		},
		{
			name: "LISTEN_PID of another process",
			setup: func(t *testing.T, dir string) activation {
				return activation{files: listening(t, dir), pid: "1", env: []string{"LISTEN_FDS=1"}}
			},
			kinds: []string{"ErrNotOurs"},
			text:  "LISTEN_PID=1, not our pid ",
		},
		{
			name: "two sockets",
			setup: func(t *testing.T, dir string) activation {
				f1, _ := unixListenerFile(t, dir, "one")
				f2, _ := unixListenerFile(t, dir, "two")
				return activation{files: []*os.File{f1, f2}, pid: "self",
					env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=one:two"}}
			},
			kinds: []string{"ErrSocketCount"},
			text:  "LISTEN_FDS=2: scached takes exactly one socket",
		},
		{
			name: "zero sockets",
			setup: func(t *testing.T, dir string) activation {
				return activation{pid: "self", env: []string{"LISTEN_FDS=0"}}
			},
			kinds: []string{"ErrSocketCount"},
			text:  "LISTEN_FDS=0: scached takes exactly one socket",
		},
		{
			name: "datagram socket",
			setup: func(t *testing.T, dir string) activation {
				pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "dgram"), Net: "unixgram"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pc.Close() })
				f, err := pc.File()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"}}
			},
			kinds: []string{"ErrSocketKind"},
			text:  "fd 3 (scache) is a datagram socket, not a stream socket: scached needs a listening UNIX-domain stream socket",
		},
		{
			name: "seqpacket socket",
			setup: func(t *testing.T, dir string) activation {
				f := rawSocketFile(t, dir, unix.AF_UNIX, unix.SOCK_SEQPACKET, true, true)
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"}}
			},
			kinds: []string{"ErrSocketKind"},
			text:  "fd 3 (scache) is a seqpacket socket, not a stream socket",
		},
		{
			name: "stream socket not listening",
			setup: func(t *testing.T, dir string) activation {
				f := rawSocketFile(t, dir, unix.AF_UNIX, unix.SOCK_STREAM, true, false)
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"}}
			},
			kinds: []string{"ErrSocketKind"},
			text:  "fd 3 (scache) is a UNIX-domain stream socket that is not listening",
		},
		{
			name: "connected stream socket",
			setup: func(t *testing.T, dir string) activation {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				f0, f1 := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
				t.Cleanup(func() { f0.Close(); f1.Close() })
				return activation{files: []*os.File{f0}, pid: "self", env: []string{"LISTEN_FDS=1"}}
			},
			kinds: []string{"ErrSocketKind"},
			text:  "fd 3 (LISTEN_FD_3) is a UNIX-domain stream socket that is not listening",
		},
		{
			name: "TCP listener",
			setup: func(t *testing.T, dir string) activation {
				ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				f, err := ln.File()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"}}
			},
			kinds: []string{"ErrSocketKind"},
			text:  "fd 3 (scache) is an IPv4 socket, not a UNIX-domain socket",
		},
		{
			name: "regular file",
			setup: func(t *testing.T, dir string) activation {
				f, err := os.Create(filepath.Join(dir, "file"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache"}}
			},
			kinds: []string{"ErrSocketKind", "ENOTSOCK"},
			text:  "fd 3 (scache) is not a socket",
		},
		{
			name: "descriptor not open",
			setup: func(t *testing.T, dir string) activation {
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return activation{files: []*os.File{f}, pid: "self", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=scache",
					"SCACHED_TEST_CLOSE_FD3=1"}}
			},
			kinds: []string{"ErrSocketKind", "EBADF"},
			text:  "fd 3 (scache) is not open",
		},
	}
	for _, c := range tcs {
		t.Run(c.name, func(t *testing.T) {
			rep := runChild(t, c.setup(t, shortDir(t)))
			if rep.Err == "" {
				t.Fatalf("Listener succeeded (name %q), want error %q", rep.Name, c.text)
			}
			if !strings.Contains(rep.Err, c.text) {
				t.Errorf("error %q does not contain %q", rep.Err, c.text)
			}
			got := strings.Join(sorted(rep.Kinds), ",")
			if want := strings.Join(sorted(c.kinds), ","); got != want {
				t.Errorf("error %q matches %s, want %s", rep.Err, got, want)
			}
			if len(rep.Env) != 0 {
				t.Errorf("LISTEN_* left in the environment: %v", rep.Env)
			}
		})
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// TestListenerSystemdSocketActivate hands the socket over with systemd's
// own tool, which binds, waits for a client and then execs the child.
func TestListenerSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortDir(t), "scached")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "-l", path, "--fdname=scache",
		"-E", childEnv+"=1", "-E", "SCACHED_TEST_ACCEPT=1", exe, "-test.run=^$")
	cmd.Env = append(cleanEnv(), "GORACE=atexit_sleep_ms=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Lstat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("systemd-socket-activate did not create %s; stderr: %s", path, stderr.String())
		}
	}
	greet(t, path)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("child output %q: %v; stderr: %s", stdout.String(), err, stderr.String())
	}
	if rep.Err != "" || rep.Name != "scache" || !rep.Accepted || len(rep.Env) != 0 {
		t.Errorf("child report %+v, want name scache, accepted, no LISTEN_* left", rep)
	}
}

func TestListen(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "scached")
	ln, err := Listen(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file mode %v, want socket 0666", fi.Mode())
	}
	// It works.
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("x"))
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "x" {
		t.Errorf("read %q, %v", b, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close removes the socket file.
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v", err)
	}
}

func TestListenMode(t *testing.T) {
	path := filepath.Join(shortDir(t), "scached")
	ln, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "scached")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // the file stays, nobody listens: a crashed server's leftover
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
	ln, err := Listen(path, 0)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect to the new socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "scached")
	live, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ln, err := Listen(path, 0)
	if err == nil {
		ln.Close()
		t.Fatal("Listen replaced a live socket")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("error %v, want ErrInUse", err)
	}
	if want := "listen on " + path + ": another server is listening on it"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The live server still has its socket.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("live server lost its socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := shortDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{file: "a regular file", sub: "a directory", link: "a symbolic link", fifo: "a FIFO"} {
		ln, err := Listen(path, 0)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%s) replaced %s", path, kind)
			continue
		}
		if !errors.Is(err, ErrNotSocket) {
			t.Errorf("Listen(%s): %v, want ErrNotSocket", path, err)
		}
		want := fmt.Sprintf("listen on %s: refusing to replace a file that is not a socket (%s)", path, kind)
		if err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("regular file after Listen: %q, %v", b, err)
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Errorf("directory after Listen: %v", err)
	}
}

func TestListenMissingDirectory(t *testing.T) {
	path := filepath.Join(shortDir(t), "nodir", "scached")
	ln, err := Listen(path, 0)
	if err == nil {
		ln.Close()
		t.Fatal("Listen succeeded in a missing directory")
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v, want ENOENT", err)
	}
}

// notifySocket binds a unixgram socket for sd_notify and points
// NOTIFY_SOCKET at it.
func notifySocket(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return pc
}

func readNotify(t *testing.T, pc *net.UnixConn) string {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := pc.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	pc := notifySocket(t, filepath.Join(shortDir(t), "notify"))
	for _, state := range []string{"READY=1", "STOPPING=1"} {
		sent, err := Notify(state)
		if !sent || err != nil {
			t.Fatalf("Notify(%s) = %v, %v; want true, nil", state, sent, err)
		}
		if got := readNotify(t, pc); got != state {
			t.Errorf("notification %q, want %q", got, state)
		}
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Error("Notify unset NOTIFY_SOCKET")
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	// systemd uses abstract addresses ("@...") for NOTIFY_SOCKET in
	// some set-ups.
	pc := notifySocket(t, fmt.Sprintf("@scached-test-notify-%d", os.Getpid()))
	if sent, err := Notify("READY=1"); !sent || err != nil {
		t.Fatalf("Notify = %v, %v; want true, nil", sent, err)
	}
	if got := readNotify(t, pc); got != "READY=1" {
		t.Errorf("notification %q, want READY=1", got)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyBrokenSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(shortDir(t), "missing"))
	sent, err := Notify("READY=1")
	if sent || err == nil {
		t.Fatalf("Notify to a missing socket = %v, %v; want false, error", sent, err)
	}
	if !errors.Is(err, unix.ENOENT) || !strings.HasPrefix(err.Error(), "sd_notify READY=1: ") {
		t.Errorf("error %q, want sd_notify READY=1: ... ENOENT", err)
	}
}
