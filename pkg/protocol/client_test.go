package protocol

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// From the captured smtp(8) <-> scache(8) traffic (postfix-smtp-traffic.txt).
const (
	endpLabel = "smtp\n127.0.0.1\n2525\n0\n"
	endpProp  = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
	destLabel = "smtp\n[127.0.0.1]:2525\n"
	destProp  = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
)

// expectBytes reads exactly len(want) bytes with plain reads (no descriptor
// is in flight) and compares them.
func expectBytes(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	buf := make([]byte, len(wire(want)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if got := unwire(buf); got != want {
		t.Fatalf("client sent\n %q\nwant\n %q", got, want)
	}
}

func clientOver(t *testing.T) (*Client, *net.UnixConn) {
	a, b := socketPair(t)
	b.Write(wire("protocol^@connection_cache_protocol^@^@"))
	cl, err := NewClient(a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cl, b
}

func TestClientGreeting(t *testing.T) {
	for _, greeting := range []string{"protocol^@other^@^@", "status^@0^@^@", "^@"} {
		a, b := socketPair(t)
		b.Write(wire(greeting))
		if _, err := NewClient(a, time.Second); err == nil {
			t.Errorf("greeting %q accepted", greeting)
		}
	}
}

// The client's bytes equal real smtp(8)'s, byte for byte, for every request
// and both directions of every descriptor transfer.
func TestClientWire(t *testing.T) {
	cl, srv := clientOver(t)
	server := NewConn(srv, 5*time.Second)
	r, w := pipePair(t)
	defer unix.Close(r)

	done := make(chan error, 1)
	go func() {
		st, err := cl.SaveEndp(2, endpLabel, endpProp, w)
		if err == nil && st != StatusOK {
			t.Errorf("status %d", st)
		}
		done <- err
	}()
	expectBytes(t, srv, "request^@save_endp^@ttl^@2^@label^@"+endpLabel+"^@property^@"+endpProp+"^@^@")
	srv.Write(wire("dummy^@^@^@"))
	fd, err := server.RecvFD()
	if err != nil {
		t.Fatal(err)
	}
	srv.Write(wire("status^@0^@^@"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	unix.Close(w)

	go func() {
		st, err := cl.SaveDest(2, destLabel, destProp, endpLabel)
		if err == nil && st != StatusOK {
			t.Errorf("status %d", st)
		}
		done <- err
	}()
	expectBytes(t, srv, "request^@save_dest^@ttl^@2^@label^@"+destLabel+"^@property^@"+destProp+"^@label^@"+endpLabel+"^@^@")
	srv.Write(wire("status^@0^@^@"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var gotFD int
	go func() {
		st, dp, ep, fd, err := cl.FindDest(destLabel)
		if err == nil && (st != StatusOK || dp != destProp || ep != endpProp) {
			t.Errorf("find_dest: %d %q %q", st, dp, ep)
		}
		gotFD = fd
		done <- err
	}()
	expectBytes(t, srv, "request^@find_dest^@label^@"+destLabel+"^@^@")
	srv.Write(wire("status^@0^@property^@" + destProp + "^@property^@" + endpProp + "^@^@"))
	expectBytes(t, srv, "dummy^@^@^@")
	if err := server.SendFD(fd); err != nil {
		t.Fatal(err)
	}
	expectBytes(t, srv, "dummy^@^@^@")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, gotFD, r)
	unix.Close(gotFD)
	unix.Close(fd)

	go func() {
		st, _, fd, err := cl.FindEndp(endpLabel)
		if err == nil && (st != StatusFail || fd != -1) {
			t.Errorf("find_endp miss: %d %d", st, fd)
		}
		done <- err
	}()
	expectBytes(t, srv, "request^@find_endp^@label^@"+endpLabel+"^@^@")
	srv.Write(wire("status^@2^@property^@^@^@"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A bad save_endp is answered with a status instead of the dummy; the
// client returns it without sending the descriptor.
func TestClientSaveEndpBad(t *testing.T) {
	cl, srv := clientOver(t)
	done := make(chan int, 1)
	go func() {
		st, err := cl.SaveEndp(0, "L", "P", 0)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	expectBytes(t, srv, "request^@save_endp^@ttl^@0^@label^@L^@property^@P^@^@")
	srv.Write(wire("status^@1^@^@"))
	if st := <-done; st != StatusBad {
		t.Errorf("status %d", st)
	}
}
