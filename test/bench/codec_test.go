package bench

import (
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// Real smtp(8) traffic (postfix-smtp-traffic.txt).
const (
	endpLabel = "smtp\n127.0.0.1\n2525\n0\n"
	endpProp  = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
	destLabel = "smtp\n[127.0.0.1]:2525\n"
	destProp  = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
)

func socketPair(b *testing.B) (*net.UnixConn, *net.UnixConn) {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	conv := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			b.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conv(fds[0]), conv(fds[1])
}

func request(nameValues ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(nameValues); i += 2 {
		b = protocol.AppendAttr(b, nameValues[i], nameValues[i+1])
	}
	return protocol.AppendEnd(b)
}

// BenchmarkReadRequest parses requests as the server does, from a socket a
// writer keeps full (so recvmsg is amortised over many requests). The
// strings a request carries are its only allocations: find_dest 1,
// save_endp 2, save_dest 3.
func BenchmarkReadRequest(b *testing.B) {
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"find_dest", request("request", "find_dest", "label", destLabel)},
		{"save_endp", request("request", "save_endp", "ttl", "2", "label", endpLabel, "property", endpProp)},
		{"save_dest", request("request", "save_dest", "ttl", "2", "label", destLabel, "property", destProp, "label", endpLabel)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, cli := socketPair(b)
			var chunk []byte
			for len(chunk) < 64<<10 {
				chunk = append(chunk, tc.req...)
			}
			go func() {
				for {
					if _, err := cli.Write(chunk); err != nil {
						return
					}
				}
			}()
			sc := protocol.NewServerConn(protocol.NewConn(srv, 0), "scache socket", 4<<20)
			b.SetBytes(int64(len(tc.req)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sc.ReadRequest(); err != nil {
					b.Fatal(err)
				}
			}
			cli.Close()
			srv.Close()
		})
	}
}

// BenchmarkWriteReply queues a reply and writes it (one write(2) each, to
// a socket a reader drains): no allocation.
func BenchmarkWriteReply(b *testing.B) {
	for _, tc := range []struct {
		name  string
		write func(*protocol.ServerConn)
	}{
		{"find_dest_hit", func(s *protocol.ServerConn) { s.WriteFound(destProp, endpProp) }},
		{"find_dest_miss", func(s *protocol.ServerConn) { s.WriteStatus(protocol.FindDest, protocol.StatusFail) }},
		{"status", func(s *protocol.ServerConn) { s.WriteStatus(protocol.SaveDest, protocol.StatusOK) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, cli := socketPair(b)
			go io.Copy(io.Discard, cli)
			sc := protocol.NewServerConn(protocol.NewConn(srv, 0), "scache socket", 4<<20)
			b.ReportAllocs()
			for b.Loop() {
				tc.write(sc)
				if err := sc.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			srv.Close()
			cli.Close()
		})
	}
}

// BenchmarkDescriptorPassing sends a descriptor with one NUL byte
// (SendFD, one sendmsg) and receives it (RecvFD, one recvmsg), then closes
// the received copy: the allocations are those of building and parsing
// the SCM_RIGHTS control message.
func BenchmarkDescriptorPassing(b *testing.B) {
	a, c := socketPair(b)
	defer a.Close()
	defer c.Close()
	sender, receiver := protocol.NewConn(a, 0), protocol.NewConn(c, 0)
	fd := int(os.Stdin.Fd())
	b.ReportAllocs()
	for b.Loop() {
		if err := sender.SendFD(fd); err != nil {
			b.Fatal(err)
		}
		got, err := receiver.RecvFD()
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(got)
	}
}

func BenchmarkParseNumber(b *testing.B) {
	v := []byte("3600")
	b.ReportAllocs()
	for b.Loop() {
		if n, ok := protocol.ParseNumber(v); !ok || n != 3600 {
			b.Fatal(n, ok)
		}
	}
}

func BenchmarkAppendFindDestReply(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendNumber(buf[:0], protocol.AttrStatus, 0)
		buf = protocol.AppendAttr(buf, protocol.AttrProperty, destProp)
		buf = protocol.AppendAttr(buf, protocol.AttrProperty, endpProp)
		buf = protocol.AppendEnd(buf)
	}
}
