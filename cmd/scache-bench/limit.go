package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The limit server is a mirror of a cache server with no cache and no
// logic: for each request it makes the system calls scached makes (one
// recvmsg per read, one write per reply, one sendmsg per descriptor handed
// out, a close of its copy afterwards) and answers with canned bytes of
// the sizes the generator's own properties give. Descriptors that clients
// save go into a ring; a find takes the oldest one, so every descriptor
// handed out is one that was saved (by any client: run the generator with
// -limit, which checks identity by inode only). Whether a find hits is
// drawn with the probabilities given, so that the mix of requests and
// descriptor transfers equals that of a real server's run; a find that
// draws a hit on an empty ring misses. A full ring closes its oldest
// descriptor, as a real server closes an expired session.
//
// What the limit mode measures, then, is what this machine can do for the
// same message pattern through the same kernel paths and the same Go
// runtime (goroutine per client, netpoller), with the cache server's own
// work taken out.
type limitServer struct {
	hitDest, hitEndp float64

	mu   sync.Mutex
	ring []int // FIFO of saved descriptors
	head int
	n    int
}

// Canned replies, byte for byte what a scache server sends (see
// postfix-scache-protocol.md §3–4).
var (
	lGreeting   = []byte("protocol\x00connection_cache_protocol\x00\x00")
	lDummy      = []byte("dummy\x00\x00\x00")
	lStatusOK   = []byte("status\x000\x00\x00")
	lStatusNoFD = []byte("status\x002\x00\x00")
	lStatusBad  = []byte("status\x001\x00\x00")
	lEndpHit    = []byte("status\x000\x00property\x00" + endpProp + "\x00\x00")
	lDestHit    = []byte("status\x000\x00property\x00" + destProp + "\x00property\x00" + endpProp + "\x00\x00")
	lEndpMiss   = []byte("status\x002\x00property\x00\x00\x00")
	lDestMiss   = []byte("status\x002\x00property\x00\x00property\x00\x00\x00")
)

func newLimitServer(hitDest, hitEndp float64, ring int) *limitServer {
	return &limitServer{hitDest: hitDest, hitEndp: hitEndp, ring: make([]int, max(ring, 1))}
}

func (s *limitServer) push(fd int) {
	s.mu.Lock()
	var old = -1
	if s.n == len(s.ring) {
		old = s.ring[s.head]
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
	s.ring[(s.head+s.n)%len(s.ring)] = fd
	s.n++
	s.mu.Unlock()
	if old >= 0 {
		unix.Close(old)
	}
}

func (s *limitServer) pop() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return -1
	}
	fd := s.ring[s.head]
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	return fd
}

// closeAll closes the descriptors in the ring.
func (s *limitServer) closeAll() {
	for fd := s.pop(); fd >= 0; fd = s.pop() {
		unix.Close(fd)
	}
}

// serve accepts clients on ln until it is closed, then disconnects them
// and waits for their goroutines.
func (s *limitServer) serve(ln *net.UnixListener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[*net.UnixConn]bool{}
	defer func() {
		mu.Lock()
		for uc := range conns {
			uc.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		uc, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[uc] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, uc)
				mu.Unlock()
				uc.Close()
			}()
			lc := &limitConn{s: s, uc: uc, rbuf: make([]byte, 4096), oob: make([]byte, unix.CmsgSpace(4*16)),
				rng: mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))}
			lc.serve()
		}()
	}
}

// limitConn is one client of the limit server.
type limitConn struct {
	s       *limitServer
	uc      *net.UnixConn
	rbuf    []byte
	r, w    int
	oob     []byte
	arrived []int // descriptors that came with the unread bytes
	out     []byte
	rng     *mrand.Rand
}

func (c *limitConn) serve() {
	defer func() {
		for _, fd := range c.arrived {
			unix.Close(fd)
		}
	}()
	c.out = append(c.out[:0], lGreeting...)
	for {
		name, err := c.readList()
		if err != nil {
			return
		}
		switch string(name) {
		case "save_endp":
			c.out = append(c.out, lDummy...)
			fd, err := c.recvFD()
			if err != nil {
				return
			}
			if fd < 0 {
				c.out = append(c.out, lStatusNoFD...)
				continue
			}
			c.s.push(fd)
			c.out = append(c.out, lStatusOK...)
		case "save_dest":
			c.out = append(c.out, lStatusOK...)
		case "find_endp", "find_dest":
			dest := name[5] == 'd'
			p, hit, miss := c.s.hitEndp, lEndpHit, lEndpMiss
			if dest {
				p, hit, miss = c.s.hitDest, lDestHit, lDestMiss
			}
			fd := -1
			if p >= 1 || c.rng.Float64() < p {
				fd = c.s.pop()
			}
			if fd < 0 {
				c.out = append(c.out, miss...)
				continue
			}
			c.out = append(c.out, hit...)
			err := c.handOut(fd)
			unix.Close(fd)
			if err != nil {
				return
			}
		default:
			c.out = append(c.out, lStatusBad...)
		}
	}
}

// handOut: the client's dummy, the descriptor, the client's dummy.
func (c *limitConn) handOut(fd int) error {
	if _, err := c.readList(); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if _, _, err := c.uc.WriteMsgUnix([]byte{0}, unix.UnixRights(fd), nil); err != nil {
		return err
	}
	_, err := c.readList()
	return err
}

func (c *limitConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.uc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// fill flushes the pending reply, then reads more input with one recvmsg.
func (c *limitConn) fill() error {
	if err := c.flush(); err != nil {
		return err
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else if c.w == len(c.rbuf) {
		if c.r > 0 {
			c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
			c.r = 0
		} else {
			c.rbuf = append(c.rbuf, make([]byte, len(c.rbuf))...)
		}
	}
	n, oobn, _, _, err := c.uc.ReadMsgUnix(c.rbuf[c.w:], c.oob)
	if oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn]); perr == nil {
			for _, m := range msgs {
				if fds, err := unix.ParseUnixRights(&m); err == nil {
					c.arrived = append(c.arrived, fds...)
				}
			}
		}
	}
	if n > 0 {
		c.w += n
		return nil
	}
	if err == nil {
		err = io.EOF
	}
	return err
}

// readList consumes one attribute list and returns the value of its first
// attribute (the request name of a request), valid until the next read.
func (c *limitConn) readList() ([]byte, error) {
	for {
		if first, end, ok := scanList(c.rbuf[c.r:c.w]); ok {
			c.r += end
			if len(c.arrived) > 0 {
				// Descriptors that came with attribute text: not ours to keep.
				for _, fd := range c.arrived {
					unix.Close(fd)
				}
				c.arrived = c.arrived[:0]
			}
			return first, nil
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// scanList finds a complete attribute list at the start of b: it returns
// the first attribute's value and the length of the list.
func scanList(b []byte) (first []byte, n int, ok bool) {
	name := true
	for i, k := 0, 0; ; k++ {
		j := bytes.IndexByte(b[i:], 0)
		if j < 0 {
			return nil, 0, false
		}
		if name && j == 0 {
			return first, i + 1, true
		}
		if k == 1 {
			first = b[i : i+j]
		}
		i += j + 1
		name = !name
	}
}

// recvFD consumes the byte that carries a saved descriptor; -1 if none
// came with it.
func (c *limitConn) recvFD() (int, error) {
	if c.r == c.w {
		if err := c.fill(); err != nil {
			return -1, err
		}
	}
	c.r++
	fd := -1
	if len(c.arrived) == 1 {
		fd = c.arrived[0]
	} else {
		for _, f := range c.arrived {
			unix.Close(f)
		}
	}
	c.arrived = c.arrived[:0]
	return fd, nil
}

// listenUnix creates a socket at path (replacing a stale one), mode 0666.
func listenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
