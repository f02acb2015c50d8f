package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// Env is what a scenario works with: the server under test and the
// resources the scenario opened. Every connection and descriptor obtained
// through Env is closed by Env when the scenario ends. Env is safe for
// concurrent use.
type Env struct {
	// Path is the server socket.
	Path string
	// Server is the implementation under test.
	Server Server
	// TTLLimit is the server's connection_cache_ttl_limit.
	TTLLimit time.Duration
	// Timeout bounds every read and write.
	Timeout time.Duration
	// Quiet is how long silence must last to count as "no reply".
	Quiet time.Duration

	prefix string

	mu      sync.Mutex
	conns   map[*net.UnixConn]struct{}
	clients map[*protocol.Client]struct{}
	fds     map[int]struct{} // descriptors this scenario owns
	notes   []string
	aborted bool
}

func newEnv(path string, opts Options, name string) *Env {
	return &Env{
		Path:     path,
		Server:   opts.Server,
		TTLLimit: opts.TTLLimit,
		Timeout:  opts.Timeout,
		Quiet:    opts.Quiet,
		prefix:   randomPrefix(name),
		conns:    make(map[*net.UnixConn]struct{}),
		clients:  make(map[*protocol.Client]struct{}),
		fds:      make(map[int]struct{}),
	}
}

// Label returns a label unique to this scenario run.
func (e *Env) Label(name string) string { return e.prefix + name }

// Notef records an observation for the report.
func (e *Env) Notef(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

type skipError struct{ reason string }

func (s skipError) Error() string { return "skipped: " + s.reason }

// Skip returns the error that marks the scenario as skipped.
func (e *Env) Skip(format string, args ...any) error {
	return skipError{fmt.Sprintf(format, args...)}
}

// abort closes every connection, which makes any pending read fail.
func (e *Env) abort() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.aborted = true
	for c := range e.conns {
		c.Close()
	}
	for c := range e.clients {
		c.Close()
	}
}

// cleanup closes everything the scenario left open.
func (e *Env) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.conns {
		c.Close()
	}
	for c := range e.clients {
		c.Close()
	}
	for fd := range e.fds {
		unix.Close(fd)
	}
	e.conns, e.clients, e.fds = nil, nil, nil
}

// own records that the scenario owns fd.
func (e *Env) own(fd int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fds == nil {
		unix.Close(fd) // the scenario already ended
		return
	}
	e.fds[fd] = struct{}{}
}

// CloseFD closes a descriptor the scenario owns; it does nothing for one it
// does not own (any more), so a descriptor number is never closed twice.
func (e *Env) CloseFD(fd int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.fds[fd]; ok {
		delete(e.fds, fd)
		unix.Close(fd)
	}
}

// ---------------------------------------------------------------- wire text

// greeting is what the server says first.
const greeting = "protocol^@connection_cache_protocol^@^@"

// W converts the reference's notation to bytes: "^@" is a NUL byte.
func W(s string) []byte { return []byte(strings.ReplaceAll(s, "^@", "\x00")) }

// Show renders bytes in the reference's notation: NUL as ^@, newline as
// \n, other non-printable bytes as \xNN; long strings are shortened.
func Show(b []byte) string {
	const max = 240
	var sb strings.Builder
	sb.WriteByte('"')
	for i, c := range b {
		if i == max {
			fmt.Fprintf(&sb, "...(%d bytes)", len(b))
			break
		}
		switch {
		case c == 0:
			sb.WriteString("^@")
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// Attrs encodes name/value pairs without the list terminator.
func Attrs(nameValues ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(nameValues); i += 2 {
		b = protocol.AppendAttr(b, nameValues[i], nameValues[i+1])
	}
	return b
}

// List encodes a complete attribute list: name/value pairs and the
// terminator.
func List(nameValues ...string) []byte { return append(Attrs(nameValues...), 0) }

// Requests, byte for byte as Postfix's client sends them.
func saveEndpReq(ttl, label, prop string) []byte {
	return List("request", "save_endp", "ttl", ttl, "label", label, "property", prop)
}
func findEndpReq(label string) []byte { return List("request", "find_endp", "label", label) }
func saveDestReq(ttl, label, prop, endp string) []byte {
	return List("request", "save_dest", "ttl", ttl, "label", label, "property", prop, "label", endp)
}
func findDestReq(label string) []byte { return List("request", "find_dest", "label", label) }

// Replies.
func statusReply(st int) []byte { return List("status", strconv.Itoa(st)) }
func endpReply(st int, prop string) []byte {
	return List("status", strconv.Itoa(st), "property", prop)
}
func destReply(st int, destProp, endpProp string) []byte {
	return List("status", strconv.Itoa(st), "property", destProp, "property", endpProp)
}

var (
	dummy        = List("dummy", "")
	endpMiss     = endpReply(2, "")
	destMiss     = destReply(2, "", "")
	endpBad      = endpReply(1, "")
	destBad      = destReply(1, "", "")
	statusOK     = statusReply(0)
	statusBad    = statusReply(1)
	statusFailed = statusReply(2)
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ---------------------------------------------------------------- raw client

// Raw is a client connection driven byte by byte. Every read is a
// recvmsg() with room for descriptors, and reads never ask for more bytes
// than the caller expects, so a descriptor-carrying byte is never consumed
// by accident; a descriptor that arrives anyway is reported.
type Raw struct {
	env *Env
	uc  *net.UnixConn
}

// Raw connects and reads the greeting.
func (e *Env) Raw() (*Raw, error) {
	r, err := e.RawNoGreeting()
	if err != nil {
		return nil, err
	}
	if err := r.Expect(W(greeting)); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return r, nil
}

// RawNoGreeting connects without reading anything.
func (e *Env) RawNoGreeting() (*Raw, error) {
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: e.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns == nil || e.aborted {
		uc.Close()
		return nil, errors.New("connect: scenario aborted")
	}
	e.conns[uc] = struct{}{}
	return &Raw{env: e, uc: uc}, nil
}

// Close closes the connection.
func (r *Raw) Close() {
	r.env.mu.Lock()
	delete(r.env.conns, r.uc)
	r.env.mu.Unlock()
	r.uc.Close()
}

// ShutdownRead stops reception (shutdown(SHUT_RD)); on Linux the server's
// next send on this connection then fails with EPIPE.
func (r *Raw) ShutdownRead() error { return r.uc.CloseRead() }

// ShutdownWrite sends EOF to the server, keeping the reading side open.
func (r *Raw) ShutdownWrite() error { return r.uc.CloseWrite() }

// Send writes the concatenation of parts in one write.
func (r *Raw) Send(parts ...[]byte) error {
	r.uc.SetWriteDeadline(time.Now().Add(r.env.Timeout))
	if _, err := r.uc.Write(cat(parts...)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// SendMsg writes b in one sendmsg() carrying fds (the caller keeps its
// copies).
func (r *Raw) SendMsg(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	r.uc.SetWriteDeadline(time.Now().Add(r.env.Timeout))
	if _, _, err := r.uc.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("sendmsg: %w", err)
	}
	return nil
}

// SendFD sends fd with one NUL data byte, as unix_send_fd() does.
func (r *Raw) SendFD(fd int) error { return r.SendMsg([]byte{0}, fd) }

// recv does one recvmsg() of at most len(buf) bytes. Descriptors that
// arrive become the scenario's.
func (r *Raw) recv(buf []byte, deadline time.Time) (int, []int, error) {
	oob := make([]byte, unix.CmsgSpace(4*8))
	r.uc.SetReadDeadline(deadline)
	n, oobn, _, _, err := r.uc.ReadMsgUnix(buf, oob)
	n, oobn = max(n, 0), max(oobn, 0) // -1 on some errors
	var fds []int
	if oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if got, perr := unix.ParseUnixRights(&m); perr == nil {
					fds = append(fds, got...)
				}
			}
		}
		for _, fd := range fds {
			r.env.own(fd)
		}
	}
	if n == 0 && err == nil {
		err = errEOF
	}
	return n, fds, err
}

var errEOF = errors.New("connection closed by the server (EOF)")

// Expect reads exactly len(want) bytes and compares them with want. It
// fails when they differ, when a descriptor arrives with them, or when the
// server stops short of them within Timeout.
func (r *Raw) Expect(want []byte) error {
	got := make([]byte, len(want))
	n := 0
	deadline := time.Now().Add(r.env.Timeout)
	for n < len(want) {
		m, fds, err := r.recv(got[n:], deadline)
		n += m
		if len(fds) > 0 {
			return fmt.Errorf("got %s with %d descriptor(s), want %s", Show(got[:n]), len(fds), Show(want))
		}
		if !bytes.Equal(want[:n], got[:n]) {
			// Show a little more of what the server said.
			more := make([]byte, 256)
			if m, _, _ := r.recv(more, time.Now().Add(50*time.Millisecond)); m > 0 {
				got = append(got[:n], more[:m]...)
				n += m
			}
			return mismatch(got[:n], want)
		}
		if err != nil {
			return fmt.Errorf("got %s, want %s: %w", Show(got[:n]), Show(want), err)
		}
	}
	return nil
}

// mismatch describes where got departs from want; long strings are shown
// around the first differing byte.
func mismatch(got, want []byte) error {
	if len(want) <= 200 {
		return fmt.Errorf("got %s, want %s", Show(got), Show(want))
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(i-40, 0)
	return fmt.Errorf("reply differs at byte %d of %d: got ...%s, want ...%s", i, len(want),
		Show(got[from:min(len(got), i+80)]), Show(want[from:min(len(want), i+80)]))
}

// ExpectNothing checks that the server sends nothing (and does not close
// the connection) for d.
func (r *Raw) ExpectNothing(d time.Duration) error {
	buf := make([]byte, 256)
	n, fds, err := r.recv(buf, time.Now().Add(d))
	switch {
	case n > 0 || len(fds) > 0:
		return fmt.Errorf("unexpected reply %s (%d descriptors)", Show(buf[:n]), len(fds))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	default:
		return fmt.Errorf("expected silence: %w", err)
	}
}

// ExpectEOF checks that the server closes the connection within Timeout
// without sending anything.
func (r *Raw) ExpectEOF() error {
	buf := make([]byte, 256)
	n, fds, err := r.recv(buf, time.Now().Add(r.env.Timeout))
	if n > 0 || len(fds) > 0 {
		return fmt.Errorf("expected EOF, got %s (%d descriptors)", Show(buf[:n]), len(fds))
	}
	if !errors.Is(err, errEOF) && !errors.Is(err, unix.ECONNRESET) {
		return fmt.Errorf("expected EOF: %w", err)
	}
	return nil
}

// RecvFD receives one byte that must be a NUL carrying exactly one
// descriptor, which becomes the scenario's.
func (r *Raw) RecvFD() (int, error) {
	buf := make([]byte, 1)
	n, fds, err := r.recv(buf, time.Now().Add(r.env.Timeout))
	switch {
	case n == 1 && len(fds) == 1 && buf[0] == 0:
		return fds[0], nil
	case err != nil:
		return -1, fmt.Errorf("receive descriptor: %w", err)
	default:
		return -1, fmt.Errorf("receive descriptor: got byte %s with %d descriptors", Show(buf[:n]), len(fds))
	}
}

// TakeFD runs the client side of a find hit's hand-out after the status
// reply: dummy, descriptor, dummy.
func (r *Raw) TakeFD() (int, error) {
	if err := r.Send(dummy); err != nil {
		return -1, err
	}
	fd, err := r.RecvFD()
	if err != nil {
		return -1, err
	}
	return fd, r.Send(dummy)
}

// SaveEndp stores p.Near with a complete save_endp exchange, checking
// every byte, and closes the scenario's copy of p.Near as smtp(8) does.
func (r *Raw) SaveEndp(ttl, label, prop string, p Pair) error {
	defer r.env.CloseFD(p.Near)
	if err := r.Send(saveEndpReq(ttl, label, prop)); err != nil {
		return err
	}
	if err := r.Expect(dummy); err != nil {
		return fmt.Errorf("save_endp: %w", err)
	}
	if err := r.SendFD(p.Near); err != nil {
		return err
	}
	if err := r.Expect(statusOK); err != nil {
		return fmt.Errorf("save_endp status: %w", err)
	}
	return nil
}

// Request sends req in one write and expects reply.
func (r *Raw) Request(req, reply []byte) error {
	if err := r.Send(req); err != nil {
		return err
	}
	if err := r.Expect(reply); err != nil {
		return fmt.Errorf("request %s: %w", Show(req), err)
	}
	return nil
}

// ---------------------------------------------------------------- sessions

// Pair stands for a cached SMTP connection: the cache gets Near, the
// scenario keeps Far to recognise what comes back and to see when every
// copy of Near has been closed.
type Pair struct{ Near, Far int }

// Pair creates a connected socketpair owned by the scenario.
func (e *Env) Pair() (Pair, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Pair{}, fmt.Errorf("socketpair: %w", err)
	}
	e.own(fds[0])
	e.own(fds[1])
	return Pair{fds[0], fds[1]}, nil
}

// Pairs creates n pairs.
func (e *Env) Pairs(n int) ([]Pair, error) {
	ps := make([]Pair, n)
	for i := range ps {
		var err error
		if ps[i], err = e.Pair(); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// Is checks that fd is (a copy of) p.Near: what is written through fd
// arrives at p.Far.
func (e *Env) Is(fd int, p Pair) error {
	msg := []byte(fmt.Sprintf("identity %d/%d %d", p.Near, p.Far, time.Now().UnixNano()))
	if _, err := unix.Write(fd, msg); err != nil {
		return fmt.Errorf("write through returned descriptor: %w", err)
	}
	buf := make([]byte, len(msg)+64)
	n, err := e.readFar(p.Far, buf, e.Timeout)
	if err != nil {
		return fmt.Errorf("returned descriptor is not the expected session: %w", err)
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("returned descriptor is not the expected session: far end read %q", buf[:n])
	}
	return nil
}

// readFar waits up to d for p.Far to become readable and reads once.
func (e *Env) readFar(far int, buf []byte, d time.Duration) (int, error) {
	pfd := []unix.PollFd{{Fd: int32(far), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		n, err := unix.Poll(pfd, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, os.ErrDeadlineExceeded
		}
		for {
			m, err := unix.Read(far, buf)
			if err == unix.EINTR {
				continue
			}
			return max(m, 0), err
		}
	}
}

// FarEOF checks that every copy of p.Near gets closed within d: p.Far
// reads EOF. It returns how long that took.
func (e *Env) FarEOF(p Pair, d time.Duration) (time.Duration, error) {
	start := time.Now()
	buf := make([]byte, 256)
	n, err := e.readFar(p.Far, buf, d)
	switch {
	case err != nil:
		return 0, fmt.Errorf("session still open after %v (not closed): %w", d, err)
	case n > 0:
		return 0, fmt.Errorf("session still open: far end read %q", buf[:n])
	}
	return time.Since(start), nil
}

// FarOpen checks that p.Near stays open somewhere for d: p.Far reads
// neither data nor EOF.
func (e *Env) FarOpen(p Pair, d time.Duration) error {
	buf := make([]byte, 256)
	n, err := e.readFar(p.Far, buf, d)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case err != nil:
		return err
	case n == 0:
		return errors.New("session was closed")
	}
	return fmt.Errorf("far end read %q", buf[:n])
}

// ---------------------------------------------------------------- client

// Client is Postfix's client side (pkg/protocol) with the scenario's
// bookkeeping: descriptors it returns are owned by the Env.
type Client struct {
	env *Env
	pc  *protocol.Client
}

// Dial connects a protocol client (greeting checked).
func (e *Env) Dial() (*Client, error) {
	pc, err := protocol.Dial(e.Path, e.Timeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.clients == nil || e.aborted {
		pc.Close()
		return nil, errors.New("dial: scenario aborted")
	}
	e.clients[pc] = struct{}{}
	return &Client{env: e, pc: pc}, nil
}

// Close closes the client connection.
func (c *Client) Close() {
	c.env.mu.Lock()
	delete(c.env.clients, c.pc)
	c.env.mu.Unlock()
	c.pc.Close()
}

// SaveEndpStatus sends save_endp with fd and returns the status; the
// caller keeps fd.
func (c *Client) SaveEndpStatus(ttl int, label, prop string, fd int) (int, error) {
	return c.pc.SaveEndp(ttl, label, prop, fd)
}

// Save caches p.Near, expecting status 0, and closes the scenario's copy
// of p.Near, as smtp(8) does.
func (c *Client) Save(ttl int, label, prop string, p Pair) error {
	st, err := c.pc.SaveEndp(ttl, label, prop, p.Near)
	c.env.CloseFD(p.Near)
	if err != nil {
		return fmt.Errorf("save_endp: %w", err)
	}
	if st != protocol.StatusOK {
		return fmt.Errorf("save_endp: status %d, want 0", st)
	}
	return nil
}

// SaveDest binds label to endp, expecting status 0.
func (c *Client) SaveDest(ttl int, label, prop, endp string) error {
	st, err := c.pc.SaveDest(ttl, label, prop, endp)
	if err != nil {
		return fmt.Errorf("save_dest: %w", err)
	}
	if st != protocol.StatusOK {
		return fmt.Errorf("save_dest: status %d, want 0", st)
	}
	return nil
}

// FindEndp is find_endp; a returned descriptor is the scenario's.
func (c *Client) FindEndp(label string) (int, string, int, error) {
	st, prop, fd, err := c.pc.FindEndp(label)
	if fd >= 0 {
		c.env.own(fd)
	}
	if err != nil {
		err = fmt.Errorf("find_endp: %w", err)
	}
	return st, prop, fd, err
}

// FindDest is find_dest; a returned descriptor is the scenario's.
func (c *Client) FindDest(label string) (int, string, string, int, error) {
	st, dp, ep, fd, err := c.pc.FindDest(label)
	if fd >= 0 {
		c.env.own(fd)
	}
	if err != nil {
		err = fmt.Errorf("find_dest: %w", err)
	}
	return st, dp, ep, fd, err
}

// Hit expects find_endp to hand out p with property prop.
func (c *Client) Hit(label, prop string, p Pair) error {
	st, got, fd, err := c.FindEndp(label)
	if err != nil {
		return err
	}
	defer c.env.CloseFD(fd)
	if st != protocol.StatusOK || got != prop {
		return fmt.Errorf("find_endp: status %d property %s, want 0 %s", st, Show([]byte(got)), Show([]byte(prop)))
	}
	return c.env.Is(fd, p)
}

// HitDest expects find_dest to hand out p with the given properties.
func (c *Client) HitDest(label, destProp, endpProp string, p Pair) error {
	st, dp, ep, fd, err := c.FindDest(label)
	if err != nil {
		return err
	}
	defer c.env.CloseFD(fd)
	if st != protocol.StatusOK || dp != destProp || ep != endpProp {
		return fmt.Errorf("find_dest: status %d properties %s %s, want 0 %s %s", st,
			Show([]byte(dp)), Show([]byte(ep)), Show([]byte(destProp)), Show([]byte(endpProp)))
	}
	return c.env.Is(fd, p)
}

// Miss expects find_endp to find nothing.
func (c *Client) Miss(label string) error {
	st, prop, fd, err := c.FindEndp(label)
	if err != nil {
		return err
	}
	if st != protocol.StatusFail || fd >= 0 {
		c.env.CloseFD(fd)
		return fmt.Errorf("find_endp: status %d property %s, want a miss (2)", st, Show([]byte(prop)))
	}
	return nil
}

// MissDest expects find_dest to find nothing.
func (c *Client) MissDest(label string) error {
	st, dp, ep, fd, err := c.FindDest(label)
	if err != nil {
		return err
	}
	if st != protocol.StatusFail || fd >= 0 {
		c.env.CloseFD(fd)
		return fmt.Errorf("find_dest: status %d properties %s %s, want a miss (2)", st, Show([]byte(dp)), Show([]byte(ep)))
	}
	return nil
}

// ---------------------------------------------------------------- time

// AlignSecond waits until just after a wall-clock second boundary and
// returns that boundary. Postfix's timers have whole-second resolution (an
// entry saved at t lives until floor(t)+ttl); entries saved right after a
// boundary live almost their full ttl on every server.
func (e *Env) AlignSecond() time.Time {
	now := time.Now()
	boundary := now.Truncate(time.Second)
	if now.Sub(boundary) > 60*time.Millisecond {
		boundary = boundary.Add(time.Second)
	}
	time.Sleep(time.Until(boundary.Add(20 * time.Millisecond)))
	return boundary
}

// SleepUntil sleeps until t.
func SleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// within checks that a deadline-sensitive step ran in time.
func within(what string, start time.Time, d time.Duration) error {
	if el := time.Since(start); el > d {
		return fmt.Errorf("%s took %v, more than the %v the check allows", what, el.Round(time.Millisecond), d)
	}
	return nil
}
