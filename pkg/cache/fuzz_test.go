package cache

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// model is a plain, slice-based reference implementation of the cache
// semantics (scache_multi.c), without shards, heaps or lists. Dead entries
// (deadline <= now) stay in the slices, invisible, until expire or drain.
type model struct {
	now      time.Duration
	sessions []modelSession // in save order
	bindings []modelBinding // in creation order
}

type modelSession struct {
	label, prop string
	fd          int
	deadline    time.Duration
}

type modelBinding struct {
	label, prop, endpLabel string
	deadline               time.Duration
}

func (m *model) live(deadline time.Duration) bool { return deadline > m.now }

func (m *model) saveEndp(ttl time.Duration, label, prop string, fd int) {
	m.sessions = append(m.sessions, modelSession{label, prop, fd, m.now + ttl})
}

func (m *model) findEndp(label string) (string, int, bool) {
	for i, s := range m.sessions {
		if s.label == label && m.live(s.deadline) {
			m.sessions = slices.Delete(m.sessions, i, i+1)
			return s.prop, s.fd, true
		}
	}
	return "", -1, false
}

func (m *model) saveDest(ttl time.Duration, label, prop, endpLabel string) {
	for i, b := range m.bindings {
		if b.label == label && b.prop == prop && b.endpLabel == endpLabel && m.live(b.deadline) {
			m.bindings[i].deadline = m.now + ttl
			return
		}
	}
	m.bindings = append(m.bindings, modelBinding{label, prop, endpLabel, m.now + ttl})
}

func (m *model) findDest(label string) (string, string, int, bool) {
	for _, b := range m.bindings {
		if b.label == label && m.live(b.deadline) {
			if prop, fd, ok := m.findEndp(b.endpLabel); ok {
				return b.prop, prop, fd, true
			}
		}
	}
	return "", "", -1, false
}

func (m *model) expire() []int {
	var fds []int
	m.sessions = slices.DeleteFunc(m.sessions, func(s modelSession) bool {
		if !m.live(s.deadline) {
			fds = append(fds, s.fd)
			return true
		}
		return false
	})
	m.bindings = slices.DeleteFunc(m.bindings, func(b modelBinding) bool { return !m.live(b.deadline) })
	return fds
}

func (m *model) drain() []int {
	var fds []int
	for _, s := range m.sessions {
		fds = append(fds, s.fd)
	}
	m.sessions, m.bindings = nil, nil
	return fds
}

func (m *model) sizes() Sizes {
	dests, endps := map[string]bool{}, map[string]bool{}
	var sz Sizes
	for _, s := range m.sessions {
		if m.live(s.deadline) {
			endps[s.label] = true
			sz.Sessions++
		}
	}
	for _, b := range m.bindings {
		if m.live(b.deadline) {
			dests[b.label] = true
		}
	}
	sz.Dests, sz.Endps = len(dests), len(endps)
	return sz
}

// nextLive is the earliest deadline of a live entry.
func (m *model) nextLive() (time.Duration, bool) {
	next, ok := time.Duration(0), false
	for _, s := range m.sessions {
		if m.live(s.deadline) && (!ok || s.deadline < next) {
			next, ok = s.deadline, true
		}
	}
	for _, b := range m.bindings {
		if m.live(b.deadline) && (!ok || b.deadline < next) {
			next, ok = b.deadline, true
		}
	}
	return next, ok
}

// fuzzLabels and fuzzProps are small alphabets, so that operations collide;
// they include the empty string and bytes that are not text.
var (
	fuzzLabels = []string{"a", "b", "", "A", "a\x00", "\x00", "\xff\n", "smtp\n192.0.2.1\n25\n0\n"}
	fuzzProps  = []string{"p", "q", "", "\x00"}
)

// FuzzCacheOps decodes its input into a sequence of operations, runs them
// against a Cache and the model, and checks that every result agrees, that
// the cache's internal invariants hold after each step, and that every
// saved descriptor comes back exactly once.
//
// Encoding: the first byte selects the number of shards (its low two
// bits) and the expiry batch (the next two: expireBatch, or 1 to 3, so
// that dead entries stay in the lists for the operations to meet); then
// each operation is an opcode byte followed by its argument bytes.
func FuzzCacheOps(f *testing.F) {
	f.Add([]byte{0, 0, 0x00, 0, 1, 0x01, 2, 0x03, 3, 0x00, 1, 0x11, 0x04, 6})
	f.Add([]byte{1, 0, 0x10, 1, 0, 0x33, 1, 2, 0, 0x12, 5, 0, 4, 1, 3, 0, 0x15, 3, 6, 7})
	f.Add([]byte{2, 2, 0x21, 2, 3, 0x71, 2, 1, 0x70, 2, 1, 0, 0x32, 0x22, 3, 4, 4, 6, 7, 5})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 0, 1, 0, 8, 7})
	// Batch 1: four sessions and a binding die together; finds, saves and
	// sizes meet the dead ones before Expire.
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 1, 2, 0, 0, 5, 8, 1, 0, 3, 0, 0, 9, 1, 2, 7, 4, 7, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		shards := []int{1, 2, 4, DefaultShards}[data[0]%4]
		batch := []int{expireBatch, 1, 2, 3}[data[0]/4%4]
		data = data[1:]
		c, clk := newTestCacheBatch(shards, batch)
		m := &model{}
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		ttlOf := func(b int) time.Duration { return time.Duration(b%8+1) * 250 * time.Millisecond }
		saved, returned := 0, map[int]int{}
		give := func(fds ...int) {
			for _, fd := range fds {
				returned[fd]++
			}
		}
		for step := 0; len(data) > 0 && step < 1000; step++ {
			op := next()
			var desc string
			switch op % 9 {
			case 0: // save_endp
				a := next()
				ttl, label, prop := ttlOf(a), fuzzLabels[a>>3%len(fuzzLabels)], fuzzProps[next()%len(fuzzProps)]
				saved++
				desc = fmt.Sprintf("save_endp %v %q %q %d", ttl, label, prop, saved)
				c.SaveEndp(ttl, label, prop, saved)
				m.saveEndp(ttl, label, prop, saved)
			case 1: // find_endp
				label := fuzzLabels[next()%len(fuzzLabels)]
				desc = fmt.Sprintf("find_endp %q", label)
				prop, fd, ok := c.FindEndp(label)
				wprop, wfd, wok := m.findEndp(label)
				if prop != wprop || fd != wfd || ok != wok {
					t.Fatalf("step %d %s = %q %d %t, model %q %d %t", step, desc, prop, fd, ok, wprop, wfd, wok)
				}
				if ok {
					give(fd)
				}
			case 2: // save_dest
				a, b := next(), next()
				ttl, label := ttlOf(a), fuzzLabels[a>>3%len(fuzzLabels)]
				prop, endp := fuzzProps[b%len(fuzzProps)], fuzzLabels[b>>2%len(fuzzLabels)]
				desc = fmt.Sprintf("save_dest %v %q %q %q", ttl, label, prop, endp)
				c.SaveDest(ttl, label, prop, endp)
				m.saveDest(ttl, label, prop, endp)
			case 3, 4: // find_dest
				label := fuzzLabels[next()%len(fuzzLabels)]
				desc = fmt.Sprintf("find_dest %q", label)
				dp, ep, fd, ok := c.FindDest(label)
				wdp, wep, wfd, wok := m.findDest(label)
				if dp != wdp || ep != wep || fd != wfd || ok != wok {
					t.Fatalf("step %d %s = %q %q %d %t, model %q %q %d %t", step, desc, dp, ep, fd, ok, wdp, wep, wfd, wok)
				}
				if ok {
					give(fd)
				}
			case 5: // advance
				d := time.Duration(next()%9) * 125 * time.Millisecond
				desc = fmt.Sprintf("advance %v", d)
				clk.Advance(d)
				m.now += d
			case 6: // expire
				desc = "expire"
				got, want := sorted(c.Expire(nil)), sorted(m.expire())
				if !slices.Equal(got, want) {
					t.Fatalf("step %d expire = %v, model %v", step, got, want)
				}
				give(got...)
				// After Expire, NextDeadline is exact.
				nd, ok := c.NextDeadline()
				wnd, wok := m.nextLive()
				if ok != wok || (ok && !nd.Equal(epoch.Add(wnd))) {
					t.Fatalf("step %d NextDeadline = %v %t, model %v %t", step, nd, ok, epoch.Add(wnd), wok)
				}
			case 7: // sizes and next
				desc = "sizes"
				if got, want := c.Sizes(), m.sizes(); got != want {
					t.Fatalf("step %d sizes = %+v, model %+v", step, got, want)
				}
				// Before Expire, NextDeadline may report removed-but-due
				// entries as due, but never a live deadline that differs.
				nd, ok := c.NextDeadline()
				wnd, wok := m.nextLive()
				switch {
				case ok && nd.After(clk.Now()):
					if !wok || !nd.Equal(epoch.Add(wnd)) {
						t.Fatalf("step %d NextDeadline = %v, model %v %t", step, nd, epoch.Add(wnd), wok)
					}
				case !ok && wok:
					t.Fatalf("step %d NextDeadline none, model %v", step, epoch.Add(wnd))
				}
			case 8: // drain
				desc = "drain"
				got, want := sorted(c.Drain(nil)), sorted(m.drain())
				if !slices.Equal(got, want) {
					t.Fatalf("step %d drain = %v, model %v", step, got, want)
				}
				give(got...)
			}
			if err := checkInvariants(c); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
		}
		got, want := sorted(c.Drain(nil)), sorted(m.drain())
		if !slices.Equal(got, want) {
			t.Fatalf("final drain = %v, model %v", got, want)
		}
		give(got...)
		for fd := 1; fd <= saved; fd++ {
			if returned[fd] != 1 {
				t.Fatalf("descriptor %d returned %d times", fd, returned[fd])
			}
		}
		if len(returned) != saved {
			t.Fatalf("%d distinct descriptors returned, %d saved", len(returned), saved)
		}
	})
}
