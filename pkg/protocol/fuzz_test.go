package protocol

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzReadRequest feeds arbitrary client bytes to the request parser: it
// must never panic, never return a valid request with a ttl <= 0 for a save,
// never exceed the size limit, and always end with EOF once the input is
// used up.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"request^@save_endp^@ttl^@2^@label^@L^@property^@P^@^@",
		"request^@save_dest^@ttl^@2^@label^@D^@property^@DP^@label^@E^@^@",
		"request^@find_dest^@label^@D^@^@request^@find_endp^@label^@L^@^@",
		"label^@x^@request^@find_endp^@^@",
		"request^@find_endp^@foo^@bar^@label^@L^@^@",
		"request^@save_endp^@ttl^@ +4294967297^@label^@^@property^@^@extra^@x^@^@",
		"^@^@^@",
		// Requests under the limit whose labels and properties lie
		// across the 4 KiB read buffer's end.
		"request^@save_dest^@ttl^@2^@label^@" + strings.Repeat("D", 600) + "^@property^@" + strings.Repeat("P", 600) +
			"^@label^@" + strings.Repeat("E", 600) + "^@^@request^@save_dest^@ttl^@2^@label^@" + strings.Repeat("L", 1500) +
			"^@property^@" + strings.Repeat("Q", 1000) + "^@label^@" + strings.Repeat("F", 1200) + "^@^@",
	} {
		f.Add(wire(s))
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		sc, peer := serverOver(t, limit)
		if len(in) > 64<<10 {
			t.Skip("input larger than the socket buffer")
		}
		if _, err := peer.UnixConn().Write(in); err != nil {
			t.Fatal(err)
		}
		peer.UnixConn().CloseWrite()
		sc.Conn.timeout = 2 * time.Second
		// The same input to a ServerConn with views: every request must
		// read the same as with copies. The input is all in the socket
		// before the first read on both sides, because the rest of a
		// request answered early is skipped only as far as it has arrived
		// (ReadRequest); the 4 KiB read buffer still moves under the views
		// of a longer input.
		sv, vpeer := serverOver(t, limit)
		sv.SetViews(true)
		sv.Conn.timeout = 2 * time.Second
		if _, err := vpeer.UnixConn().Write(in); err != nil {
			t.Fatal(err)
		}
		vpeer.UnixConn().CloseWrite()
		for i := 0; ; i++ {
			req, err := sc.ReadRequest()
			vreq, verr := sv.ReadRequest()
			if (err == nil) != (verr == nil) || req.Type != vreq.Type || req.Valid != vreq.Valid || req.TTL != vreq.TTL ||
				req.Label != string(vreq.LabelView) || req.Prop != string(vreq.PropView) || req.EndpLabel != string(vreq.EndpLabelView) ||
				strings.Join(req.Warnings, "|") != strings.Join(vreq.Warnings, "|") {
				t.Fatalf("request %d: copies %v %q %q %q %v, views %v %q %q %q %v", i,
					parsed(req), req.Label, req.Prop, req.EndpLabel, err, parsed(vreq), vreq.LabelView, vreq.PropView, vreq.EndpLabelView, verr)
			}
			if i%2 == 1 {
				sv.KeepViews(&vreq)
				if req.Label != string(vreq.LabelView) || req.Prop != string(vreq.PropView) || req.EndpLabel != string(vreq.EndpLabelView) {
					t.Fatalf("request %d: KeepViews changed the views", i)
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if req.Valid && (req.Type == SaveEndp || req.Type == SaveDest) && req.TTL <= 0 {
				t.Fatalf("valid save with ttl %d", req.TTL)
			}
			if len(req.Label)+len(req.Prop)+len(req.EndpLabel) > limit {
				t.Fatalf("request over the limit accepted")
			}
			if i > len(in) {
				t.Fatalf("more requests than input bytes")
			}
		}
	})
}
