// Command client is the test client of test/systemd/e2e.sh: a small
// static program (CGO_ENABLED=0) copied into the booted container, where it
// talks to scached through the systemd-owned socket as Postfix's smtp(8)
// would, and reports what it saw on stdout, one "key=value ..." line per
// event, for the script to check.
//
//	client ping    [-path P] [-conc C] [-warm W]  C simultaneous fresh connections (cold if the service is not running), then W one after another (warm)
//	client ops     [-path P]                    save_endp/find_endp/save_dest/find_dest with real descriptors
//	client hold    [-path P] [-k K] [-wait D]   cache K connections, then wait for the server to close them all
//	client persist [-path P] [-for D] [-every I] [-fresh]  requests in a loop, reconnecting and retrying once as Postfix does
//
// Every mode exits 0 when all went as expected and 1 otherwise; errors
// say whether the connection was refused, reset or timed out.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

const defaultPath = "/var/spool/postfix/private/scached"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: client ping|ops|hold|persist [flags]")
		os.Exit(2)
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	path := fs.String("path", defaultPath, "server socket")
	timeout := fs.Duration("timeout", 10*time.Second, "limit of each read and write")
	conc := fs.Int("conc", 1, "ping: simultaneous connections at first")
	warm := fs.Int("warm", 0, "ping: connections one after another afterwards")
	k := fs.Int("k", 4, "hold: connections to cache")
	ttl := fs.Int("ttl", 300, "hold: ttl to ask for, in seconds")
	wait := fs.Duration("wait", 20*time.Second, "hold: how long to wait for the server to close the cached connections")
	dur := fs.Duration("for", 5*time.Second, "persist: how long to run")
	every := fs.Duration("every", 20*time.Millisecond, "persist: pause between requests")
	fresh := fs.Bool("fresh", false, "persist: a new connection for every request")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	var err error
	switch mode {
	case "ping":
		err = ping(*path, *timeout, *conc, *warm)
	case "ops":
		err = ops(*path, *timeout)
	case "hold":
		err = hold(*path, *timeout, *k, *ttl, *wait)
	case "persist":
		err = persist(*path, *timeout, *dur, *every, *fresh)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", mode, err)
		os.Exit(1)
	}
}

// kind names the failure the e2e checks care about.
func kind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "epipe"
	case errors.Is(err, syscall.ENOENT):
		return "nosocket"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return "other"
}

// dialTimed connects and reads the greeting, and returns how long that
// took: the activation latency when the service was not running.
func dialTimed(path string, timeout time.Duration) (*protocol.Client, time.Duration, error) {
	t0 := time.Now()
	cl, err := protocol.Dial(path, timeout)
	return cl, time.Since(t0), err
}

// pingOnce makes one connection, one request (a find_dest miss: status 2)
// and closes it.
func pingOnce(path string, timeout time.Duration, label string) (time.Duration, error) {
	cl, lat, err := dialTimed(path, timeout)
	if err != nil {
		return lat, fmt.Errorf("connect/greeting (%s): %w", kind(err), err)
	}
	defer cl.Close()
	st, _, _, fd, err := cl.FindDest(label)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil {
		return lat, fmt.Errorf("find_dest (%s): %w", kind(err), err)
	}
	if st != protocol.StatusFail {
		return lat, fmt.Errorf("find_dest %s: status %d, want %d (not found)", label, st, protocol.StatusFail)
	}
	return lat, nil
}

// ping makes conc simultaneous connections (when the service is not
// running, the first client(s) activate it: their latency is the cold
// one), then warm connections one after another, each with one request.
func ping(path string, timeout time.Duration, conc, warm int) error {
	var cold, hot []time.Duration
	fails := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for c := 0; c < conc; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := pingOnce(path, timeout, fmt.Sprintf("smtp:e2e-ping-cold-%d", c))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				fmt.Printf("error cold conn=%d %v\n", c, err)
				return
			}
			cold = append(cold, lat)
		}()
	}
	wg.Wait()
	for i := 0; i < warm; i++ {
		lat, err := pingOnce(path, timeout, fmt.Sprintf("smtp:e2e-ping-warm-%d", i))
		if err != nil {
			fails++
			fmt.Printf("error warm conn=%d %v\n", i, err)
			continue
		}
		hot = append(hot, lat)
	}
	fmt.Printf("ping ok=%d fail=%d%s%s\n", len(cold)+len(hot), fails, latSummary("cold", cold), latSummary("warm", hot))
	if fails > 0 {
		return fmt.Errorf("%d of %d connections failed", fails, conc+warm)
	}
	return nil
}

// latSummary gives " NAME_n=... NAME_min_us=... NAME_median_us=... NAME_max_us=...".
func latSummary(name string, l []time.Duration) string {
	if len(l) == 0 {
		return fmt.Sprintf(" %s_n=0", name)
	}
	s := append([]time.Duration(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	us := func(d time.Duration) int64 { return d.Microseconds() }
	return fmt.Sprintf(" %[1]s_n=%[2]d %[1]s_min_us=%[3]d %[1]s_median_us=%[4]d %[1]s_max_us=%[5]d", name, len(s), us(s[0]), us(s[len(s)/2]), us(s[len(s)-1]))
}

// pair returns a connected stream pair: a stand-in for an SMTP connection
// (what the cache holds) and the "remote server" end that shows whether
// the cached end is still open.
func pair() (cached, remote int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	return fds[0], fds[1], err
}

// sameConnection checks that fd is the cached end of remote's pair.
func sameConnection(fd, remote int) error {
	msg := []byte("e2e")
	if _, err := unix.Write(fd, msg); err != nil {
		return err
	}
	buf := make([]byte, 8)
	n, err := unix.Read(remote, buf)
	if err != nil || string(buf[:n]) != "e2e" {
		return fmt.Errorf("descriptor handed back is not the one saved (read %q, %v)", buf[:n], err)
	}
	return nil
}

func ops(path string, timeout time.Duration) error {
	cl, lat, err := dialTimed(path, timeout)
	if err != nil {
		return fmt.Errorf("connect/greeting (%s): %w", kind(err), err)
	}
	defer cl.Close()
	tag := fmt.Sprintf("%d", time.Now().UnixNano())
	endp, dest := "smtp:127.0.0.1:25:e2e-"+tag, "smtp:example.com:25:e2e-"+tag

	cached, remote, err := pair()
	if err != nil {
		return err
	}
	defer unix.Close(remote)
	st, err := cl.SaveEndp(60, endp, "endp-props", cached)
	unix.Close(cached) // as Postfix does: the cache holds it now
	if err != nil || st != protocol.StatusOK {
		return fmt.Errorf("save_endp: status %d, %v", st, err)
	}
	st, prop, fd, err := cl.FindEndp(endp)
	if err != nil || st != protocol.StatusOK || prop != "endp-props" {
		return fmt.Errorf("find_endp: status %d prop %q, %v", st, prop, err)
	}
	if err := sameConnection(fd, remote); err != nil {
		return fmt.Errorf("find_endp: %v", err)
	}
	if st, _, fd2, _ := cl.FindEndp(endp); st != protocol.StatusFail {
		unix.Close(fd2)
		return fmt.Errorf("find_endp again: status %d, want %d (each connection is handed out once)", st, protocol.StatusFail)
	}

	// Save it again, bind the destination to it, and find it by destination.
	st, err = cl.SaveEndp(60, endp, "endp-props", fd)
	unix.Close(fd)
	if err != nil || st != protocol.StatusOK {
		return fmt.Errorf("save_endp (2): status %d, %v", st, err)
	}
	if st, err := cl.SaveDest(60, dest, "dest-props", endp); err != nil || st != protocol.StatusOK {
		return fmt.Errorf("save_dest: status %d, %v", st, err)
	}
	st, dprop, eprop, fd, err := cl.FindDest(dest)
	if err != nil || st != protocol.StatusOK || dprop != "dest-props" || eprop != "endp-props" {
		return fmt.Errorf("find_dest: status %d props %q %q, %v", st, dprop, eprop, err)
	}
	defer unix.Close(fd)
	if err := sameConnection(fd, remote); err != nil {
		return fmt.Errorf("find_dest: %v", err)
	}
	fmt.Printf("ops ok save_endp find_endp save_dest find_dest greeting_us=%d\n", lat.Microseconds())
	return nil
}

// eof reports whether the remote end sees the cached end closed.
func eof(remote int) bool {
	fds := []unix.PollFd{{Fd: int32(remote), Events: unix.POLLIN}}
	if n, _ := unix.Poll(fds, 0); n == 0 {
		return false
	}
	buf := make([]byte, 1)
	n, err := unix.Read(remote, buf)
	return n == 0 && err == nil
}

func hold(path string, timeout time.Duration, k, ttl int, wait time.Duration) error {
	cl, _, err := dialTimed(path, timeout)
	if err != nil {
		return fmt.Errorf("connect/greeting (%s): %w", kind(err), err)
	}
	tag := fmt.Sprintf("%d", time.Now().UnixNano())
	var remotes []int
	for i := 0; i < k; i++ {
		cached, remote, err := pair()
		if err != nil {
			return err
		}
		remotes = append(remotes, remote)
		st, err := cl.SaveEndp(ttl, fmt.Sprintf("smtp:192.0.2.%d:25:hold-%s", i, tag), "held", cached)
		unix.Close(cached)
		if err != nil || st != protocol.StatusOK {
			return fmt.Errorf("save_endp %d: status %d, %v", i, st, err)
		}
	}
	cl.Close()
	time.Sleep(100 * time.Millisecond)
	for i, r := range remotes {
		if eof(r) {
			return fmt.Errorf("cached connection %d closed before the stop", i)
		}
	}
	fmt.Printf("hold saved=%d open=%d\n", k, k)
	t0 := time.Now()
	open := len(remotes)
	for open > 0 && time.Since(t0) < wait {
		time.Sleep(20 * time.Millisecond)
		open = 0
		for i, r := range remotes {
			if r < 0 {
				continue
			}
			if eof(r) {
				unix.Close(r)
				remotes[i] = -1
				continue
			}
			open++
		}
	}
	if open > 0 {
		return fmt.Errorf("%d of %d cached connections still open after %v", open, k, wait)
	}
	fmt.Printf("hold closed=%d after_ms=%d\n", k, time.Since(t0).Milliseconds())
	return nil
}

// persist sends requests until dur has passed, as a Postfix process does
// with its connection to the cache: one connection kept open (or, with
// fresh, a new one each time); after a failure it reconnects and tries
// once more (scache_clnt.c, clnt_stream.c). A request fails for good only
// when the retry fails too.
func persist(path string, timeout, dur, every time.Duration, fresh bool) error {
	var cl *protocol.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	try := func(label string) error {
		if cl == nil {
			c, _, err := dialTimed(path, timeout)
			if err != nil {
				return fmt.Errorf("connect/greeting (%s): %w", kind(err), err)
			}
			cl = c
		}
		st, _, _, fd, err := cl.FindDest(label)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err == nil && st != protocol.StatusFail {
			err = fmt.Errorf("status %d", st)
		}
		if err != nil {
			cl.Close()
			cl = nil
			return fmt.Errorf("find_dest (%s): %w", kind(err), err)
		}
		if fresh {
			cl.Close()
			cl = nil
		}
		return nil
	}
	requests, retried, failed := 0, 0, 0
	kinds := map[string]int{}
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline); i++ {
		requests++
		label := fmt.Sprintf("smtp:e2e-persist-%d", i)
		if err := try(label); err != nil {
			retried++
			fmt.Printf("retry request=%d first_error=%q\n", i, err)
			if err := try(label); err != nil {
				failed++
				fmt.Printf("error request=%d %v\n", i, err)
				kinds[kind(err)]++
			}
		}
		time.Sleep(every)
	}
	fmt.Printf("persist requests=%d retried=%d failed=%d fresh=%v\n", requests, retried, failed, fresh)
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed after a retry (%v)", failed, requests, kinds)
	}
	return nil
}
