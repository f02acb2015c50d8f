package protocol

import (
	"errors"
	"io"
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
	} {
		f.Add(wire(s))
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		sc, peer := serverOver(t, limit)
		go func() {
			peer.UnixConn().Write(in)
			peer.UnixConn().CloseWrite()
		}()
		sc.Conn.timeout = 2 * time.Second
		for i := 0; ; i++ {
			req, err := sc.ReadRequest()
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
