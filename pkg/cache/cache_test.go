package cache

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

func TestNewShards(t *testing.T) {
	tests := []struct{ in, want int }{
		{0, DefaultShards},
		{1, 1},
		{2, 2},
		{3, 4},
		{64, 64},
		{65, 128},
		{maxShards, maxShards},
		{maxShards + 1, maxShards},
		{math.MaxInt, maxShards},
	}
	for _, tt := range tests {
		c := New(Config{Shards: tt.in})
		if got := len(c.shards); got != tt.want {
			t.Errorf("New(Config{Shards: %d}) has %d shards, want %d", tt.in, got, tt.want)
		}
		if c.mask != uint64(tt.want-1) {
			t.Errorf("Shards %d: mask %#x", tt.in, c.mask)
		}
	}
}

// mustPanic fails the test unless f panics.
func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if recover() == nil {
			t.Errorf("%s did not panic", name)
		}
	}()
	f()
}

func TestBrokenInvariantsPanic(t *testing.T) {
	c, _ := newTestCache(4)
	tests := []struct {
		name string
		f    func()
	}{
		{"New(Shards: -1)", func() { New(Config{Shards: -1}) }},
		{"SaveEndp(ttl 0)", func() { c.SaveEndp(0, "e", "p", 1) }},
		{"SaveEndp(ttl -1s)", func() { c.SaveEndp(-time.Second, "e", "p", 1) }},
		{"SaveDest(ttl 0)", func() { c.SaveDest(0, "d", "p", "e") }},
		{"SaveDest(ttl -1ns)", func() { c.SaveDest(-1, "d", "p", "e") }},
	}
	for _, tt := range tests {
		mustPanic(t, tt.name, tt.f)
	}
	// The panics happened before anything was stored or locked.
	if sz := c.Sizes(); sz != (Sizes{}) {
		t.Errorf("Sizes after rejected saves = %+v", sz)
	}
	c.SaveEndp(time.Second, "e", "p", 1)
	if _, fd, ok := c.FindEndp("e"); !ok || fd != 1 {
		t.Errorf("cache unusable after a panic: %d %t", fd, ok)
	}
}

func TestMissResults(t *testing.T) {
	c, _ := newTestCache(0)
	if prop, fd, ok := c.FindEndp("x"); ok || fd != -1 || prop != "" {
		t.Errorf("FindEndp miss = %q, %d, %t; want \"\", -1, false", prop, fd, ok)
	}
	c.SaveDest(time.Second, "d", "p", "x")
	if dp, ep, fd, ok := c.FindDest("d"); ok || fd != -1 || dp != "" || ep != "" {
		t.Errorf("FindDest miss = %q, %q, %d, %t; want \"\", \"\", -1, false", dp, ep, fd, ok)
	}
	if dst := c.Expire(nil); dst != nil {
		t.Errorf("Expire on nothing due = %v, want nil", dst)
	}
	if dst := c.Drain([]int{7}); !slices.Equal(dst, []int{7}) {
		t.Errorf("Drain appended %v to [7]", dst)
	}
}

// TestFindDestManyBindings covers destinations with many bindings, whose
// copies grow a Found's buffers.
func TestFindDestManyBindings(t *testing.T) {
	for _, n := range []int{2, 7, 8, 9, 24, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c, _ := newTestCache(0)
			for i := range n {
				c.SaveDest(time.Second, "d", fmt.Sprint("p", i), fmt.Sprint("e", i))
			}
			// Only the last binding's endpoint, then the first's, have sessions.
			c.SaveEndp(time.Second, fmt.Sprint("e", n-1), "last", 100)
			c.SaveEndp(time.Second, "e0", "first", 200)
			want := []struct {
				destProp, endpProp string
				fd                 int
			}{{"p0", "first", 200}, {fmt.Sprint("p", n-1), "last", 100}}
			for _, w := range want {
				dp, ep, fd, ok := c.FindDest("d")
				if !ok || dp != w.destProp || ep != w.endpProp || fd != w.fd {
					t.Errorf("FindDest = %q %q %d %t, want %q %q %d", dp, ep, fd, ok, w.destProp, w.endpProp, w.fd)
				}
			}
			if _, _, _, ok := c.FindDest("d"); ok {
				t.Error("FindDest hit with no sessions left")
			}
			if sz := c.Sizes(); sz != (Sizes{Dests: 1}) {
				t.Errorf("Sizes = %+v", sz)
			}
			mustInvariants(t, c)
		})
	}
}

func TestDeadlineSaturates(t *testing.T) {
	c, clk := newTestCache(1)
	clk.Advance(time.Hour)
	c.SaveEndp(math.MaxInt64, "e", "p", 1)
	c.SaveDest(math.MaxInt64, "d", "p", "e")
	next, ok := c.NextDeadline()
	if !ok || !next.After(clk.Now()) {
		t.Fatalf("NextDeadline = %v, %t; want far in the future", next, ok)
	}
	clk.Advance(100 * 365 * 24 * time.Hour)
	if got := c.Expire(nil); len(got) != 0 {
		t.Errorf("Expire = %v", got)
	}
	if _, _, fd, ok := c.FindDest("d"); !ok || fd != 1 {
		t.Errorf("FindDest = %d, %t", fd, ok)
	}
}

func TestDefaultClock(t *testing.T) {
	c := New(Config{})
	if len(c.shards) != DefaultShards {
		t.Errorf("%d shards", len(c.shards))
	}
	before := time.Now()
	c.SaveEndp(time.Hour, "e", "p", 3)
	next, ok := c.NextDeadline()
	if !ok || next.Before(before.Add(time.Hour)) || next.After(time.Now().Add(time.Hour)) {
		t.Errorf("NextDeadline = %v, %t; want about an hour from now", next, ok)
	}
	if _, fd, ok := c.FindEndp("e"); !ok || fd != 3 {
		t.Errorf("FindEndp = %d, %t", fd, ok)
	}
}

// TestExpireOrderAndRefresh exercises the heap: many entries with mixed
// deadlines and refreshes expire exactly at their deadlines.
func TestExpireOrderAndRefresh(t *testing.T) {
	c, clk := newTestCache(1)
	const n = 200
	for i := range n {
		ttl := time.Duration(1+(i*7919)%n) * time.Millisecond // a permutation of 1..n ms
		c.SaveEndp(ttl, fmt.Sprint("e", i%5), "p", i)
		c.SaveDest(ttl, fmt.Sprint("d", i%3), fmt.Sprint(i), "e")
	}
	// Refresh every destination binding to n+1 ms, pushing it past all sessions.
	for i := range n {
		c.SaveDest(time.Duration(n+1)*time.Millisecond, fmt.Sprint("d", i%3), fmt.Sprint(i), "e")
	}
	mustInvariants(t, c)
	seen := map[int]bool{}
	for ms := 1; ms <= n; ms++ {
		clk.Advance(time.Millisecond)
		got := c.Expire(nil)
		if len(got) != 1 {
			t.Fatalf("at %d ms Expire = %v, want one descriptor", ms, got)
		}
		fd := got[0]
		if ttl := 1 + (fd*7919)%n; ttl != ms || seen[fd] {
			t.Fatalf("at %d ms Expire returned %d (ttl %d ms)", ms, fd, ttl)
		}
		seen[fd] = true
		mustInvariants(t, c)
	}
	if sz := c.Sizes(); sz != (Sizes{Dests: 3}) {
		t.Errorf("Sizes = %+v, want 3 destinations", sz)
	}
	clk.Advance(time.Millisecond)
	if sz := c.Sizes(); sz != (Sizes{}) {
		t.Errorf("Sizes = %+v, want empty", sz)
	}
	if _, ok := c.NextDeadline(); ok {
		t.Error("NextDeadline ok on an empty cache")
	}
}

// TestNextDeadlineReportsPending checks that descriptors removed on the
// request path make NextDeadline due, so a maintenance loop collects them.
func TestNextDeadlineReportsPending(t *testing.T) {
	c, clk := newTestCache(1)
	c.SaveEndp(time.Second, "a", "p", 1)
	c.SaveEndp(time.Hour, "b", "p", 2)
	clk.Advance(time.Second)
	if _, _, ok := c.FindEndp("a"); ok {
		t.Fatal("expired session handed out")
	}
	next, ok := c.NextDeadline()
	if !ok || next.After(clk.Now()) || !next.Equal(epoch.Add(time.Second)) {
		t.Errorf("NextDeadline = %v, %t; want the pending session's deadline %v", next, ok, epoch.Add(time.Second))
	}
	if got := c.Expire(nil); !slices.Equal(got, []int{1}) {
		t.Errorf("Expire = %v, want [1]", got)
	}
	if next, ok := c.NextDeadline(); !ok || !next.Equal(epoch.Add(time.Hour)) {
		t.Errorf("NextDeadline = %v, %t; want %v", next, ok, epoch.Add(time.Hour))
	}
}

// TestArenaGivesMemoryBack checks that a shard that held many entries
// and emptied keeps only the first chunk of each class and the smallest
// table and heap, and that the memory is reused meanwhile.
func TestArenaGivesMemoryBack(t *testing.T) {
	c, _ := newTestCache(1)
	s := &c.shards[0]
	fill := func(n int) {
		for i := range n {
			c.SaveEndp(time.Second, fmt.Sprint("e", i), "p", i)
			c.SaveDest(time.Second, fmt.Sprint("d", i), "p", fmt.Sprint("e", i))
		}
	}
	fill(5000)
	_, peak := s.ar.usage()
	if got := c.Drain(nil); len(got) != 5000 {
		t.Errorf("Drain returned %d descriptors", len(got))
	}
	mustInvariants(t, c)
	chunks, bytes := s.ar.usage()
	classes := 0
	for i := range s.ar.pools {
		if len(s.ar.pools[i].chunks) > 0 {
			classes++
		}
	}
	if chunks != classes || bytes > classes*chunkMin*2 {
		t.Errorf("empty shard keeps %d chunks, %d bytes in %d classes (peak %d bytes)", chunks, bytes, classes, peak)
	}
	if len(s.endps.slots) != tableMin || len(s.dests.slots) != tableMin || cap(s.heap) != heapMin {
		t.Errorf("empty shard keeps tables of %d and %d slots and a heap of %d", len(s.endps.slots), len(s.dests.slots), cap(s.heap))
	}
	// A second fill of the same size reuses the same amount of memory.
	fill(5000)
	if _, again := s.ar.usage(); again != peak {
		t.Errorf("refill uses %d bytes, first fill %d", again, peak)
	}
	mustInvariants(t, c)
}

// TestStringsAreCopied checks that the cache keeps copies of the labels
// and properties it is given, not the caller's bytes, and that a Found's
// properties are copies too.
func TestStringsAreCopied(t *testing.T) {
	c, _ := newTestCache(1)
	label, prop, dprop := []byte("endp"), []byte("eprop"), []byte("dprop")
	c.SaveEndp(time.Second, bytesString(label), bytesString(prop), 7)
	c.SaveDest(time.Second, "dest", bytesString(dprop), bytesString(label))
	copy(label, "XXXX")
	copy(prop, "XXXXX")
	copy(dprop, "XXXXX")
	var f Found
	if !c.FindDestInto(&f, []byte("dest")) || string(f.DestProp) != "dprop" || string(f.EndpProp) != "eprop" || f.FD != 7 {
		t.Fatalf("FindDestInto = %q %q %d", f.DestProp, f.EndpProp, f.FD)
	}
	dp, ep := f.DestProp, f.EndpProp
	c.SaveEndp(time.Second, "endp", "other", 8) // reuses the freed record
	if string(dp) != "dprop" || string(ep) != "eprop" {
		t.Errorf("Found's properties changed with the cache: %q %q", dp, ep)
	}
	if c.FindEndpInto(&f, []byte("XXXX")) {
		t.Error("the caller's changed label found a session")
	}
}
