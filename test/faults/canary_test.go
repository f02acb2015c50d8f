package faults

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// canary is the second client of every case: in a loop it saves sessions
// (socketpair ends, keeping the far ends) under labels of its own, binds a
// destination, finds the sessions back by destination and by endpoint,
// proves each one's identity by writing through it, and checks that each
// comes back once only. Every few rounds it also dials a fresh connection.
// Every request's latency is measured.
type canary struct {
	path    string
	prefix  string
	timeout time.Duration

	mu    sync.Mutex
	stats canaryStats
	stop  chan struct{}
	done  chan struct{}
	round int
}

type canaryStats struct {
	requests int
	max      time.Duration
	maxWhat  string
	errs     []string
	errCount int
}

func newCanary(path string) *canary {
	return &canary{path: path, prefix: uniq("canary"), timeout: 5 * time.Second}
}

// resume starts the canary with fresh statistics.
func (c *canary) resume() {
	c.mu.Lock()
	c.stats = canaryStats{}
	c.mu.Unlock()
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	go c.loop(c.stop, c.done)
}

// busy waits (up to d) until the canary has made at least n requests
// since resume, so that even a short case runs beside a working canary.
func (c *canary) busy(n int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		done := c.stats.requests >= n
		c.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// pause stops the canary after its current round (it closes its
// connection: nothing of it stays in the daemon) and returns the
// statistics since resume.
func (c *canary) pause() canaryStats {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *canary) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.errCount++
	if len(c.stats.errs) < 8 {
		c.stats.errs = append(c.stats.errs, fmt.Sprintf("%s round %d: ", time.Now().Format("15:04:05.000"), c.round)+fmt.Sprintf(format, args...))
	}
}

func (c *canary) took(what string, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.requests++
	if d > c.stats.max {
		c.stats.max, c.stats.maxWhat = d, what
	}
}

func (c *canary) loop(stop, done chan struct{}) {
	defer close(done)
	var cl *protocol.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if cl == nil {
			start := time.Now()
			var err error
			cl, err = protocol.Dial(c.path, c.timeout)
			c.took("dial", start)
			if err != nil {
				c.fail("dial: %v", err)
				cl = nil
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		if err := c.one(cl); err != nil {
			c.fail("%v", err)
			cl.Close()
			cl = nil
		}
		c.round++
	}
}

// one is one round; an error means the connection is no longer usable.
func (c *canary) one(cl *protocol.Client) error {
	i := c.round
	E := fmt.Sprintf("%s-E%d", c.prefix, i%4)
	D := fmt.Sprintf("%s-D%d", c.prefix, i%4)
	p1, err := mkPair()
	if err != nil {
		return err
	}
	defer p1.close()
	p2, err := mkPair()
	if err != nil {
		return err
	}
	defer p2.close()

	save := func(p *pair, prop string) error {
		start := time.Now()
		st, err := cl.SaveEndp(2, E, prop, p.near)
		c.took("save_endp", start)
		unix.Close(p.near)
		p.near = -1
		if err != nil {
			return fmt.Errorf("save_endp: %w", err)
		}
		if st != 0 {
			return fmt.Errorf("save_endp: status %d", st)
		}
		return nil
	}
	prop1, prop2 := fmt.Sprintf("cp%d", i), fmt.Sprintf("cq%d", i)
	if err := save(&p1, prop1); err != nil {
		return err
	}
	start := time.Now()
	st, err := cl.SaveDest(2, D, "cdp", E)
	c.took("save_dest", start)
	if err != nil || st != 0 {
		return fmt.Errorf("save_dest: %d %v", st, err)
	}
	start = time.Now()
	st, dp, ep, fd, err := cl.FindDest(D)
	c.took("find_dest", start)
	if err != nil {
		return fmt.Errorf("find_dest: %w", err)
	}
	if st != 0 || dp != "cdp" || ep != prop1 {
		return fmt.Errorf("find_dest: status %d props %q %q, want 0 \"cdp\" %q", st, dp, ep, prop1)
	}
	if err := p1.is(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("find_dest: %w", err)
	}
	unix.Close(fd)

	if err := save(&p2, prop2); err != nil {
		return err
	}
	start = time.Now()
	st, prop, fd, err := cl.FindEndp(E)
	c.took("find_endp", start)
	if err != nil {
		return fmt.Errorf("find_endp: %w", err)
	}
	if st != 0 || prop != prop2 {
		return fmt.Errorf("find_endp: status %d prop %q, want 0 %q", st, prop, prop2)
	}
	if err := p2.is(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("find_endp: %w", err)
	}
	unix.Close(fd)

	// Each session came back once; nothing else is left under the labels.
	start = time.Now()
	st, _, fd, err = cl.FindEndp(E)
	c.took("find_endp", start)
	if err != nil {
		return fmt.Errorf("find_endp (after): %w", err)
	}
	if st != protocol.StatusFail {
		unix.Close(fd)
		return fmt.Errorf("find_endp after both sessions were taken: status %d, a session came back twice or a stranger's was filed under the canary's label", st)
	}
	start = time.Now()
	st, _, _, fd, err = cl.FindDest(D)
	c.took("find_dest", start)
	if err != nil {
		return fmt.Errorf("find_dest (after): %w", err)
	}
	if st != protocol.StatusFail {
		unix.Close(fd)
		return fmt.Errorf("find_dest after both sessions were taken: status %d", st)
	}

	// Every eighth round, a new client: accept and greeting latency.
	if i%8 == 7 {
		start = time.Now()
		fresh, err := protocol.Dial(c.path, c.timeout)
		if err != nil {
			c.took("fresh dial", start)
			c.fail("fresh client: %v", err)
			return nil
		}
		st, _, _, err := fresh.FindEndp(c.prefix + "-none")
		c.took("fresh dial+find_endp", start)
		fresh.Close()
		if err != nil || st != protocol.StatusFail {
			c.fail("fresh client find_endp: %d %v", st, err)
		}
	}
	return nil
}
