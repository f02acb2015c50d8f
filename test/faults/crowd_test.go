package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCrowd: thousands of clients connecting at once and idling, and a
// connect/disconnect storm, against a daemon with Postfix's default
// ipc_timeout (an idle client is not timed out within the test).
func TestCrowd(t *testing.T) {
	idle := 3000
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	// The test holds one descriptor per idle client, so does the daemon.
	if avail := int(rl.Cur) - 600; idle > avail {
		idle = max(avail, 100)
	}
	o := daemonOpts{params: []string{"connection_cache_ttl_limit=60s"}}
	if rl.Max < uint64(idle+1024) {
		if _, err := exec.LookPath("prlimit"); err == nil && syscall.Geteuid() == 0 {
			o.nofile = uint64(idle + 1024)
		}
	}
	g := newGroup(t, "crowd", o, time.Hour, 1)
	g.run(t, []fcase{idleCrowdCase(idle), stormCase(20000)})
	g.d.stop(t, 10*time.Second)
	if err := g.d.healthy(); err != nil {
		t.Error(err)
	}
}

// dialRetry connects, retrying while the listen backlog is full (EAGAIN:
// the daemon has not accepted the earlier ones yet).
func dialRetry(path string, retries *atomic.Int64) (*raw, error) {
	for i := 0; ; i++ {
		r, err := dialRaw(path)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || i > 200 {
			return r, err
		}
		retries.Add(1)
		time.Sleep(time.Duration(1+i) * time.Millisecond)
	}
}

func idleCrowdCase(n int) fcase {
	return fcase{name: fmt.Sprintf("crowd: %d clients connect at once and idle", n), settle: 10 * time.Second, run: func(t *testing.T, g *group, rep *caseReport) {
		clients := make([]*raw, n)
		var retries atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		start := time.Now()
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := dialRetry(g.d.path, &retries)
				if err != nil {
					errs <- fmt.Errorf("client %d: connect: %w", i, err)
					return
				}
				if err := r.expect(greeting, 20*time.Second); err != nil {
					r.close()
					errs <- fmt.Errorf("client %d: greeting: %w", i, err)
					return
				}
				clients[i] = r
			}()
		}
		wg.Wait()
		greeted := time.Since(start)
		defer func() {
			for _, r := range clients {
				if r != nil {
					r.close()
				}
			}
		}()
		close(errs)
		failed := 0
		for err := range errs {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d clients not served", failed, n)
		}
		// The daemon holds one descriptor per client (plus the canary's).
		var cnt int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if cnt, _ = countFDs(g.d.pid()); cnt >= g.baseline+n {
				break
			}
		}
		if cnt < g.baseline+n || cnt > g.baseline+n+4 {
			t.Errorf("scached holds %d descriptors with %d clients connected, baseline %d", cnt, n, g.baseline)
		}
		// A new client is served at once meanwhile.
		freshTook, err := g.fresh(defaultBound)
		if err != nil {
			t.Error(err)
		}
		// All idle ones are still open (no EOF, nothing unasked) ...
		for i, r := range clients {
			raw, _ := r.uc.SyscallConn()
			var ev int16
			raw.Control(func(fd uintptr) {
				p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
				unix.Poll(p, 0)
				ev = p[0].Revents
			})
			if ev != 0 {
				t.Fatalf("idle client %d: poll events %#x: closed or sent something unasked", i, ev)
			}
		}
		// ... and each is still served.
		servedStart := time.Now()
		var next atomic.Int64
		var served atomic.Int64
		var swg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for w := 0; w < 32; w++ {
			swg.Add(1)
			go func() {
				defer swg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					if err := clients[i].request(findEndpReq(uniq("idle")), endpMiss); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("idle client %d: %w", i, err)
						}
						mu.Unlock()
						continue
					}
					served.Add(1)
				}
			}()
		}
		swg.Wait()
		if firstErr != nil {
			t.Error(firstErr)
		}
		rep.addf("daemon %s; %d connected and greeted in %v (%d connects retried on a full backlog); daemon fds %d; fresh client served in %v; all %d still open, %d answered a request in %v",
			maxOpenFiles(g.d.pid()), n, ms(greeted), retries.Load(), cnt, freshTook.Round(100*time.Microsecond), n, served.Load(), ms(time.Since(servedStart)))
	}}
}

func stormCase(total int) fcase {
	return fcase{name: fmt.Sprintf("crowd: connect/disconnect storm, %d connections", total), settle: 10 * time.Second, run: func(t *testing.T, g *group, rep *caseReport) {
		const workers = 16
		var next, retries, fails atomic.Int64
		var modes [4]atomic.Int64
		var mu sync.Mutex
		var firstErr error
		fail := func(err error) {
			fails.Add(1)
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					r, err := dialRetry(g.d.path, &retries)
					if err != nil {
						fail(fmt.Errorf("connection %d: %w", i, err))
						continue
					}
					mode := i % 4
					modes[mode].Add(1)
					switch mode {
					case 0: // leave at once, greeting unread
					case 1:
						err = r.expect(greeting, 5*time.Second)
					case 2:
						if err = r.expect(greeting, 5*time.Second); err == nil {
							err = r.request(findEndpReq("storm"), endpMiss)
						}
					case 3:
						err = r.send(saveEndpReq("2", "storm", "P")[:20])
					}
					r.close()
					if err != nil && !isResetErr(err) {
						fail(fmt.Errorf("connection %d (mode %d): %w", i, mode, err))
					}
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		if firstErr != nil {
			t.Errorf("%d of %d storm connections failed; first: %v", fails.Load(), total, firstErr)
		}
		rep.addf("%d connections in %v (%.0f/s; %d leave at once, %d after the greeting, %d after a request, %d inside a request); %d connects retried on a full backlog",
			total, ms(took), float64(total)/took.Seconds(), modes[0].Load(), modes[1].Load(), modes[2].Load(), modes[3].Load(), retries.Load())
	}}
}

// maxOpenFiles is the daemon's RLIMIT_NOFILE as /proc shows it.
func maxOpenFiles(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "RLIMIT_NOFILE unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.HasPrefix(l, "Max open files") {
			return "RLIMIT_NOFILE " + f[3]
		}
	}
	return "RLIMIT_NOFILE unknown"
}
