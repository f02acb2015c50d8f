package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server tells which implementation listens on the socket under test; it
// selects the side of each deliberate difference that is asserted.
type Server int

const (
	// Scached is this project's server.
	Scached Server = iota
	// Postfix is Postfix's own scache(8).
	Postfix
)

func (s Server) String() string {
	if s == Postfix {
		return "postfix"
	}
	return "scached"
}

// Options configure Run. The zero value of each field means the default
// given in its comment.
type Options struct {
	// Server is which implementation answers (Scached).
	Server Server
	// TTLLimit is the server's connection_cache_ttl_limit (2s): the ttl it
	// clamps larger requests to.
	TTLLimit time.Duration
	// Timeout bounds every read and write of a scenario (3s).
	Timeout time.Duration
	// Quiet is how long "no reply" must last to count as none (300ms).
	Quiet time.Duration
	// Match selects scenarios by name (all).
	Match func(name string) bool
	// Instance identifies the running server instance; when it changes
	// while a scenario runs (Postfix restarted scache(8), the socket was
	// re-created), a failure is blamed on the restart and the scenario is
	// retried once. Default: the socket's inode; see PostfixInstance.
	Instance func() string
	// Recover is called before such a retry (wait up to 20s for the socket
	// to accept connections and greet).
	Recover func() error
	// Progress, if set, is called with each result as soon as it is known.
	Progress func(Result)
}

func (o Options) withDefaults(path string) Options {
	if o.TTLLimit <= 0 {
		o.TTLLimit = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Quiet <= 0 {
		o.Quiet = 300 * time.Millisecond
	}
	if o.Instance == nil {
		o.Instance = func() string { return socketInstance(path) }
	}
	if o.Recover == nil {
		o.Recover = func() error { return WaitReady(path, 20*time.Second) }
	}
	return o
}

// Scenario is one check, written once for every server.
type Scenario struct {
	// Name is the check's name, the reference's where it has one.
	Name string
	// Summary says in one line what is checked.
	Summary string
	// Run performs the check. It returns nil when the server behaved as
	// expected, an error saying what was observed otherwise, or the result
	// of Env.Skip. It may close what it obtained through Env early
	// (Env.CloseFD, Raw.Close, Client.Close); Env closes whatever is
	// left when Run returns.
	Run func(env *Env) error
	// Limit bounds the whole scenario (30s); past it every connection is
	// closed, which ends any read, and the scenario fails.
	Limit time.Duration
}

// Outcome of one scenario.
type Outcome int

const (
	Pass Outcome = iota
	Fail
	Skip
)

func (o Outcome) String() string {
	return [...]string{"PASS", "FAIL", "SKIP"}[o]
}

// Result of one scenario.
type Result struct {
	Name    string
	Outcome Outcome
	// Reason says why the scenario failed or was skipped.
	Reason string
	// Notes are observations worth reporting even on success (e.g. which
	// of Postfix's descriptor-passing modes was seen).
	Notes []string
	// Retried is set when the first attempt failed while the server
	// restarted; FirstFailure is that attempt's reason.
	Retried      bool
	FirstFailure string
	Elapsed      time.Duration
}

// Report is what Run observed.
type Report struct {
	Server   Server
	Path     string
	TTLLimit time.Duration
	Results  []Result
	Elapsed  time.Duration
}

// Counts returns how many scenarios passed, failed and were skipped.
func (r Report) Counts() (passed, failed, skipped int) {
	for _, res := range r.Results {
		switch res.Outcome {
		case Pass:
			passed++
		case Fail:
			failed++
		case Skip:
			skipped++
		}
	}
	return
}

// Summary is "N passed, M failed", with ", K skipped" when K > 0.
func (r Report) Summary() string {
	p, f, s := r.Counts()
	out := fmt.Sprintf("%d passed, %d failed", p, f)
	if s > 0 {
		out += fmt.Sprintf(", %d skipped", s)
	}
	return out
}

// OK reports whether no scenario failed.
func (r Report) OK() bool {
	_, f, _ := r.Counts()
	return f == 0
}

// Write prints one line per scenario (with its notes and reasons) and the
// summary line.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "scache conformance: %s at %s (ttl limit %v)\n", r.Server, r.Path, r.TTLLimit)
	for _, res := range r.Results {
		line := fmt.Sprintf("%s %-45s %6dms", res.Outcome, res.Name, res.Elapsed.Milliseconds())
		if res.Reason != "" {
			line += "  " + res.Reason
		}
		fmt.Fprintln(w, line)
		if res.Retried {
			fmt.Fprintf(w, "     retried after the server restarted; first attempt: %s\n", res.FirstFailure)
		}
		for _, n := range res.Notes {
			fmt.Fprintf(w, "     note: %s\n", n)
		}
	}
	fmt.Fprintf(w, "%s: %s in %.1fs\n", r.Server, r.Summary(), r.Elapsed.Seconds())
}

func (r Report) String() string {
	var b strings.Builder
	r.Write(&b)
	return b.String()
}

// Run runs every scenario (those selected by opts.Match) against the server
// listening at path, one after the other, and reports the outcomes.
func Run(path string, opts Options) Report {
	opts = opts.withDefaults(path)
	rep := Report{Server: opts.Server, Path: path, TTLLimit: opts.TTLLimit}
	start := time.Now()
	for _, sc := range Scenarios() {
		if opts.Match != nil && !opts.Match(sc.Name) {
			continue
		}
		res := runWithRetry(path, opts, sc)
		rep.Results = append(rep.Results, res)
		if opts.Progress != nil {
			opts.Progress(res)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep
}

// runWithRetry runs sc, and once more when the first attempt failed
// because the server went away or restarted under it (another user of the
// machine reloading Postfix, say).
func runWithRetry(path string, opts Options, sc Scenario) Result {
	before := opts.Instance()
	res, err := attempt(path, opts, sc)
	if res.Outcome != Fail {
		return res
	}
	after := opts.Instance()
	if before == after && !serverGone(path, err) {
		return res
	}
	first := res.Reason
	if rerr := opts.Recover(); rerr != nil {
		res.Reason += fmt.Sprintf(" (server restarted or went away, and did not come back: %v)", rerr)
		return res
	}
	res, _ = attempt(path, opts, sc)
	res.Retried, res.FirstFailure = true, first
	return res
}

// serverGone reports whether the socket is missing or refuses
// connections, or err says so.
func serverGone(path string, err error) bool {
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		return true
	}
	c, derr := net.DialTimeout("unix", path, time.Second)
	if derr != nil {
		return true
	}
	c.Close()
	return false
}

// attempt runs sc once in its own Env, bounded by sc.Limit.
func attempt(path string, opts Options, sc Scenario) (Result, error) {
	env := newEnv(path, opts, sc.Name)
	res := Result{Name: sc.Name}
	limit := sc.Limit
	if limit <= 0 {
		limit = 30 * time.Second
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				buf := make([]byte, 4096)
				done <- fmt.Errorf("panic: %v\n%s", p, buf[:runtime.Stack(buf, false)])
			}
		}()
		done <- sc.Run(env)
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		env.abort()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			// The scenario is stuck outside any read we control; leave
			// its descriptors alone, it may still use them.
			res.Outcome, res.Reason = Fail, fmt.Sprintf("did not finish within %v (and not after its connections were closed)", limit)
			res.Elapsed = time.Since(start)
			return res, nil
		}
		err = fmt.Errorf("did not finish within %v", limit)
	}
	env.cleanup()
	res.Elapsed = time.Since(start)
	res.Notes = env.notes
	var skip skipError
	switch {
	case err == nil:
		res.Outcome = Pass
	case errors.As(err, &skip):
		res.Outcome, res.Reason = Skip, skip.reason
	default:
		res.Outcome, res.Reason = Fail, err.Error()
	}
	return res, err
}

// WaitReady waits until a client connecting to path gets the greeting.
func WaitReady(path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var err error
	for {
		err = greets(path)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func greets(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	want := W(greeting)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if string(got) != string(want) {
		return fmt.Errorf("greeting %s", Show(got))
	}
	return nil
}

// socketInstance identifies the socket file: a server that re-creates it
// changes its inode.
func socketInstance(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("inode %d", st.Ino)
	}
	return fi.ModTime().String()
}

// randomPrefix makes labels unique to one scenario run.
func randomPrefix(name string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "conform-" + hex.EncodeToString(b) + "-" + name + "-"
}
