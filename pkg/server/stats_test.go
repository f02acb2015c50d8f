package server

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The statistics record carries the goroutines running when it is logged
// (journal field SCACHED_GOROUTINES): one per connected client on top of
// the server's own.
func TestStatisticsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	ts := startServer(t, func(c *Config) { c.StatusUpdateTime = 100 * time.Millisecond })
	const clients = 5
	cl := ts.dial(t)
	for range clients - 1 {
		ts.dial(t).FindEndp("E")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts.log.mu.Lock()
		n := len(ts.log.stats)
		var got int
		if n > 0 {
			got = ts.log.stats[n-1].Goroutines
		}
		ts.log.mu.Unlock()
		// The test's own goroutines count too: base is the floor.
		if n > 0 && got >= base+clients {
			if max := base + clients + 10; got > max {
				t.Errorf("goroutines %d with %d clients, want at most %d", got, clients, max)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statistics with %d goroutines or more (last %d of %d records)", base+clients, got, n)
		}
		// A miss in every interval: none is Zero (and unlogged).
		cl.FindEndp("E")
		time.Sleep(20 * time.Millisecond)
	}
}

// The statistics record carries the cache's own memory (journal field
// SCACHED_CACHE_BYTES), which grows with what the cache holds.
func TestStatisticsCacheBytes(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.StatusUpdateTime = 100 * time.Millisecond })
	cl := ts.dial(t)
	p := newPair(t)
	if st, err := cl.SaveEndp(60, "E", "p", p.near); err != nil || st != 0 {
		t.Fatal(st, err)
	}
	unix.Close(p.near) // the server holds its own copy
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts.log.mu.Lock()
		var got int64
		if n := len(ts.log.stats); n > 0 {
			got = ts.log.stats[n-1].CacheBytes
		}
		ts.log.mu.Unlock()
		if got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no statistics record with the cache's memory")
		}
		cl.FindEndp("missing") // a miss: no interval is Zero
		time.Sleep(20 * time.Millisecond)
	}
}
