package integration

import (
	"errors"
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

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// Every request through the real binary, statistics on SIGTERM, cached
// connections closed on exit, exit status 0.
func TestRequestsAndSIGTERM(t *testing.T) {
	d, path := startListen(t)
	cl := dial(t, path)
	p1, p2 := newPair(t), newPair(t)
	save(t, cl, "E", p1)
	if st, err := cl.SaveDest(2, "D", "dp", "E"); err != nil || st != 0 {
		t.Fatal(st, err)
	}
	st, dp, ep, fd, err := cl.FindDest("D")
	if err != nil || st != 0 || dp != "dp" || ep != "prop" {
		t.Fatalf("find_dest: %d %q %q %v", st, dp, ep, err)
	}
	p1.is(t, fd)
	unix.Close(fd)
	if st, _, _, _ := cl.FindEndp("E"); st != protocol.StatusFail {
		t.Fatal("session handed out twice")
	}
	save(t, cl, "E", p2)
	fdsWithSession := countFDs(t, d.cmd.Process.Pid)

	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, d.stderr)
	}
	if !p2.closedByPeer(t, time.Second) {
		t.Error("cached connection still open after exit")
	}
	out := d.stderr.String()
	for _, want := range []string{
		"postfix/scache[",
		"]: statistics: start interval ",
		"]: statistics: domain lookup hits=1 miss=0 success=100%",
		"]: statistics: max simultaneous domains=1 addresses=1 connection=1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if fdsWithSession < 4 {
		t.Errorf("implausible descriptor count %d", fdsWithSession)
	}
}

// A request answered with status 1 and a warning on stderr, in Postfix's
// format; the connection stays usable.
func TestBadRequestWarning(t *testing.T) {
	d, path := startListen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "protocol^@connection_cache_protocol^@^@")
	c.Write(wire("request^@save_endp^@ttl^@0^@label^@L^@property^@P^@^@"))
	expect(t, c, "status^@1^@^@")
	c.Write(wire("request^@find_endp^@label^@L^@^@"))
	expect(t, c, "status^@2^@property^@^@^@")
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t, 10*time.Second)
	if !strings.Contains(d.stderr.String(), "]: warning: scache_save_endp_service: bad or missing request parameter") {
		t.Errorf("no warning:\n%s", d.stderr)
	}
}

// A client stalled mid-request does not delay another one.
func TestStalledClient(t *testing.T) {
	_, path := startListen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(wire("request^@save_endp^@ttl^@2^@label^@L^@property^@P^@^@")) // never sends the fd
	cl := dial(t, path)
	start := time.Now()
	if st, _, _, err := cl.FindEndp("L"); err != nil || st != protocol.StatusFail {
		t.Fatal(st, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v behind a stalled client", d)
	}
}

// main.cf is read from -c DIR; -o overrides it. connection_cache_ttl_limit
// = 1s there makes a ttl=2 session expire after about a second.
func TestMainCfAndOverride(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte(fmt.Sprintf("# test\nconnection_cache_ttl_limit = 1s\nmax_idle = 5h\nscached_authorized_users = %d\n", os.Geteuid())), 0o644)
	path := filepath.Join(t.TempDir(), "scached")
	d := run(t, nil, nil, "-c", dir, "-listen", path)
	waitListening(t, d, path)
	cl := dial(t, path)
	p := newPair(t)
	start := time.Now()
	save(t, cl, "L", p)
	if !p.closedByPeer(t, 5*time.Second) {
		t.Fatal("not expired")
	}
	if el := time.Since(start); el < 900*time.Millisecond || el > 1700*time.Millisecond {
		t.Errorf("expired after %v, want about 1s (connection_cache_ttl_limit = 1s)", el)
	}

	// -o wins over main.cf.
	path2 := filepath.Join(t.TempDir(), "scached")
	d2 := run(t, nil, nil, "-c", dir, "-o", "connection_cache_ttl_limit=2s", "-listen", path2)
	waitListening(t, d2, path2)
	cl2 := dial(t, path2)
	p2 := newPair(t)
	start = time.Now()
	save(t, cl2, "L", p2)
	if !p2.closedByPeer(t, 5*time.Second) {
		t.Fatal("not expired")
	}
	if el := time.Since(start); el < 1900*time.Millisecond {
		t.Errorf("expired after %v, want about 2s (-o connection_cache_ttl_limit=2s)", el)
	}
}

// Malformed parameters fail at start with a message naming them.
func TestBadParameters(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("max_idle = 10x\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-c", dir, "-listen", "/nonexistent/x"}, "max_idle"},
		{[]string{"-c", t.TempDir(), "-o", "connection_cache_ttl_limit=abc", "-listen", "/nonexistent/x"}, "connection_cache_ttl_limit"},
		{[]string{"-c", t.TempDir(), "-o", "no_such_parameter=1", "-listen", "/nonexistent/x"}, "no_such_parameter"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%v: exit %v", tc.args, err)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: message does not name %s: %s", tc.args, tc.want, out)
		}
	}
}

func waitListening(t *testing.T, d *daemon, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || d.exited() {
			t.Fatalf("not listening; stderr:\n%s", d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heldSocket is a listening socket held by the test the way a .socket unit
// holds it: it outlives every daemon process.
func heldSocket(t *testing.T) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scached")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // f keeps the socket
	t.Cleanup(func() { f.Close() })
	return path, f
}

// pending reports whether a connection waits in the held socket's backlog.
// It polls through SyscallConn: f.Fd() would put the socket's open file
// description, shared with a running daemon, into blocking mode, and the
// daemon's accept would then block in the kernel.
func pending(f *os.File, timeout time.Duration) bool {
	raw, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		ready = err == nil && n > 0
	})
	return ready
}

// Socket activation: the daemon serves the passed socket, exits 0 after
// max_idle, and a client that connects meanwhile waits in the backlog until
// the next activation serves it.
func TestSocketActivationReactivation(t *testing.T) {
	path, f := heldSocket(t)
	for i := 0; i < 3; i++ {
		var cl *protocol.Client
		var d *daemon
		if i == 0 {
			d = run(t, []*os.File{f}, nil, "-c", emptyConfig(t), "-o", "max_idle=1s")
			cl = dial(t, path)
		} else {
			// Connect while no daemon runs: the connection waits in the
			// backlog, and Dial waits for the greeting, which comes from
			// the next activation.
			type dialed struct {
				cl  *protocol.Client
				err error
			}
			ch := make(chan dialed, 1)
			go func() {
				cl, err := protocol.Dial(path, 10*time.Second)
				ch <- dialed{cl, err}
			}()
			if !pending(f, 5*time.Second) {
				t.Fatal("the waiting client is not in the backlog")
			}
			d = run(t, []*os.File{f}, nil, "-c", emptyConfig(t), "-o", "max_idle=1s")
			r := <-ch
			if r.err != nil {
				t.Fatalf("activation %d: waiting client not served: %v", i, r.err)
			}
			cl = r.cl
		}
		if st, _, _, err := cl.FindEndp("L"); err != nil || st != protocol.StatusFail {
			t.Fatalf("activation %d: %d %v", i, st, err)
		}
		cl.Close()
		start := time.Now()
		if err := d.wait(t, 10*time.Second); err != nil {
			t.Fatalf("activation %d: exit %v; stderr:\n%s", i, err, d.stderr)
		}
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("idle exit after %v, want max_idle=1s", el)
		}
	}
}

// Clients spaced around the idle timeout, with a supervisor that starts the
// daemon whenever a connection is pending (what systemd does): every client
// is served, none is refused or reset, and every activation exits 0.
func TestIdleExitRace(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: idle-exit race takes ~10 s")
	}
	path, f := heldSocket(t)
	stop := make(chan struct{})
	var activations, failures int
	var supMu sync.Mutex
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !pending(f, 20*time.Millisecond) {
				continue
			}
			d := run(t, []*os.File{f}, nil, "-c", emptyConfig(t), "-o", "max_idle=1s")
			<-d.done
			supMu.Lock()
			activations++
			if d.err != nil {
				failures++
				t.Errorf("activation exited with %v:\n%s", d.err, d.stderr)
			}
			supMu.Unlock()
		}
	}()
	served := 0
	for i := 0; i < 10; i++ {
		// Around the 1 s idle timeout, where the race lives.
		time.Sleep(time.Duration(900+(i%5)*50) * time.Millisecond)
		cl, err := protocol.Dial(path, 10*time.Second)
		if err != nil {
			t.Fatalf("client %d refused: %v", i, err)
		}
		st, _, _, err := cl.FindEndp("L")
		cl.Close()
		if err != nil || st != protocol.StatusFail {
			t.Fatalf("client %d: %d %v", i, st, err)
		}
		served++
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	<-supDone
	t.Logf("%d clients served across %d activations", served, activations)
	if activations < 2 {
		t.Errorf("only %d activations: the idle exit did not happen", activations)
	}
}

// LISTEN_FDS is validated: not exactly one stream listener fails with a
// clear message.
func TestActivationValidation(t *testing.T) {
	_, f1 := heldSocket(t)
	_, f2 := heldSocket(t)
	dgram, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := os.NewFile(uintptr(dgram), "dgram")
	defer fd.Close()
	for _, tc := range []struct {
		name  string
		files []*os.File
		env   []string
		want  string
	}{
		{"two sockets", []*os.File{f1, f2}, nil, "LISTEN_FDS=2"},
		{"datagram socket", []*os.File{fd}, nil, "datagram"},
		{"no socket", nil, nil, "-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d *daemon
			if tc.files == nil {
				d = run(t, nil, tc.env, "-c", emptyConfig(t))
			} else {
				d = run(t, tc.files, tc.env, "-c", emptyConfig(t))
			}
			err := d.wait(t, 10*time.Second)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit %v", err)
			}
			if !strings.Contains(d.stderr.String(), tc.want) {
				t.Errorf("message does not mention %q:\n%s", tc.want, d.stderr)
			}
		})
	}
}

// scached_legacy_clients = auto: the binary serves a client that behaves
// like Postfix 3.5's scache_clnt.c (request first, no greeting) and a 3.6+
// client side by side; = no (the default) greets the old one, which then
// fails as it would against Postfix 3.6's scache.
func TestLegacyClientsBinary(t *testing.T) {
	_, path := startListen(t, "-o", "scached_legacy_clients=auto")
	old, err := protocol.DialLegacy(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	p := newPair(t)
	if st, err := old.SaveEndp(2, "E", "ep", p.near); err != nil || st != 0 {
		t.Fatalf("legacy save_endp: %d %v", st, err)
	}
	unix.Close(p.near)
	modern := dial(t, path)
	st, prop, fd, err := modern.FindEndp("E")
	if err != nil || st != 0 || prop != "ep" {
		t.Fatalf("modern find_endp: %d %v", st, err)
	}
	p.is(t, fd)
	unix.Close(fd)
	if st, _, _, err := old.FindEndp("E"); err != nil || st != protocol.StatusFail {
		t.Fatalf("legacy find_endp: %d %v", st, err)
	}

	_, path2 := startListen(t)
	old2, err := protocol.DialLegacy(path2, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer old2.Close()
	if _, _, _, err := old2.FindEndp("E"); err == nil {
		t.Error("a legacy client worked against the default (greeting) mode")
	}
}

// Peer credentials: a user outside scached_authorized_users gets no
// greeting, the connection is closed, and the refusal is logged.
func TestAuthorizedUsersBinary(t *testing.T) {
	other := os.Geteuid() + 1
	d, path := startListen(t, "-o", fmt.Sprintf("scached_authorized_users=%d", other))
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	if n, err := c.Read(buf); n != 0 || err == nil {
		t.Fatalf("refused client got %d bytes, %v", n, err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t, 10*time.Second)
	want := fmt.Sprintf("warning: refusing connection from uid %d", os.Geteuid())
	if !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, d.stderr)
	}
}

// Out of descriptors: with RLIMIT_NOFILE small and scached_session_limit
// set above it, a save whose descriptor the kernel cannot install
// (MSG_CTRUNC) gets status 2, nothing leaks, and the daemon goes on
// serving; once sessions are taken out, saves succeed again.
func TestOutOfDescriptors(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("SKIP: prlimit (util-linux) not found")
	}
	path := filepath.Join(t.TempDir(), "scached")
	cmd := exec.Command("prlimit", "--nofile=40:40", bin, "-c", emptyConfig(t), "-listen", path,
		"-o", "scached_session_limit=1000", "-o", "scached_endpoint_session_limit=0")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	d := &daemon{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-d.done })
	waitListening(t, d, path)
	cl := dial(t, path)
	saved, refused := 0, 0
	for i := 0; i < 60 && refused < 3; i++ {
		p := newPair(t)
		st, err := cl.SaveEndp(2, "E", "p", p.near)
		unix.Close(p.near)
		if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		switch st {
		case protocol.StatusOK:
			saved++
		case protocol.StatusFail:
			refused++
			// The refused descriptor was not kept: its peer sees EOF.
			if !p.closedByPeer(t, 2*time.Second) {
				t.Fatal("refused descriptor leaked")
			}
		default:
			t.Fatalf("save %d: status %d", i, st)
		}
	}
	if refused == 0 || saved == 0 {
		t.Fatalf("saved %d, refused %d: the descriptor limit was never reached", saved, refused)
	}
	full := countFDs(t, cmd.Process.Pid)
	// Take two sessions out; saving works again.
	for i := 0; i < 2; i++ {
		st, _, fd, err := cl.FindEndp("E")
		if err != nil || st != 0 {
			t.Fatalf("find: %d %v", st, err)
		}
		unix.Close(fd)
	}
	p := newPair(t)
	if st, err := cl.SaveEndp(2, "E", "p", p.near); err != nil || st != 0 {
		t.Fatalf("save after freeing: %d %v", st, err)
	}
	unix.Close(p.near)
	if !strings.Contains(d.stderr.String(), "unable to receive file descriptor") {
		t.Errorf("no warning:\n%s", d.stderr)
	}
	t.Logf("saved %d sessions, then %d saves refused with status 2 (%d descriptors open at the limit)", saved, refused, full)
}
