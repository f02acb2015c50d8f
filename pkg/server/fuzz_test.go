package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/scached/scached/pkg/protocol"
)

// FuzzServeConn drives a whole server connection with arbitrary client
// bytes. After every input the server must close the connection once the
// client has stopped writing (or answer and wait), still serve another
// client correctly, and hold no descriptor more than before.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"request^@save_endp^@ttl^@2^@label^@L^@property^@P^@^@^@",
		"request^@save_dest^@ttl^@2^@label^@D^@property^@DP^@label^@L^@^@",
		"request^@find_dest^@label^@D^@^@dummy^@^@^@dummy^@^@^@",
		"request^@find_endp^@label^@L^@^@dummy^@^@^@",
		"label^@x^@request^@find_endp^@^@request^@FIND^@^@",
		"request^@save_endp^@ttl^@-1^@label^@^@property^@^@^@",
		"request^@find_endp^@foo^@bar^@label^@L^@^@^@^@",
	} {
		f.Add(wire(s))
	}
	path := filepath.Join(f.TempDir(), "scache")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		f.Fatal(err)
	}
	log := &memLog{}
	srv, err := New(Config{Log: log, MaxIdle: -1, IPCTimeout: 2 * time.Second, RequestSizeLimit: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	f.Cleanup(func() { cancel(); <-done })

	f.Fuzz(func(t *testing.T, in []byte) {
		before := countFDs(t)
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		c.Write(in)
		c.CloseWrite()
		// The server ends the connection: after EOF it has nothing to do
		// (a save waiting for its descriptor sees EOF too).
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		for {
			_, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("server did not close the connection after the client's EOF")
				}
				break
			}
		}
		c.Close()
		// Another client is served, and the cache answers consistently.
		cl, err := protocol.Dial(path, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st, _, fd, err := cl.FindEndp("\xff never saved by the seeds")
		cl.Close()
		if err != nil || st != protocol.StatusFail || fd != -1 {
			t.Fatalf("server broken after the input: %d %v", st, err)
		}
		// The server runs in this process: once it has seen both clients
		// go, it must hold no descriptor more than before. (No input saves
		// a session: the fuzzer cannot send descriptors.)
		deadline := time.Now().Add(2 * time.Second)
		for countFDs(t) > before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if after := countFDs(t); after > before {
			t.Fatalf("descriptors: %d before, %d after", before, after)
		}
	})
}
