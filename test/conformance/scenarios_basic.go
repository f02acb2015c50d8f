package conformance

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Labels and properties shaped like smtp(8)'s (postfix-smtp-traffic.txt).
const (
	endpKey  = "smtp\n127.0.0.1\n2525\n0\n"
	destKey  = "smtp\n[127.0.0.1]:2525\n"
	endpProp = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
	destProp = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
)

func greetingScenario(env *Env) error {
	r, err := env.RawNoGreeting()
	if err != nil {
		return err
	}
	// The server speaks first, without being asked.
	if err := r.Expect(W(greeting)); err != nil {
		return err
	}
	return r.ExpectNothing(env.Quiet)
}

func greetingOnce(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		if err := r.Request(findEndpReq(env.Label(fmt.Sprint("none", i))), endpMiss); err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
	}
	if err := r.ExpectNothing(env.Quiet); err != nil {
		return err
	}
	// A second connection gets its own greeting.
	r2, err := env.Raw()
	if err != nil {
		return fmt.Errorf("second connection: %w", err)
	}
	return r2.Request(findDestReq(env.Label("none")), destMiss)
}

func findEndpMiss(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	return r.Request(findEndpReq(env.Label(endpKey)), endpMiss)
}

func findDestMiss(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	return r.Request(findDestReq(env.Label(destKey)), destMiss)
}

// save_endp and find_endp byte for byte: dummy, descriptor, status; hit
// with the property, dummy, descriptor, dummy; then a miss.
func saveFindEndpWire(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	label := env.Label(endpKey)
	if err := r.SaveEndp("2", label, endpProp, p); err != nil {
		return err
	}
	if err := r.Request(findEndpReq(label), endpReply(0, endpProp)); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, p); err != nil {
		return err
	}
	env.CloseFD(fd)
	// The trailing dummy is consumed: the next request is answered.
	return r.Request(findEndpReq(label), endpMiss)
}

// save_dest and find_dest byte for byte.
func saveFindDestWire(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	dest, endp := env.Label(destKey), env.Label(endpKey)
	if err := r.Request(saveDestReq("2", dest, destProp, endp), statusOK); err != nil {
		return err
	}
	if err := r.SaveEndp("2", endp, endpProp, p); err != nil {
		return err
	}
	if err := r.Request(findDestReq(dest), destReply(0, destProp, endpProp)); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, p); err != nil {
		return err
	}
	env.CloseFD(fd)
	if err := r.Request(findDestReq(dest), destMiss); err != nil {
		return err
	}
	// find_dest took the endpoint's only session.
	return r.Request(findEndpReq(endp), endpMiss)
}

func saveDestWithoutEndpoint(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	dest := env.Label(destKey)
	if err := r.Request(saveDestReq("2", dest, destProp, env.Label("no-such-endpoint")), statusOK); err != nil {
		return err
	}
	return r.Request(findDestReq(dest), destMiss)
}

func fifoOrder(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(4)
	if err != nil {
		return err
	}
	label := env.Label(endpKey)
	for i, p := range ps {
		if err := cl.Save(2, label, fmt.Sprint("p", i), p); err != nil {
			return err
		}
	}
	for i, p := range ps {
		if err := cl.Hit(label, fmt.Sprint("p", i), p); err != nil {
			return fmt.Errorf("find %d (want the oldest left, p%d): %w", i, i, err)
		}
	}
	return cl.Miss(label)
}

func handedOutOnce(env *Env) error {
	a, err := env.Dial()
	if err != nil {
		return err
	}
	b, err := env.Dial()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	label := env.Label(endpKey)
	if err := a.Save(2, label, "P", p); err != nil {
		return err
	}
	if err := a.Hit(label, "P", p); err != nil {
		return err
	}
	if err := b.Miss(label); err != nil {
		return fmt.Errorf("other client: %w", err)
	}
	return a.Miss(label)
}

// 16 clients race for one session, by endpoint and by destination: exactly
// one wins, and gets the session.
func contendedSingleSession(env *Env) error {
	const clients, rounds = 16, 6
	var cls []*Client
	for i := 0; i < clients; i++ {
		cl, err := env.Dial()
		if err != nil {
			return err
		}
		cls = append(cls, cl)
	}
	for round := 0; round < rounds; round++ {
		byDest := round%2 == 1
		endp, dest := env.Label(fmt.Sprint("endp", round)), env.Label(fmt.Sprint("dest", round))
		p, err := env.Pair()
		if err != nil {
			return err
		}
		if byDest {
			if err := cls[0].SaveDest(2, dest, "DP", endp); err != nil {
				return err
			}
		}
		if err := cls[0].Save(2, endp, "P", p); err != nil {
			return err
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var hits []int
		var errs []error
		for _, cl := range cls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var st, fd int
				var err error
				if byDest {
					st, _, _, fd, err = cl.FindDest(dest)
				} else {
					st, _, fd, err = cl.FindEndp(endp)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if st == 0 {
					hits = append(hits, fd)
				} else if st != 2 {
					errs = append(errs, fmt.Errorf("status %d", st))
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			return fmt.Errorf("round %d: %w", round, errors.Join(errs...))
		}
		if len(hits) != 1 {
			return fmt.Errorf("round %d (by destination: %t): %d clients got the session, want exactly 1", round, byDest, len(hits))
		}
		if err := env.Is(hits[0], p); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		env.CloseFD(hits[0])
	}
	env.Notef("%d rounds of %d clients racing: one hit each", rounds, clients)
	return nil
}

func labelsExactMatch(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	label := env.Label("smtp\nmx.example.com\n25\n0\n")
	if err := cl.Save(2, label, "P", p); err != nil {
		return err
	}
	for _, other := range []string{
		env.Label("SMTP\nmx.example.com\n25\n0\n"),
		env.Label("smtp\nMX.example.com\n25\n0\n"),
		env.Label("smtp\nmx.example.com\n25\n0"),
		env.Label("smtp\nmx.example.com\n25\n0\n "),
		" " + env.Label("smtp\nmx.example.com\n25\n0\n"),
		env.Label("smtp\nmx.example.com\n25\n"),
	} {
		if err := cl.Miss(other); err != nil {
			return fmt.Errorf("label %s: %w", Show([]byte(other)), err)
		}
	}
	return cl.Hit(label, "P", p)
}

func emptyLabelAndProperty(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	// The empty label is shared by everyone: take what an earlier run may
	// have left there first.
	for i := 0; i < 100; i++ {
		st, _, fd, err := cl.FindEndp("")
		if err != nil {
			return err
		}
		env.CloseFD(fd)
		if st != 0 {
			break
		}
	}
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	if err := cl.Save(2, "", "", ps[0]); err != nil {
		return err
	}
	if err := cl.Hit("", "", ps[0]); err != nil {
		return err
	}
	// An empty destination label and empty properties.
	endp := env.Label("e")
	if err := cl.SaveDest(2, "", "", endp); err != nil {
		return err
	}
	if err := cl.Save(2, endp, "", ps[1]); err != nil {
		return err
	}
	return cl.HitDest("", "", "", ps[1])
}

// find_dest walks the bindings oldest first and takes the first endpoint
// that has a session; bindings to endpoints without sessions are skipped
// and stay.
func findDestInOrder(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	dest := env.Label("D")
	e := []string{env.Label("E0"), env.Label("E1"), env.Label("E2")}
	for i, endp := range e {
		if err := cl.SaveDest(2, dest, fmt.Sprint("dp", i), endp); err != nil {
			return err
		}
	}
	ps, err := env.Pairs(4)
	if err != nil {
		return err
	}
	if err := cl.Save(2, e[2], "s2", ps[2]); err != nil {
		return err
	}
	if err := cl.Save(2, e[1], "s1a", ps[0]); err != nil {
		return err
	}
	if err := cl.Save(2, e[1], "s1b", ps[1]); err != nil {
		return err
	}
	for _, want := range []struct {
		dp, ep string
		p      Pair
	}{{"dp1", "s1a", ps[0]}, {"dp1", "s1b", ps[1]}, {"dp2", "s2", ps[2]}} {
		if err := cl.HitDest(dest, want.dp, want.ep, want.p); err != nil {
			return err
		}
	}
	if err := cl.MissDest(dest); err != nil {
		return err
	}
	// The skipped binding to E0 is still there, and first.
	if err := cl.Save(2, e[0], "s0", ps[3]); err != nil {
		return err
	}
	return cl.HitDest(dest, "dp0", "s0", ps[3])
}

func bindingPersists(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	dest, endp := env.Label(destKey), env.Label(endpKey)
	if err := cl.SaveDest(2, dest, destProp, endp); err != nil {
		return err
	}
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	for i, p := range ps {
		if err := cl.Save(2, endp, fmt.Sprint("s", i), p); err != nil {
			return err
		}
		if err := cl.HitDest(dest, destProp, fmt.Sprint("s", i), p); err != nil {
			return fmt.Errorf("use %d of the binding: %w", i+1, err)
		}
		if err := cl.MissDest(dest); err != nil {
			return err
		}
	}
	return nil
}

// A refresh (same endpoint, same property) keeps the binding's place.
func destRefreshKeepsPosition(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	dest, e1, e2 := env.Label("D"), env.Label("E1"), env.Label("E2")
	if err := cl.SaveDest(2, dest, "dp1", e1); err != nil {
		return err
	}
	if err := cl.SaveDest(2, dest, "dp2", e2); err != nil {
		return err
	}
	if err := cl.SaveDest(2, dest, "dp1", e1); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	if err := cl.Save(2, e2, "s2", ps[1]); err != nil {
		return err
	}
	if err := cl.Save(2, e1, "s1", ps[0]); err != nil {
		return err
	}
	if err := cl.HitDest(dest, "dp1", "s1", ps[0]); err != nil {
		return fmt.Errorf("the refreshed binding lost its place: %w", err)
	}
	return cl.HitDest(dest, "dp2", "s2", ps[1])
}

// A new property for the same endpoint adds a second binding; the older
// one keeps winning while it lives.
func destNewPropertyAddsBinding(env *Env) error {
	if env.TTLLimit < 2*time.Second {
		return env.Skip("needs a ttl limit of at least 2s, have %v", env.TTLLimit)
	}
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	dest, endp := env.Label("D"), env.Label("E")
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	base := env.AlignSecond()
	if err := cl.SaveDest(1, dest, "dpA", endp); err != nil {
		return err
	}
	if err := cl.SaveDest(2, dest, "dpB", endp); err != nil {
		return err
	}
	for i, p := range ps {
		if err := cl.Save(2, endp, fmt.Sprint("s", i), p); err != nil {
			return err
		}
	}
	if err := within("saving", base, 500*time.Millisecond); err != nil {
		return err
	}
	if err := cl.HitDest(dest, "dpA", "s0", ps[0]); err != nil {
		return fmt.Errorf("older binding must win: %w", err)
	}
	// dpA (ttl 1) is gone by base+1.05s on any server; dpB lives on.
	SleepUntil(base.Add(1350 * time.Millisecond))
	if err := cl.HitDest(dest, "dpB", "s1", ps[1]); err != nil {
		return fmt.Errorf("after the older binding expired: %w", err)
	}
	return cl.Hit(endp, "s2", ps[2])
}

func sessionSurvivesDisconnect(env *Env) error {
	a, err := env.Dial()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	label := env.Label(endpKey)
	if err := a.Save(2, label, "P", p); err != nil {
		return err
	}
	a.Close()
	b, err := env.Dial()
	if err != nil {
		return err
	}
	return b.Hit(label, "P", p)
}
