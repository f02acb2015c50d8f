package main

// Soak support: a rate limit (-rate) for moderate load over a long run, the
// accounting of every descriptor saved (-account), and the same accounting
// across the server's shutdown (-term).

import (
	"flag"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// soakFlags adds -rate, -account and -term to fs.
func soakFlags(fs *flag.FlagSet, cfg *config) {
	fs.Float64Var(&cfg.Rate, "rate", 0, "deliveries (iterations) per second over all clients, each client an equal share (0: as fast as possible)")
	fs.BoolVar(&cfg.Account, "account", false, "account for every descriptor saved: at the end each was handed back or closed by the server, none unaccounted")
	fs.BoolVar(&cfg.Term, "term", false, "with -account: after the load send the server (-pid) SIGTERM instead of waiting for expiry; its shutdown must close every cached descriptor")
}

// pacer spaces one client's iterations so that all clients together make
// cfg.Rate per second. Not safe for concurrent use.
type pacer struct {
	next time.Time
}

// wait sleeps until the client's next iteration is due. A client that fell
// behind (a slow request) does not burst to catch up by more than a second.
func (p *pacer) wait(g *gen, id int) {
	if g.cfg.Rate <= 0 {
		return
	}
	every := time.Duration(float64(g.cfg.Clients) / g.cfg.Rate * float64(time.Second))
	now := time.Now()
	if p.next.IsZero() {
		// Spread the clients over one interval.
		p.next = now.Add(every * time.Duration(id) / time.Duration(g.cfg.Clients))
	}
	if d := p.next.Sub(now); d > 0 {
		time.Sleep(d)
	} else if d < -time.Second {
		p.next = now
	}
	p.next = p.next.Add(every)
}

// accounting counts what happened to every save, over the whole run. Each
// save ends in exactly one way: the server hands the descriptor back (a
// find hit), or the server closes its copy, the last one (expiry or
// eviction: the generator closed its own copy after save_endp), and the
// kept end hangs up. A save that ended neither way is unaccounted.
type accounting struct {
	saves      atomic.Int64 // save_endp attempts (registry.saving)
	handedBack atomic.Int64 // saved sessions a find handed back (registry.take)
	closed     atomic.Int64 // saved sessions whose kept end hung up (registry.closedByServer)

	// -term: set by terminate before account runs.
	heldAtTerm   int64 // sessions in the server's hands when it got SIGTERM
	closedAtTerm int64 // closed before it
}

// accountStats is the accounting in the results (-account).
type accountStats struct {
	Saved       int64 `json:"saved"`       // save_endp requests made, failed ones included
	SaveFailed  int64 `json:"save_failed"` // of those, answered with an error or broken (the server closed or never got the copy)
	HandedBack  int64 `json:"handed_back"` // handed back by a find
	Closed      int64 `json:"closed_by_server"`
	ClosedLate  int64 `json:"closed_at_final_check"` // of Closed: seen only by the final check
	Unaccounted int64 `json:"unaccounted"`           // saved, neither handed back nor closed: a descriptor the server still holds
	InHand      int64 `json:"in_hand_at_end"`        // sessions the clients never put back or dropped (a generator bug)
	Balanced    bool  `json:"balanced"`              // saved = handed back + closed + unaccounted

	// -term only: the sessions the server held when it got SIGTERM, and
	// how many of Closed hung up after it (its shutdown; with a ttl
	// longer than the run, expiry closes none).
	Term             bool  `json:"term,omitempty"`
	HeldAtTerm       int64 `json:"held_at_term,omitempty"`
	ClosedAtShutdown int64 `json:"closed_at_shutdown,omitempty"`
}

// ok reports whether a (nil: no accounting) found nothing wrong.
func (a *accountStats) ok() bool {
	return a == nil || a.Unaccounted == 0 && a.InHand == 0 && a.Balanced
}

// terminate ends a -term run after the clients stopped (and closed their
// connections): it sends the server SIGTERM, whose shutdown closes every
// cached descriptor, and waits until the kept end of every session it held
// hung up, for at most -drain (at least 5 s). account then checks the
// rest.
func (g *gen) terminate(pid int, clients []*client, logf func(string, ...any)) {
	r := g.reg
	r.acct.closedAtTerm = r.acct.closed.Load()
	r.acct.heldAtTerm = r.live.Load()
	stop := g.cfg.stopServer
	if stop == nil {
		stop = func() error { return unix.Kill(pid, unix.SIGTERM) }
	}
	if err := stop(); err != nil {
		logf("SIGTERM to the server (PID %d): %v", pid, err)
		return
	}
	until := r.mono() + int64(max(g.cfg.Drain, 5*time.Second))
	for r.live.Load() > 0 && r.mono() < until {
		time.Sleep(20 * time.Millisecond)
		now := r.mono()
		for _, c := range clients {
			// No lag callback: these closed before their deadline.
			c.sw.sweep(r, now, -1, nil)
		}
	}
	if n := r.live.Load(); n > 0 {
		logf("%d sessions still open %v after SIGTERM", n, max(g.cfg.Drain, 5*time.Second))
	}
}

// account runs after the clients stopped and drain waited past the last
// deadline: it checks the kept end of every session still registered.
// One that hangs up was closed by the server (late); one that does not is
// unaccounted, and logged. It returns nil without -account.
func (g *gen) account(logf func(string, ...any)) *accountStats {
	if !g.cfg.Account {
		return nil
	}
	r := g.reg
	a := &accountStats{}
	now := r.mono()
	type pending struct {
		s   *session
		gen uint32
	}
	var check []pending
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			switch s.state {
			case saved:
				check = append(check, pending{s, s.gen})
			case inHand:
				a.InHand++
			}
		}
		sh.mu.Unlock()
	}
	shown := 0
	for _, p := range check {
		pfd := []unix.PollFd{{Fd: int32(p.s.kept), Events: unix.POLLRDHUP}}
		n, err := unix.Poll(pfd, 0)
		for err == unix.EINTR {
			n, err = unix.Poll(pfd, 0)
		}
		if err == nil && n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) != 0 {
			if r.closedByServer(p.s, p.gen) {
				a.ClosedLate++
			}
			continue
		}
		a.Unaccounted++
		if shown < 10 {
			shown++
			logf("unaccounted: session inode %d saved under endpoint %d, deadline %.1fs ago, still open in the server",
				p.s.ino, p.s.endp, float64(now-p.s.deadline)/float64(time.Second))
		}
	}
	a.Saved = r.acct.saves.Load()
	a.HandedBack = r.acct.handedBack.Load()
	a.Closed = r.acct.closed.Load()
	a.SaveFailed = g.errs.SaveFailed.Load()
	a.Balanced = a.Saved == a.HandedBack+a.Closed+a.Unaccounted
	if g.cfg.Term {
		a.Term = true
		a.HeldAtTerm = r.acct.heldAtTerm
		a.ClosedAtShutdown = a.Closed - r.acct.closedAtTerm
	}
	if !a.Balanced {
		logf("accounting does not balance: saved %d != handed back %d + closed %d + unaccounted %d",
			a.Saved, a.HandedBack, a.Closed, a.Unaccounted)
	}
	return a
}

// printAccount prints the accounting, if any.
func printAccount(w io.Writer, r *result) {
	a := r.Account
	if a == nil {
		return
	}
	verdict := "all accounted for"
	if !a.ok() {
		verdict = "NOT ACCOUNTED FOR"
	}
	fmt.Fprintf(w, "  account: saved %d = handed back %d + closed by the server %d (%d seen at the final check) + unaccounted %d: %s; %d in hand at the end; generator descriptors before %d, after %d\n",
		a.Saved, a.HandedBack, a.Closed, a.ClosedLate, a.Unaccounted, verdict, a.InHand, r.Generator.FDsBefore, r.Generator.FDsAfter)
	if a.Term {
		fmt.Fprintf(w, "  account: SIGTERM with %d sessions in the server: %d closed by its shutdown\n", a.HeldAtTerm, a.ClosedAtShutdown)
	}
}
