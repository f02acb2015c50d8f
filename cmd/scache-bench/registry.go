package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A session is one simulated SMTP connection: a socketpair whose "client"
// end travels through the cache server (saved, handed out, saved again)
// while the generator keeps the other end. The kept end identifies the
// session: writing through a descriptor the server handed out must come
// out there, and when the server closes the last copy of the travelling
// end (expiry), the kept end sees a hang-up.
type session struct {
	ino  uint64 // inode of the travelling end: its identity
	kept int    // the generator's end; -1 once closed

	// Guarded by the registry shard's lock.
	state    sessionState
	endp     int    // endpoint index it was last saved under
	gen      uint32 // bumped at every save, so stale sweep entries are recognised
	deadline int64  // monotonic ns of the last save's expiry
}

type sessionState uint8

const (
	inHand sessionState = iota // a client holds the travelling end
	saved                      // the server holds the only copy
	gone                       // closed and forgotten
)

// Identity failures: a descriptor handed out by the server that is not
// what the generator saved under that label.
var (
	errUnknownFD  = errors.New("descriptor was never saved (unknown inode)")
	errTwice      = errors.New("descriptor handed out twice (it is not in the server's hands)")
	errWrongLabel = errors.New("descriptor was saved under another endpoint label")
	errNotSocket  = errors.New("descriptor is not a socket")
	errVerify     = errors.New("bytes written through the descriptor did not come out at the kept end")
)

const regShards = 64

// registry knows every session the generator created and has not closed,
// by inode. It is safe for concurrent use.
type registry struct {
	shards [regShards]struct {
		mu sync.Mutex
		m  map[uint64]*session
		_  [40]byte
	}
	live  atomic.Int64 // sessions not yet closed
	acct  accounting   // -account, account.go
	start time.Time    // base of the monotonic deadlines
}

func newRegistry() *registry {
	r := &registry{start: time.Now()}
	for i := range r.shards {
		r.shards[i].m = make(map[uint64]*session)
	}
	return r
}

// mono returns the time in nanoseconds since the registry started.
func (r *registry) mono() int64 { return int64(time.Since(r.start)) }

func (r *registry) shard(ino uint64) *struct {
	mu sync.Mutex
	m  map[uint64]*session
	_  [40]byte
} {
	return &r.shards[ino%regShards]
}

// inode returns the inode of fd, and whether it is a socket.
func inode(fd int) (uint64, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, fmt.Errorf("fstat: %w", err)
	}
	return st.Ino, st.Mode&unix.S_IFMT == unix.S_IFSOCK, nil
}

// create opens a new connection: it returns the travelling end, which the
// caller owns (and closes after saving it), and the session, in hand.
func (r *registry) create() (int, *session, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	ino, _, err := inode(fds[0])
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return -1, nil, err
	}
	s := &session{ino: ino, kept: fds[1], state: inHand, endp: -1}
	sh := r.shard(ino)
	sh.mu.Lock()
	sh.m[ino] = s
	sh.mu.Unlock()
	r.live.Add(1)
	return fds[0], s, nil
}

// take checks a descriptor the server handed out for endpoint index endp
// (any endpoint when endp < 0) and marks its session in hand. On
// errWrongLabel the session is still returned, in hand: the descriptor is
// ours, only misfiled. On any other error the caller closes fd.
func (r *registry) take(fd int, endp int) (*session, error) {
	ino, sock, err := inode(fd)
	if err != nil {
		return nil, err
	}
	if !sock {
		return nil, errNotSocket
	}
	sh := r.shard(ino)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[ino]
	switch {
	case s == nil:
		return nil, errUnknownFD
	case s.state != saved:
		return nil, errTwice
	}
	s.state = inHand
	r.acct.handedBack.Add(1)
	if endp >= 0 && s.endp != endp {
		return s, errWrongLabel
	}
	return s, nil
}

// saving records that the session is about to be saved under endpoint
// index endp with the given deadline; it returns the generation of this
// save for the sweep queue. Called before the descriptor is sent: the
// server may hand it to another client before our save_endp returns.
func (r *registry) saving(s *session, endp int, deadline int64) uint32 {
	sh := r.shard(s.ino)
	sh.mu.Lock()
	s.state = saved
	s.endp = endp
	s.gen++
	s.deadline = deadline
	g := s.gen
	sh.mu.Unlock()
	r.acct.saves.Add(1)
	return g
}

// drop forgets a session that is in hand and closes its kept end (the
// caller closes the travelling end).
func (r *registry) drop(s *session) {
	sh := r.shard(s.ino)
	sh.mu.Lock()
	if s.state == gone {
		sh.mu.Unlock()
		return
	}
	s.state = gone
	delete(sh.m, s.ino)
	sh.mu.Unlock()
	unix.Close(s.kept)
	s.kept = -1
	r.live.Add(-1)
}

// current reports whether the save of generation gen is still the
// session's latest state (saved, not taken since).
func (r *registry) current(s *session, gen uint32) bool {
	sh := r.shard(s.ino)
	sh.mu.Lock()
	ok := s.state == saved && s.gen == gen
	sh.mu.Unlock()
	return ok
}

// closedByServer forgets a saved session whose kept end saw the hang-up:
// the server closed the last copy. It reports false if the session
// changed meanwhile.
func (r *registry) closedByServer(s *session, gen uint32) bool {
	sh := r.shard(s.ino)
	sh.mu.Lock()
	if s.state != saved || s.gen != gen {
		sh.mu.Unlock()
		return false
	}
	s.state = gone
	delete(sh.m, s.ino)
	sh.mu.Unlock()
	unix.Close(s.kept)
	s.kept = -1
	r.live.Add(-1)
	r.acct.closed.Add(1)
	return true
}

// closeAll closes every session still known (end of a run) and returns how
// many there were.
func (r *registry) closeAll() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for ino, s := range sh.m {
			unix.Close(s.kept)
			s.kept = -1
			s.state = gone
			delete(sh.m, ino)
			n++
		}
		sh.mu.Unlock()
	}
	r.live.Add(-int64(n))
	return n
}

// verify writes a token through fd and checks that it comes out at the
// session's kept end.
func verify(fd int, s *session, token uint64) error {
	var out, in [8]byte
	binary.LittleEndian.PutUint64(out[:], token)
	if n, err := unix.Write(fd, out[:]); err != nil || n != len(out) {
		return fmt.Errorf("%w: write: %d, %v", errVerify, n, err)
	}
	got := 0
	for got < len(in) {
		pfd := []unix.PollFd{{Fd: int32(s.kept), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 1000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("%w: nothing arrived at the kept end (%v)", errVerify, err)
		}
		m, err := unix.Read(s.kept, in[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			return fmt.Errorf("%w: read: %d, %v", errVerify, m, err)
		}
		got += m
	}
	if in != out {
		return fmt.Errorf("%w: got %x, want %x", errVerify, in, out)
	}
	return nil
}

// nonblocking reports whether fd has O_NONBLOCK set: a server that wraps
// cached descriptors in Go's poller would leak that flag to the next
// smtp(8) process.
func nonblocking(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_NONBLOCK != 0
}

// sweepEntry is one save whose expiry the generator watches for.
type sweepEntry struct {
	s        *session
	gen      uint32
	deadline int64
}

// sweeper watches the kept ends of the sessions one client saved, in save
// order, and forgets those the server closed. Not safe for concurrent use.
type sweeper struct {
	q    []sweepEntry
	head int
	pfd  []unix.PollFd
	idx  []int
	last int64
}

const sweepBatch = 512

func (w *sweeper) push(e sweepEntry) { w.q = append(w.q, e) }

func (w *sweeper) pending() int { return len(w.q) - w.head }

// sweep polls the kept ends of due saves (deadline before now-grace; all
// when grace < 0) and forgets the sessions the server closed, calling
// closed with each one's lag behind its deadline. Saves that are due but
// still open stay queued and are polled again at the next sweep.
func (w *sweeper) sweep(r *registry, now, grace int64, closed func(lag int64)) {
	w.last = now
	i, due := w.head, true
	for due && i < len(w.q) {
		w.pfd, w.idx = w.pfd[:0], w.idx[:0]
		for ; i < len(w.q) && len(w.pfd) < sweepBatch; i++ {
			e := w.q[i]
			if grace >= 0 && e.deadline > now-grace {
				due = false
				break
			}
			if e.s == nil {
				continue
			}
			if !r.current(e.s, e.gen) {
				w.q[i].s = nil // taken again since; a later entry watches it
				continue
			}
			w.pfd = append(w.pfd, unix.PollFd{Fd: int32(e.s.kept), Events: unix.POLLRDHUP})
			w.idx = append(w.idx, i)
		}
		if len(w.pfd) == 0 {
			continue
		}
		n, err := unix.Poll(w.pfd, 0)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("poll: %v", err))
		}
		if n <= 0 {
			continue
		}
		for j, p := range w.pfd {
			if p.Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) == 0 {
				continue
			}
			e := &w.q[w.idx[j]]
			if r.closedByServer(e.s, e.gen) && closed != nil {
				closed(now - e.deadline)
			}
			e.s = nil
		}
	}
	// Drop the finished prefix.
	for w.head < len(w.q) && w.q[w.head].s == nil {
		w.q[w.head] = sweepEntry{}
		w.head++
	}
	if w.head == len(w.q) {
		w.q, w.head = w.q[:0], 0
	} else if w.head > 4096 && w.head*2 > len(w.q) {
		n := copy(w.q, w.q[w.head:])
		clear(w.q[n:])
		w.q, w.head = w.q[:n], 0
	}
}
