package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/server"
)

// wire turns the protocol reference's notation ("^@" for NUL) into bytes.
func wire(s string) []byte { return []byte(strings.ReplaceAll(s, "^@", "\x00")) }

func unwire(b []byte) string { return strings.ReplaceAll(string(b), "\x00", "^@") }

// testLogger collects a server's warnings.
type testLogger struct {
	mu    sync.Mutex
	warns []string
}

func (l *testLogger) Debugf(string, ...any)    {}
func (l *testLogger) Infof(string, ...any)     {}
func (l *testLogger) Statistics(journal.Stats) {}
func (l *testLogger) Warnf(f string, args ...any) {
	l.mu.Lock()
	l.warns = append(l.warns, f)
	l.mu.Unlock()
}

// startScached serves an in-process pkg/server on a socket in dir. The
// returned stop function shuts it down and waits for it.
func startScached(t testing.TB, dir string, cfg server.Config) (string, func()) {
	t.Helper()
	path := filepath.Join(dir, "scached.sock")
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	log := &testLogger{}
	cfg.Log = log
	cfg.MaxIdle = -1
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return path, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		if len(log.warns) > 0 {
			t.Errorf("server warnings: %q", log.warns)
		}
	}
}

// startLimit serves the limit server on a socket in dir.
func startLimit(t testing.TB, dir string, hitDest, hitEndp float64) (string, func()) {
	t.Helper()
	path := filepath.Join(dir, "limit.sock")
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newLimitServer(hitDest, hitEndp, 64)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	return path, func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.closeAll()
	}
}

// rawClient speaks the protocol by hand and records every byte the server
// sends.
type rawClient struct {
	t   *testing.T
	uc  *net.UnixConn
	got bytes.Buffer
}

func dialRaw(t *testing.T, path string) *rawClient {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, uc: c}
}

func (c *rawClient) send(s string) {
	if _, err := c.uc.Write(wire(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly the bytes of want (recvmsg, so a descriptor that
// comes with them is returned, or -1) and records them.
func (c *rawClient) expect(want string) int {
	c.t.Helper()
	w := wire(want)
	buf := make([]byte, len(w))
	oob := make([]byte, unix.CmsgSpace(4))
	fd := -1
	c.uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := 0; got < len(buf); {
		n, oobn, _, _, err := c.uc.ReadMsgUnix(buf[got:], oob)
		if err != nil && err != io.EOF || n == 0 {
			c.t.Fatalf("reading %q: got %q, %v", want, unwire(buf[:got]), err)
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			fds, _ := unix.ParseUnixRights(&msgs[0])
			fd = fds[0]
		}
		got += n
	}
	c.got.Write(buf)
	if !bytes.Equal(buf, w) {
		c.t.Fatalf("server sent %q, want %q", unwire(buf), want)
	}
	return fd
}

func (c *rawClient) sendFD(fd int) {
	if _, _, err := c.uc.WriteMsgUnix([]byte{0}, unix.UnixRights(fd), nil); err != nil {
		c.t.Fatal(err)
	}
}

// script is one client's exchange with a server, as real smtp(8) makes it
// (postfix-scache-protocol.md §4), with every reply checked against the
// reference's byte sequences.
func script(t *testing.T, path string) []byte {
	c := dialRaw(t, path)
	const endp = "smtp\n127.0.0.1\n2525\n0\n"
	const dest = "smtp\n[127.0.0.1]:2525\n"
	c.expect("protocol^@connection_cache_protocol^@^@")
	// A miss on both lookups.
	c.send("request^@find_dest^@label^@" + dest + "^@^@")
	c.expect("status^@2^@property^@^@property^@^@^@")
	c.send("request^@find_endp^@label^@" + endp + "^@^@")
	c.expect("status^@2^@property^@^@^@")
	// Saves.
	p, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	defer unix.Close(p[1])
	c.send("request^@save_dest^@ttl^@2^@label^@" + dest + "^@property^@" + destProp + "^@label^@" + endp + "^@^@")
	c.expect("status^@0^@^@")
	c.send("request^@save_endp^@ttl^@2^@label^@" + endp + "^@property^@" + endpProp + "^@^@")
	c.expect("dummy^@^@^@")
	c.sendFD(p[0])
	c.expect("status^@0^@^@")
	unix.Close(p[0])
	// A hit by destination: status and both properties, dummy, descriptor,
	// dummy.
	c.send("request^@find_dest^@label^@" + dest + "^@^@")
	c.expect("status^@0^@property^@" + destProp + "^@property^@" + endpProp + "^@^@")
	c.send("dummy^@^@^@")
	fd := c.expect("^@")
	if fd < 0 {
		t.Fatal("find_dest hit came without a descriptor")
	}
	c.send("dummy^@^@^@")
	// Save it again; a hit by endpoint.
	c.send("request^@save_endp^@ttl^@2^@label^@" + endp + "^@property^@" + endpProp + "^@^@")
	c.expect("dummy^@^@^@")
	c.sendFD(fd)
	c.expect("status^@0^@^@")
	unix.Close(fd)
	c.send("request^@find_endp^@label^@" + endp + "^@^@")
	c.expect("status^@0^@property^@" + endpProp + "^@^@")
	c.send("dummy^@^@^@")
	if fd = c.expect("^@"); fd < 0 {
		t.Fatal("find_endp hit came without a descriptor")
	}
	c.send("dummy^@^@^@")
	unix.Close(fd)
	// The cache is empty again.
	c.send("request^@find_endp^@label^@" + endp + "^@^@")
	c.expect("status^@2^@property^@^@^@")
	return c.got.Bytes()
}

// The limit server's bytes equal the protocol reference's and, for the
// same exchange, scached's, byte for byte.
func TestLimitServerBytes(t *testing.T) {
	dir := t.TempDir()
	lpath, stopLimit := startLimit(t, dir, 1, 1)
	spath, stopScached := startScached(t, dir, server.Config{})
	fromLimit := script(t, lpath)
	fromScached := script(t, spath)
	if !bytes.Equal(fromLimit, fromScached) {
		t.Errorf("limit server sent\n%q\nscached sent\n%q", unwire(fromLimit), unwire(fromScached))
	}
	stopLimit()
	stopScached()
}

func TestScanList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		first string
		n     int
		ok    bool
	}{
		{"request^@find_endp^@label^@x^@^@", "find_endp", 27, true},
		{"request^@find_endp^@label^@x^@^@request", "find_endp", 27, true},
		{"dummy^@^@^@", "", 8, true},
		{"^@", "", 1, true},
		{"request^@find_endp^@label^@x^@", "", 0, false},
		{"request^@find_e", "", 0, false},
		{"", "", 0, false},
	} {
		first, n, ok := scanList(wire(tc.in))
		if string(first) != tc.first || n != tc.n || ok != tc.ok {
			t.Errorf("scanList(%q) = %q, %d, %t; want %q, %d, %t", tc.in, first, n, ok, tc.first, tc.n, tc.ok)
		}
	}
}
