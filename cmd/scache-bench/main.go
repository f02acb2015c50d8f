package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/scached/scached/pkg/protocol"
)

const usage = `usage: scache-bench -socket PATH [-workload realistic|find-heavy|save-heavy|scale] [-clients N]
                    [-duration D | -requests N] [-warmup D] [-json] [flags]
       scache-bench -serve-limit PATH [-hit-dest P] [-hit-endp P] [-ring N]`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scache-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	var cfg config
	var jsonOut bool
	var out, serveLimit string
	var hitDest, hitEndp float64
	var ring int
	var cpuprofile string
	fs.StringVar(&cfg.Socket, "socket", "", "the cache server's socket `path`")
	fs.StringVar(&cfg.Workload, "workload", "realistic", "`name`: realistic, find-heavy, save-heavy or scale")
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent clients, each with one connection")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time (scale: at most, for lookups)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "measure this many requests instead of -duration")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring")
	fs.IntVar(&cfg.Dests, "dests", 1000, "destinations, drawn zipf-like")
	fs.IntVar(&cfg.Endpoints, "endpoints", 0, "endpoints the destinations share (default dests/4)")
	fs.Float64Var(&cfg.Zipf, "zipf", 1.0, "exponent of the destinations' popularity (0: uniform)")
	fs.IntVar(&cfg.TTL, "ttl", 2, "ttl of saves in seconds (smtp_connection_cache_time_limit)")
	fs.DurationVar(&cfg.Timeout, "timeout", protocol.DefaultClientTimeout, "limit of each read and write (connection_cache_protocol_timeout)")
	fs.Float64Var(&cfg.Sample, "sample", 1.0/32, "fraction of received descriptors verified by writing through them")
	fs.BoolVar(&cfg.Verify, "verify", false, "verify every received descriptor by writing through it")
	fs.BoolVar(&cfg.AnyLabel, "limit", false, "the server is the limit server: a descriptor may come back under any label")
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process id for CPU, RSS and descriptor figures (0: find it, -1: none)")
	fs.DurationVar(&cfg.Drain, "drain", time.Second, "after the run, wait this long past the last deadline for the server to close every session (negative: do not wait)")
	fs.IntVar(&cfg.Sessions, "sessions", 0, "scale: sessions to hold")
	fs.Float64Var(&cfg.FillRate, "fill-rate", 6000, "scale: sessions per second the fill is assumed to reach (sets when they expire)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0: random)")
	fs.StringVar(&cfg.Name, "name", "", "a name for this run in the report")
	fs.BoolVar(&jsonOut, "json", false, "print the results as JSON")
	fs.StringVar(&out, "o", "", "also write the JSON results to `file`")
	fs.StringVar(&serveLimit, "serve-limit", "", "serve as the limit server on the socket at `path`")
	fs.Float64Var(&hitDest, "hit-dest", 1, "limit server: probability that find_dest hits")
	fs.Float64Var(&hitEndp, "hit-endp", 1, "limit server: probability that find_endp hits")
	fs.IntVar(&ring, "ring", 4096, "limit server: descriptors kept")
	fs.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of this process to `file`")
	soakFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scache-bench: unexpected argument %q\n%s\n", fs.Arg(0), usage)
		return 2
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "scache-bench: %v\n", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if serveLimit != "" {
		return runLimit(serveLimit, hitDest, hitEndp, ring, stderr)
	}
	if cfg.Socket == "" {
		fmt.Fprintf(stderr, "scache-bench: -socket is required\n%s\n", usage)
		return 2
	}
	if cfg.Endpoints <= 0 {
		cfg.Endpoints = max(1, cfg.Dests/4)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "scache-bench: "+format+"\n", args...) }
	res, err := run(cfg, logf)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if jsonOut {
		b, _ := json.MarshalIndent(res, "", "  ")
		stdout.Write(append(b, '\n'))
	} else {
		printText(stdout, res)
	}
	if !res.OK {
		return 3
	}
	return 0
}

// runLimit serves as the limit server until SIGTERM or SIGINT.
func runLimit(path string, hitDest, hitEndp float64, ring int, stderr io.Writer) int {
	ln, err := listenUnix(path)
	if err != nil {
		fmt.Fprintf(stderr, "scache-bench: %v\n", err)
		return 1
	}
	s := newLimitServer(hitDest, hitEndp, ring)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; ln.Close() }()
	fmt.Fprintf(stderr, "scache-bench: limit server on %s (pid %d, hit-dest %.3f, hit-endp %.3f)\n", path, os.Getpid(), hitDest, hitEndp)
	err = s.serve(ln)
	s.closeAll()
	if err != nil {
		fmt.Fprintf(stderr, "scache-bench: %v\n", err)
		return 1
	}
	return 0
}

func printText(w io.Writer, r *result) {
	c := r.Config
	fmt.Fprintf(w, "scache-bench %s: %s, %d clients, %.2fs measured (warm-up %.1fs), server pid %d (%s)\n",
		c.Name, c.Workload, c.Clients, r.ElapsedS, c.WarmupS, r.Server.PID, r.Server.Comm)
	fmt.Fprintf(w, "  %-10s %10s %10s %6s %9s %9s %9s %9s %9s\n", "request", "count", "rate/s", "hit%", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs")
	names := make([]string, 0, len(r.Types))
	for n := range r.Types {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return order(names[i]) < order(names[j]) })
	line := func(name string, t typeStats) {
		hit := "-"
		if t.HitRate != nil {
			hit = fmt.Sprintf("%.1f", 100**t.HitRate)
		}
		fmt.Fprintf(w, "  %-10s %10d %10.0f %6s %9.1f %9.1f %9.1f %9.1f %9.1f\n", name, t.Count, t.Rate, hit, t.P50Us, t.P90Us, t.P99Us, t.P999Us, t.MaxUs)
	}
	for _, n := range names {
		line(n, r.Types[n])
	}
	line("all", r.All)
	fmt.Fprintf(w, "  deliveries %.0f/s; descriptors received %d, verified by writing %d\n", r.IterRate, r.Received, r.Verified)
	if r.Generator.Throttled > 0 {
		fmt.Fprintf(w, "  %d save-heavy iterations made realistic: %d sessions alive is the descriptor budget\n", r.Generator.Throttled, r.Generator.SessionBudget)
	}
	s := r.Server
	if s.PID > 0 {
		fmt.Fprintf(w, "  server: CPU %.2fs = %.1f µs/request; RSS start %d KiB, peak %d KiB, end %d KiB; descriptors before %d, after %d\n",
			s.CPUSeconds, s.CPUPerRequestUs, s.RSSStartKiB, s.RSSPeakKiB, s.RSSEndKiB, s.FDsBefore, s.FDsAfter)
	}
	fmt.Fprintf(w, "  generator: CPU %.1f µs/request; descriptors leaked %d; machine: %d CPUs, %.2f busy, %.2f by other processes\n",
		r.Generator.CPUPerRequestUs, r.Generator.FDsLeaked, r.Machine.CPUs, r.Machine.BusyCores, r.Machine.ForeignCores)
	if r.ExpiryLag.Count > 0 {
		fmt.Fprintf(w, "  sessions closed by the server after their deadline: %d, lag p50 %.0f ms, max %.0f ms (seen by a %v sweep)\n",
			r.ExpiryLag.Count, r.ExpiryLag.P50Us/1000, r.ExpiryLag.MaxUs/1000, sweepEvery)
	}
	if sc := r.Scale; sc != nil {
		fmt.Fprintf(w, "  scale: %d sessions filled in %.1fs (%.0f/s); server RSS %d KiB, %d descriptors when full\n",
			sc.Sessions, sc.FillS, sc.FillRate, sc.RSSFullKiB, sc.FDsFull)
		fmt.Fprintf(w, "  scale: lookups while holding them: p50 %.1f µs, p99 %.1f µs (%d, %.1fs)\n",
			sc.Lookup.P50Us, sc.Lookup.P99Us, sc.Lookup.Count, sc.MeasureS)
		fmt.Fprintf(w, "  scale: all expired %.2fs after their deadline; %d requests meanwhile: p99 %.1f µs, max %.1f µs; %d expired, %d taken\n",
			sc.ExpiryS, sc.Expiry.Count, sc.Expiry.P99Us, sc.Expiry.MaxUs, sc.ExpiredByServer, sc.Taken)
		if sc.Warning != "" {
			fmt.Fprintf(w, "  scale: WARNING: %s\n", sc.Warning)
		}
	}
	printAccount(w, r)
	e := r.Errors
	var bad []string
	add := func(n int64, what string) {
		if n != 0 {
			bad = append(bad, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(e.IO, "I/O errors")
	add(e.Timeouts, "timeouts")
	add(e.Reconnects, "reconnects")
	add(e.ConnectFailed, "failed connects")
	add(e.BadStatus, "bad statuses")
	add(e.SaveFailed, "failed saves")
	add(e.UnknownFD, "unknown descriptors")
	add(e.Twice, "descriptors handed out twice")
	add(e.WrongLabel, "descriptors under a wrong label")
	add(e.NotSocket, "non-sockets")
	add(e.Nonblocking, "non-blocking descriptors")
	add(e.VerifyFailed, "failed write-through checks")
	add(e.NotExpired, "sessions the server never closed")
	add(e.Leaked, "leaked generator descriptors")
	add(e.NoDescriptors, "connections the generator could not open")
	if len(bad) == 0 {
		fmt.Fprintf(w, "  errors: none\n")
	} else {
		fmt.Fprintf(w, "  errors: %s\n", strings.Join(bad, ", "))
	}
}

func order(name string) int {
	for i, n := range typeNames {
		if n == name {
			return i
		}
	}
	return len(typeNames)
}
