package faults

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fdKind is a kind of descriptor a client might cache.
type fdKind struct {
	name string
	// noSetfl: fcntl(F_SETFL) is refused on it (O_PATH).
	noSetfl bool
	// make returns a new descriptor of the kind, a test that a
	// descriptor works as that one does (it may use the original, which
	// is still open), and a cleanup.
	make func(t *testing.T, g *group) (fd int, works func(got int) error, cleanup func())
}

func fdKinds() []fdKind {
	return []fdKind{
		{name: "UNIX stream socket (socketpair)", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			p := newPair(t)
			return p.near, func(got int) error { return p.is(got) }, func() { unix.Close(p.far) }
		}},
		{name: "UNIX socket whose peer closed", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			p := newPair(t)
			unix.Close(p.far)
			return p.near, func(got int) error {
				buf := make([]byte, 8)
				n, err := readTimeout(got, buf, time.Second)
				if n != 0 || err != nil {
					return fmt.Errorf("read %d bytes, %v; want EOF", n, err)
				}
				return nil
			}, func() {}
		}},
		{name: "UNIX datagram socket", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fds[0], func(got int) error { return pair{got, fds[1]}.is(got) }, func() { unix.Close(fds[1]) }
		}},
		{name: "pipe, write end", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fds := pipe(t)
			return fds[1], func(got int) error { return pair{got, fds[0]}.is(got) }, func() { unix.Close(fds[0]) }
		}},
		{name: "pipe, read end", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fds := pipe(t)
			return fds[0], func(got int) error {
				if _, err := unix.Write(fds[1], []byte("via-pipe")); err != nil {
					return err
				}
				buf := make([]byte, 16)
				n, err := readTimeout(got, buf, 2*time.Second)
				if err != nil || string(buf[:n]) != "via-pipe" {
					return fmt.Errorf("read %q %v", buf[:max(n, 0)], err)
				}
				return nil
			}, func() { unix.Close(fds[1]) }
		}},
		{name: "regular file (O_RDWR|O_APPEND)", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			path := filepath.Join(t.TempDir(), "session")
			fd, err := unix.Open(path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(fd, []byte("head;"))
			return fd, func(got int) error {
				if _, err := unix.Write(got, []byte("tail")); err != nil {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil || string(b) != "head;tail" {
					return fmt.Errorf("file holds %q %v", b, err)
				}
				return nil
			}, func() {}
		}},
		{name: "directory", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "entry"), nil, 0o600)
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error {
				var st unix.Stat_t
				return unix.Fstatat(got, "entry", &st, 0)
			}, func() {}
		}},
		{name: "O_PATH descriptor", noSetfl: true, make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.Open(t.TempDir(), unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error {
				var st unix.Stat_t
				return unix.Fstat(got, &st)
			}, func() {}
		}},
		{name: "character device /dev/null", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error {
				_, err := unix.Write(got, []byte("x"))
				return err
			}, func() {}
		}},
		{name: "memfd", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.MemfdCreate("session", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			unix.Write(fd, []byte("memfd-content"))
			return fd, func(got int) error {
				buf := make([]byte, 32)
				n, err := unix.Pread(got, buf, 0)
				if err != nil || string(buf[:n]) != "memfd-content" {
					return fmt.Errorf("pread %q %v", buf[:max(n, 0)], err)
				}
				return nil
			}, func() {}
		}},
		{name: "eventfd", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error {
				b := make([]byte, 8)
				binary.NativeEndian.PutUint64(b, 7)
				if _, err := unix.Write(got, b); err != nil {
					return err
				}
				if _, err := readTimeout(fd, b, time.Second); err != nil || binary.NativeEndian.Uint64(b) != 7 {
					return fmt.Errorf("eventfd read %v %v", b, err)
				}
				return nil
			}, func() {}
		}},
		{name: "epoll instance", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			ev, _ := unix.Eventfd(1, unix.EFD_CLOEXEC)
			return fd, func(got int) error {
				if err := unix.EpollCtl(got, unix.EPOLL_CTL_ADD, ev, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ev)}); err != nil {
					return err
				}
				evs := make([]unix.EpollEvent, 1)
				n, err := unix.EpollWait(fd, evs, 1000)
				if n != 1 || err != nil || evs[0].Fd != int32(ev) {
					return fmt.Errorf("epoll_wait on the original: %d %v", n, err)
				}
				return nil
			}, func() { unix.Close(ev) }
		}},
		{name: "TCP connection on 127.0.0.1", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fd := tcpConnect(t, ln.Addr().(*net.TCPAddr))
			peer, err := ln.Accept()
			ln.Close()
			if err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error {
				if _, err := unix.Write(got, []byte("over-tcp")); err != nil {
					return err
				}
				peer.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 16)
				n, err := peer.Read(buf)
				if err != nil || string(buf[:n]) != "over-tcp" {
					return fmt.Errorf("peer read %q %v", buf[:n], err)
				}
				return nil
			}, func() { peer.Close() }
		}},
		{name: "TCP listening socket on 127.0.0.1", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(fd, 8); err != nil {
				t.Fatal(err)
			}
			sa, _ := unix.Getsockname(fd)
			addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
			return fd, func(got int) error { return acceptsVia(got, "tcp", addr) }, func() {}
		}},
		{name: "UNIX listening socket", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "l")
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(fd, 8); err != nil {
				t.Fatal(err)
			}
			return fd, func(got int) error { return acceptsVia(got, "unix", path) }, func() {}
		}},
		{name: "a client connection to scached itself", make: func(t *testing.T, g *group) (int, func(int) error, func()) {
			fd, err := dialFD(g.d.path)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(greeting))
			if n, err := readTimeout(fd, buf, 2*time.Second); err != nil || n != len(buf) {
				t.Fatalf("greeting: %q %v", buf[:n], err)
			}
			return fd, func(got int) error {
				label := uniq("self")
				if _, err := unix.Write(got, findEndpReq(label)); err != nil {
					return err
				}
				buf := make([]byte, len(endpMiss))
				n, err := readTimeout(got, buf, 2*time.Second)
				if err != nil || !bytes.Equal(buf[:n], endpMiss) {
					return fmt.Errorf("request through the cached connection: %s %v", show(buf[:n]), err)
				}
				return nil
			}, func() {}
		}},
	}
}

func pipe(t *testing.T) [2]int {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return fds
}

// tcpConnect makes a connected TCP socket with system calls only (Go's
// net package would put it in non-blocking mode).
func tcpConnect(t *testing.T, a *net.TCPAddr) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatal(err)
	}
	return fd
}

// acceptsVia dials addr and accepts the connection through the listening
// descriptor got.
func acceptsVia(got int, network, addr string) error {
	if v, err := unix.GetsockoptInt(got, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return fmt.Errorf("SO_ACCEPTCONN = %d %v", v, err)
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	pfd := []unix.PollFd{{Fd: int32(got), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 2000); n != 1 || err != nil {
		return fmt.Errorf("no connection to accept: %d %v", n, err)
	}
	nfd, _, err := unix.Accept4(got, unix.SOCK_CLOEXEC)
	if err != nil {
		return err
	}
	unix.Close(nfd)
	return nil
}

// kindCase caches a descriptor of one kind, with O_NONBLOCK unset and set,
// found back by endpoint and by destination: what comes back is the same
// open file (fstat dev/ino/mode/rdev; kcmp where the kernel has it), its
// file status flags (F_GETFL) are the same as at the save and were not
// touched while it was cached, and it works as the original does.
func kindCase(k fdKind) fcase {
	return fcase{name: "descriptor kind: " + k.name, run: func(t *testing.T, g *group, rep *caseReport) {
		h := g.dial(t)
		defer h.Close()
		var flags []string
		kcmp := "kcmp n/a"
		for _, nonblock := range []bool{false, true} {
			if nonblock && k.noSetfl {
				continue
			}
			for _, byDest := range []bool{false, true} {
				what := fmt.Sprintf("O_NONBLOCK %s, %s", boolWord(nonblock, "set", "unset"), boolWord(byDest, "find_dest", "find_endp"))
				fd, works, cleanup := k.make(t, g)
				func() {
					defer cleanup()
					defer unix.Close(fd)
					if !k.noSetfl {
						if err := unix.SetNonblock(fd, nonblock); err != nil {
							t.Fatalf("%s: set O_NONBLOCK: %v", what, err)
						}
					}
					flBefore, err := getfl(fd)
					if err != nil {
						t.Fatal(err)
					}
					idBefore, err := fstatIdent(fd)
					if err != nil {
						t.Fatal(err)
					}
					E, D := uniq("kind-E"), uniq("kind-D")
					if st, err := h.SaveEndp(3600, E, "KP", fd); err != nil || st != 0 {
						t.Fatalf("%s: save_endp: %d %v", what, st, err)
					}
					// Cached: the open file is shared with the test's copy.
					if fl, _ := getfl(fd); fl != flBefore {
						t.Errorf("%s: flags changed while cached: %#x → %#x", what, flBefore, fl)
					}
					var st, got int
					var ep string
					if byDest {
						if s, err := h.SaveDest(3600, D, "KDP", E); err != nil || s != 0 {
							t.Fatalf("%s: save_dest: %d %v", what, s, err)
						}
						st, _, ep, got, err = h.FindDest(D)
					} else {
						st, ep, got, err = h.FindEndp(E)
					}
					if err != nil || st != 0 || ep != "KP" {
						t.Fatalf("%s: find: status %d property %q %v", what, st, ep, err)
					}
					defer unix.Close(got)
					idAfter, err := fstatIdent(got)
					if err != nil {
						t.Fatal(err)
					}
					if idAfter != idBefore {
						t.Errorf("%s: came back as another file: %+v, saved %+v", what, idAfter, idBefore)
					}
					if same, ok := sameFile(fd, got); ok {
						kcmp = "kcmp: same open file"
						if !same {
							t.Errorf("%s: kcmp: not the same open file description", what)
						}
					}
					flAfter, err := getfl(got)
					if err != nil {
						t.Fatal(err)
					}
					if flAfter != flBefore {
						t.Errorf("%s: F_GETFL %#x at the save, %#x when it came back", what, flBefore, flAfter)
					}
					if err := works(got); err != nil {
						t.Errorf("%s: the descriptor that came back does not work as the saved one: %v", what, err)
					}
					if err := miss(h, E); err != nil {
						t.Errorf("%s: %v", what, err)
					}
					flags = append(flags, fmt.Sprintf("%#x", flAfter))
				}()
			}
		}
		rep.addf("identity and F_GETFL kept (%v), found by endpoint and by destination; %s", flags, kcmp)
	}}
}

// unexpectedKindsCase sends a descriptor of every kind with request text:
// each must be closed at once (the descriptor count is checked after the
// case), and the requests answered as usual.
func unexpectedKindsCase() fcase {
	return fcase{name: "descriptor kind: every kind sent unasked, with request text", run: func(t *testing.T, g *group, rep *caseReport) {
		r, err := dialGreeted(g.d.path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		kinds := fdKinds()
		for _, k := range kinds {
			fd, _, cleanup := k.make(t, g)
			err := r.sendFDs(findEndpReq(uniq("unasked")), fd)
			unix.Close(fd)
			cleanup()
			if err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
			if err := r.expect(endpMiss, 5*time.Second); err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
		}
		rep.addf("%d kinds, each closed by the server", len(kinds))
	}}
}
