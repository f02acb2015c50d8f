package main

import "fmt"

// Properties as real smtp(8) sends them (captured traffic,
// postfix-smtp-traffic.txt); their sizes are what matters. The limit server
// answers with the same bytes.
const (
	endpProp = "tls_level=0\nreuse_count=0\nendpoint_features=34695\nexpire_time=1795871532\n\n"
	destProp = "destination=[127.0.0.1]:2525\nhost_name=127.0.0.1\nhost_addr=127.0.0.1\ndestination_features=4096\n\n"
)

// labels are the destination and endpoint labels of one run, shaped like
// smtp(8)'s ("smtp\n[127.0.0.1]:2525\n", "smtp\n127.0.0.1\n2525\n0\n") and
// unique to the run (nonce), so that sessions another run left in a
// long-lived server are never asked for. Destination d is served by
// endpoint d % len(endp): several domains share an MX host, so a lookup by
// destination that misses may still hit by endpoint.
type labels struct {
	dest, endp         []string
	coldDest, coldEndp []string // never saved: lookups that miss
}

func makeLabels(nonce string, dests, endps, cold int) *labels {
	l := &labels{
		dest: make([]string, dests), endp: make([]string, endps),
		coldDest: make([]string, cold), coldEndp: make([]string, cold),
	}
	for i := range l.dest {
		l.dest[i] = fmt.Sprintf("smtp\n[d%d.%s.example]:25\n", i, nonce)
	}
	for i := range l.endp {
		l.endp[i] = fmt.Sprintf("smtp\n192.0.2.%d\n25\n%s\n", i, nonce)
	}
	for i := range l.coldDest {
		l.coldDest[i] = fmt.Sprintf("smtp\n[c%d.%s.example]:25\n", i, nonce)
		l.coldEndp[i] = fmt.Sprintf("smtp\n198.51.100.%d\n25\n%s\n", i, nonce)
	}
	return l
}

func (l *labels) endpOf(d int) int { return d % len(l.endp) }
