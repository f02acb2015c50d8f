package faults

import (
	"fmt"
	"testing"
	"time"
)

// hostileIPCTimeout is ipc_timeout in the hostile group: short, so that
// stalls end quickly.
const hostileIPCTimeout = 2 * time.Second

// TestHostile: disconnects, stalls, garbage and descriptors of every kind
// against one daemon (ipc_timeout 2s, ttl limit 60s, so that the witnesses outlive every case, request size limit
// 64 KiB), each case beside the canary.
func TestHostile(t *testing.T) {
	g := newGroup(t, "hostile", daemonOpts{params: []string{
		fmt.Sprintf("ipc_timeout=%ds", int(hostileIPCTimeout/time.Second)),
		"connection_cache_ttl_limit=60s",
		fmt.Sprintf("scached_request_size_limit=%d", reqLimit),
	}}, hostileIPCTimeout, 2)
	tp := newTemplates()

	cases := []fcase{}
	for i, name := range []string{"save_endp", "find_endp", "save_dest", "find_dest"} {
		i := i
		witnesses := name == "find_endp" || name == "find_dest"
		cases = append(cases, disconnectCase("disconnect: inside "+name+", after every byte", func(g *group) []point {
			r := tp.requests(g)[i]
			pts := requestCuts(g.d.path, r.name, r.req)
			if i == 0 {
				pts = append(pts, noGreetingPoints(g.d.path, r.req)...)
			}
			return pts
		}, &tp, witnesses))
	}
	cases = append(cases,
		disconnectCase("disconnect: in the descriptor exchange and the hand-out", func(g *group) []point {
			return exchangePoints(g.d.path)
		}, nil, false),
		stallCase("stall: every point of every request at once, until ipc_timeout", func(g *group) []point {
			var pts []point
			for _, r := range tp.requests(g) {
				pts = append(pts, requestCuts(g.d.path, r.name, r.req)...)
			}
			pts = append(pts, noGreetingPoints(g.d.path, tp.requests(g)[0].req)...)
			return append(pts, exchangePoints(g.d.path)...)
		}, &tp),
		deafCase(),
		randomBytesCase(),
		overCapCases(),
		capBoundaryCase(),
		hugeNameUnderCapCase(),
		missingTerminatorsCase(),
		tokenSoupCase(),
		fdOnEveryMessageCase(),
		manyFDsCase(),
	)
	for _, k := range fdKinds() {
		cases = append(cases, kindCase(k))
	}
	cases = append(cases, unexpectedKindsCase())
	g.run(t, cases)

	// The daemon survived all of it and stops cleanly.
	g.d.stop(t, 10*time.Second)
	if err := g.d.healthy(); err != nil {
		t.Error(err)
	}
}
