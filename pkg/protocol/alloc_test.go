package protocol

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Allocation counts of the codec (counts, not timings): it allocates
// nothing but the strings it returns.
func TestCodecAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	const runs = 100
	for _, tc := range []struct {
		name  string
		req   string
		views bool
		want  float64
	}{
		{"find_dest", "request^@find_dest^@label^@smtp\n[127.0.0.1]:2525\n^@^@", false, 1},
		{"find_dest view", "request^@find_dest^@label^@smtp\n[127.0.0.1]:2525\n^@^@", true, 0},
		{"find_endp view", "request^@find_endp^@label^@smtp\n127.0.0.1\n2525\n0\n^@^@", true, 0},
		{"save_endp", "request^@save_endp^@ttl^@2^@label^@smtp\n127.0.0.1\n2525\n0\n^@property^@tls_level=0\n^@^@", false, 2},
		{"save_dest", "request^@save_dest^@ttl^@2^@label^@smtp\n[127.0.0.1]:2525\n^@property^@destination=x\n^@label^@smtp\n127.0.0.1\n2525\n0\n^@^@", false, 3},
		{"save_endp views", "request^@save_endp^@ttl^@2^@label^@smtp\n127.0.0.1\n2525\n0\n^@property^@tls_level=0\n^@^@", true, 0},
		{"save_dest views", "request^@save_dest^@ttl^@2^@label^@smtp\n[127.0.0.1]:2525\n^@property^@destination=x\n^@label^@smtp\n127.0.0.1\n2525\n0\n^@^@", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, peer := serverOver(t, 1<<20)
			sc.SetViews(tc.views)
			// Everything is in the socket before the count starts.
			peer.writeRaw([]byte(strings.Repeat(string(wire(tc.req)), runs+1)))
			if err := peer.Flush(); err != nil {
				t.Fatal(err)
			}
			var req Request
			var err error
			got := testing.AllocsPerRun(runs, func() { req, err = sc.ReadRequest() })
			if err != nil || !req.Valid {
				t.Fatalf("ReadRequest: %v %v", parsed(req), err)
			}
			if got != tc.want {
				t.Errorf("%v allocations per request, want %v", got, tc.want)
			}
		})
	}
}

// Passing a descriptor allocates nothing, either way.
func TestDescriptorPassingAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	sc, peer := serverOver(t, 1<<20)
	r, w := pipePair(t)
	defer unix.Close(r)
	defer unix.Close(w)
	cycle := func() {
		if err := sc.SendFD(w); err != nil {
			t.Fatal(err)
		}
		fd, err := peer.RecvFD()
		if err != nil {
			t.Fatal(err)
		}
		if err := peer.SendFD(fd); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd, err = sc.RecvFD()
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	cycle()
	if got := testing.AllocsPerRun(100, cycle); got != 0 {
		t.Errorf("%v allocations per round trip of a descriptor, want 0", got)
	}
	if n := sc.Discarded() + peer.Discarded(); n != 0 {
		t.Errorf("%d descriptors discarded", n)
	}
}

// A find label returned as a view must hold the label even when reading
// the rest of the request reuses the read buffer: here the first request
// fills the buffer up to the label's NUL, so that reading its terminator
// starts the buffer over with the next request's bytes; and an extra
// attribute whose name runs past the end of the buffer makes the buffer
// move its unread bytes to the front.
func TestLabelViewSurvivesBufferReuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail string // what follows the label's NUL in the first request
	}{
		{"terminator in the next read", "^@"},
		{"extra attribute across the buffer end", strings.Repeat("n", 40) + "^@v^@^@"},
	} {
		for _, typ := range []string{"find_dest", "find_endp"} {
			t.Run(tc.name+"/"+typ, func(t *testing.T) {
				sc, peer := serverOver(t, 1<<20)
				sc.SetViews(true)
				head := "request^@" + typ + "^@label^@"
				n := minReadBuf - len(wire(head)) - 1 // the label's NUL is the last byte of the buffer
				if tc.name != "terminator in the next read" {
					n -= 10 // the extra name starts inside the buffer
				}
				label := strings.Repeat("a", n)
				label2 := strings.Repeat("z", 2*minReadBuf)
				in := head + label + "^@" + tc.tail + "request^@" + typ + "^@label^@" + label2 + "^@^@"
				go func() { peer.writeRaw(wire(in)); peer.Flush() }()
				req, err := sc.ReadRequest()
				if err != nil || !req.Valid || req.Label != "" {
					t.Fatalf("ReadRequest: %v %v", parsed(req), err)
				}
				if string(req.LabelView) != label {
					t.Fatalf("label view overwritten: %.20q...", req.LabelView)
				}
				req, err = sc.ReadRequest()
				if err != nil || string(req.LabelView) != label2 {
					t.Fatalf("second request: %v %v", parsed(req), err)
				}
			})
		}
	}
}

// The three views of a save_dest must hold their strings whichever of
// them the read buffer had to move or start over for: the lengths here
// put the strings' NULs, and the following names, on every side of the
// 4 KiB buffer's end, the client writing in pieces so that reads stop
// there. KeepViews copies must survive the next request's read.
func TestSaveViewsSurviveBufferMoves(t *testing.T) {
	sc, peer := serverOver(t, 1<<20)
	sc.SetViews(true)
	mk := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	for n := minReadBuf - 120; n < minReadBuf+40; n += 7 {
		label, prop, endp := mk('l', n/3), mk('p', n/2), mk('e', n-n/3-n/2+n%11)
		req1 := "request^@save_dest^@ttl^@5^@label^@" + label + "^@property^@" + prop + "^@label^@" + endp + "^@^@"
		req2 := "request^@save_endp^@ttl^@5^@label^@" + endp + "^@property^@" + label + "^@^@"
		in := wire(req1 + req2)
		written := make(chan struct{})
		go func() {
			defer close(written)
			// Pieces of 1000 bytes, so that reads end mid-string.
			for len(in) > 0 {
				k := min(1000, len(in))
				peer.writeRaw(in[:k])
				peer.Flush()
				in = in[k:]
				time.Sleep(time.Millisecond)
			}
		}()
		req, err := sc.ReadRequest()
		if err != nil || !req.Valid || req.Type != SaveDest {
			t.Fatalf("n=%d: %v %v %q", n, parsed(req), err, req.Warnings)
		}
		if string(req.LabelView) != label || string(req.PropView) != prop || string(req.EndpLabelView) != endp || req.Label != "" {
			t.Fatalf("n=%d: save_dest views overwritten", n)
		}
		sc.KeepViews(&req)
		req2r, err := sc.ReadRequest()
		if err != nil || !req2r.Valid || string(req2r.LabelView) != endp || string(req2r.PropView) != label {
			t.Fatalf("n=%d: save_endp: %v %v", n, parsed(req2r), err)
		}
		if string(req.LabelView) != label || string(req.PropView) != prop || string(req.EndpLabelView) != endp {
			t.Fatalf("n=%d: kept views overwritten by the next request", n)
		}
		<-written // the writer is done with peer before the next one starts
	}
}

// Deadlines are moved lazily (deadlineSlack), but a read or a write that
// waits still fails only when it has waited the whole timeout: here the
// deadline left by the previous read or write is up to timeout/8 early.
func TestLazyDeadlineNeverEarly(t *testing.T) {
	const timeout = 400 * time.Millisecond
	a, b := socketPair(t)
	c := NewConn(a, timeout)
	b.Write(wire("x^@"))
	if _, err := c.readString(100); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout / 16)
	start := time.Now()
	_, err := c.readString(100)
	if took := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) || took < timeout {
		t.Errorf("read: %v after %v, want a timeout after %v", err, took, timeout)
	}

	// Writes: a small one arms the deadline, a large one blocks.
	c2 := NewConn(b, timeout)
	c2.writeRaw([]byte("x"))
	if err := c2.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout / 16)
	c2.writeRaw(make([]byte, 16<<20))
	start = time.Now()
	err = c2.Flush()
	if took := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) || took < timeout {
		t.Errorf("write: %v after %v, want a timeout after %v", err, took, timeout)
	}
}
