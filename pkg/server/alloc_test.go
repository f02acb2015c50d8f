package server

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// Labels and properties as smtp(8) sends them
// (/work/shared/reference/postfix-smtp-traffic.txt).
const (
	allocEndpLabel = "smtp\n127.0.0.1\n2525\n0\n"
	allocEndpProp  = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
	allocDestLabel = "smtp\n[127.0.0.1]:2525\n"
	allocDestProp  = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
)

func allocWire(nameValues ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(nameValues); i += 2 {
		b = protocol.AppendAttr(b, nameValues[i], nameValues[i+1])
	}
	return protocol.AppendEnd(b)
}

// rawClient is a client that allocates nothing per request: blocking
// system calls on its end of a socketpair, canned requests and replies.
// The allocations counted while it talks to the server are the server's.
type rawClient struct {
	tb      testing.TB
	fd      int    // our end
	session int    // the descriptor we cache (the server gets copies)
	rights  []byte // SCM_RIGHTS of session
	buf     []byte
	oob     []byte
	one     []byte
	msg     unix.Msghdr
	iov     unix.Iovec

	saveEndp, saveDest, findEndp, findDest, findEndpMiss, findDestMiss []byte
	dummy, statusOK, endpHit, destHit, endpMiss, destMiss, dummyReply  []byte
}

// startRawClient starts s serving one end of a socketpair and returns a
// raw client on the other, greeted.
func startRawClient(tb testing.TB, s *Server) *rawClient {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "server end")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveClient(nc.(*net.UnixConn))
	}()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		tb.Fatal(err)
	}
	c := &rawClient{
		tb: tb, fd: fds[0], session: p[1],
		rights: unix.UnixRights(p[1]),
		buf:    make([]byte, 4096),
		oob:    make([]byte, unix.CmsgSpace(4*4)),
		one:    []byte{0},

		saveEndp:     allocWire("request", "save_endp", "ttl", "2", "label", allocEndpLabel, "property", allocEndpProp),
		saveDest:     allocWire("request", "save_dest", "ttl", "2", "label", allocDestLabel, "property", allocDestProp, "label", allocEndpLabel),
		findEndp:     allocWire("request", "find_endp", "label", allocEndpLabel),
		findDest:     allocWire("request", "find_dest", "label", allocDestLabel),
		findEndpMiss: allocWire("request", "find_endp", "label", "smtp\n192.0.2.1\n25\n0\n"),
		findDestMiss: allocWire("request", "find_dest", "label", "smtp\n[nowhere.example]:25\n"),
		dummy:        allocWire("dummy", ""),
		dummyReply:   allocWire("dummy", ""),
		statusOK:     allocWire("status", "0"),
		endpHit:      allocWire("status", "0", "property", allocEndpProp),
		destHit:      allocWire("status", "0", "property", allocDestProp, "property", allocEndpProp),
		endpMiss:     allocWire("status", "2", "property", ""),
		destMiss:     allocWire("status", "2", "property", "", "property", ""),
	}
	tb.Cleanup(func() {
		unix.Close(c.fd)
		<-done
		unix.Close(p[0])
		unix.Close(p[1])
	})
	c.expect(allocWire("protocol", "connection_cache_protocol"))
	return c
}

func (c *rawClient) send(b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		if err != nil {
			c.tb.Fatal(err)
		}
		b = b[n:]
	}
}

// expect reads exactly len(want) bytes and checks them.
func (c *rawClient) expect(want []byte) {
	got := c.buf[:len(want)]
	for n := 0; n < len(want); {
		m, err := unix.Read(c.fd, got[n:])
		if err != nil || m == 0 {
			c.tb.Fatalf("read: %d, %v", m, err)
		}
		n += m
	}
	if !bytes.Equal(got, want) {
		c.tb.Fatalf("got %q, want %q", got, want)
	}
}

func (c *rawClient) sendFD() {
	if err := unix.Sendmsg(c.fd, c.one, c.rights, nil, 0); err != nil {
		c.tb.Fatal(err)
	}
}

func (c *rawClient) recvFD() {
	// unix.Recvmsg allocates (its sockaddr escapes): call it raw.
	c.iov.Base, c.iov.Len = &c.buf[0], 1
	c.msg.Iov, c.msg.Iovlen = &c.iov, 1
	c.msg.Control = &c.oob[0]
	c.msg.SetControllen(len(c.oob))
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.msg)), 0)
	if errno != 0 || n != 1 || int(c.msg.Controllen) < unix.CmsgLen(4) {
		c.tb.Fatalf("recvmsg: %d, %d, %v", n, c.msg.Controllen, errno)
	}
	fd := int(int32(binary.NativeEndian.Uint32(c.oob[unix.CmsgLen(0):])))
	unix.Close(fd)
}

// The exchanges, as smtp(8) makes them.
func (c *rawClient) doSaveEndp() {
	c.send(c.saveEndp)
	c.expect(c.dummyReply)
	c.sendFD()
	c.expect(c.statusOK)
}

func (c *rawClient) doSaveDest() {
	c.send(c.saveDest)
	c.expect(c.statusOK)
}

// findHit: the request, the found reply, a dummy, the descriptor, and the
// client's last dummy.
func (c *rawClient) findHit(req, found []byte) {
	c.send(req)
	c.expect(found)
	c.send(c.dummy)
	c.recvFD()
	c.send(c.dummy)
}

func (c *rawClient) doFindEndpHit() { c.findHit(c.findEndp, c.endpHit) }

func (c *rawClient) doFindDestHit() { c.findHit(c.findDest, c.destHit) }

func (c *rawClient) doFindEndpMiss() {
	c.send(c.findEndpMiss)
	c.expect(c.endpMiss)
}

func (c *rawClient) doFindDestMiss() {
	c.send(c.findDestMiss)
	c.expect(c.destMiss)
}

// allocExchanges are the request types measured end to end. A find hit
// ends with the client's last dummy, which has no reply, so it is measured
// together with the save_endp that puts the session back, and followed by a
// miss, whose reply shows that the server is done with the hit.
var allocExchanges = []struct {
	name string
	run  func(c *rawClient)
	// want is the server's allocations per exchange in the steady state.
	want float64
}{
	{"find_dest_miss", (*rawClient).doFindDestMiss, 0},
	{"find_endp_miss", (*rawClient).doFindEndpMiss, 0},
	{"save_dest_refresh", (*rawClient).doSaveDest, 0},
	{"save_endp+find_endp_hit+find_endp_miss", func(c *rawClient) { c.doSaveEndp(); c.doFindEndpHit(); c.doFindEndpMiss() }, 0},
	{"save_endp+save_dest+find_dest_hit+find_endp_miss", func(c *rawClient) {
		c.doSaveEndp()
		c.doSaveDest()
		c.doFindDestHit()
		c.doFindEndpMiss()
	}, 0},
}

func newAllocServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(Config{Log: &memLog{}, MaxIdle: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeFDs(s.cache.Drain(nil)) })
	return s
}

// BenchmarkServeAllocs measures the server's handling of each request
// type end to end over a real socketpair, descriptor passing included,
// with a client that allocates nothing: allocs/op are the server's.
func BenchmarkServeAllocs(b *testing.B) {
	for _, x := range allocExchanges {
		b.Run(x.name, func(b *testing.B) {
			c := startRawClient(b, newAllocServer(b))
			for range 100 {
				x.run(c)
			}
			b.ReportAllocs()
			for b.Loop() {
				x.run(c)
			}
		})
	}
}

// TestServeAllocs asserts the server's allocations per request type (a
// count, not a timing).
func TestServeAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, x := range allocExchanges {
		t.Run(x.name, func(t *testing.T) {
			c := startRawClient(t, newAllocServer(t))
			for range 100 {
				x.run(c)
			}
			if got := testing.AllocsPerRun(500, func() { x.run(c) }); got != x.want {
				t.Errorf("%v allocations per exchange, want %v", got, x.want)
			}
		})
	}
}
