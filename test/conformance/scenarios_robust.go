package conformance

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// A client that stops in the middle of a request, or after the dummy
// without sending the descriptor. Postfix's single-threaded server then
// serves nobody until the staller goes away; scached serves the others at
// once.
func stalledClient(env *Env) error {
	improved := env.Improved("stalled_client_does_not_break_others")
	L := env.Label("L")

	// 1. Stalled inside a label; the other client is a new connection.
	staller, err := env.Raw()
	if err != nil {
		return err
	}
	if err := staller.Send(W("request^@save_endp^@ttl^@2^@la")); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond) // let the server start reading it
	other, err := env.RawNoGreeting()
	if err != nil {
		return err
	}
	start := time.Now()
	if improved {
		if err := other.Expect(W(greeting)); err != nil {
			return fmt.Errorf("new client while another stalls mid-request: %w", err)
		}
		if err := other.Request(findEndpReq(L), endpMiss); err != nil {
			return err
		}
		if err := within("serving a new client beside a stalled one", start, time.Second); err != nil {
			return err
		}
	} else {
		if err := other.ExpectNothing(env.Quiet); err != nil {
			return fmt.Errorf("quirk: Postfix greets nobody while a client stalls mid-request: %w", err)
		}
		staller.Close()
		if err := other.Expect(W(greeting)); err != nil {
			return fmt.Errorf("after the staller left: %w", err)
		}
		if err := other.Request(findEndpReq(L), endpMiss); err != nil {
			return err
		}
		env.Notef("postfix: a new client waited %v, until the client stalled mid-request disconnected", time.Since(start).Round(time.Millisecond))
	}
	staller.Close()

	// 2. Stalled after the dummy; the other client was connected before.
	other2, err := env.Raw()
	if err != nil {
		return err
	}
	staller2, err := env.Raw()
	if err != nil {
		return err
	}
	if err := staller2.Request(saveEndpReq("2", L, "P"), dummy); err != nil {
		return err
	}
	if err := other2.Send(findEndpReq(L)); err != nil {
		return err
	}
	start = time.Now()
	if improved {
		if err := other2.Expect(endpMiss); err != nil {
			return fmt.Errorf("connected client while another owes a descriptor: %w", err)
		}
		if err := within("answering beside a stalled client", start, time.Second); err != nil {
			return err
		}
	} else {
		if err := other2.ExpectNothing(env.Quiet); err != nil {
			return fmt.Errorf("quirk: Postfix answers nobody while a client owes a descriptor: %w", err)
		}
		staller2.Close()
		if err := other2.Expect(endpMiss); err != nil {
			return fmt.Errorf("after the staller left: %w", err)
		}
		env.Notef("postfix: a connected client waited %v, until the client that owed a descriptor disconnected", time.Since(start).Round(time.Millisecond))
	}
	staller2.Close()
	return other2.Request(findEndpReq(L), endpMiss)
}

// cutPoints returns where to cut a request: before anything, inside and
// at the end of every string, and right after every NUL (between
// attributes, before the terminator). The complete request is excluded.
func cutPoints(req []byte) []int {
	seen := map[int]bool{}
	var out []int
	add := func(n int) {
		if n >= 0 && n < len(req) && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	add(0)
	start := 0
	for i, c := range req {
		if c != 0 {
			continue
		}
		if i > start {
			add(start + 1)
			add(start + (i-start)/2)
		}
		add(i)     // the string without its NUL
		add(i + 1) // right after the NUL
		start = i + 1
	}
	return out
}

// A client disconnects at every step of every request. After each cut the
// server still serves; the cache (canary sessions and a binding, saved
// before the cuts) is intact; no cut stored anything.
func disconnectMidRequest(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	canary, canaryDest := env.Label("canary"), env.Label("canary-dest")
	cutEndp, cutDest, cutDestEndp := env.Label("cut-endp"), env.Label("cut-dest"), env.Label("cut-dest-endp")
	hitEndp, hitDest := env.Label("hit-endp"), env.Label("hit-dest")

	type step struct {
		what string
		do   func() error
	}
	var steps []step
	for _, tmpl := range []struct {
		name string
		req  []byte
	}{
		{"save_endp", saveEndpReq("2", cutEndp, "P")},
		{"find_endp", findEndpReq(canary)},
		{"save_dest", saveDestReq("2", cutDest, "DP", cutDestEndp)},
		{"find_dest", findDestReq(canaryDest)},
	} {
		for _, n := range cutPoints(tmpl.req) {
			req, n := tmpl.req, n
			steps = append(steps, step{fmt.Sprintf("%s cut after %d bytes %s", tmpl.name, n, Show(req[:n])), func() error {
				r, err := env.Raw()
				if err != nil {
					return err
				}
				defer r.Close()
				if n == 0 {
					return nil
				}
				return r.Send(req[:n])
			}})
		}
	}
	steps = append(steps,
		step{"connect and leave before the greeting", func() error {
			r, err := env.RawNoGreeting()
			if err == nil {
				r.Close()
			}
			return err
		}},
		step{"save_endp complete, leave without reading the dummy", func() error {
			r, err := env.Raw()
			if err != nil {
				return err
			}
			defer r.Close()
			return r.Send(saveEndpReq("2", cutEndp, "P"))
		}},
		step{"save_endp, leave after the dummy instead of sending the descriptor", func() error {
			r, err := env.Raw()
			if err != nil {
				return err
			}
			defer r.Close()
			return r.Request(saveEndpReq("2", cutEndp, "P"), dummy)
		}},
		step{"save_endp, send the descriptor and leave before the status", func() error {
			p, err := env.Pair()
			if err != nil {
				return err
			}
			r, err := env.Raw()
			if err != nil {
				return err
			}
			L := env.Label("sent-and-left")
			if err := r.Request(saveEndpReq("2", L, "P"), dummy); err != nil {
				return err
			}
			err = r.SendFD(p.Near)
			env.CloseFD(p.Near)
			r.Close()
			if err != nil {
				return err
			}
			// The server got the descriptor: it is cached (a server
			// that serves clients concurrently may need a moment).
			return eventually(env, func() error { return cl.Hit(L, "P", p) })
		}},
		step{"save_dest complete, leave before the status", func() error {
			r, err := env.Raw()
			if err != nil {
				return err
			}
			D, E := env.Label("dest-sent-and-left"), env.Label("endp-sent-and-left")
			err = r.Send(saveDestReq("2", D, "DP", E))
			r.Close()
			if err != nil {
				return err
			}
			p, err := env.Pair()
			if err != nil {
				return err
			}
			if err := cl.Save(2, E, "P", p); err != nil {
				return err
			}
			// The binding was made nonetheless.
			return eventually(env, func() error { return cl.HitDest(D, "DP", "P", p) })
		}},
	)
	// Leaving in the middle of a find hit's hand-out.
	for _, byDest := range []bool{false, true} {
		req, reply := findEndpReq(hitEndp), endpReply(0, "P")
		if byDest {
			req, reply = findDestReq(hitDest), destReply(0, "DP", "P")
		}
		name := map[bool]string{false: "find_endp", true: "find_dest"}[byDest]
		for _, c := range []struct {
			what string
			// handout runs the client's part after the request and
			// reports whether the client got the descriptor.
			handout func(r *Raw, p Pair) (bool, error)
		}{
			{"leave before reading the reply", func(r *Raw, p Pair) (bool, error) { return false, nil }},
			{"leave after the reply, before the dummy", func(r *Raw, p Pair) (bool, error) {
				return false, r.Expect(reply)
			}},
			{"leave inside the dummy", func(r *Raw, p Pair) (bool, error) {
				if err := r.Expect(reply); err != nil {
					return false, err
				}
				return false, r.Send(dummy[:3])
			}},
			{"leave after the dummy without taking the descriptor", func(r *Raw, p Pair) (bool, error) {
				if err := r.Expect(reply); err != nil {
					return false, err
				}
				return false, r.Send(dummy)
			}},
			{"leave after taking the descriptor, before the trailing dummy", func(r *Raw, p Pair) (bool, error) {
				if err := r.Expect(reply); err != nil {
					return false, err
				}
				if err := r.Send(dummy); err != nil {
					return false, err
				}
				fd, err := r.RecvFD()
				if err != nil {
					return false, err
				}
				defer env.CloseFD(fd)
				return true, env.Is(fd, p)
			}},
			{"leave inside the trailing dummy", func(r *Raw, p Pair) (bool, error) {
				if err := r.Expect(reply); err != nil {
					return false, err
				}
				if err := r.Send(dummy); err != nil {
					return false, err
				}
				fd, err := r.RecvFD()
				if err != nil {
					return false, err
				}
				defer env.CloseFD(fd)
				if err := env.Is(fd, p); err != nil {
					return true, err
				}
				return true, r.Send(dummy[:2])
			}},
		} {
			steps = append(steps, step{name + " hit: " + c.what, func() error {
				p, err := env.Pair()
				if err != nil {
					return err
				}
				if byDest {
					if err := cl.SaveDest(2, hitDest, "DP", hitEndp); err != nil {
						return err
					}
				}
				if err := cl.Save(2, hitEndp, "P", p); err != nil {
					return err
				}
				r, err := env.Raw()
				if err != nil {
					return err
				}
				if err := r.Send(req); err != nil {
					return err
				}
				got, err := c.handout(r, p)
				r.Close()
				if err != nil {
					return err
				}
				if !got {
					// The server took the session out of the cache and
					// closes it: the connection is lost.
					if _, err := env.FarEOF(p, env.Timeout); err != nil {
						return fmt.Errorf("session of the aborted hand-out: %w", err)
					}
				}
				// Either way it is not handed out again.
				return cl.Miss(hitEndp)
			}})
		}
	}

	// Run the steps in batches short enough for the canary to live
	// through (ttl 2: at least 1s on Postfix).
	var ps []Pair
	saveCanary := func() (time.Time, error) {
		var err error
		if ps, err = env.Pairs(2); err != nil {
			return time.Time{}, err
		}
		if env.TTLLimit < 2*time.Second {
			env.AlignSecond()
		}
		saved := time.Now()
		if err := cl.SaveDest(2, canaryDest, "CDP", canary); err != nil {
			return saved, err
		}
		for i, p := range ps {
			if err := cl.Save(2, canary, fmt.Sprint("c", i), p); err != nil {
				return saved, err
			}
		}
		return saved, nil
	}
	checkBatch := func() error {
		if err := cl.HitDest(canaryDest, "CDP", "c0", ps[0]); err != nil {
			return fmt.Errorf("canary binding: %w", err)
		}
		if err := cl.Hit(canary, "c1", ps[1]); err != nil {
			return fmt.Errorf("canary session: %w", err)
		}
		// No cut stored anything.
		if err := cl.Miss(cutEndp); err != nil {
			return fmt.Errorf("a cut save_endp: %w", err)
		}
		p, err := env.Pair()
		if err != nil {
			return err
		}
		if err := cl.Save(1, cutDestEndp, "P", p); err != nil {
			return err
		}
		if err := cl.MissDest(cutDest); err != nil {
			return fmt.Errorf("a cut save_dest made a binding: %w", err)
		}
		return cl.Hit(cutDestEndp, "P", p)
	}
	saved, err := saveCanary()
	if err != nil {
		return err
	}
	batches := 1
	for i, s := range steps {
		if time.Since(saved) > 700*time.Millisecond {
			if err := checkBatch(); err != nil {
				return fmt.Errorf("after step %d (%s): %w", i, steps[i-1].what, err)
			}
			if saved, err = saveCanary(); err != nil {
				return err
			}
			batches++
		}
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		// The server still serves: a new client gets a greeting and a
		// reply.
		r, err := env.Raw()
		if err != nil {
			return fmt.Errorf("after %s: %w", s.what, err)
		}
		err = r.Request(findEndpReq(env.Label("probe")), endpMiss)
		r.Close()
		if err != nil {
			return fmt.Errorf("after %s: %w", s.what, err)
		}
	}
	if err := checkBatch(); err != nil {
		return fmt.Errorf("after the last step: %w", err)
	}
	env.Notef("%d disconnect points, %d canary batches", len(steps), batches)
	return nil
}

// eventually retries check until it succeeds or Timeout passes: what a
// client sent before it left is processed, but a server that serves
// clients concurrently may do so after it answered another client.
func eventually(env *Env, check func() error) error {
	deadline := time.Now().Add(env.Timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// binaryString returns n bytes cycling through 1..255 (every byte but
// NUL), starting at seed.
func binaryString(n, seed int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i+seed)%255 + 1)
	}
	return string(b)
}

func binarySafeStrings(env *Env) error {
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	L := env.Label(binaryString(255, 0) + "^@\r\n\xff")
	P := binaryString(255, 100) + "\n\n"
	D := env.Label("\xff\xfe[127.0.0.1]:25\n" + binaryString(300, 7))
	DP := "destination=\x01\x7f\x80\n" + binaryString(255, 42)
	r, err := env.Raw()
	if err != nil {
		return err
	}
	if err := r.SaveEndp("2", L, P, ps[0]); err != nil {
		return err
	}
	if err := r.Request(findEndpReq(L), endpReply(0, P)); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, ps[0]); err != nil {
		return err
	}
	env.CloseFD(fd)
	if err := r.Request(saveDestReq("2", D, DP, L), statusOK); err != nil {
		return err
	}
	if err := r.SaveEndp("2", L, P, ps[1]); err != nil {
		return err
	}
	// Near-misses: one byte shorter, one byte different.
	if err := r.Request(findEndpReq(L[:len(L)-1]), endpMiss); err != nil {
		return err
	}
	if err := r.Request(findDestReq(D[:len(D)-1]+"\x01"), destMiss); err != nil {
		return err
	}
	if err := r.Request(findDestReq(D), destReply(0, DP, P)); err != nil {
		return err
	}
	if fd, err = r.TakeFD(); err != nil {
		return err
	}
	return env.Is(fd, ps[1])
}

func largeStrings(env *Env) error {
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	L := env.Label(binaryString(256<<10, 3))
	P := binaryString(1<<20, 11)
	D := env.Label(binaryString(256<<10, 5))
	DP := binaryString(1<<20, 17)
	r, err := env.Raw()
	if err != nil {
		return err
	}
	if err := r.SaveEndp("2", L, P, ps[0]); err != nil {
		return fmt.Errorf("256 KiB label, 1 MiB property: %w", err)
	}
	if err := r.Request(findEndpReq(L), endpReply(0, P)); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, ps[0]); err != nil {
		return err
	}
	env.CloseFD(fd)
	if err := r.Request(saveDestReq("2", D, DP, L), statusOK); err != nil {
		return fmt.Errorf("save_dest with 256 KiB labels and a 1 MiB property: %w", err)
	}
	if err := r.SaveEndp("2", L, P, ps[1]); err != nil {
		return err
	}
	if err := r.Request(findDestReq(D), destReply(0, DP, P)); err != nil {
		return err
	}
	if fd, err = r.TakeFD(); err != nil {
		return err
	}
	if err := env.Is(fd, ps[1]); err != nil {
		return err
	}
	env.CloseFD(fd)
	return r.Request(findEndpReq(L), endpMiss)
}

// 250 descriptors cached at once, each handed back intact.
func manyDescriptors(env *Env) error {
	const n, labels = 250, 7
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(n)
	if err != nil {
		return err
	}
	base := env.AlignSecond()
	for i, p := range ps {
		if err := cl.Save(2, env.Label(fmt.Sprint("L", i%labels)), strconv.Itoa(i), p); err != nil {
			return fmt.Errorf("save %d: %w", i, err)
		}
	}
	saved := time.Since(base)
	for i := range ps {
		label := env.Label(fmt.Sprint("L", i%labels))
		// FIFO per label: the i-th save of this label comes back i-th.
		if err := cl.Hit(label, strconv.Itoa(i), ps[i]); err != nil {
			return fmt.Errorf("find %d: %w", i, err)
		}
	}
	for i := 0; i < labels; i++ {
		if err := cl.Miss(env.Label(fmt.Sprint("L", i))); err != nil {
			return err
		}
	}
	if err := within(fmt.Sprintf("%d saves and finds", n), base, 1900*time.Millisecond); err != nil {
		return err
	}
	env.Notef("%d sessions cached in %v, all handed back in %v", n, saved.Round(time.Millisecond), time.Since(base).Round(time.Millisecond))
	return nil
}

// 16 clients × 45 requests at the same time, each checking its own
// sessions and bindings.
func concurrentClients(env *Env) error {
	const clients, rounds = 16, 15
	var wg sync.WaitGroup
	errs := make([]error, clients)
	start := make(chan struct{})
	for c := 0; c < clients; c++ {
		cl, err := env.Dial()
		if err != nil {
			return err
		}
		ps, err := env.Pairs(rounds)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			endp, dest := env.Label(fmt.Sprint("E", c)), env.Label(fmt.Sprint("D", c))
			for i, p := range ps {
				prop := fmt.Sprint(c, "/", i)
				if err := cl.Save(2, endp, prop, p); err != nil {
					errs[c] = err
					return
				}
				if err := cl.SaveDest(2, dest, "DP", endp); err != nil {
					errs[c] = err
					return
				}
				if err := cl.HitDest(dest, "DP", prop, p); err != nil {
					errs[c] = fmt.Errorf("client %d round %d: %w", c, i, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}
