package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---- wire format ----

// list is one attribute list: name, value pairs and the terminator.
func list(nameValues ...string) []byte {
	var b []byte
	for _, s := range nameValues {
		b = append(b, s...)
		b = append(b, 0)
	}
	return append(b, 0)
}

func saveEndpReq(ttl, label, prop string) []byte {
	return list("request", "save_endp", "ttl", ttl, "label", label, "property", prop)
}
func findEndpReq(label string) []byte { return list("request", "find_endp", "label", label) }
func saveDestReq(ttl, label, prop, endp string) []byte {
	return list("request", "save_dest", "ttl", ttl, "label", label, "property", prop, "label", endp)
}
func findDestReq(label string) []byte { return list("request", "find_dest", "label", label) }

var (
	greeting   = list("protocol", "connection_cache_protocol")
	dummy      = list("dummy", "")
	statusOK   = list("status", "0")
	statusBad  = list("status", "1")
	statusFail = list("status", "2")
	endpMiss   = list("status", "2", "property", "")
)

func endpHit(prop string) []byte { return list("status", "0", "property", prop) }
func destHit(dprop, eprop string) []byte {
	return list("status", "0", "property", dprop, "property", eprop)
}
func cat(parts ...[]byte) []byte       { return bytes.Join(parts, nil) }
func show(b []byte) string             { return strings.ReplaceAll(strconv.Quote(string(b)), `\x00`, "^@") }
func showShort(b []byte, n int) string { return show(b[:min(len(b), n)]) + ellipsis(len(b) > n) }
func ellipsis(more bool) string        { return map[bool]string{false: "", true: "..."}[more] }
func isClosedErr(err error) bool       { return errors.Is(err, io.EOF) || isResetErr(err) }
func isResetErr(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EAGAIN)
}
func ms(d time.Duration) string              { return d.Round(time.Millisecond).String() }
func boolWord(b bool, yes, no string) string { return map[bool]string{true: yes, false: no}[b] }

var labelSeq atomic.Int64

// uniq returns a label nobody else uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), labelSeq.Add(1))
}

// ---- descriptors ----

// pair is a socketpair standing for an SMTP connection: near is cached,
// far stays with the test and tells whether near is still open somewhere.
type pair struct{ near, far int }

func newPair(t testing.TB) pair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pair{fds[0], fds[1]}
}

// mkPair is newPair for goroutines that must not call t.Fatal.
func mkPair() (pair, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return pair{-1, -1}, err
	}
	return pair{fds[0], fds[1]}, nil
}

var tokenSeq atomic.Int64

// is proves that fd is p's near end: a unique token written through fd
// arrives at p.far.
func (p pair) is(fd int) error {
	tok := fmt.Sprintf("tok%d.", tokenSeq.Add(1))
	if _, err := unix.Write(fd, []byte(tok)); err != nil {
		return fmt.Errorf("write through the returned descriptor: %w", err)
	}
	buf := make([]byte, 64)
	n, err := readTimeout(p.far, buf, 2*time.Second)
	if err != nil || string(buf[:n]) != tok {
		return fmt.Errorf("not the saved session: its far end read %q (%v), want %q", buf[:max(n, 0)], err, tok)
	}
	return nil
}

// farEOF waits up to d for p.far to read EOF: every copy of p.near is
// closed. Bytes read before the EOF are an error.
func (p pair) farEOF(d time.Duration) error {
	buf := make([]byte, 256)
	n, err := readTimeout(p.far, buf, d)
	switch {
	case err != nil && isTimeout(err):
		return fmt.Errorf("far end still open after %v: the session was not closed", d)
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("far end: %w", err)
	case n > 0:
		return fmt.Errorf("far end read %q instead of EOF", buf[:n])
	}
	return nil
}

// close closes what is left of p. A pointer receiver: a deferred close
// must see the near end given away (set to -1) after the defer.
func (p *pair) close() {
	if p.near >= 0 {
		unix.Close(p.near)
		p.near = -1
	}
	if p.far >= 0 {
		unix.Close(p.far)
		p.far = -1
	}
}

// readTimeout reads from fd with poll(2) as the deadline (fd may be
// blocking or not).
func readTimeout(fd int, buf []byte, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		m, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return m, err
	}
}

// countFDs counts the open descriptors of process pid.
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// listFDs describes the descriptors of pid, for evidence.
func listFDs(pid int) string {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err.Error()
	}
	kinds := map[string]int{}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		if i := strings.Index(l, ":["); i >= 0 {
			l = l[:i]
		}
		kinds[l]++
	}
	return fmt.Sprint(kinds)
}

// waitFDs polls pid's descriptor count until it is want or d passed, and
// returns the last count.
func waitFDs(pid, want int, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		n, err := countFDs(pid)
		if err != nil || n == want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ident is what fstat says about a descriptor.
type ident struct {
	dev, ino, rdev uint64
	mode           uint32
}

func fstatIdent(fd int) (ident, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ident{}, err
	}
	return ident{st.Dev, st.Ino, st.Rdev, st.Mode}, nil
}

func getfl(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0) }

// sameFile reports whether a and b are the same open file description
// (kcmp(2) KCMP_FILE); ok is false when the kernel cannot tell.
func sameFile(a, b int) (same, ok bool) {
	pid := uintptr(os.Getpid())
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, pid, pid, 0 /* KCMP_FILE */, uintptr(a), uintptr(b), 0)
	if errno != 0 {
		return false, false
	}
	return r == 0, true
}

// ---- a raw client ----

// raw is a client connection driven byte by byte. Reads go through
// recvmsg() with room for descriptors, never past the bytes asked for;
// descriptors that arrive are kept in order in fds.
type raw struct {
	uc  *net.UnixConn
	fds []int
}

// dialRaw connects without reading the greeting.
func dialRaw(path string) (*raw, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &raw{uc: c.(*net.UnixConn)}, nil
}

// dialGreeted connects and reads the greeting.
func dialGreeted(path string) (*raw, error) {
	r, err := dialRaw(path)
	if err != nil {
		return nil, err
	}
	if err := r.expect(greeting, 5*time.Second); err != nil {
		r.close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return r, nil
}

func (r *raw) close() {
	r.uc.Close()
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds = nil
}

func (r *raw) send(parts ...[]byte) error {
	r.uc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.uc.Write(cat(parts...))
	return err
}

// sendFDs writes b with descriptors attached, in one sendmsg().
func (r *raw) sendFDs(b []byte, fds ...int) error {
	r.uc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := r.uc.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads up to len(buf) bytes; descriptors are appended to r.fds.
func (r *raw) recv(buf []byte, d time.Duration) (int, error) {
	r.uc.SetReadDeadline(time.Now().Add(d))
	oob := make([]byte, unix.CmsgSpace(4*256))
	n, oobn, _, _, err := r.uc.ReadMsgUnix(buf, oob)
	n = max(n, 0)
	if oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if fds, err := unix.ParseUnixRights(&m); err == nil {
					r.fds = append(r.fds, fds...)
				}
			}
		}
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// readN reads exactly n bytes (fewer on error).
func (r *raw) readN(n int, d time.Duration) ([]byte, error) {
	buf := make([]byte, n)
	got := 0
	deadline := time.Now().Add(d)
	for got < n {
		m, err := r.recv(buf[got:], time.Until(deadline))
		got += m
		if err != nil {
			return buf[:got], err
		}
	}
	return buf, nil
}

// expect reads exactly len(want) bytes and compares them.
func (r *raw) expect(want []byte, d time.Duration) error {
	got, err := r.readN(len(want), d)
	if err != nil {
		if len(got) > 0 && errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: EOF inside the reply after %s, want %s", io.ErrUnexpectedEOF, show(got), show(want))
		}
		return fmt.Errorf("reading %s: got %s: %w", show(want), show(got), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("got %s, want %s", show(got), show(want))
	}
	return nil
}

// recvFD reads the one byte that carries a handed-out descriptor.
func (r *raw) recvFD(d time.Duration) (int, error) {
	before := len(r.fds)
	b, err := r.readN(1, d)
	if err != nil {
		return -1, err
	}
	if b[0] != 0 || len(r.fds) != before+1 {
		return -1, fmt.Errorf("descriptor byte %q came with %d descriptors", b, len(r.fds)-before)
	}
	fd := r.fds[before]
	r.fds = r.fds[:before]
	return fd, nil
}

// readToEOF reads until EOF (or d), returning the bytes.
func (r *raw) readToEOF(d time.Duration) ([]byte, error) {
	var out []byte
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(d)
	for {
		n, err := r.recv(buf, time.Until(deadline))
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return out, nil
			}
			return out, err
		}
	}
}

// request sends req and expects reply.
func (r *raw) request(req, reply []byte) error {
	if err := r.send(req); err != nil {
		return err
	}
	return r.expect(reply, 5*time.Second)
}

// takeFD runs the hand-out after a find hit's reply: dummy, descriptor,
// dummy.
func (r *raw) takeFD() (int, error) {
	if err := r.send(dummy); err != nil {
		return -1, err
	}
	fd, err := r.recvFD(5 * time.Second)
	if err != nil {
		return -1, err
	}
	return fd, r.send(dummy)
}

// ---- reply stream validation ----

// validReplies checks that b, what a server said to a client (descriptor
// bytes removed), is a sequence of well-formed replies: the greeting
// first, then dummies and status lists (status 0, 1 or 2 with at most two
// properties). It returns how many lists of each kind it saw.
func validReplies(b []byte) (map[string]int, error) {
	seen := map[string]int{}
	if !bytes.HasPrefix(b, greeting) {
		return seen, fmt.Errorf("no greeting: %s", showShort(b, 80))
	}
	b = b[len(greeting):]
	for len(b) > 0 {
		var strs []string
		for {
			i := bytes.IndexByte(b, 0)
			if i < 0 {
				return seen, fmt.Errorf("reply stream ends inside a string: %s", showShort(b, 80))
			}
			s := string(b[:i])
			b = b[i+1:]
			if s == "" && len(strs)%2 == 0 {
				break
			}
			strs = append(strs, s)
		}
		switch {
		case len(strs) == 2 && strs[0] == "dummy" && strs[1] == "":
			seen["dummy"]++
		case len(strs) >= 2 && len(strs) <= 6 && strs[0] == "status" && (strs[1] == "0" || strs[1] == "1" || strs[1] == "2"):
			for i := 2; i < len(strs); i += 2 {
				if strs[i] != "property" {
					return seen, fmt.Errorf("malformed reply %q", strs)
				}
			}
			seen["status"+strs[1]]++
		default:
			return seen, fmt.Errorf("not a reply: %q", strs)
		}
	}
	return seen, nil
}
