package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// config is one load run.
type config struct {
	Socket    string        `json:"socket"`
	Workload  string        `json:"workload"`
	Clients   int           `json:"clients"`
	Duration  time.Duration `json:"-"`
	Warmup    time.Duration `json:"-"`
	Requests  int64         `json:"requests,omitempty"`
	Dests     int           `json:"dests"`
	Endpoints int           `json:"endpoints"`
	Zipf      float64       `json:"zipf"`
	TTL       int           `json:"ttl"`
	Timeout   time.Duration `json:"-"`
	Sample    float64       `json:"sample"`
	Verify    bool          `json:"verify"`
	AnyLabel  bool          `json:"limit_mode"`
	PID       int           `json:"-"`
	Drain     time.Duration `json:"-"`
	Sessions  int           `json:"sessions,omitempty"`
	FillRate  float64       `json:"fill_rate_assumed,omitempty"`
	Seed      uint64        `json:"seed"`
	Name      string        `json:"name,omitempty"`
	Rate      float64       `json:"rate,omitempty"`    // -rate, account.go
	Account   bool          `json:"account,omitempty"` // -account, account.go
	Term      bool          `json:"term,omitempty"`    // -term, account.go

	// stopServer replaces -term's SIGTERM to -pid (tests: an in-process
	// server).
	stopServer func() error

	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`
	TimeoutS  float64 `json:"timeout_s"`
}

// Request types, in report order.
const (
	tFindDest = iota
	tFindEndp
	tSaveDest
	tSaveEndp
	nTypes
)

var typeNames = [nTypes]string{"find_dest", "find_endp", "save_dest", "save_endp"}

// Phases of a run. Requests are recorded in measure and expiry.
const (
	phWarmup int32 = iota
	phMeasure
	phExpiry // scale: sessions expire
	phFill   // scale: the cache is being filled
	phStop
	nPhases
)

// counters are what goes wrong, over the whole run (warm-up included).
type counters struct {
	IO, Timeouts, Reconnects, ConnectFailed   atomic.Int64
	BadStatus, SaveFailed                     atomic.Int64
	UnknownFD, Twice, WrongLabel, NotSocket   atomic.Int64
	Nonblocking, VerifyFailed, Verified       atomic.Int64
	Received, ExpiredSeen, ClosedAtEnd, Taken atomic.Int64
	NoDescriptors                             atomic.Int64
}

// gen is the state shared by the clients of a run.
type gen struct {
	cfg   config
	lab   *labels
	reg   *registry
	z     *zipf
	phase atomic.Int32
	errs  counters

	// budget caps the sessions alive at once: the server holds one
	// descriptor per session and the generator one more.
	budget    int64
	throttled atomic.Int64 // save-heavy iterations made realistic by the budget

	measured atomic.Int64 // requests recorded, for -requests
	fillNext atomic.Int64 // scale: next session index to fill
	filled   atomic.Int64
	expireAt int64 // scale: monotonic deadline every session aims at

	expLag histogram // how long after its deadline a session was seen closed
}

// client is one simulated delivery process with its own connection.
type client struct {
	g     *gen
	id    int
	cl    *protocol.Client
	rng   *mrand.Rand
	hist  [nPhases][nTypes]histogram
	hits  [nPhases][nTypes]int64
	iters [nPhases]int64
	sw    sweeper
	pace  pacer // -rate, account.go
	token uint64
	all   int64 // requests in every phase
	// lag is recorded locally and merged at the end.
	lag histogram
}

func newNonce() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dial opens the client's connection, retrying until the run stops.
func (c *client) dial() bool {
	backoff := 10 * time.Millisecond
	for {
		cl, err := protocol.Dial(c.g.cfg.Socket, c.g.cfg.Timeout)
		if err == nil {
			c.cl = cl
			return true
		}
		c.g.errs.ConnectFailed.Add(1)
		if c.g.phase.Load() == phStop {
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// fail counts a broken connection and opens a new one.
func (c *client) fail(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.g.errs.Timeouts.Add(1)
	} else {
		c.g.errs.IO.Add(1)
	}
	if c.cl != nil {
		c.cl.Close()
		c.cl = nil
	}
	if c.g.phase.Load() == phStop {
		return false
	}
	c.g.errs.Reconnects.Add(1)
	return c.dial()
}

// rec records one request that started at t0 in phase ph.
func (c *client) rec(ph int32, t int, t0 time.Time, hit bool) {
	d := time.Since(t0)
	c.all++
	if ph != phMeasure && ph != phExpiry {
		return
	}
	c.hist[ph][t].record(d)
	if hit {
		c.hits[ph][t]++
	}
	if c.g.cfg.Requests > 0 && ph == phMeasure {
		if c.g.measured.Add(1) >= c.g.cfg.Requests {
			c.g.phase.CompareAndSwap(phMeasure, phStop)
		}
	}
}

func (c *client) status(st int) {
	if st != protocol.StatusOK && st != protocol.StatusFail {
		c.g.errs.BadStatus.Add(1)
	}
}

// received checks a descriptor handed out for endpoint index endp. It
// returns the session, in hand, or nil when the descriptor is not usable
// (then it has been closed).
func (c *client) received(fd, endp int) *session {
	g := c.g
	g.errs.Received.Add(1)
	if g.cfg.AnyLabel {
		endp = -1
	}
	s, err := g.reg.take(fd, endp)
	switch {
	case errors.Is(err, errWrongLabel):
		g.errs.WrongLabel.Add(1)
	case errors.Is(err, errUnknownFD):
		g.errs.UnknownFD.Add(1)
	case errors.Is(err, errTwice):
		g.errs.Twice.Add(1)
	case errors.Is(err, errNotSocket):
		g.errs.NotSocket.Add(1)
	case err != nil:
		g.errs.IO.Add(1)
	}
	if s == nil {
		unix.Close(fd)
		return nil
	}
	if g.cfg.Verify || c.rng.Float64() < g.cfg.Sample {
		bad := false
		if nonblocking(fd) {
			g.errs.Nonblocking.Add(1)
			bad = true
		}
		c.token++
		if err := verify(fd, s, uint64(c.id)<<48|c.token); err != nil {
			g.errs.VerifyFailed.Add(1)
			bad = true
		}
		g.errs.Verified.Add(1)
		if bad {
			unix.Close(fd)
			g.reg.drop(s)
			return nil
		}
	}
	return s
}

// findDest asks for destination label lbl, served by endpoint index endp.
// ok is false when the connection broke (and was replaced).
func (c *client) findDest(ph int32, lbl string, endp int) (fd int, s *session, ok bool) {
	t0 := time.Now()
	st, _, _, fd, err := c.cl.FindDest(lbl)
	c.rec(ph, tFindDest, t0, err == nil && st == protocol.StatusOK)
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		c.fail(err)
		return -1, nil, false
	}
	c.status(st)
	if st != protocol.StatusOK {
		return -1, nil, true
	}
	if s = c.received(fd, endp); s == nil {
		return -1, nil, true
	}
	return fd, s, true
}

func (c *client) findEndp(ph int32, lbl string, endp int) (fd int, s *session, ok bool) {
	t0 := time.Now()
	st, _, fd, err := c.cl.FindEndp(lbl)
	c.rec(ph, tFindEndp, t0, err == nil && st == protocol.StatusOK)
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		c.fail(err)
		return -1, nil, false
	}
	c.status(st)
	if st != protocol.StatusOK {
		return -1, nil, true
	}
	if s = c.received(fd, endp); s == nil {
		return -1, nil, true
	}
	return fd, s, true
}

// acquire does what smtp(8) does before a delivery: find_dest, on a miss
// find_endp, on a miss a new connection. ok is false when the connection
// to the server broke.
func (c *client) acquire(ph int32, d, e int) (x int, s *session, ok bool) {
	if x, s, ok = c.findDest(ph, c.g.lab.dest[d], e); !ok || s != nil {
		return x, s, ok
	}
	if x, s, ok = c.findEndp(ph, c.g.lab.endp[e], e); !ok || s != nil {
		return x, s, ok
	}
	x, s, err := c.g.reg.create()
	if err != nil {
		c.outOfDescriptors()
		return -1, nil, false
	}
	return x, s, true
}

// outOfDescriptors counts a connection the generator could not open.
func (c *client) outOfDescriptors() {
	c.g.errs.NoDescriptors.Add(1)
	time.Sleep(time.Millisecond)
}

// putBack does what smtp(8) does after a delivery: save_dest, then
// save_endp with the connection, which it then closes (the server's copy is
// the only one). It reports false when the connection to the server broke.
func (c *client) putBack(ph int32, d, e int, x int, s *session, ttl int) bool {
	g := c.g
	t0 := time.Now()
	st, err := c.cl.SaveDest(ttl, g.lab.dest[d], destProp, g.lab.endp[e])
	c.rec(ph, tSaveDest, t0, false)
	if err != nil {
		unix.Close(x)
		g.reg.drop(s)
		c.fail(err)
		return false
	}
	c.status(st)
	deadline := g.reg.mono() + int64(ttl)*int64(time.Second)
	gen := g.reg.saving(s, e, deadline)
	t0 = time.Now()
	st, err = c.cl.SaveEndp(ttl, g.lab.endp[e], endpProp, x)
	c.rec(ph, tSaveEndp, t0, false)
	unix.Close(x)
	// Whatever happened, the kept end tells when the last copy is gone.
	c.sw.push(sweepEntry{s: s, gen: gen, deadline: deadline})
	if err != nil {
		c.fail(err)
		return false
	}
	c.status(st)
	if st != protocol.StatusOK {
		g.errs.SaveFailed.Add(1)
	}
	return true
}

// realistic is one delivery as smtp(8) makes it.
func (c *client) realistic(ph int32) bool {
	d := c.g.z.draw(c.rng)
	e := c.g.lab.endpOf(d)
	x, s, ok := c.acquire(ph, d, e)
	if !ok {
		return false
	}
	return c.putBack(ph, d, e, x, s, c.g.cfg.TTL)
}

// coldLookup looks up a destination that nothing was saved for: find_dest
// and find_endp miss (against the limit server they may hit; the
// connection is then put back).
func (c *client) coldLookup(ph int32) bool {
	g := c.g
	i := c.rng.IntN(len(g.lab.coldDest))
	cold := len(g.lab.endp) + i // an endpoint index nothing is saved under
	x, s, ok := c.findDest(ph, g.lab.coldDest[i], cold)
	if ok && s == nil {
		x, s, ok = c.findEndp(ph, g.lab.coldEndp[i], cold)
	}
	if !ok || s == nil {
		return ok
	}
	// A hit on a cold label: a wrong descriptor (counted), or the limit
	// server. Give it back under a real label.
	d := c.g.z.draw(c.rng)
	return c.putBack(ph, d, g.lab.endpOf(d), x, s, g.cfg.TTL)
}

// saveNew saves a new connection without looking anything up.
func (c *client) saveNew(ph int32) bool {
	g := c.g
	if g.reg.live.Load() >= g.budget {
		g.throttled.Add(1)
		return c.realistic(ph)
	}
	d := g.z.draw(c.rng)
	e := g.lab.endpOf(d)
	x, s, err := g.reg.create()
	if err != nil {
		c.outOfDescriptors()
		return false
	}
	return c.putBack(ph, d, e, x, s, g.cfg.TTL)
}

// scaleTTL is the ttl that makes a save made now expire at g.expireAt
// (within the second after it).
func (g *gen) scaleTTL() int {
	left := g.expireAt - g.reg.mono()
	return max(1, int(math.Ceil(float64(left)/float64(time.Second))))
}

// scaleStep is one iteration of the scale workload in phase ph.
func (c *client) scaleStep(ph int32) bool {
	g := c.g
	switch ph {
	case phFill:
		i := int(g.fillNext.Add(1) - 1)
		if i >= g.cfg.Sessions {
			time.Sleep(time.Millisecond)
			return true
		}
		x, s, err := g.reg.create()
		if err != nil {
			g.fillNext.Add(-1) // try again
			c.outOfDescriptors()
			return false
		}
		ok := c.putBack(ph, i, i, x, s, g.scaleTTL())
		g.filled.Add(1)
		return ok
	case phWarmup, phMeasure:
		i := c.rng.IntN(g.cfg.Sessions)
		x, s, ok := c.findDest(ph, g.lab.dest[i], i)
		if !ok || s == nil {
			return ok
		}
		return c.putBack(ph, i, i, x, s, g.scaleTTL())
	case phExpiry:
		// Lookups that miss, so that every session expires in the
		// server; each still locks a shard, where expiry happens.
		i := c.rng.IntN(len(g.lab.coldDest))
		cold := len(g.lab.endp) + i // an endpoint index nothing is saved under
		x, s, ok := c.findDest(ph, g.lab.coldDest[i], cold)
		if ok && s == nil {
			x, s, ok = c.findEndp(ph, g.lab.coldEndp[i], cold)
		}
		if ok && s != nil { // a wrong descriptor, counted
			unix.Close(x)
			g.reg.drop(s)
			g.errs.Taken.Add(1)
		}
		return ok
	}
	return true
}

const sweepEvery = 50 * time.Millisecond

// loop runs iterations until the run stops.
func (c *client) loop(wg *sync.WaitGroup) {
	defer wg.Done()
	g := c.g
	grace := int64(50 * time.Millisecond)
	for {
		ph := g.phase.Load()
		if ph == phStop {
			break
		}
		if c.cl == nil && !c.dial() {
			break
		}
		c.pace.wait(g, c.id)
		switch g.cfg.Workload {
		case "realistic":
			c.realistic(ph)
		case "find-heavy":
			if c.rng.IntN(8) == 0 {
				c.realistic(ph)
			} else {
				c.coldLookup(ph)
			}
		case "save-heavy":
			if c.rng.IntN(8) == 0 {
				c.realistic(ph)
			} else {
				c.saveNew(ph)
			}
		case "scale":
			c.scaleStep(ph)
		}
		c.iters[ph]++
		if now := g.reg.mono(); now-c.sw.last > int64(sweepEvery) {
			c.sw.sweep(g.reg, now, grace, c.sweptLag)
		}
	}
	if c.cl != nil {
		c.cl.Close()
		c.cl = nil
	}
}

func (c *client) sweptLag(lag int64) {
	c.g.errs.ExpiredSeen.Add(1)
	c.lag.record(time.Duration(lag))
}

// window is what the server, the generator and the machine used between
// two moments.
type window struct {
	t                   time.Time
	server, self, total time.Duration
}

func (g *gen) sample(pid int) window {
	w := window{t: time.Now(), self: selfCPU(), total: machineCPU()}
	if pid > 0 {
		w.server, _ = procCPU(pid)
	}
	return w
}
