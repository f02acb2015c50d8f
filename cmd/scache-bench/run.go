package main

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/scached/scached/pkg/protocol"
)

// Results, as -json prints them. Times are in microseconds (_us) or
// seconds (_s), sizes in KiB.
type typeStats struct {
	Count   int64    `json:"count"`
	Rate    float64  `json:"rate"`
	Hits    int64    `json:"hits,omitempty"`
	HitRate *float64 `json:"hit_rate,omitempty"`
	MeanUs  float64  `json:"mean_us"`
	P50Us   float64  `json:"p50_us"`
	P90Us   float64  `json:"p90_us"`
	P99Us   float64  `json:"p99_us"`
	P999Us  float64  `json:"p999_us"`
	MaxUs   float64  `json:"max_us"`
}

type serverStats struct {
	PID             int     `json:"pid"`
	Comm            string  `json:"comm,omitempty"`
	CPUSeconds      float64 `json:"cpu_s"`
	CPUPerRequestUs float64 `json:"cpu_per_request_us"`
	RSSStartKiB     int64   `json:"rss_start_kib"`
	RSSPeakKiB      int64   `json:"rss_peak_kib"`
	RSSEndKiB       int64   `json:"rss_end_kib"`
	FDsBefore       int     `json:"fds_before"`
	FDsAfter        int     `json:"fds_after"`
}

type genStats struct {
	CPUSeconds      float64 `json:"cpu_s"`
	CPUPerRequestUs float64 `json:"cpu_per_request_us"`
	FDsBefore       int     `json:"fds_before"`
	FDsAfter        int     `json:"fds_after"`
	FDsLeaked       int     `json:"fds_leaked"`
	NoFile          uint64  `json:"nofile_limit"`
	SessionBudget   int64   `json:"session_budget"`
	Throttled       int64   `json:"throttled_iterations"` // save-heavy saves replaced by realistic iterations
}

type machineStats struct {
	CPUs         int     `json:"cpus"`
	Load1        float64 `json:"load1_before"`
	BusyCores    float64 `json:"busy_cores"`
	ForeignCores float64 `json:"foreign_cores"` // busy, but neither the server nor the generator
}

type errorStats struct {
	Total         int64 `json:"total"`
	IO            int64 `json:"io"`
	Timeouts      int64 `json:"timeouts"`
	Reconnects    int64 `json:"reconnects"`
	ConnectFailed int64 `json:"connect_failed"`
	BadStatus     int64 `json:"bad_status"`
	SaveFailed    int64 `json:"save_failed"`
	UnknownFD     int64 `json:"unknown_descriptor"`
	Twice         int64 `json:"handed_out_twice"`
	WrongLabel    int64 `json:"wrong_label"`
	NotSocket     int64 `json:"not_socket"`
	Nonblocking   int64 `json:"nonblocking"`
	VerifyFailed  int64 `json:"verify_failed"`
	NotExpired    int64 `json:"not_closed_by_server"`
	NoDescriptors int64 `json:"generator_out_of_descriptors"`
	Leaked        int64 `json:"generator_fds_leaked"`
}

type scaleStats struct {
	Sessions        int       `json:"sessions"`
	FillS           float64   `json:"fill_s"`
	FillRate        float64   `json:"fill_sessions_per_s"`
	MeasureS        float64   `json:"measure_s"`
	HeldAtEnd       int64     `json:"held_at_measure_end"`
	Lookup          typeStats `json:"lookup"` // find_dest while holding the sessions
	ExpiryS         float64   `json:"expiry_s"`
	Expiry          typeStats `json:"expiry_requests"` // every request while they expire
	ExpiredByServer int64     `json:"expired_by_server"`
	Taken           int64     `json:"taken_during_expiry"`
	RSSFullKiB      int64     `json:"server_rss_full_kib"`
	FDsFull         int       `json:"server_fds_full"`
	Warning         string    `json:"warning,omitempty"`
}

type result struct {
	Tool        string               `json:"tool"`
	Command     []string             `json:"command"`
	Start       time.Time            `json:"start"`
	Nonce       string               `json:"nonce"`
	Config      config               `json:"config"`
	ElapsedS    float64              `json:"elapsed_s"`
	Requests    int64                `json:"requests"`
	RequestsAll int64                `json:"requests_all_phases"` // warm-up and fill included
	Rate        float64              `json:"rate"`
	Iterations  int64                `json:"iterations"`
	IterRate    float64              `json:"iterations_per_s"`
	Types       map[string]typeStats `json:"types"`
	All         typeStats            `json:"all"`
	Received    int64                `json:"descriptors_received"`
	Verified    int64                `json:"descriptors_verified"`
	ExpiryLag   typeStats            `json:"expiry_lag"`
	Server      serverStats          `json:"server"`
	Generator   genStats             `json:"generator"`
	Machine     machineStats         `json:"machine"`
	Errors      errorStats           `json:"errors"`
	Scale       *scaleStats          `json:"scale,omitempty"`
	Account     *accountStats        `json:"account,omitempty"` // -account, account.go
	OK          bool                 `json:"ok"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func statsOf(h *histogram, hits int64, elapsed time.Duration, find bool) typeStats {
	ts := typeStats{
		Count: int64(h.n), Hits: hits,
		MeanUs: us(h.mean()), P50Us: us(h.quantile(0.5)), P90Us: us(h.quantile(0.9)),
		P99Us: us(h.quantile(0.99)), P999Us: us(h.quantile(0.999)), MaxUs: us(time.Duration(h.max)),
	}
	if elapsed > 0 {
		ts.Rate = float64(h.n) / elapsed.Seconds()
	}
	if find && h.n > 0 {
		r := float64(hits) / float64(h.n)
		ts.HitRate = &r
	}
	return ts
}

// run executes one load run and returns its results. logf receives
// progress lines.
func run(cfg config, logf func(string, ...any)) (*result, error) {
	if cfg.Clients < 1 {
		return nil, fmt.Errorf("-clients must be at least 1")
	}
	switch cfg.Workload {
	case "realistic", "find-heavy", "save-heavy":
	case "scale":
		if cfg.Sessions < 1 {
			return nil, fmt.Errorf("-workload scale needs -sessions")
		}
	default:
		return nil, fmt.Errorf("unknown workload %q (realistic, find-heavy, save-heavy, scale)", cfg.Workload)
	}
	if cfg.Term && (!cfg.Account || cfg.Workload == "scale") {
		return nil, fmt.Errorf("-term needs -account and a workload other than scale")
	}
	res := &result{Tool: "scache-bench", Command: os.Args, Start: time.Now(), Nonce: newNonce()}
	cfg.DurationS, cfg.WarmupS, cfg.TimeoutS = cfg.Duration.Seconds(), cfg.Warmup.Seconds(), cfg.Timeout.Seconds()
	if cfg.Seed == 0 {
		cfg.Seed = mrand.Uint64()
	}
	res.Config = cfg

	// Descriptors: the kept ends of all live sessions, plus the travelling
	// ends in hand, plus the connections.
	want := uint64(4096 + 4*cfg.Clients)
	if cfg.Workload == "scale" {
		want += uint64(cfg.Sessions) * 11 / 10
	} else {
		want += 200000
	}
	res.Generator.NoFile = raiseNoFile(want)

	dests, endps, cold := cfg.Dests, cfg.Endpoints, cfg.Dests
	if cfg.Workload == "scale" {
		dests, endps, cold = cfg.Sessions, cfg.Sessions, 1000
	}
	g := &gen{cfg: cfg, lab: makeLabels(res.Nonce, dests, endps, cold), reg: newRegistry()}
	if cfg.Workload != "scale" {
		g.z = newZipf(dests, cfg.Zipf)
	}

	// A probe connection finds the server process (Postfix's master starts
	// scache on demand) and sets up the runtime's poller, whose
	// descriptors must not count as leaks.
	probe, err := protocol.Dial(cfg.Socket, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Socket, err)
	}
	pid := cfg.PID
	if pid == 0 {
		if pid, err = findServerPID(probe.Conn().UnixConn()); err != nil {
			logf("cannot find the server process: %v (no server figures)", err)
			pid = -1
		}
	}
	probe.Close()
	time.Sleep(20 * time.Millisecond) // let the server see the probe go
	res.Server.PID = pid
	if cfg.Term && cfg.stopServer == nil && (pid <= 0 || pid == os.Getpid()) {
		return nil, fmt.Errorf("-term needs the server's process (-pid), not this one")
	}
	// The descriptor budget: each live session is one descriptor in the
	// server and one (its kept end) here.
	budget := int64(res.Generator.NoFile)
	if pid > 0 {
		if n := procNoFile(pid); n > 0 {
			budget = min(budget, n)
		}
	}
	budget -= int64(4*cfg.Clients + 512)
	if pid == os.Getpid() {
		budget /= 2
	}
	g.budget = budget * 9 / 10
	res.Generator.SessionBudget = g.budget
	if cfg.Workload == "scale" && int64(cfg.Sessions) > g.budget {
		return nil, fmt.Errorf("-sessions %d exceeds the descriptor budget of %d (the server's and this process' RLIMIT_NOFILE)", cfg.Sessions, g.budget)
	}
	if pid > 0 {
		res.Server.Comm = procComm(pid)
		res.Server.FDsBefore = procFDs(pid)
		res.Server.RSSStartKiB = procStatusKiB(pid, "VmRSS")
	}
	res.Generator.FDsBefore = procFDs(os.Getpid())
	res.Machine.CPUs = runtime.NumCPU()
	res.Machine.Load1 = loadAvg()

	clients := make([]*client, cfg.Clients)
	for i := range clients {
		c := &client{g: g, id: i, rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)))}
		cl, err := protocol.Dial(cfg.Socket, cfg.Timeout)
		if err != nil {
			for _, c := range clients[:i] {
				c.cl.Close()
			}
			return nil, fmt.Errorf("client %d: connect to %s: %w", i, cfg.Socket, err)
		}
		c.cl = cl
		clients[i] = c
	}
	rss := startRSSSampler(pid, 100*time.Millisecond)

	var wg sync.WaitGroup
	var w0, w1 window
	var sc *scaleStats
	if cfg.Workload == "scale" {
		sc = &scaleStats{Sessions: cfg.Sessions}
		res.Scale = sc
		w0, w1 = runScale(g, clients, &wg, pid, sc, logf)
	} else {
		g.phase.Store(phWarmup)
		for _, c := range clients {
			wg.Add(1)
			go c.loop(&wg)
		}
		time.Sleep(cfg.Warmup)
		w0 = g.sample(pid)
		g.phase.CompareAndSwap(phWarmup, phMeasure)
		if cfg.Requests > 0 {
			for g.phase.Load() == phMeasure {
				time.Sleep(time.Millisecond)
			}
		} else {
			time.Sleep(cfg.Duration)
			g.phase.Store(phStop)
		}
		w1 = g.sample(pid)
		wg.Wait()
		if cfg.Term {
			g.terminate(pid, clients, logf)
		} else {
			drain(g, clients, logf)
		}
	}
	res.Server.RSSPeakKiB = rss.finish()
	res.Account = g.account(logf)
	res.Errors.NotExpired = int64(g.reg.closeAll())

	// Figures of the measured window.
	elapsed := w1.t.Sub(w0.t)
	res.ElapsedS = elapsed.Seconds()
	var all histogram
	res.Types = make(map[string]typeStats)
	var total [nTypes]histogram
	var hits [nTypes]int64
	for _, c := range clients {
		for t := range nTypes {
			total[t].merge(&c.hist[phMeasure][t])
			hits[t] += c.hits[phMeasure][t]
		}
		res.Iterations += c.iters[phMeasure]
		res.RequestsAll += c.all
		g.expLag.merge(&c.lag)
	}
	for t := range nTypes {
		res.Types[typeNames[t]] = statsOf(&total[t], hits[t], elapsed, t == tFindDest || t == tFindEndp)
		all.merge(&total[t])
	}
	res.All = statsOf(&all, 0, elapsed, false)
	res.Requests = int64(all.n)
	res.Rate = res.All.Rate
	if elapsed > 0 {
		res.IterRate = float64(res.Iterations) / elapsed.Seconds()
	}
	res.ExpiryLag = statsOf(&g.expLag, 0, 0, false)
	if sc != nil {
		sc.Lookup = res.Types["find_dest"]
		var exp histogram
		for _, c := range clients {
			for t := range nTypes {
				exp.merge(&c.hist[phExpiry][t])
			}
		}
		sc.Expiry = statsOf(&exp, 0, 0, false)
		sc.ExpiredByServer = g.errs.ExpiredSeen.Load()
		sc.Taken = g.errs.Taken.Load()
	}

	if pid > 0 {
		cpu := w1.server - w0.server
		res.Server.CPUSeconds = cpu.Seconds()
		if res.Requests > 0 {
			res.Server.CPUPerRequestUs = us(cpu) / float64(res.Requests)
		}
	}
	if pid > 0 && !cfg.Term { // -term: the server is gone
		res.Server.RSSEndKiB = procStatusKiB(pid, "VmRSS")
		// The server closes its ends of our connections asynchronously.
		for i := 0; i < 50; i++ {
			res.Server.FDsAfter = procFDs(pid)
			if res.Server.FDsAfter <= res.Server.FDsBefore {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	self := w1.self - w0.self
	res.Generator.CPUSeconds = self.Seconds()
	if res.Requests > 0 {
		res.Generator.CPUPerRequestUs = us(self) / float64(res.Requests)
	}
	if elapsed > 0 {
		busy := w1.total - w0.total
		res.Machine.BusyCores = busy.Seconds() / elapsed.Seconds()
		res.Machine.ForeignCores = max(0, (busy-self-(w1.server-w0.server)).Seconds()/elapsed.Seconds())
	}
	res.Generator.FDsAfter = procFDs(os.Getpid())
	res.Generator.FDsLeaked = res.Generator.FDsAfter - res.Generator.FDsBefore

	e := &g.errs
	r := &res.Errors
	r.IO, r.Timeouts, r.Reconnects, r.ConnectFailed = e.IO.Load(), e.Timeouts.Load(), e.Reconnects.Load(), e.ConnectFailed.Load()
	r.BadStatus, r.SaveFailed = e.BadStatus.Load(), e.SaveFailed.Load()
	r.UnknownFD, r.Twice, r.WrongLabel, r.NotSocket = e.UnknownFD.Load(), e.Twice.Load(), e.WrongLabel.Load(), e.NotSocket.Load()
	r.Nonblocking, r.VerifyFailed = e.Nonblocking.Load(), e.VerifyFailed.Load()
	r.NoDescriptors = e.NoDescriptors.Load()
	res.Generator.Throttled = g.throttled.Load()
	r.Leaked = int64(max(res.Generator.FDsLeaked, 0))
	if cfg.Drain < 0 || cfg.AnyLabel {
		r.NotExpired = 0 // not waited for; the limit server has no expiry
	}
	r.Total = r.IO + r.Timeouts + r.ConnectFailed + r.BadStatus + r.SaveFailed + r.UnknownFD + r.Twice +
		r.WrongLabel + r.NotSocket + r.Nonblocking + r.VerifyFailed + r.NotExpired + r.Leaked + r.NoDescriptors
	res.Received, res.Verified = e.Received.Load(), e.Verified.Load()
	res.OK = r.Total == 0 && res.Account.ok()
	return res, nil
}

// drain waits, after the clients stopped, until the server has closed
// every session it was given (each one's kept end hangs up), at most until
// the last deadline plus cfg.Drain.
func drain(g *gen, clients []*client, logf func(string, ...any)) {
	if g.cfg.Drain < 0 {
		return
	}
	var last int64
	for _, c := range clients {
		if n := len(c.sw.q); n > 0 {
			last = max(last, c.sw.q[n-1].deadline)
		}
	}
	until := last + int64(g.cfg.Drain)
	for g.reg.live.Load() > 0 {
		now := g.reg.mono()
		for _, c := range clients {
			c.sw.sweep(g.reg, now, -1, c.sweptLag)
		}
		if g.reg.live.Load() == 0 || now > until {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.reg.live.Load(); n > 0 {
		logf("%d sessions were not closed by the server within %v after their deadline", n, g.cfg.Drain)
	}
}

// runScale fills the cache with cfg.Sessions sessions that all expire at
// the same moment, measures lookups while they are held, then keeps
// looking up while they all expire. It returns the measured window.
func runScale(g *gen, clients []*client, wg *sync.WaitGroup, pid int, sc *scaleStats, logf func(string, ...any)) (window, window) {
	cfg := g.cfg
	est := time.Duration(float64(cfg.Sessions)/cfg.FillRate*float64(time.Second)) + cfg.Duration + 2*time.Second
	g.expireAt = g.reg.mono() + int64(est)
	g.phase.Store(phFill)
	fill0 := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go c.loop(wg)
	}
	for g.filled.Load() < int64(cfg.Sessions) {
		time.Sleep(5 * time.Millisecond)
	}
	sc.FillS = time.Since(fill0).Seconds()
	sc.FillRate = float64(cfg.Sessions) / sc.FillS
	if pid > 0 {
		sc.RSSFullKiB = procStatusKiB(pid, "VmRSS")
		sc.FDsFull = procFDs(pid)
	}
	logf("filled %d sessions in %.1fs (%.0f/s)", cfg.Sessions, sc.FillS, sc.FillRate)

	w0 := g.sample(pid)
	g.phase.Store(phMeasure)
	measureEnd := g.expireAt - int64(500*time.Millisecond)
	if left := time.Duration(measureEnd - g.reg.mono()); left < time.Second {
		sc.Warning = fmt.Sprintf("the fill took longer than -fill-rate %.0f/s assumes: measured lookups for %v only", cfg.FillRate, left)
		logf("%s", sc.Warning)
	}
	for g.reg.mono() < measureEnd {
		time.Sleep(5 * time.Millisecond)
	}
	w1 := g.sample(pid)
	sc.MeasureS = w1.t.Sub(w0.t).Seconds()
	sc.HeldAtEnd = g.reg.live.Load()

	g.phase.Store(phExpiry)
	limit := g.expireAt + int64(time.Second) + int64(max(cfg.Drain, 0)) + int64(2*time.Second)
	var done int64
	for {
		now := g.reg.mono()
		if g.reg.live.Load() == 0 {
			done = now
			break
		}
		if now > limit {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if done > 0 {
		sc.ExpiryS = float64(done-g.expireAt) / float64(time.Second)
	} else {
		sc.ExpiryS = -1
		logf("%d sessions still open after the expiry window", g.reg.live.Load())
	}
	g.phase.Store(phStop)
	wg.Wait()
	drain(g, clients, logf)
	return w0, w1
}
