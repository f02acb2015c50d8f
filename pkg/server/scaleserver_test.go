package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/protocol"
)

// The server-level scale benchmark: a whole Server in a process of its own
// (accept loop, a goroutine per client, the maintenance goroutine,
// statistics; the test binary run again as ssServe) holding N cached
// sessions (N endpoints, N destinations each bound to one
// of them) with labels and properties of smtp(8)'s sizes
// (/work/shared/reference/postfix-smtp-traffic.txt), while smtp(8)-like
// clients use it over real UNIX-domain sockets; then a mass expiry of all
// of them under that load.
//
// N real descriptors do not fit under this machine's RLIMIT_NOFILE (hard
// limit 20000, not raisable here), so at most ssReal of the sessions are
// real (one end of a socketpair); the others are stand-ins. The server
// process saves both into its cache directly, in index order, the strings
// fresh copies as the codec makes them, stand-ins with stand-in descriptor numbers that can never
// be open (the server's close of them is a harmless EBADF). The clients
// only ever look up the real ones, drawn at random among them (their
// entries lie scattered among the stand-ins' in memory), so every hit
// hands out a real descriptor.

// ssReal is the most real sessions.
const ssReal = 8000

// ssClients is the number of concurrent clients, each a smtp(8)-like
// delivery loop on one connection.
const ssClients = 8

// ssFake is the first stand-in descriptor number: above any RLIMIT_NOFILE
// this kernel allows (fs.nr_open is at most 2^30 - 64).
const ssFake = 1 << 30

func ssEndp(i int) string { return fmt.Sprintf("smtp\n10.%d.%d.%d\n25\n0\n", i>>16, i>>8&255, i&255) }
func ssDest(i int) string { return fmt.Sprintf("smtp\nd%d.example.com:25\n", i) }
func ssEndpProp(i int) string {
	return fmt.Sprintf("tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=17958%05d\n\n", i%100000)
}
func ssDestProp(i int) string {
	return fmt.Sprintf("destination=d%d.example.com:25\nhost_name=mx.d%d.example.com\nhost_addr=10.%d.%d.%d\ndestination_features=4096\n\n",
		i, i, i>>16, i>>8&255, i&255)
}

// ssLog counts warnings and discards everything else.
type ssLog struct{ warnings atomic.Int64 }

func (*ssLog) Debugf(string, ...any)    {}
func (*ssLog) Infof(string, ...any)     {}
func (l *ssLog) Warnf(string, ...any)   { l.warnings.Add(1) }
func (*ssLog) Statistics(journal.Stats) {}

func ssQuantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// ssSample is one request: its kind, when it started, how long it took.
type ssSample struct {
	kind  string
	start time.Time
	d     time.Duration
}

// ssClient is one smtp(8)-like client.
type ssClient struct {
	cl   *protocol.Client
	r    *rand.Rand
	real []int // the indexes with real sessions
	lat  []ssSample
}

func (c *ssClient) timed(kind string, f func() error) error {
	t0 := time.Now()
	err := f()
	c.lat = append(c.lat, ssSample{kind, t0, time.Since(t0)})
	return err
}

// deliver is one delivery as smtp(8) makes it: find_dest; on a miss
// find_endp, and on a miss a new connection; then save_dest and save_endp.
func (c *ssClient) deliver() error {
	i := c.real[c.r.IntN(len(c.real))]
	dest, endp := ssDest(i), ssEndp(i)
	fd := -1
	err := c.timed("find_dest", func() error {
		st, _, _, got, err := c.cl.FindDest(dest)
		if err == nil && st == protocol.StatusOK {
			fd = got
		}
		return err
	})
	if err == nil && fd < 0 {
		err = c.timed("find_endp", func() error {
			st, _, got, err := c.cl.FindEndp(endp)
			if err == nil && st == protocol.StatusOK {
				fd = got
			}
			return err
		})
	}
	if err != nil {
		return err
	}
	if fd < 0 {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.Close(p[1])
		fd = p[0]
	}
	defer unix.Close(fd)
	if err := c.timed("save_dest", func() error {
		_, err := c.cl.SaveDest(3600, dest, ssDestProp(i), endp)
		return err
	}); err != nil {
		return err
	}
	return c.timed("save_endp", func() error {
		_, err := c.cl.SaveEndp(3600, endp, ssEndpProp(i), fd)
		return err
	})
}

// ssResult is what one run of runScaleServer measured.
type ssResult struct {
	Sessions       int
	HeapMiB        float64 // memory the sessions take after the fill: cache and live Go heap
	HeapPerSession float64 // bytes, a session and its destination
	BaseRSSMiB     float64 // the server's VmRSS before the fill
	RSSMiB         float64 // the server's largest VmRSS while held, clients delivering
	FindDestP50    float64 // µs, find_dest while held (hits)
	FindDestP99    float64
	HeldMax        float64 // µs, the longest request of any kind while held
	ExpiryMs       float64 // from the clock jump until nothing is due
	ExpiryP99      float64 // µs, requests that started during the expiry
	ExpiryMax      float64
	ExpiryMaxKind  string
	ExpiryRequests int
	ExpiryGCs      uint32
	Warnings       int64
}

// ssReport is what the server process tells the test, one JSON line per
// command.
type ssReport struct {
	MemBytes  int64 // the cache's memory and the Go heap's growth by the fill
	BaseRSS   int64 // KiB, before the fill
	RSS       int64 // KiB, now
	NumGC     uint32
	Sessions  int
	Warnings  int64
	ExpiredNs int64 // expire: from the clock jump until nothing was due
}

// ssRealIndexes are the sessions of n that are real, the others stand-ins:
// every step-th, at most ssReal.
func ssRealIndexes(n int) []int {
	real := min(n, ssReal)
	step := n / real
	var idx []int
	for i := 0; i < n && len(idx) < real; i += step {
		idx = append(idx, i)
	}
	return idx
}

// ssServe is the server process of the scale benchmark (TestScaleServer
// with SCACHED_SCALE_HOST=n): a Server on the socket SCACHED_SCALE_SOCK
// with n sessions and n destinations. The real sessions are one end of a
// socketpair each, saved into the cache like the stand-ins, in index
// order, so that they lie scattered among them; a hit hands out a real
// descriptor over the socket. It answers commands on stdin with an
// ssReport line on stdout: "fill" (then serves), "expire" (moves the
// clock past every deadline and reports when nothing is due), "stats",
// "quit".
func ssServe(t *testing.T, n int, path string) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	log := new(ssLog)
	s, err := New(Config{Log: log, MaxIdle: -1, TTLLimit: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	report := func(r ssReport) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.RSS, r.NumGC, r.Warnings = procStatus("VmRSS"), ms.NumGC, log.warnings.Load()
		r.Sessions = s.cache.Sizes().Sessions
		b, _ := json.Marshal(r)
		fmt.Printf("SCALE %s\n", b)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "fill":
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			cacheBefore := s.cache.Memory()
			baseRSS := procStatus("VmRSS")
			real := ssRealIndexes(n)
			for i := range n {
				fd := ssFake + i
				if len(real) > 0 && real[0] == i {
					real = real[1:]
					p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
					if err != nil {
						t.Fatal(err)
					}
					unix.Close(p[1])
					fd = p[0]
				}
				// Fresh strings, as the codec makes them.
				s.cache.SaveDest(time.Hour, ssDest(i), ssDestProp(i), ssEndp(i))
				s.cache.SaveEndp(time.Hour, ssEndp(i), ssEndpProp(i), fd)
			}
			runtime.GC()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			report(ssReport{
				MemBytes: int64(after.HeapAlloc) - int64(before.HeapAlloc) + s.cache.Memory() - cacheBefore,
				BaseRSS:  baseRSS,
			})
		case "expire":
			if f := os.Getenv("SCACHED_SCALE_TRACE"); f != "" {
				w, err := os.Create(f)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if err := trace.Start(w); err != nil {
					t.Fatal(err)
				}
				defer trace.Stop()
			}
			t0 := time.Now()
			offset.Store(int64(2 * time.Hour))
			for {
				if next, ok := s.cache.NextDeadline(); !ok || next.After(clock()) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			report(ssReport{ExpiredNs: int64(time.Since(t0))})
		case "stats":
			report(ssReport{})
		case "quit":
			cancel()
			if err := <-served; err != nil {
				t.Error(err)
			}
			return
		}
	}
	t.Fatal("stdin closed")
}

// ssHost is the test's handle on the server process.
type ssHost struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// do sends a command and reads the report.
func (h *ssHost) do(tb testing.TB, cmd string) ssReport {
	tb.Helper()
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		tb.Fatal(err)
	}
	for h.out.Scan() {
		if j, ok := strings.CutPrefix(h.out.Text(), "SCALE "); ok {
			var r ssReport
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				tb.Fatal(err)
			}
			return r
		}
	}
	tb.Fatalf("server process: no report for %q", cmd)
	return ssReport{}
}

// runScaleServer starts the server process (ssServe) with n sessions and
// n destinations, runs deliveries deliveries of ssClients clients while
// they are held, sampling the server's VmRSS, then has it move its clock
// (Config.Now) past all their deadlines at once and keeps the clients
// delivering while it expires them. The clients run in this process, so
// that the server's RSS is its own.
func runScaleServer(tb testing.TB, n, deliveries int) ssResult {
	path := filepath.Join(tb.TempDir(), "scache")
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SCACHED_SCALE_HOST="+strconv.Itoa(n), "SCACHED_SCALE_SOCK="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	h := &ssHost{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	defer func() {
		fmt.Fprintln(in, "quit")
		in.Close()
		for h.out.Scan() {
		}
		if err := cmd.Wait(); err != nil {
			tb.Errorf("server process: %v", err)
		}
	}()
	filled := h.do(tb, "fill")
	if filled.Sessions != n {
		tb.Fatalf("server process holds %d sessions, want %d", filled.Sessions, n)
	}
	clients := make([]*ssClient, ssClients)
	real := ssRealIndexes(n)
	for k := range clients {
		cl, err := protocol.Dial(path, 10*time.Second)
		if err != nil {
			tb.Fatal(err)
		}
		defer cl.Close()
		clients[k] = &ssClient{
			cl:   cl,
			r:    rand.New(rand.NewPCG(uint64(k), uint64(n))),
			real: real,
			lat:  make([]ssSample, 0, 4*deliveries/ssClients+4096),
		}
	}

	// Held: the clients share the deliveries; the server's VmRSS is
	// sampled meanwhile.
	var maxRSS atomic.Int64
	maxRSS.Store(filled.RSS)
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	statusPath := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	go func() {
		defer close(rssDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			maxRSS.Store(max(maxRSS.Load(), procStatusFile(statusPath, "VmRSS")))
			select {
			case <-stopRSS:
				return
			case <-t.C:
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(deliveries) {
				if err := c.deliver(); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stopRSS)
	<-rssDone
	var held []ssSample
	for _, c := range clients {
		held = append(held, c.lat...)
		c.lat = c.lat[:0]
	}

	// Expiry: everything saved so far falls due at once. The clients keep
	// delivering (their finds now miss, so they save new sessions) until
	// the server has nothing due left.
	stop := make(chan struct{})
	for _, c := range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.deliver(); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	gcBefore := h.do(tb, "stats").NumGC
	t0 := time.Now()
	expired := h.do(tb, "expire")
	t1 := time.Now()
	close(stop)
	wg.Wait()
	var during []ssSample
	for _, c := range clients {
		for _, x := range c.lat {
			if !x.start.Before(t0) && x.start.Before(t1) {
				during = append(during, x)
			}
		}
	}
	if len(during) == 0 {
		tb.Fatal("no request ran during the expiry")
	}
	slices.SortFunc(during, func(a, b ssSample) int { return int(b.d - a.d) })
	if os.Getenv("SCACHED_SCALE_DEBUG") != "" {
		for _, x := range during[:min(10, len(during))] {
			tb.Logf("expiry: %s at +%v took %v", x.kind, x.start.Sub(t0), x.d)
		}
	}
	// What the cache holds now was saved after the jump (or by a request
	// in flight at the jump, one per client at most).
	saves := ssClients
	for _, c := range clients {
		for _, x := range c.lat {
			if x.kind == "save_endp" && !x.start.Before(t0) {
				saves++
			}
		}
	}
	final := h.do(tb, "stats")
	if final.Sessions > saves {
		tb.Errorf("after the expiry the cache holds %d sessions, %d saved since", final.Sessions, saves)
	}
	durs := func(ss []ssSample, kind string) []time.Duration {
		var d []time.Duration
		for _, x := range ss {
			if kind == "" || x.kind == kind {
				d = append(d, x.d)
			}
		}
		return d
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	fd := durs(held, "find_dest")
	return ssResult{
		Sessions:       n,
		HeapMiB:        float64(filled.MemBytes) / (1 << 20),
		HeapPerSession: float64(filled.MemBytes) / float64(n),
		BaseRSSMiB:     float64(filled.BaseRSS) / 1024,
		RSSMiB:         float64(maxRSS.Load()) / 1024,
		FindDestP50:    us(ssQuantile(fd, 0.5)),
		FindDestP99:    us(ssQuantile(fd, 0.99)),
		HeldMax:        us(ssQuantile(durs(held, ""), 1)),
		ExpiryMs:       float64(expired.ExpiredNs) / 1e6,
		ExpiryP99:      us(ssQuantile(durs(during, ""), 0.99)),
		ExpiryMax:      us(during[0].d),
		ExpiryMaxKind:  during[0].kind,
		ExpiryRequests: len(during),
		ExpiryGCs:      final.NumGC - gcBefore,
		Warnings:       final.Warnings,
	}
}

// TestScaleServerSmoke runs the server-level scale benchmark small: real
// and stand-in sessions held, then a mass expiry under load, without a
// warning and without a descriptor left behind.
func TestScaleServerSmoke(t *testing.T) {
	fds := countFDs(t)
	r := runScaleServer(t, 300, 300)
	if r.Warnings != 0 {
		t.Errorf("%d warnings", r.Warnings)
	}
	if got := countFDs(t); got != fds {
		t.Errorf("%d descriptors open before, %d after", fds, got)
	}
}

// TestScaleServer is the server-level scale benchmark. It runs when
// SCACHED_SCALE lists the sizes, the server of each in a process of its
// own (so that the RSS figures are that server's alone; the clients run in
// the test's process), and prints a table:
//
//	SCACHED_SCALE=1000,10000,100000 go test -run '^TestScaleServer$' -v ./pkg/server
//
// SCACHED_SCALE_DELIVERIES sets the deliveries while held (default 40000);
// SCACHED_SCALE_DEBUG=1 prints the slowest requests of the expiry;
// SCACHED_SCALE_TRACE=file writes the server's runtime trace of the
// expiry (go tool trace). Timings
// are wall-clock on whatever else the machine runs: compare the rows of
// one run, and repeat it.
func TestScaleServer(t *testing.T) {
	if host := os.Getenv("SCACHED_SCALE_HOST"); host != "" {
		n, err := strconv.Atoi(host)
		if err != nil {
			t.Fatal(err)
		}
		ssServe(t, n, os.Getenv("SCACHED_SCALE_SOCK"))
		return
	}
	deliveries := 40000
	if v := os.Getenv("SCACHED_SCALE_DELIVERIES"); v != "" {
		deliveries, _ = strconv.Atoi(v)
	}
	sizes := os.Getenv("SCACHED_SCALE")
	if sizes == "" {
		t.Skip("set SCACHED_SCALE=1000,100000 to run")
	}
	var rows []ssResult
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, runScaleServer(t, n, deliveries))
	}
	var tb strings.Builder
	fmt.Fprintf(&tb, "| sessions | cache+heap MiB | B/session | RSS MiB (before fill) | find_dest p50 µs | p50 / first | find_dest p99 µs | max held µs | expiry ms | requests during expiry | their p99 µs | their max µs | GCs during expiry | warnings |\n")
	fmt.Fprintf(&tb, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		fmt.Fprintf(&tb, "| %d | %.1f | %.0f | %.1f (%.1f) | %.0f | %.2f× | %.0f | %.0f | %.1f | %d | %.0f | %.0f (%s) | %d | %d |\n",
			r.Sessions, r.HeapMiB, r.HeapPerSession, r.RSSMiB, r.BaseRSSMiB, r.FindDestP50, r.FindDestP50/rows[0].FindDestP50,
			r.FindDestP99, r.HeldMax, r.ExpiryMs, r.ExpiryRequests, r.ExpiryP99, r.ExpiryMax, r.ExpiryMaxKind, r.ExpiryGCs, r.Warnings)
	}
	t.Logf("\n%s", tb.String())
}
