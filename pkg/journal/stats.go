package journal

import "time"

// Stats is one statistics interval of the connection cache, counted exactly
// as Postfix's scache(8) counts it (scache.c:scache_status_dump()).
type Stats struct {
	Start    time.Time     // start of the interval
	Interval time.Duration // length of the interval

	DestHits, DestMisses int // find_dest hits and misses
	EndpHits, EndpMisses int // find_endp hits and misses

	// Maxima sampled after each successful save_endp / save_dest.
	PeakDests, PeakEndps, PeakSessions int
}

// Zero reports whether nothing happened in the interval; Postfix logs
// nothing for such an interval.
func (s Stats) Zero() bool {
	return s.DestHits == 0 && s.DestMisses == 0 && s.EndpHits == 0 &&
		s.EndpMisses == 0 && s.PeakDests == 0 && s.PeakEndps == 0 &&
		s.PeakSessions == 0
}
