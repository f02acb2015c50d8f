// Command scached-prof is scached's server (pkg/server) with Postfix's
// defaults, listening on a socket of its own like `scached -listen`, and
// profiling itself: the benchmark (test/bench/run.sh) runs it for one
// realistic load run to show where scached spends its CPU time and what it
// allocates per request.
//
//	scached-prof -listen PATH -cpuprofile cpu.pprof -memprofile allocs.pprof -stats stats.json
//
// It serves until SIGTERM or SIGINT, then writes the profiles and
// runtime.MemStats (mallocs, GC cycles and pauses) as JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/scached/scached/pkg/activation"
	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/server"
)

func main() {
	listen := flag.String("listen", "", "socket `path` to create and serve")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file`")
	memprofile := flag.String("memprofile", "", "write an allocation profile to `file`")
	stats := flag.String("stats", "", "write runtime.MemStats as JSON to `file` at exit")
	ttlLimit := flag.Duration("ttl-limit", server.DefaultTTLLimit, "connection_cache_ttl_limit")
	flag.Parse()
	if *listen == "" {
		fmt.Fprintln(os.Stderr, "scached-prof: -listen is required")
		os.Exit(2)
	}
	signal.Ignore(syscall.SIGPIPE)
	log := journal.New(journal.Options{SyslogName: "postfix"})
	ln, err := activation.Listen(*listen, activation.DefaultMode)
	if err != nil {
		log.Fatalf("%v", err)
	}
	srv, err := server.New(server.Config{TTLLimit: *ttlLimit, MaxIdle: -1, Log: log})
	if err != nil {
		log.Fatalf("%v", err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatalf("%v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("%v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	if err := srv.Serve(ctx, ln); err != nil {
		log.Fatalf("%v", err)
	}
	pprof.StopCPUProfile()
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			log.Fatalf("%v", err)
		}
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	if *stats != "" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b, _ := json.MarshalIndent(map[string]any{
			"uptime_s":          time.Since(start).Seconds(),
			"mallocs":           ms.Mallocs,
			"frees":             ms.Frees,
			"total_alloc":       ms.TotalAlloc,
			"heap_inuse":        ms.HeapInuse,
			"sys":               ms.Sys,
			"num_gc":            ms.NumGC,
			"pause_total_ns":    ms.PauseTotalNs,
			"gc_cpu_fraction":   ms.GCCPUFraction,
			"goroutines_at_end": runtime.NumGoroutine(),
		}, "", "  ")
		if err := os.WriteFile(*stats, append(b, '\n'), 0o644); err != nil {
			log.Fatalf("%v", err)
		}
	}
}
