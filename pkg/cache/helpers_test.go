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
		if sl.r == 0 || s.link(sl.r).index != uint32(i) {
			return fmt.Errorf("heap[%d]: bad back-pointer", i)
		}
		if i > 0 && s.heap[(i-1)/heapArity].deadline > sl.deadline {
			return fmt.Errorf("heap[%d]: earlier than its parent", i)
		}
	}
	records := 0 // records the lists reach, lists included
	entries, sessions := 0, 0
	for _, tc := range []struct {
		t    *table
		dest bool
	}{{&s.endps, false}, {&s.dests, true}} {
		n := 0
		var err error
		for i, v := range tc.t.slots {
			if v == 0 || err != nil {
				continue
			}
			n++
			h, l := uint32(v>>32), ref(v)
			lr := s.list(l)
			label := s.ar.listLabel(l)
			sh, th := c.shardOf(label)
			switch {
			case lr.hash != h || th != h:
				err = fmt.Errorf("list %q filed under the wrong hash", label)
			case sh != &c.shards[idx]:
				err = fmt.Errorf("label %q in the wrong shard", label)
			case lr.dest != tc.dest:
				err = fmt.Errorf("list %q in the wrong table", label)
			case tc.t.find(&s.ar, h, label) != l:
				err = fmt.Errorf("list %q not found at slot %d", label, i)
			case lr.first == 0 || lr.last == 0:
				err = fmt.Errorf("empty list %q in table", label)
			}
			if err != nil {
				break
			}
			records++
			var prev ref
			k := 0
			for e := lr.first; e != 0; e = s.link(e).next {
				k++
				records++
				if s.link(e).prev != prev || s.link(e).list != l {
					return fmt.Errorf("list %q: bad linkage", label)
				}
				if ix := int(s.link(e).index); ix >= len(s.heap) || s.heap[ix].r != e {
					return fmt.Errorf("list %q: entry not in heap", label)
				}
				prev = e
				entries++
				if !lr.dest {
					sessions++
				}
			}
			if lr.last != prev {
				return fmt.Errorf("list %q: bad tail", label)
			}
			if int(lr.n) != k {
				return fmt.Errorf("list %q: n=%d, holds %d", label, lr.n, k)
			}
		}
		if err != nil {
			return err
		}
		if n != tc.t.count {
			return fmt.Errorf("table holds %d lists, counts %d", n, tc.t.count)
		}
		if tc.t.slots != nil && tc.t.count*4 > len(tc.t.slots)*3 {
			return fmt.Errorf("table over three quarters full")
		}
	}
	if entries != len(s.heap) {
		return fmt.Errorf("%d entries in lists, %d in heap", entries, len(s.heap))
	}
	if sessions != s.sessions {
		return fmt.Errorf("%d sessions counted, %d in lists", s.sessions, sessions)
	}
	live := 0
	for i := range s.ar.pools {
		live += int(s.ar.pools[i].live)
	}
	if live+s.ar.bigLive != records {
		return fmt.Errorf("arena holds %d records, lists reach %d", live+s.ar.bigLive, records)
	}
	var prevAll ref
	all := 0
	for e := s.sessFirst; e != 0; e = s.sess(e).allNext {
		if s.sess(e).allPrev != prevAll || s.isDest(s.link(e).list) {
			return fmt.Errorf("save-order list: bad linkage")
		}
		if prevAll != 0 && s.sess(prevAll).saved > s.sess(e).saved {
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
	if int(s.nSessions.Load()) != sessions || int(s.nEndps.Load()) != s.endps.count ||
		int(s.nDests.Load()) != s.dests.count {
		return fmt.Errorf("published sizes out of date")
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

// usage returns the number of chunks the arena has mapped and their size
// (the address space; only the pages touched take memory).
func (a *arena) usage() (chunks, bytes int) {
	for c := range a.pools {
		for _, ch := range a.pools[c].chunks {
			chunks++
			bytes += len(ch)
		}
	}
	return chunks, bytes
}
