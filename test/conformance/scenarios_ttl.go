package conformance

import (
	"fmt"
	"time"
)

// Expiry checks are aligned on a wall-clock second: Postfix's timers have
// whole-second resolution (an entry saved at t is invisible to requests
// from floor(t)+ttl on), scached's are exact (t+ttl). Saves happen within
// 300ms after a boundary base, so every server has dropped an entry by
// base+ttl+0.4s and keeps it until base+ttl-0.5s. Descriptors are closed
// when the entry expires; Postfix's event loop may notice that up to about
// a second late, hence the generous upper bound for the far end's EOF.
const (
	saveWindow = 300 * time.Millisecond
	lateClose  = 1500 * time.Millisecond
)

// checkClosedAt waits for the server to close p at expiry (base+life) and
// checks that it did not do so early.
func checkClosedAt(env *Env, p Pair, base time.Time, life time.Duration) error {
	wait := time.Until(base.Add(life + lateClose))
	if _, err := env.FarEOF(p, wait); err != nil {
		return fmt.Errorf("expired session: %w", err)
	}
	at := time.Since(base)
	if at < life-50*time.Millisecond {
		return fmt.Errorf("session closed %v after the second it was saved in, before its ttl %v", at.Round(time.Millisecond), life)
	}
	env.Notef("expired session closed %v after the second boundary it was saved after (ttl %v)", at.Round(time.Millisecond), life)
	return nil
}

func endpTTLExpiry(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	label := env.Label(endpKey)
	base := env.AlignSecond()
	for i, p := range ps {
		if err := cl.Save(1, label, fmt.Sprint("s", i), p); err != nil {
			return err
		}
	}
	if err := within("saving", base, saveWindow); err != nil {
		return err
	}
	SleepUntil(base.Add(500 * time.Millisecond))
	if err := cl.Hit(label, "s0", ps[0]); err != nil {
		return fmt.Errorf("half-way through its ttl: %w", err)
	}
	if err := checkClosedAt(env, ps[1], base, time.Second); err != nil {
		return err
	}
	SleepUntil(base.Add(1400 * time.Millisecond))
	return cl.Miss(label)
}

func ttlClamped(env *Env) error {
	limit := env.TTLLimit
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	endp, dest := env.Label(endpKey), env.Label(destKey)
	base := env.AlignSecond()
	for i, p := range ps[:2] {
		if err := cl.Save(3600, endp, fmt.Sprint("s", i), p); err != nil {
			return fmt.Errorf("ttl 3600 must be accepted (clamped): %w", err)
		}
	}
	if err := cl.SaveDest(3600, dest, "DP", endp); err != nil {
		return fmt.Errorf("ttl 3600 must be accepted (clamped): %w", err)
	}
	if err := within("saving", base, saveWindow); err != nil {
		return err
	}
	SleepUntil(base.Add(limit - 500*time.Millisecond))
	if err := cl.Hit(endp, "s0", ps[0]); err != nil {
		return fmt.Errorf("just before the limit: %w", err)
	}
	if err := checkClosedAt(env, ps[1], base, limit); err != nil {
		return err
	}
	SleepUntil(base.Add(limit + 400*time.Millisecond))
	if err := cl.Miss(endp); err != nil {
		return err
	}
	// The binding was clamped too: with a fresh session at its endpoint,
	// find_dest still misses.
	if err := cl.Save(1, endp, "s2", ps[2]); err != nil {
		return err
	}
	if err := cl.MissDest(dest); err != nil {
		return fmt.Errorf("binding saved with ttl 3600 outlived the %v limit: %w", limit, err)
	}
	return cl.Hit(endp, "s2", ps[2])
}

// A refresh re-arms the binding's timer: it outlives its first deadline,
// and still expires.
func destRefreshExtendsTTL(env *Env) error {
	if env.TTLLimit < 2*time.Second {
		return env.Skip("needs a ttl limit of at least 2s, have %v", env.TTLLimit)
	}
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	dest, endp := env.Label(destKey), env.Label(endpKey)
	base := env.AlignSecond()
	if err := cl.SaveDest(1, dest, "DP", endp); err != nil {
		return err
	}
	for i, p := range ps[:2] {
		if err := cl.Save(2, endp, fmt.Sprint("s", i), p); err != nil {
			return err
		}
	}
	if err := within("saving", base, saveWindow); err != nil {
		return err
	}
	SleepUntil(base.Add(600 * time.Millisecond))
	if err := cl.SaveDest(2, dest, "DP", endp); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	// Without the refresh the binding would be gone by base+1.3s.
	SleepUntil(base.Add(1400 * time.Millisecond))
	if err := cl.HitDest(dest, "DP", "s0", ps[0]); err != nil {
		return fmt.Errorf("refreshed binding after its first deadline: %w", err)
	}
	// Refreshed at base+0.6s for 2s: gone by base+2.6s (Postfix: base+2s).
	SleepUntil(base.Add(2800 * time.Millisecond))
	if err := cl.Save(1, endp, "s2", ps[2]); err != nil {
		return err
	}
	if err := cl.MissDest(dest); err != nil {
		return fmt.Errorf("refreshed binding did not expire: %w", err)
	}
	return cl.Hit(endp, "s2", ps[2])
}

// ttl values Postfix's attr_scan0_number()+"ttl <= 0" reject: status 1
// and no dummy, for save_endp and save_dest alike.
var badTTLs = []string{"0", "-1", "-5", "4294967296", "2147483648", "abc", "", "5x", "0x10", "1.5", "1 ", " "}

// ttl values sscanf("%u%c") accepts (leading blanks, a sign, wrapping at
// 2^32).
var goodTTLs = []string{" 1", "+1", "\t2", "4294967297", "99999999999", "-4294967295", "0002"}

func badTTLValues(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	endp := env.Label("E")
	if err := cl.Save(2, endp, "P", p); err != nil {
		return err
	}
	for i, ttl := range badTTLs {
		label, dest := env.Label(fmt.Sprint("L", i)), env.Label(fmt.Sprint("D", i))
		r, err := env.Raw()
		if err != nil {
			return err
		}
		if err := r.Request(saveEndpReq(ttl, label, "P"), statusBad); err != nil {
			return fmt.Errorf("save_endp ttl %s: %w", Show([]byte(ttl)), err)
		}
		if err := r.Request(findEndpReq(label), endpMiss); err != nil {
			return fmt.Errorf("after save_endp ttl %s: %w", Show([]byte(ttl)), err)
		}
		if err := r.Request(saveDestReq(ttl, dest, "DP", endp), statusBad); err != nil {
			return fmt.Errorf("save_dest ttl %s: %w", Show([]byte(ttl)), err)
		}
		if err := r.Request(findDestReq(dest), destMiss); err != nil {
			return fmt.Errorf("after save_dest ttl %s (binding made?): %w", Show([]byte(ttl)), err)
		}
		r.Close()
	}
	return cl.Hit(endp, "P", p)
}

func ttlParseEdgeCases(env *Env) error {
	for i, ttl := range goodTTLs {
		label, dest := env.Label(fmt.Sprint("L", i)), env.Label(fmt.Sprint("D", i))
		ps, err := env.Pairs(2)
		if err != nil {
			return err
		}
		r, err := env.Raw()
		if err != nil {
			return err
		}
		if err := r.SaveEndp(ttl, label, "P", ps[0]); err != nil {
			return fmt.Errorf("ttl %s must be accepted: %w", Show([]byte(ttl)), err)
		}
		if err := r.Request(saveDestReq(ttl, dest, "DP", label), statusOK); err != nil {
			return fmt.Errorf("ttl %s must be accepted: %w", Show([]byte(ttl)), err)
		}
		if err := r.SaveEndp("2", label, "P2", ps[1]); err != nil {
			return err
		}
		if err := r.Request(findEndpReq(label), endpReply(0, "P")); err != nil {
			return fmt.Errorf("session saved with ttl %s: %w", Show([]byte(ttl)), err)
		}
		fd, err := r.TakeFD()
		if err != nil {
			return err
		}
		if err := env.Is(fd, ps[0]); err != nil {
			return err
		}
		env.CloseFD(fd)
		if err := r.Request(findDestReq(dest), destReply(0, "DP", "P2")); err != nil {
			return fmt.Errorf("binding saved with ttl %s: %w", Show([]byte(ttl)), err)
		}
		if fd, err = r.TakeFD(); err != nil {
			return err
		}
		if err := env.Is(fd, ps[1]); err != nil {
			return err
		}
		env.CloseFD(fd)
		r.Close()
	}
	return nil
}
