package protocol

import (
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// serverOver returns a ServerConn reading what the test writes to the
// returned peer.
func serverOver(t *testing.T, limit int) (*ServerConn, *Conn) {
	a, b := socketPair(t)
	sc := NewServerConn(NewConn(a, 5*time.Second), "scache socket", limit)
	return sc, NewConn(b, 5*time.Second)
}

// parsed is a compact rendering of a Request for table tests.
func parsed(r Request) string {
	s := r.Type.String()
	if r.Type >= SaveEndp {
		if r.Valid {
			s += " valid"
		} else {
			s += " bad"
		}
	}
	if r.Valid {
		switch r.Type {
		case SaveEndp:
			s += " ttl=" + itoa(r.TTL) + " label=" + r.Label + " prop=" + r.Prop
		case SaveDest:
			s += " ttl=" + itoa(r.TTL) + " label=" + r.Label + " prop=" + r.Prop + " endp=" + r.EndpLabel
		default:
			s += " label=" + r.Label
		}
	}
	return s
}

func itoa(i int) string { return string(AppendNumber(nil, "", i)[1 : len(AppendNumber(nil, "", i))-1]) }

// TestReadRequest covers every row of the protocol reference's error
// matrix. Each input is written at once; the parser must produce the
// requests listed, in order, with Postfix's warnings, and then see EOF.
func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		want     []string
		warnings []string
	}{
		{"save_endp", "request^@save_endp^@ttl^@2^@label^@L^@property^@P^@^@",
			[]string{"save_endp valid ttl=2 label=L prop=P"}, nil},
		{"find_endp", "request^@find_endp^@label^@L^@^@", []string{"find_endp valid label=L"}, nil},
		{"save_dest", "request^@save_dest^@ttl^@2^@label^@D^@property^@DP^@label^@E^@^@",
			[]string{"save_dest valid ttl=2 label=D prop=DP endp=E"}, nil},
		{"find_dest", "request^@find_dest^@label^@D^@^@", []string{"find_dest valid label=D"}, nil},
		{"empty label and property", "request^@save_endp^@ttl^@1^@label^@^@property^@^@^@",
			[]string{"save_endp valid ttl=1 label= prop="}, nil},
		{"unknown request", "request^@FIND_ENDP^@label^@x^@^@", []string{"(unknown)"},
			[]string{`unrecognized request: "FIND_ENDP", ignored`}},
		{"unknown request trailing blank", "request^@find_endp ^@^@", []string{"(unknown)"},
			[]string{`unrecognized request: "find_endp ", ignored`}},
		{"unknown empty request", "request^@^@^@", []string{"(unknown)"},
			[]string{`unrecognized request: "", ignored`}},
		{"save_endp missing property", "request^@save_endp^@ttl^@2^@label^@L^@^@", []string{"save_endp bad"},
			[]string{"missing attribute property in input from scache socket"}},
		{"save_dest missing all", "request^@save_dest^@^@", []string{"save_dest bad"},
			[]string{"missing attribute ttl in input from scache socket"}},
		{"find_endp missing label", "request^@find_endp^@^@", []string{"find_endp bad"},
			[]string{"missing attribute label in input from scache socket"}},
		{"find_dest unexpected attr", "request^@find_dest^@lable^@D^@^@", []string{"find_dest bad"},
			[]string{"unexpected attribute lable from scache socket (expecting: label)"}},
		{"out of order", "request^@save_endp^@label^@L^@ttl^@2^@property^@P^@^@", []string{"save_endp bad"},
			[]string{"unexpected attribute label from scache socket (expecting: ttl)"}},
		{"extra attribute in the middle", "request^@find_endp^@foo^@bar^@label^@L^@^@", []string{"find_endp bad"},
			[]string{"unexpected attribute foo from scache socket (expecting: label)"}},
		{"extra attribute at the end is tolerated", "request^@find_endp^@label^@L^@foo^@bar^@^@",
			[]string{"find_endp valid label=L"},
			[]string{"unexpected attribute foo from scache socket (expecting: (list terminator))"}},
		{"ttl 0", "request^@save_endp^@ttl^@0^@label^@L^@property^@P^@^@", []string{"save_endp bad"}, nil},
		{"ttl -1", "request^@save_dest^@ttl^@-1^@label^@D^@property^@P^@label^@E^@^@", []string{"save_dest bad"}, nil},
		{"ttl 4294967296", "request^@save_endp^@ttl^@4294967296^@label^@L^@property^@P^@^@", []string{"save_endp bad"}, nil},
		{"ttl abc", "request^@save_endp^@ttl^@abc^@label^@L^@property^@P^@^@", []string{"save_endp bad"},
			[]string{"malformed numerical data from scache socket while reading input attribute value: abc"}},
		{"ttl empty", "request^@save_endp^@ttl^@^@label^@L^@property^@P^@^@", []string{"save_endp bad"},
			[]string{"malformed numerical data from scache socket while reading input attribute value: "}},
		{"ttl trailing blank", "request^@save_endp^@ttl^@1 ^@label^@L^@property^@P^@^@", []string{"save_endp bad"},
			[]string{"malformed numerical data from scache socket while reading input attribute value: 1 "}},
		{"ttl leading blank", "request^@save_endp^@ttl^@ 1^@label^@L^@property^@P^@^@",
			[]string{"save_endp valid ttl=1 label=L prop=P"}, nil},
		{"ttl 4294967297", "request^@save_endp^@ttl^@4294967297^@label^@L^@property^@P^@^@",
			[]string{"save_endp valid ttl=1 label=L prop=P"}, nil},
		{"first attribute not request", "foo^@bar^@^@", []string{"(none)", "(none)", "(none)"},
			[]string{"unexpected attribute foo from scache socket (expecting: request)",
				"unexpected attribute bar from scache socket (expecting: request)",
				"missing attribute request in input from scache socket"}},
		{"empty list", "^@", []string{"(none)"}, []string{"missing attribute request in input from scache socket"}},
		{"resync on request string", "label^@x^@request^@find_endp^@^@", []string{"(none)", "(none)", "find_endp bad"},
			[]string{"unexpected attribute label from scache socket (expecting: request)",
				"unexpected attribute x from scache socket (expecting: request)",
				"missing attribute label in input from scache socket"}},
		{"pipelined requests are all answered", "request^@find_endp^@label^@A^@^@request^@find_dest^@label^@B^@^@",
			[]string{"find_endp valid label=A", "find_dest valid label=B"}, nil},
		{"rest of a bad request is skipped, next kept",
			"request^@find_endp^@foo^@bar^@label^@L^@^@request^@find_endp^@label^@M^@^@",
			[]string{"find_endp bad", "find_endp valid label=M"},
			[]string{"unexpected attribute foo from scache socket (expecting: label)"}},
		{"stray dummy before a request", "dummy^@^@^@request^@find_endp^@label^@L^@^@",
			[]string{"(none)", "(none)", "(none)", "find_endp valid label=L"},
			[]string{"unexpected attribute dummy from scache socket (expecting: request)",
				"missing attribute request in input from scache socket",
				"missing attribute request in input from scache socket"}},
		{"label with an address is not logged", "user@example.com^@^@",
			[]string{"(none)", "(none)"},
			[]string{"unexpected attribute (16 bytes) from scache socket (expecting: request)",
				"missing attribute request in input from scache socket"}},
		{"binary safe", "request^@find_endp^@label^@\xff\x01\n\t é^@^@", []string{"find_endp valid label=\xff\x01\n\t é"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, peer := serverOver(t, 1<<20)
			peer.writeRaw(wire(tc.in))
			if err := peer.Flush(); err != nil {
				t.Fatal(err)
			}
			peer.UnixConn().CloseWrite()
			var got, warnings []string
			for {
				req, err := sc.ReadRequest()
				warnings = append(warnings, req.Warnings...)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatalf("ReadRequest: %v", err)
					}
					break
				}
				got = append(got, parsed(req))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("requests:\n got %q\nwant %q", got, tc.want)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tc.warnings)
			}
		})
	}
}

// A bad request answered before its rest arrived: the rest that comes
// later is read as new input, as Postfix does when it has discarded its
// buffer.
func TestReadRequestRestArrivesLater(t *testing.T) {
	sc, peer := serverOver(t, 1<<20)
	peer.writeRaw(wire("request^@find_endp^@foo^@"))
	peer.Flush()
	req, err := sc.ReadRequest()
	if err != nil || req.Type != FindEndp || req.Valid {
		t.Fatalf("got %v %v", parsed(req), err)
	}
	peer.writeRaw(wire("request^@find_endp^@label^@L^@^@"))
	peer.Flush()
	req, err = sc.ReadRequest()
	if err != nil || parsed(req) != "find_endp valid label=L" {
		t.Fatalf("got %v %v", parsed(req), err)
	}
}

// A stream that ends at a string boundary is io.EOF; one that ends inside a
// string is io.ErrUnexpectedEOF. Either way no request comes out.
func TestReadRequestEOF(t *testing.T) {
	for in, want := range map[string]error{
		"":                          io.EOF,
		"requ":                      io.ErrUnexpectedEOF,
		"request^@":                 io.EOF,
		"request^@find":             io.ErrUnexpectedEOF,
		"request^@find_endp^@label": io.ErrUnexpectedEOF,
		"request^@save_endp^@ttl^@2^@label^@L^@property^@P^@": io.EOF,
	} {
		sc, peer := serverOver(t, 1<<20)
		peer.writeRaw(wire(in))
		peer.Flush()
		peer.UnixConn().CloseWrite()
		if _, err := sc.ReadRequest(); err != want {
			t.Errorf("%q: got %v, want %v", in, err, want)
		}
	}
}

func TestReadRequestTooLarge(t *testing.T) {
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		in   string
		typ  RequestType
		want error
	}{
		{"request^@find_endp^@label^@" + big + "^@^@", FindEndp, ErrTooLarge},
		{"request^@find_dest^@label^@" + big, FindDest, ErrTooLarge},
		{big + "^@", NoRequest, ErrTooLarge},
		{"request^@save_dest^@ttl^@1^@label^@" + big[:2000] + "^@property^@" + big[:2000] + "^@label^@" + big[:2000] + "^@^@", SaveDest, ErrTooLarge},
	} {
		sc, peer := serverOver(t, 4096)
		go func() { peer.writeRaw(wire(tc.in)); peer.Flush() }()
		req, err := sc.ReadRequest()
		if !errors.Is(err, tc.want) || req.Type != tc.typ {
			t.Errorf("%.40q: got %v %v, want %v %v", tc.in, req.Type, err, tc.typ, tc.want)
		}
	}
	// Exactly at the limit is fine.
	sc, peer := serverOver(t, 4096)
	in := "request^@find_endp^@label^@"
	lbl := strings.Repeat("y", 4096-len(wire(in))-1-1)
	go func() { peer.writeRaw(wire(in + lbl + "^@^@")); peer.Flush() }()
	if req, err := sc.ReadRequest(); err != nil || req.Label != lbl {
		t.Errorf("request at the limit: %v", err)
	}
}

// Byte-exact goldens for every reply a server writes, from the protocol
// reference (verified on the wire against Postfix 3.7.11).
func TestReplyGoldens(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(s *ServerConn)
		want  string
	}{
		{"greeting", (*ServerConn).WriteGreeting, "protocol^@connection_cache_protocol^@^@"},
		{"dummy", (*ServerConn).WriteDummy, "dummy^@^@^@"},
		{"save_endp ok", func(s *ServerConn) { s.WriteStatus(SaveEndp, StatusOK) }, "status^@0^@^@"},
		{"save_endp bad", func(s *ServerConn) { s.WriteStatus(SaveEndp, StatusBad) }, "status^@1^@^@"},
		{"save_endp no fd", func(s *ServerConn) { s.WriteStatus(SaveEndp, StatusFail) }, "status^@2^@^@"},
		{"save_dest ok", func(s *ServerConn) { s.WriteStatus(SaveDest, StatusOK) }, "status^@0^@^@"},
		{"save_dest bad", func(s *ServerConn) { s.WriteStatus(SaveDest, StatusBad) }, "status^@1^@^@"},
		{"unknown", func(s *ServerConn) { s.WriteStatus(UnknownRequest, StatusBad) }, "status^@1^@^@"},
		{"find_endp miss", func(s *ServerConn) { s.WriteStatus(FindEndp, StatusFail) }, "status^@2^@property^@^@^@"},
		{"find_endp bad", func(s *ServerConn) { s.WriteStatus(FindEndp, StatusBad) }, "status^@1^@property^@^@^@"},
		{"find_dest miss", func(s *ServerConn) { s.WriteStatus(FindDest, StatusFail) }, "status^@2^@property^@^@property^@^@^@"},
		{"find_dest bad", func(s *ServerConn) { s.WriteStatus(FindDest, StatusBad) }, "status^@1^@property^@^@property^@^@^@"},
		{"find_endp hit", func(s *ServerConn) { s.WriteFound("tls_level=0\nreuse_count=0\n\n") },
			"status^@0^@property^@tls_level=0\nreuse_count=0\n\n^@^@"},
		{"find_dest hit", func(s *ServerConn) { s.WriteFound("destination=[127.0.0.1]:2525\n\n", "tls_level=0\n\n") },
			"status^@0^@property^@destination=[127.0.0.1]:2525\n\n^@property^@tls_level=0\n\n^@^@"},
	} {
		sc, _ := serverOver(t, 1<<20)
		tc.write(sc)
		if got := unwire(sc.wbuf); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Strings that arrive in several reads and make the buffer move must come
// out intact (a view into the buffer would be overwritten).
func TestReadRequestStringsAcrossBufferMoves(t *testing.T) {
	sc, peer := serverOver(t, 1<<20)
	a, b, c := strings.Repeat("a", 3000), strings.Repeat("b", 9000), strings.Repeat("c", 5000)
	in := wire("request^@save_dest^@ttl^@2^@label^@" + a + "^@property^@" + b + "^@label^@" + c + "^@^@")
	go func() {
		for len(in) > 0 {
			n := min(len(in), 1000)
			peer.UnixConn().Write(in[:n])
			in = in[n:]
			time.Sleep(time.Millisecond)
		}
	}()
	req, err := sc.ReadRequest()
	if err != nil || req.Label != a || req.Prop != b || req.EndpLabel != c {
		t.Fatalf("strings corrupted: %v", err)
	}
}

// A read that times out is an error, never a corrupted buffer (recvmsg
// reports -1 bytes then); WaitInput treats the timeout as "no input".
func TestReadTimeout(t *testing.T) {
	a, _ := socketPair(t)
	sc := NewServerConn(NewConn(a, 50*time.Millisecond), "scache socket", 1<<20)
	if _, err := sc.ReadRequest(); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	a2, b2 := socketPair(t)
	c := NewConn(a2, time.Second)
	if ok, err := c.WaitInput(20 * time.Millisecond); ok || err != nil {
		t.Fatalf("WaitInput on a quiet peer: %t %v", ok, err)
	}
	b2.Write(wire("request^@find_endp^@label^@L^@^@"))
	if ok, err := c.WaitInput(time.Second); !ok || err != nil {
		t.Fatalf("WaitInput with input: %t %v", ok, err)
	}
	sc2 := NewServerConn(c, "scache socket", 1<<20)
	if req, err := sc2.ReadRequest(); err != nil || parsed(req) != "find_endp valid label=L" {
		t.Fatalf("after WaitInput: %v %v", parsed(req), err)
	}
}

// The size limit counts every string with its NUL: a request of exactly
// the limit passes, one byte more is refused (found by the fault matrix).
func TestReadRequestLimitExact(t *testing.T) {
	const limit = 4096
	head := "request^@find_endp^@label^@"
	for _, extra := range []int{-1, 0, 1, 2} {
		n := limit - len(wire(head)) - 2 + extra // label length for a total of limit+extra
		sc, peer := serverOver(t, limit)
		in := wire(head + strings.Repeat("x", n) + "^@^@")
		go func() { peer.UnixConn().Write(in) }()
		_, err := sc.ReadRequest()
		if tooLarge := errors.Is(err, ErrTooLarge); tooLarge != (extra > 0) {
			t.Errorf("request of limit%+d bytes: %v", extra, err)
		}
	}
}
