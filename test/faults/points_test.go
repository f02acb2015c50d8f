package faults

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// A point is a place in a conversation where a client stops: it then
// disconnects (the disconnect cases) or stalls until the server gives up
// after ipc_timeout (the stall cases).
type point struct {
	name string
	// run connects a client and drives it to the point, using h (a
	// well-behaved client) to prepare the cache.
	run func(h *protocol.Client) (*atPoint, error)
}

// atPoint is a client stopped at a point.
type atPoint struct {
	r *raw
	// rest is what the server has sent that the client leaves unread
	// at this point; restFD: it ends with a handed-out descriptor.
	rest   []byte
	restFD bool
	// check runs once the client is gone (with h, a well-behaved
	// client): what the cut request must and must not have done.
	check func(h *protocol.Client) error
}

// requestCuts are the points inside a request: after each of its bytes
// but the last (n = 0: after the greeting, nothing sent). noGreeting adds
// the points where the client does not even read the greeting.
func requestCuts(path, name string, req []byte) []point {
	var pts []point
	for n := 0; n < len(req); n++ {
		pts = append(pts, point{
			name: fmt.Sprintf("%s cut after %d/%d bytes %s", name, n, len(req), showShort(req[:n], 40)),
			run: func(*protocol.Client) (*atPoint, error) {
				r, err := dialGreeted(path)
				if err != nil {
					return nil, err
				}
				if n > 0 {
					if err := r.send(req[:n]); err != nil {
						r.close()
						return nil, err
					}
				}
				return &atPoint{r: r}, nil
			},
		})
	}
	return pts
}

// noGreetingPoints: a client that never reads the greeting.
func noGreetingPoints(path string, req []byte) []point {
	return []point{
		{"connect and leave before the greeting", func(*protocol.Client) (*atPoint, error) {
			r, err := dialRaw(path)
			if err != nil {
				return nil, err
			}
			return &atPoint{r: r, rest: greeting}, nil
		}},
		{"send a request but its terminator without reading the greeting", func(*protocol.Client) (*atPoint, error) {
			r, err := dialRaw(path)
			if err != nil {
				return nil, err
			}
			if err := r.send(req[:len(req)-1]); err != nil {
				r.close()
				return nil, err
			}
			return &atPoint{r: r, rest: greeting}, nil
		}},
	}
}

// eventually retries f for up to d.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hit takes the session under label and proves it is p's.
func hit(h *protocol.Client, label, prop string, p pair) error {
	st, gotProp, fd, err := h.FindEndp(label)
	if err != nil {
		return fmt.Errorf("find_endp %s: %w", label, err)
	}
	if st != 0 {
		return fmt.Errorf("find_endp %s: status %d, want a hit", label, st)
	}
	defer unix.Close(fd)
	if gotProp != prop {
		return fmt.Errorf("find_endp %s: property %q, want %q", label, gotProp, prop)
	}
	return p.is(fd)
}

// miss requires that nothing is cached under label.
func miss(h *protocol.Client, label string) error {
	st, _, fd, err := h.FindEndp(label)
	if err != nil {
		return fmt.Errorf("find_endp %s: %w", label, err)
	}
	if st != protocol.StatusFail {
		unix.Close(fd)
		return fmt.Errorf("find_endp %s: status %d, want a miss", label, st)
	}
	return nil
}

// missDest requires that no binding of label leads to a session: a
// session is cached under endp for the test and taken back.
func missDest(h *protocol.Client, label, endp string) error {
	p, err := mkPair()
	if err != nil {
		return err
	}
	defer p.close()
	if st, err := h.SaveEndp(2, endp, "probe", p.near); err != nil || st != 0 {
		return fmt.Errorf("save_endp %s: %d %v", endp, st, err)
	}
	st, _, _, fd, err := h.FindDest(label)
	if err != nil {
		return fmt.Errorf("find_dest %s: %w", label, err)
	}
	if st != protocol.StatusFail {
		unix.Close(fd)
		return fmt.Errorf("find_dest %s: status %d: a cut save_dest made a binding", label, st)
	}
	return hit(h, endp, "probe", p)
}

// exchangePoints are the points around descriptor transfers: save_endp's
// dummy and descriptor, and a find hit's hand-out (dummy, descriptor,
// dummy), by endpoint and by destination. Each point uses labels of its
// own, so that the points can stall side by side.
func exchangePoints(path string) []point {
	var pts []point
	// save_endp: the request is complete; the client stops in the
	// descriptor exchange.
	for _, c := range []struct {
		what string
		// drive goes on after the request was sent; it reports whether
		// the descriptor reached the server (then it is cached).
		drive  func(r *raw, p pair) (sent bool, rest []byte, err error)
		cached bool
	}{
		{"save_endp complete, stop without reading the dummy", func(r *raw, p pair) (bool, []byte, error) {
			return false, dummy, nil
		}, false},
		{"save_endp, stop after the dummy instead of sending the descriptor", func(r *raw, p pair) (bool, []byte, error) {
			return false, nil, r.expect(dummy, 5*time.Second)
		}, false},
		{"save_endp, a plain byte without descriptor, stop before the status", func(r *raw, p pair) (bool, []byte, error) {
			if err := r.expect(dummy, 5*time.Second); err != nil {
				return false, nil, err
			}
			return false, statusFail, r.send([]byte{0})
		}, false},
		{"save_endp, send the descriptor, stop before the status", func(r *raw, p pair) (bool, []byte, error) {
			if err := r.expect(dummy, 5*time.Second); err != nil {
				return false, nil, err
			}
			return true, statusOK, r.sendFDs([]byte{0}, p.near)
		}, true},
		{"save_endp, send the descriptor and half a request, stop", func(r *raw, p pair) (bool, []byte, error) {
			if err := r.expect(dummy, 5*time.Second); err != nil {
				return false, nil, err
			}
			if err := r.sendFDs([]byte{0}, p.near); err != nil {
				return false, nil, err
			}
			return true, statusOK, r.send(findEndpReq("x")[:12])
		}, true},
	} {
		pts = append(pts, point{c.what, func(h *protocol.Client) (*atPoint, error) {
			label := uniq("xchg-save")
			p, err := mkPair()
			if err != nil {
				return nil, err
			}
			r, err := dialGreeted(path)
			if err != nil {
				p.close()
				return nil, err
			}
			if err := r.send(saveEndpReq("3600", label, "P")); err != nil {
				p.close()
				r.close()
				return nil, err
			}
			_, rest, err := c.drive(r, p)
			// The test's own copy goes: the far end now tells whether the
			// server holds one.
			unix.Close(p.near)
			p.near = -1
			if err != nil {
				p.close()
				r.close()
				return nil, err
			}
			return &atPoint{r: r, rest: rest, check: func(h *protocol.Client) error {
				defer p.close()
				if c.cached {
					// Sent before the client left: cached (the server may
					// answer another client first).
					return eventually(3*time.Second, func() error { return hit(h, label, "P", p) })
				}
				if err := miss(h, label); err != nil {
					return err
				}
				return nil
			}}, nil
		}})
	}

	// save_dest complete, the client stops before the status: the binding
	// is made nonetheless.
	pts = append(pts, point{"save_dest complete, stop before reading the status", func(h *protocol.Client) (*atPoint, error) {
		D, E := uniq("xchg-dest"), uniq("xchg-dest-endp")
		r, err := dialGreeted(path)
		if err != nil {
			return nil, err
		}
		if err := r.send(saveDestReq("3600", D, "DP", E)); err != nil {
			r.close()
			return nil, err
		}
		return &atPoint{r: r, rest: statusOK, check: func(h *protocol.Client) error {
			return eventually(3*time.Second, func() error {
				p, err := mkPair()
				if err != nil {
					return err
				}
				defer p.close()
				if st, err := h.SaveEndp(2, E, "EP", p.near); err != nil || st != 0 {
					return fmt.Errorf("save_endp: %d %v", st, err)
				}
				st, dp, ep, fd, err := h.FindDest(D)
				if err != nil {
					return err
				}
				if st != 0 {
					hit(h, E, "EP", p) // take it back
					return fmt.Errorf("find_dest %s: status %d: the binding was lost", D, st)
				}
				defer unix.Close(fd)
				if dp != "DP" || ep != "EP" {
					return fmt.Errorf("find_dest: props %q %q", dp, ep)
				}
				return p.is(fd)
			})
		}}, nil
	}})

	// A find hit; the client stops somewhere in the hand-out.
	for _, byDest := range []bool{false, true} {
		kind := boolWord(byDest, "find_dest", "find_endp")
		for _, c := range []struct {
			what string
			// drive runs the client's part after the request; it returns
			// the descriptor if the client took it.
			drive func(r *raw, reply []byte) (fd int, rest []byte, restFD bool, err error)
		}{
			{"stop before reading the reply", func(r *raw, reply []byte) (int, []byte, bool, error) {
				return -1, reply, false, nil
			}},
			{"stop after the reply, before the dummy", func(r *raw, reply []byte) (int, []byte, bool, error) {
				return -1, nil, false, r.expect(reply, 5*time.Second)
			}},
			{"stop inside the dummy", func(r *raw, reply []byte) (int, []byte, bool, error) {
				if err := r.expect(reply, 5*time.Second); err != nil {
					return -1, nil, false, err
				}
				return -1, nil, false, r.send(dummy[:3])
			}},
			{"stop after the dummy without taking the descriptor", func(r *raw, reply []byte) (int, []byte, bool, error) {
				if err := r.expect(reply, 5*time.Second); err != nil {
					return -1, nil, false, err
				}
				return -1, []byte{0}, true, r.send(dummy)
			}},
			{"stop after taking the descriptor, before the trailing dummy", func(r *raw, reply []byte) (int, []byte, bool, error) {
				if err := r.expect(reply, 5*time.Second); err != nil {
					return -1, nil, false, err
				}
				if err := r.send(dummy); err != nil {
					return -1, nil, false, err
				}
				fd, err := r.recvFD(5 * time.Second)
				return fd, nil, false, err
			}},
			{"stop inside the trailing dummy", func(r *raw, reply []byte) (int, []byte, bool, error) {
				if err := r.expect(reply, 5*time.Second); err != nil {
					return -1, nil, false, err
				}
				if err := r.send(dummy); err != nil {
					return -1, nil, false, err
				}
				fd, err := r.recvFD(5 * time.Second)
				if err != nil {
					return -1, nil, false, err
				}
				return fd, nil, false, r.send(dummy[:2])
			}},
		} {
			pts = append(pts, point{kind + " hit: " + c.what, func(h *protocol.Client) (*atPoint, error) {
				E, D := uniq("xchg-hit-E"), uniq("xchg-hit-D")
				p, err := mkPair()
				if err != nil {
					return nil, err
				}
				st, err := h.SaveEndp(3600, E, "P", p.near)
				unix.Close(p.near)
				p.near = -1
				if err != nil || st != 0 {
					p.close()
					return nil, fmt.Errorf("save_endp: %d %v", st, err)
				}
				req, reply := findEndpReq(E), endpHit("P")
				if byDest {
					if st, err := h.SaveDest(3600, D, "DP", E); err != nil || st != 0 {
						p.close()
						return nil, fmt.Errorf("save_dest: %d %v", st, err)
					}
					req, reply = findDestReq(D), destHit("DP", "P")
				}
				r, err := dialGreeted(path)
				if err != nil {
					p.close()
					return nil, err
				}
				if err := r.send(req); err != nil {
					p.close()
					r.close()
					return nil, err
				}
				fd, rest, restFD, err := c.drive(r, reply)
				if err != nil {
					p.close()
					r.close()
					return nil, err
				}
				if fd >= 0 {
					// The client got it: it is the cached session.
					err := p.is(fd)
					unix.Close(fd)
					if err != nil {
						p.close()
						r.close()
						return nil, err
					}
				}
				return &atPoint{r: r, rest: rest, restFD: restFD, check: func(h *protocol.Client) error {
					defer p.close()
					if fd < 0 {
						// Taken out of the cache for a client that is
						// gone: the server closed it.
						if err := p.farEOF(3 * time.Second); err != nil {
							return fmt.Errorf("the session of the aborted hand-out: %w", err)
						}
					}
					// Either way it is not handed out again.
					return miss(h, E)
				}}, nil
			}})
		}
	}
	return pts
}
