package cache

import (
	"sync"
	"testing"
	"time"
)

func TestEndpointLimit(t *testing.T) {
	clk := &fakeClock{}
	c := New(Config{Now: clk.Now, MaxEndpSessions: 2})
	for fd := 10; fd < 13; fd++ {
		ev, why := c.SaveEndp(time.Second, "E", "p", fd)
		if fd < 12 && (ev != -1 || why != NoEviction) {
			t.Fatalf("fd %d: evicted %d (%d)", fd, ev, why)
		}
		if fd == 12 && (ev != 10 || why != EndpointLimit) {
			t.Fatalf("fd 12: evicted %d (%d), want 10 by the endpoint limit", ev, why)
		}
		clk.Advance(time.Millisecond)
	}
	mustInvariants(t, c)
	// Other endpoints are not affected; the survivors come out FIFO.
	if ev, _ := c.SaveEndp(time.Second, "F", "p", 20); ev != -1 {
		t.Fatal("another endpoint evicted")
	}
	for _, want := range []int{11, 12} {
		if _, fd, ok := c.FindEndp("E"); !ok || fd != want {
			t.Fatalf("got %d, want %d", fd, want)
		}
	}
}

func TestSessionLimitEvictsOldestAnywhere(t *testing.T) {
	clk := &fakeClock{}
	c := New(Config{Now: clk.Now, MaxSessions: 3})
	labels := []string{"a", "b", "c", "d", "e"}
	for i, l := range labels {
		ev, why := c.SaveEndp(time.Second, l, "p", 100+i)
		switch {
		case i < 3 && ev != -1:
			t.Fatalf("%s: evicted %d", l, ev)
		case i >= 3 && (ev != 100+i-3 || why != SessionLimit):
			t.Fatalf("%s: evicted %d (%d), want %d", l, ev, why, 100+i-3)
		}
		clk.Advance(time.Millisecond)
		mustInvariants(t, c)
	}
	if sz := c.Sizes(); sz.Sessions != 3 {
		t.Fatalf("sizes %+v", sz)
	}
	// A hand-out removes a session from the save-order list too.
	if _, fd, ok := c.FindEndp("d"); !ok || fd != 103 {
		t.Fatal(fd, ok)
	}
	mustInvariants(t, c)
	c.SaveEndp(time.Second, "f", "p", 105)
	if ev, _ := c.SaveEndp(time.Second, "g", "p", 106); ev != 102 {
		t.Fatalf("evicted %d, want 102 (c, the oldest left)", ev)
	}
	mustInvariants(t, c)
}

func TestDestinationLimit(t *testing.T) {
	c := New(Config{MaxDestBindings: 2})
	if c.SaveDest(time.Second, "D", "p1", "E1") != NoEviction || c.SaveDest(time.Second, "D", "p2", "E2") != NoEviction {
		t.Fatal("evicted below the limit")
	}
	// A refresh adds nothing and evicts nothing.
	if c.SaveDest(time.Second, "D", "p1", "E1") != NoEviction {
		t.Fatal("refresh evicted")
	}
	if c.SaveDest(time.Second, "D", "p3", "E3") != DestinationLimit {
		t.Fatal("no eviction at the limit")
	}
	mustInvariants(t, c)
	c.SaveEndp(time.Second, "E1", "x", 1)
	c.SaveEndp(time.Second, "E2", "x", 2)
	if _, _, fd, ok := c.FindDest("D"); !ok || fd != 2 {
		t.Fatalf("the oldest binding (E1) should be gone: got fd %d", fd)
	}
}

// Under concurrent saves the total never ends above the limit and every
// descriptor comes back exactly once.
func TestSessionLimitConcurrent(t *testing.T) {
	const limit, workers, per = 50, 8, 500
	c := New(Config{MaxSessions: limit, MaxEndpSessions: 20})
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				fd := w*per + i
				ev, _ := c.SaveEndp(time.Minute, string(rune('a'+fd%7)), "p", fd)
				mu.Lock()
				if ev >= 0 {
					seen[ev]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mustInvariants(t, c)
	if n := c.Sizes().Sessions; n > limit {
		t.Errorf("%d sessions, limit %d", n, limit)
	}
	for _, fd := range c.Drain(nil) {
		seen[fd]++
	}
	for fd := 0; fd < workers*per; fd++ {
		if seen[fd] != 1 {
			t.Fatalf("fd %d came back %d times", fd, seen[fd])
		}
	}
}
