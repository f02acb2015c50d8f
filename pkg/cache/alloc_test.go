package cache

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// labels returns n distinct labels shaped like Postfix's.
func labels(format string, n int) []string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf(format, i)
	}
	return l
}

// TestSteadyStateAllocs checks that save/find cycles, refreshes, expiry and
// re-creation of labels allocate nothing once the free lists, maps and
// heaps are warm.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, shards := range []int{1, 0} {
		c, clk := newTestCache(shards)
		endps := labels("smtp\n192.0.2.%d\n25\n0\n", 64)
		dests := labels("smtp\n[dest%d.example]:25\n", 64)
		endpBytes, destBytes := byteLabels(endps), byteLabels(dests)
		expired := make([]int, 0, 1024)
		var f Found
		i := 0
		cycle := func() {
			e, d := endps[i%len(endps)], dests[i%len(dests)]
			eb, db := endpBytes[i%len(endps)], destBytes[i%len(dests)]
			i++
			c.SaveEndp(10*time.Millisecond, e, "tls_level=0\n", i)
			c.SaveDest(10*time.Millisecond, d, "destination=x\n", e) // a new binding (the old one expired)
			c.SaveDest(10*time.Millisecond, d, "destination=x\n", e) // a refresh
			if !c.FindDestInto(&f, db) || f.FD != i {
				t.Fatalf("FindDestInto(%q) = %d", d, f.FD)
			}
			c.SaveEndp(10*time.Millisecond, e, "tls_level=1\n", -i)
			if !c.FindEndpInto(&f, eb) || f.FD != -i {
				t.Fatalf("FindEndpInto(%q) = %d", e, f.FD)
			}
			c.SaveEndp(time.Millisecond, e, "expires", i) // left to Expire
			clk.Advance(time.Millisecond)
			expired = c.Expire(expired[:0])
			c.Sizes()
			c.NextDeadline()
		}
		for range 10000 {
			cycle()
		}
		if n := testing.AllocsPerRun(1000, cycle); n != 0 {
			t.Errorf("shards %d: %v allocations per cycle, want 0", shards, n)
		}
		mustInvariants(t, c)
	}
}

// byteLabels returns the labels as byte slices, as the server's read
// buffer holds them.
func byteLabels(l []string) [][]byte {
	b := make([][]byte, len(l))
	for i := range l {
		b[i] = []byte(l[i])
	}
	return b
}

func shardCounts() []int { return []int{1, DefaultShards} }

// BenchmarkSaveFindEndpParallel measures a SaveEndp+FindEndpInto pair per
// op on the real clock, the goroutines cycling through 1024 endpoint labels from
// different starting points.
func BenchmarkSaveFindEndpParallel(b *testing.B) {
	endps := labels("smtp\n192.0.2.%d\n25\n0\n", 1024)
	endpBytes := byteLabels(endps)
	for _, shards := range shardCounts() {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			c := New(Config{Shards: shards})
			var id atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(id.Add(1)) * 97
				var f Found
				for pb.Next() {
					n := i % len(endps)
					i++
					c.SaveEndp(2*time.Second, endps[n], "tls_level=0\n", i)
					c.FindEndpInto(&f, endpBytes[n])
				}
			})
		})
	}
}

// BenchmarkFindDestParallel measures SaveEndp+FindDestInto per op, where each
// destination is bound to two endpoints and only the second has sessions.
func BenchmarkFindDestParallel(b *testing.B) {
	endps := labels("smtp\n192.0.2.%d\n25\n0\n", 2048)
	dests := labels("smtp\n[dest%d.example]:25\n", 1024)
	destBytes := byteLabels(dests)
	for _, shards := range shardCounts() {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			c := New(Config{Shards: shards})
			for i, d := range dests {
				c.SaveDest(time.Hour, d, "destination=x\n", endps[2*i])
				c.SaveDest(time.Hour, d, "destination=x\n", endps[2*i+1])
			}
			var id atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(id.Add(1)) * 97
				var f Found
				for pb.Next() {
					n := i % len(dests)
					i++
					c.SaveEndp(2*time.Second, endps[2*n+1], "tls_level=0\n", i)
					c.FindDestInto(&f, destBytes[n])
				}
			})
		})
	}
}

// BenchmarkSizes measures Sizes, which the server calls after every save.
func BenchmarkSizes(b *testing.B) {
	for _, shards := range shardCounts() {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			c := New(Config{Shards: shards})
			for i := range 1000 {
				c.SaveEndp(time.Hour, fmt.Sprint(i), "p", i)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Sizes()
			}
		})
	}
}
