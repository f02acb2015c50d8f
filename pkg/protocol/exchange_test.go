package protocol

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkExchange runs whole exchanges between a ServerConn (with
// ipc_timeout's default, so with read and write deadlines) and a client
// Conn (no deadlines) in one goroutine over a socketpair: the client
// writes a request, the server reads it and answers, descriptors pass
// with sendmsg/recvmsg. Each read is one recvmsg, as in a server whose
// clients wait for every reply. Being single-threaded, it suits
// instruction counting (valgrind --tool=callgrind).
func BenchmarkExchange(b *testing.B) {
	const (
		endpLabel = "smtp\n127.0.0.1\n2525\n0\n"
		endpProp  = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
		destLabel = "smtp\n[127.0.0.1]:2525\n"
		destProp  = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
	)
	setup := func(b *testing.B) (*ServerConn, *Conn, int) {
		a, c := socketPair(b)
		sc := NewServerConn(NewConn(a, 3600*time.Second), "scache socket", 1<<20)
		sc.SetViews(true) // as the server reads requests
		r, w := pipePair(b)
		b.Cleanup(func() { unix.Close(r); unix.Close(w) })
		return sc, NewConn(c, 0), w
	}
	// sendRequest and sendDummy write at the client and read at the server.
	sendRequest := func(b *testing.B, sc *ServerConn, cl *Conn, req []byte) Request {
		cl.writeRaw(req)
		cl.Flush()
		r, err := sc.ReadRequest()
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	sendDummy := func(b *testing.B, sc *ServerConn, cl *Conn, dummy []byte) {
		cl.writeRaw(dummy)
		cl.Flush()
		if ok, _, err := sc.ReadDummy(); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	reply := func(b *testing.B, cl *Conn, n int) {
		for range n {
			if _, err := cl.readString(1 << 20); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("find_dest_miss", func(b *testing.B) {
		sc, cl, _ := setup(b)
		req := request("request", "find_dest", "label", destLabel)
		b.ReportAllocs()
		for b.Loop() {
			sendRequest(b, sc, cl, req)
			sc.WriteStatus(FindDest, StatusFail)
			sc.Flush()
			reply(b, cl, 7)
		}
	})
	b.Run("save_endp", func(b *testing.B) {
		sc, cl, fd := setup(b)
		req := request("request", "save_endp", "ttl", "2", "label", endpLabel, "property", endpProp)
		b.ReportAllocs()
		for b.Loop() {
			r := sendRequest(b, sc, cl, req)
			sc.KeepViews(&r) // as the server does before receiving the descriptor
			sc.WriteDummy()
			sc.Flush()
			reply(b, cl, 3)
			cl.SendFD(fd)
			got, err := sc.RecvFD()
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(got)
			sc.WriteStatus(SaveEndp, StatusOK)
			sc.Flush()
			reply(b, cl, 3)
		}
	})
	b.Run("find_dest_hit", func(b *testing.B) {
		sc, cl, fd := setup(b)
		req := request("request", "find_dest", "label", destLabel)
		dummy := request("dummy", "")
		b.ReportAllocs()
		for b.Loop() {
			sendRequest(b, sc, cl, req)
			sc.WriteFound(destProp, endpProp)
			sc.Flush()
			reply(b, cl, 7)
			sendDummy(b, sc, cl, dummy)
			if err := sc.SendFD(fd); err != nil {
				b.Fatal(err)
			}
			got, err := cl.RecvFD()
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(got)
			sendDummy(b, sc, cl, dummy)
		}
	})
}

// request renders an attribute list.
func request(nameValues ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(nameValues); i += 2 {
		b = AppendAttr(b, nameValues[i], nameValues[i+1])
	}
	return AppendEnd(b)
}
