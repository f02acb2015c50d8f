package protocol

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

const saveEndpReq = "request^@save_endp^@ttl^@2^@label^@L^@property^@P^@^@"

// checkIdentity proves that got is the write end whose read end is r, by
// writing through it.
func checkIdentity(t *testing.T, got, r int) {
	t.Helper()
	if _, err := unix.Write(got, []byte("x")); err != nil {
		t.Fatalf("write through received descriptor: %v", err)
	}
	buf := make([]byte, 1)
	if n, err := unix.Read(r, buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("received descriptor is not the one sent: %d %v", n, err)
	}
}

func readSaveEndp(t *testing.T, sc *ServerConn) {
	t.Helper()
	req, err := sc.ReadRequest()
	if err != nil || req.Type != SaveEndp || !req.Valid {
		t.Fatalf("ReadRequest: %v %v", parsed(req), err)
	}
}

// The Postfix sequence: request, dummy from the server, then one NUL byte
// with one descriptor.
func TestRecvFD(t *testing.T) {
	before := openFDs(t)
	sc, peer := serverOver(t, 1<<20)
	r, w := pipePair(t)
	defer unix.Close(r)
	peer.writeRaw(wire(saveEndpReq))
	peer.Flush()
	readSaveEndp(t, sc)
	sc.WriteDummy()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		// The client waits for the dummy before it sends.
		buf := make([]byte, 9)
		peer.UnixConn().Read(buf)
		sendRights(t, peer.UnixConn(), []byte{0}, w)
		unix.Close(w)
	}()
	fd, err := sc.RecvFD()
	<-sent
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, fd, r)
	unix.Close(fd)
	if n := sc.Discarded(); n != 0 {
		t.Errorf("discarded %d", n)
	}
	sc.Close()
	peer.Close()
	if after := openFDs(t); after != before+1 { // r is still open
		t.Errorf("descriptors: %d before, %d after", before, after)
	}
}

// A request and its descriptor glued into one read: one recvmsg() returns
// the request text and the descriptor-carrying byte. Both ways to glue them
// must work: two sendmsg() calls read at once, and one sendmsg() carrying
// everything.
func TestRecvFDGluedToRequest(t *testing.T) {
	for _, oneMessage := range []bool{false, true} {
		sc, peer := serverOver(t, 1<<20)
		r, w := pipePair(t)
		if oneMessage {
			sendRights(t, peer.UnixConn(), append(wire(saveEndpReq), 0), w)
		} else {
			peer.writeRaw(wire(saveEndpReq))
			peer.Flush()
			sendRights(t, peer.UnixConn(), []byte{0}, w)
		}
		unix.Close(w)
		readSaveEndp(t, sc)
		if sc.Buffered() != 1 {
			t.Fatalf("oneMessage=%t: expected the fd byte to be buffered, have %d bytes", oneMessage, sc.Buffered())
		}
		fd, err := sc.RecvFD()
		if err != nil {
			t.Fatalf("oneMessage=%t: %v", oneMessage, err)
		}
		checkIdentity(t, fd, r)
		unix.Close(fd)
		unix.Close(r)
	}
}

func TestRecvFDErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		nfds int
		want error
	}{
		{"plain byte", 0, ErrNoDescriptor},
		{"two descriptors", 2, ErrManyDescriptors},
		{"more than the control buffer holds", maxRecvFDs + 4, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			sc, peer := serverOver(t, 1<<20)
			var fds []int
			for i := 0; i < tc.nfds; i++ {
				r, w := pipePair(t)
				unix.Close(r)
				fds = append(fds, w)
			}
			peer.writeRaw(wire(saveEndpReq))
			peer.Flush()
			readSaveEndp(t, sc)
			sendRights(t, peer.UnixConn(), []byte{0}, fds...)
			for _, fd := range fds {
				unix.Close(fd)
			}
			if _, err := sc.RecvFD(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The connection stays usable.
			peer.writeRaw(wire("request^@find_endp^@label^@L^@^@"))
			peer.Flush()
			if req, err := sc.ReadRequest(); err != nil || parsed(req) != "find_endp valid label=L" {
				t.Fatalf("after the error: %v %v", parsed(req), err)
			}
			sc.Close()
			peer.Close()
			if after := openFDs(t); after != before {
				t.Errorf("leak: %d descriptors before, %d after", before, after)
			}
		})
	}
}

// Descriptors that arrive with request text are closed and counted; the
// request is answered as if they had not been there (Postfix's read()
// makes the kernel drop them; 3.7 leaks them in some paths).
func TestUnexpectedFDsClosed(t *testing.T) {
	before := openFDs(t)
	sc, peer := serverOver(t, 1<<20)
	r, w := pipePair(t)
	sendRights(t, peer.UnixConn(), wire("request^@find_endp^@label^@L^@^@"), w)
	unix.Close(w)
	req, err := sc.ReadRequest()
	if err != nil || parsed(req) != "find_endp valid label=L" {
		t.Fatalf("%v %v", parsed(req), err)
	}
	if n := sc.Discarded(); n != 1 {
		t.Errorf("discarded %d, want 1", n)
	}
	// The write end is closed, so the read end sees EOF.
	buf := make([]byte, 1)
	if n, err := unix.Read(r, buf); n != 0 || err != nil {
		t.Errorf("pipe still open: %d %v", n, err)
	}
	unix.Close(r)
	sc.Close()
	peer.Close()
	if after := openFDs(t); after != before {
		t.Errorf("leak: %d before, %d after", before, after)
	}
}

// Descriptors received but never consumed are closed with the connection.
func TestCloseClosesPendingFDs(t *testing.T) {
	before := openFDs(t)
	sc, peer := serverOver(t, 1<<20)
	r, w := pipePair(t)
	unix.Close(r)
	peer.writeRaw(wire("request^@find_endp^@label^@L^@^@"))
	peer.Flush()
	sendRights(t, peer.UnixConn(), []byte{0}, w)
	unix.Close(w)
	sc.ReadRequest()
	if sc.Buffered() == 0 {
		sc.fill(1) // pull the descriptor in without consuming its byte
	}
	if len(sc.arrived) != 1 {
		t.Fatalf("descriptor not pending: %v", sc.arrived)
	}
	sc.Close()
	peer.Close()
	if after := openFDs(t); after != before {
		t.Errorf("leak: %d before, %d after", before, after)
	}
}

// A save_endp with a tolerated extra attribute after the expected ones,
// in one write: the extra attribute is skipped (Postfix discards it with its
// buffer when it writes the dummy) and the descriptor that follows the
// dummy is received. Found by the conformance suite
// (extra_attribute_after_all_executed).
func TestRecvFDAfterExtraAttribute(t *testing.T) {
	for _, glued := range []bool{false, true} {
		sc, peer := serverOver(t, 1<<20)
		r, w := pipePair(t)
		peer.writeRaw(wire("request^@save_endp^@ttl^@2^@label^@L^@property^@P0^@foo^@bar^@^@"))
		peer.Flush()
		if glued {
			sendRights(t, peer.UnixConn(), []byte{0}, w)
		}
		req, err := sc.ReadRequest()
		if err != nil || parsed(req) != "save_endp valid ttl=2 label=L prop=P0" {
			t.Fatalf("%v %v", parsed(req), err)
		}
		sc.WriteDummy()
		if !glued {
			go func() {
				buf := make([]byte, 9)
				peer.UnixConn().Read(buf)
				sendRights(t, peer.UnixConn(), []byte{0}, w)
			}()
		}
		fd, err := sc.RecvFD()
		if err != nil {
			t.Fatalf("glued=%t: %v", glued, err)
		}
		checkIdentity(t, fd, r)
		unix.Close(fd)
		unix.Close(w)
		unix.Close(r)
		if n := sc.Discarded(); n != 0 {
			t.Errorf("discarded %d", n)
		}
	}
}

// The same for a find hit: the dummy that follows is read as the dummy.
func TestReadDummyAfterExtraAttribute(t *testing.T) {
	sc, peer := serverOver(t, 1<<20)
	peer.writeRaw(wire("request^@find_endp^@label^@L^@foo^@bar^@^@dummy^@^@^@"))
	peer.Flush()
	if req, err := sc.ReadRequest(); err != nil || !req.Valid {
		t.Fatalf("%v %v", parsed(req), err)
	}
	if ok, w, err := sc.ReadDummy(); !ok || err != nil {
		t.Fatalf("dummy not read: %v %q", err, w)
	}
}
