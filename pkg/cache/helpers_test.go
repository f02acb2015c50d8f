package cache

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// epoch is where every fake clock starts.
var epoch = time.Date(2025, 11, 28, 13, 9, 27, 0, time.UTC)

// fakeClock is a clock that moves only when told to. It is safe for
// concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) Now() time.Time          { return epoch.Add(time.Duration(f.ns.Load())) }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

// newTestCache returns a cache with the given number of shards on a fake
// clock.
func newTestCache(shards int) (*Cache, *fakeClock) {
	return newTestCacheBatch(shards, expireBatch)
}

// newTestCacheBatch is newTestCache with batch as the expiry batch, so
// that a few entries make a mass expiry.
func newTestCacheBatch(shards, batch int) (*Cache, *fakeClock) {
	clk := new(fakeClock)
	c := New(Config{Shards: shards, Now: clk.Now})
	for i := range c.shards {
		c.shards[i].batch = batch
	}
	return c, clk
}

// checkInvariants verifies the internal structure of every shard: heap
// order and indexes, list linkage, maps holding exactly the non-empty
// lists, the session count, and the published figures.
func checkInvariants(c *Cache) error {
	total := 0
	for i := range c.shards {
		total += int(c.shards[i].nSessions.Load())
	}
	if int64(total) != c.total.Load() {
		return fmt.Errorf("total %d, shards hold %d", c.total.Load(), total)
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		err := s.checkLocked(c, i)
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
	}
	return nil
}

func (s *shard) checkLocked(c *Cache, idx int) error {
	for i, sl := range s.heap {
		if sl.e == nil || sl.e.index != i {
			return fmt.Errorf("heap[%d]: bad back-pointer", i)
		}
		if i > 0 && s.heap[(i-1)/heapArity].deadline > sl.deadline {
			return fmt.Errorf("heap[%d]: earlier than its parent", i)
		}
	}
	entries, sessions := 0, 0
	for _, m := range []map[string]*list{s.endps, s.dests} {
		for label, l := range m {
			if l.label != label {
				return fmt.Errorf("list %q filed under %q", l.label, label)
			}
			if &c.shards[idx] != c.shardFor(label) {
				return fmt.Errorf("label %q in the wrong shard", label)
			}
			if l.first == nil || l.last == nil {
				return fmt.Errorf("empty list %q in map", label)
			}
			var prev *entry
			n := 0
			for e := l.first; e != nil; e = e.next {
				n++
				if e.prev != prev || e.list != l {
					return fmt.Errorf("list %q: bad linkage", label)
				}
				if e.index < 0 || e.index >= len(s.heap) || s.heap[e.index].e != e {
					return fmt.Errorf("list %q: entry not in heap", label)
				}
				if l.dest != (e.fd == -1) {
					return fmt.Errorf("list %q: session/binding mix-up", label)
				}
				prev = e
				entries++
				if !l.dest {
					sessions++
				}
			}
			if l.last != prev {
				return fmt.Errorf("list %q: bad tail", label)
			}
			if int(l.n) != n {
				return fmt.Errorf("list %q: n=%d, holds %d", label, l.n, n)
			}
		}
	}
	for label, l := range s.endps {
		if l.dest {
			return fmt.Errorf("destination list %q among endpoints", label)
		}
	}
	for label, l := range s.dests {
		if !l.dest {
			return fmt.Errorf("endpoint list %q among destinations", label)
		}
	}
	if entries != len(s.heap) {
		return fmt.Errorf("%d entries in lists, %d in heap", entries, len(s.heap))
	}
	if sessions != s.sessions {
		return fmt.Errorf("%d sessions counted, %d in lists", s.sessions, sessions)
	}
	var prevAll *entry
	all := 0
	for e := s.sessFirst; e != nil; e = e.allNext {
		if e.allPrev != prevAll || e.list == nil || e.list.dest {
			return fmt.Errorf("save-order list: bad linkage")
		}
		if prevAll != nil && prevAll.saved > e.saved {
			return fmt.Errorf("save-order list out of order")
		}
		prevAll = e
		all++
	}
	if s.sessLast != prevAll || all != sessions {
		return fmt.Errorf("save-order list holds %d of %d sessions", all, sessions)
	}
	due := int64(noDeadline)
	if len(s.heap) > 0 {
		due = s.heap[0].deadline
	}
	if s.due.Load() != due {
		return fmt.Errorf("published due %d, heap says %d", s.due.Load(), due)
	}
	if int(s.nSessions.Load()) != sessions || int(s.nEndps.Load()) != len(s.endps) ||
		int(s.nDests.Load()) != len(s.dests) {
		return fmt.Errorf("published sizes out of date")
	}
	if s.nFreeEntry > maxFree || s.nFreeList > maxFree {
		return fmt.Errorf("free lists too long")
	}
	return nil
}

// mustInvariants fails the test if checkInvariants does.
func mustInvariants(t testing.TB, c *Cache) {
	t.Helper()
	if err := checkInvariants(c); err != nil {
		t.Fatal(err)
	}
}
