package faults

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// templates are the requests whose every byte is a cut point. The labels
// are chosen so that a cut request that were executed anyway would show:
// save_* name labels that must stay empty, find_* name the first witness.
type templates struct {
	saveEndpLabel         string
	saveDestLabel, destEP string
}

func newTemplates() templates {
	return templates{saveEndpLabel: uniq("cut-E"), saveDestLabel: uniq("cut-D"), destEP: uniq("cut-DE")}
}

func (tp templates) requests(g *group) []struct {
	name string
	req  []byte
} {
	w := g.witnesses[0]
	return []struct {
		name string
		req  []byte
	}{
		{"save_endp", saveEndpReq("3600", tp.saveEndpLabel, "P")},
		{"find_endp", findEndpReq(w.endp)},
		{"save_dest", saveDestReq("3600", tp.saveDestLabel, "DP", tp.destEP)},
		{"find_dest", findDestReq(w.dest)},
	}
}

// cutCheck is what must hold after any cut of a request: no cut
// save_endp stored a session, no cut save_dest made a binding (the find_*
// cuts are checked by the witnesses).
func (tp templates) cutCheck(h *protocol.Client) error {
	if err := miss(h, tp.saveEndpLabel); err != nil {
		return fmt.Errorf("a cut save_endp: %w", err)
	}
	return missDest(h, tp.saveDestLabel, tp.destEP)
}

// disconnectCase: a client disconnects at each point in turn; after each,
// the point's own check, the cut check, a fresh client and the descriptor
// bound (with the canary running), and for find_* cuts the witnesses.
func disconnectCase(name string, build func(g *group) []point, tp *templates, witnesses bool) fcase {
	return fcase{name: name, run: func(t *testing.T, g *group, rep *caseReport) {
		h := g.dial(t)
		defer h.Close()
		pts := build(g)
		failures := 0
		for _, p := range pts {
			err := func() error {
				at, err := p.run(h)
				if err != nil {
					return fmt.Errorf("driving the client: %w", err)
				}
				at.r.close()
				if at.check != nil {
					if err := at.check(h); err != nil {
						return err
					}
				}
				if tp != nil {
					if err := tp.cutCheck(h); err != nil {
						return err
					}
				}
				if witnesses {
					if err := g.checkWitnesses(h); err != nil {
						return err
					}
				}
				return g.quickCheck(defaultBound)
			}()
			if err != nil {
				failures++
				t.Errorf("disconnect %s: %v", p.name, err)
				if failures > 5 {
					t.Fatal("too many failures")
				}
			}
		}
		rep.addf("%d disconnect points", len(pts))
	}}
}

// stallCase: a client stops at every point at once and stays silent; the
// server must give up on each after ipc_timeout (counted from the
// client's last write), close the connection without sending anything it
// had not sent already, and go on serving everybody else meanwhile.
func stallCase(name string, build func(g *group) []point, tp *templates) fcase {
	return fcase{name: name, settle: 5 * time.Second, run: func(t *testing.T, g *group, rep *caseReport) {
		h := g.dial(t)
		defer func() { h.Close() }()
		pts := build(g)
		type staller struct {
			p      point
			at     *atPoint
			last   time.Time
			closed time.Duration
			err    error
		}
		var stallers []*staller
		for _, p := range pts {
			at, err := p.run(h)
			if err != nil {
				t.Errorf("stall %s: driving the client: %v", p.name, err)
				continue
			}
			stallers = append(stallers, &staller{p: p, at: at, last: time.Now()})
		}
		defer func() {
			for _, s := range stallers {
				s.at.r.close()
			}
		}()
		// Meanwhile the canary runs; the server must also accept and
		// serve new clients at once.
		freshMax := time.Duration(0)
		for i := 0; i < 5; i++ {
			took, err := g.fresh(defaultBound)
			if err != nil {
				t.Errorf("while %d clients stall: %v", len(stallers), err)
			}
			freshMax = max(freshMax, took)
			time.Sleep(100 * time.Millisecond)
		}
		var wg sync.WaitGroup
		for _, s := range stallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.at.r.readToEOF(g.ipcTimeout + 5*time.Second)
				s.closed = time.Since(s.last)
				if err != nil {
					s.err = fmt.Errorf("not closed by the server within %v of the last write: %v", s.closed, err)
					return
				}
				// The descriptor of a hand-out the client did not take
				// arrives with the rest; it must be there if expected.
				fds := s.at.r.fds
				s.at.r.fds = nil
				for _, fd := range fds {
					unix.Close(fd)
				}
				if string(got) != string(s.at.rest) || (len(fds) == 1) != s.at.restFD || len(fds) > 1 {
					s.err = fmt.Errorf("after the stall the client read %s with %d descriptors, want %s with %d", show(got), len(fds), show(s.at.rest), map[bool]int{true: 1}[s.at.restFD])
				}
			}()
		}
		wg.Wait()
		// The helper idled through the stall too: the server has closed
		// it. A new one checks the aftermath.
		h.Close()
		h = g.dial(t)
		lo, hi := g.ipcTimeout-200*time.Millisecond, g.ipcTimeout+1500*time.Millisecond
		minC, maxC := time.Hour, time.Duration(0)
		for _, s := range stallers {
			if s.err == nil && (s.closed < lo || s.closed > hi) {
				s.err = fmt.Errorf("closed %v after the client's last write; ipc_timeout is %v", s.closed, g.ipcTimeout)
			}
			if s.err == nil && s.at.check != nil {
				s.err = s.at.check(h)
			}
			if s.err != nil {
				t.Errorf("stall %s: %v", s.p.name, s.err)
			}
			minC, maxC = min(minC, s.closed), max(maxC, s.closed)
		}
		if tp != nil {
			if err := tp.cutCheck(h); err != nil {
				t.Error(err)
			}
		}
		rep.addf("%d clients stalled at once; closed by the server %v–%v after their last write (ipc_timeout %v); fresh client meanwhile ≤ %v",
			len(stallers), ms(minC), ms(maxC), g.ipcTimeout, freshMax.Round(100*time.Microsecond))
	}}
}

// deafCase: a client pipelines requests and never reads a reply, until the
// server's writes block. The server must give up after ipc_timeout and
// close the connection; others are served meanwhile.
func deafCase() fcase {
	return fcase{name: "stall: client never reads its replies (server write blocks)", settle: 5 * time.Second, run: func(t *testing.T, g *group, rep *caseReport) {
		fd, err := dialFD(g.d.path)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		unix.SetNonblock(fd, true)
		req := findEndpReq(uniq("deaf"))
		var batch []byte
		for len(batch) < 16<<10 {
			batch = append(batch, req...)
		}
		sent := 0
		lastOK := time.Now()
		// Write until the writes have been refused (EAGAIN) for 300 ms:
		// the server then no longer reads, it is stuck writing replies.
		for time.Since(lastOK) < 300*time.Millisecond {
			n, err := unix.Write(fd, batch)
			if n > 0 {
				sent += n
				lastOK = time.Now()
				continue
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("write: %v after %d bytes", err, sent)
			}
			time.Sleep(5 * time.Millisecond)
		}
		blocked := time.Now()
		if _, err := g.fresh(defaultBound); err != nil {
			t.Errorf("while the server writes to a deaf client: %v", err)
		}
		// The server closes: POLLRDHUP without reading anything.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		deadline := g.ipcTimeout + 3*time.Second
		n, err := unix.Poll(pfd, int(deadline/time.Millisecond))
		closed := time.Since(lastOK)
		if err != nil || n == 0 {
			t.Fatalf("the server did not close the deaf client's connection within %v of its last accepted write (ipc_timeout %v)", time.Since(lastOK), g.ipcTimeout)
		}
		if closed > g.ipcTimeout+1500*time.Millisecond {
			t.Errorf("closed %v after the last accepted write; ipc_timeout is %v", closed, g.ipcTimeout)
		}
		rep.addf("%d KiB of requests pipelined, never read; closed %v after the last accepted write (%v after the writes blocked)", sent>>10, ms(closed), ms(time.Since(blocked)))
	}}
}

// dialFD connects a raw socket descriptor (blocking), for tests that poll
// without reading.
func dialFD(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
