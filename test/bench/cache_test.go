package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scached/scached/pkg/cache"
)

var scaleSizes = []int{1000, 10000, 100000}

// scaleLabels returns n endpoint and n destination labels shaped like
// smtp(8)'s.
func scaleLabels(n int) (endps, dests []string) {
	endps, dests = make([]string, n), make([]string, n)
	for i := range n {
		endps[i] = fmt.Sprintf("smtp\n10.%d.%d.%d\n25\n0\n", i>>16, i>>8&255, i&255)
		dests[i] = fmt.Sprintf("smtp\n[d%d.example]:25\n", i)
	}
	return
}

// byteLabels returns the labels as bytes, as a server's read buffer holds
// them.
func byteLabels(l []string) [][]byte {
	b := make([][]byte, len(l))
	for i := range l {
		b[i] = []byte(l[i])
	}
	return b
}

// fill saves n sessions and bindings with stand-in descriptors (the cache
// never touches them) and returns the memory they take: the cache's own
// (outside the Go heap) and what the Go heap grew by.
func fill(c *cache.Cache, endps, dests []string, ttl time.Duration) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cacheBefore := c.Memory()
	for i := range endps {
		c.SaveDest(ttl, dests[i], destProp, endps[i])
		c.SaveEndp(ttl, endps[i], endpProp, 1000+i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapInuse) - int64(before.HeapInuse) + c.Memory() - cacheBefore
}

// BenchmarkCacheScale measures a realistic hit (FindDest of a random
// destination, then SaveEndp of its session back) with the cache holding
// 1,000 to 100,000 sessions, in parallel, and reports the memory the
// sessions take (mem-MiB: the cache's, outside the Go heap, and the Go
// heap's growth; the cache copies every string).
func BenchmarkCacheScale(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			endps, dests := scaleLabels(n)
			c := cache.New(cache.Config{})
			heap := fill(c, endps, dests, time.Hour)
			destBytes := byteLabels(dests)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(seed.Add(1), 7))
				var f cache.Found
				for pb.Next() {
					i := r.IntN(n)
					if c.FindDestInto(&f, destBytes[i]) {
						c.SaveEndp(time.Hour, endps[i], endpProp, f.FD)
					}
				}
			})
			b.ReportMetric(float64(heap)/(1<<20), "mem-MiB")
		})
	}
}

// BenchmarkCacheScaleExpiry lets 1,000 to 100,000 sessions (and as many
// bindings) expire at the same moment while a goroutine keeps looking up,
// and the expiry runs as the server's maintenance goroutine runs it
// (Expire at most every 100 ms, descriptors handed back). It reports the
// longest single lookup (max-stall-µs: the target is under 10 ms; on a
// loaded machine it includes being descheduled) and the longest Expire
// call (max-expire-µs). One goroutine looks up, so that with the expiring
// one they fit GOMAXPROCS=2. One op is one whole fill-and-expire cycle.
func BenchmarkCacheScaleExpiry(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			endps, dests := scaleLabels(n)
			destBytes := byteLabels(dests)
			c := cache.New(cache.Config{})
			var maxStall, maxExpire time.Duration
			for b.Loop() {
				b.StopTimer()
				fill(c, endps, dests, 300*time.Millisecond)
				b.StartTimer()
				var stop atomic.Bool
				var wg sync.WaitGroup
				stalls := make([]time.Duration, 1)
				for g := range stalls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := rand.New(rand.NewPCG(uint64(g), 9))
						var f cache.Found
						for !stop.Load() {
							i := r.IntN(n)
							t0 := time.Now()
							if c.FindDestInto(&f, destBytes[i]) {
								c.SaveEndp(time.Millisecond, endps[i], endpProp, f.FD)
							}
							stalls[g] = max(stalls[g], time.Since(t0))
						}
					}()
				}
				var fds []int
				for {
					t0 := time.Now()
					fds = c.Expire(fds[:0])
					maxExpire = max(maxExpire, time.Since(t0))
					if _, ok := c.NextDeadline(); !ok {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				stop.Store(true)
				wg.Wait()
				maxStall = max(maxStall, stalls[0])
			}
			b.ReportMetric(float64(maxStall.Microseconds()), "max-stall-µs")
			b.ReportMetric(float64(maxExpire.Microseconds()), "max-expire-µs")
		})
	}
}
