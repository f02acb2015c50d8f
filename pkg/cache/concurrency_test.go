package cache

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestContendedSingleSession: many simultaneous finders of one session,
// exactly one hit (the reference's contended_single_session, 12 finders).
func TestContendedSingleSession(t *testing.T) {
	for _, shards := range []int{1, 0} {
		c, _ := newTestCache(shards)
		for round := range 200 {
			c.SaveEndp(time.Second, "e", "p", round)
			c.SaveDest(time.Second, "d", "p", "e")
			var hits atomic.Int32
			var start, done sync.WaitGroup
			start.Add(1)
			for g := range 12 {
				done.Go(func() {
					start.Wait()
					var ok bool
					if g%2 == 0 {
						_, _, ok = c.FindEndp("e")
					} else {
						_, _, _, ok = c.FindDest("d")
					}
					if ok {
						hits.Add(1)
					}
				})
			}
			start.Done()
			done.Wait()
			if n := hits.Load(); n != 1 {
				t.Fatalf("shards %d round %d: %d hits, want 1", shards, round, n)
			}
		}
	}
}

// fdLabel encodes an endpoint label index in the descriptor values of the
// concurrency test, so a hand-out for the wrong label is detected.
const fdLabel = 1_000_000

// TestConcurrentExactlyOnce runs goroutines that save, find, bind, expire
// and advance the clock across shards, and checks that every saved
// descriptor comes back exactly once in total (hand-outs, Expire, Drain),
// and always for a label it was saved under.
func TestConcurrentExactlyOnce(t *testing.T) {
	for _, shards := range []int{1, 4, 0} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			testConcurrentExactlyOnce(t, shards)
		})
	}
}

func testConcurrentExactlyOnce(t *testing.T, shards int) {
	const (
		workers = 8
		ops     = 4000
		endps   = 16
		dests   = 4
	)
	c, clk := newTestCache(shards)
	endpLabel := func(i int) string { return fmt.Sprintf("smtp\n192.0.2.%d\n25\n0\n", i) }
	endpProp := func(i int) string { return fmt.Sprint("endp_prop=", i) }
	destLabel := func(d int) string { return fmt.Sprintf("smtp\n[dest%d.example]:25\n", d) }
	// Destination d binds endpoints 4d..4d+3 with property "d:<endpoint>".
	destOf := func(e int) int { return e / (endps / dests) }

	var seq, hits atomic.Int64
	saved := make([][]int, workers)
	returned := make([][]int, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				e := rng.IntN(endps)
				switch op := rng.IntN(100); {
				case op < 40:
					fd := e*fdLabel + int(seq.Add(1))
					ttl := time.Duration(1+rng.IntN(50)) * time.Millisecond
					c.SaveEndp(ttl, endpLabel(e), endpProp(e), fd)
					saved[w] = append(saved[w], fd)
				case op < 60:
					prop, fd, ok := c.FindEndp(endpLabel(e))
					if ok {
						hits.Add(1)
						returned[w] = append(returned[w], fd)
						if fd/fdLabel != e || prop != endpProp(e) {
							errs <- fmt.Errorf("FindEndp(%d) returned fd %d prop %q", e, fd, prop)
							return
						}
					}
				case op < 70:
					ttl := time.Duration(1+rng.IntN(50)) * time.Millisecond
					c.SaveDest(ttl, destLabel(destOf(e)), fmt.Sprint("d:", e), endpLabel(e))
				case op < 90:
					d := rng.IntN(dests)
					destProp, prop, fd, ok := c.FindDest(destLabel(d))
					if ok {
						hits.Add(1)
						returned[w] = append(returned[w], fd)
						got := fd / fdLabel
						if destOf(got) != d || prop != endpProp(got) || destProp != fmt.Sprint("d:", got) {
							errs <- fmt.Errorf("FindDest(%d) returned fd %d props %q %q", d, fd, destProp, prop)
							return
						}
					}
				case op < 95:
					returned[w] = c.Expire(returned[w])
				case op < 98:
					c.Sizes()
					c.NextDeadline()
				default:
					clk.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustInvariants(t, c)
	all := c.Drain(nil)
	drained := len(all)
	for _, r := range returned {
		all = append(all, r...)
	}
	count := map[int]int{}
	for _, fd := range all {
		count[fd]++
	}
	total := 0
	for _, s := range saved {
		for _, fd := range s {
			total++
			if n := count[fd]; n != 1 {
				t.Errorf("descriptor %d returned %d times", fd, n)
			}
			delete(count, fd)
		}
	}
	for fd, n := range count {
		t.Errorf("descriptor %d returned %d times but never saved", fd, n)
	}
	if sz := c.Sizes(); sz.Endps != 0 || sz.Sessions != 0 {
		t.Errorf("Sizes after Drain = %+v", sz)
	}
	t.Logf("%d descriptors saved: %d handed out, %d expired, %d drained; clock at %v",
		total, hits.Load(), total-int(hits.Load())-drained, drained, time.Duration(clk.ns.Load()))
}
