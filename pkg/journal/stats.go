package journal

import (
	"fmt"
	"strconv"
	"time"
)

// Stats is one statistics interval of the connection cache, counted exactly
// as Postfix's scache(8) counts it (scache.c:scache_status_dump()).
type Stats struct {
	Start    time.Time     // start of the interval
	Interval time.Duration // length of the interval

	DestHits, DestMisses int // find_dest hits and misses
	EndpHits, EndpMisses int // find_endp hits and misses

	// Maxima sampled after each successful save_endp / save_dest.
	PeakDests, PeakEndps, PeakSessions int

	// Goroutines is scached's own figure, not Postfix's: the goroutines
	// running when the interval was logged (runtime.NumGoroutine), so that
	// a leak shows in the journal. It appears only as the journal field
	// SCACHED_GOROUTINES and in a debug record, never in Postfix's text,
	// and does not make an interval non-Zero. 0: not reported.
	Goroutines int

	// CacheBytes is scached's own figure too: the memory the cache held
	// for its records, label tables and heaps when the interval was logged
	// (cache.Cache.Memory), outside the Go heap. Like Goroutines it
	// appears only as the journal field SCACHED_CACHE_BYTES and in the
	// debug record, and does not make an interval non-Zero. 0: not
	// reported.
	CacheBytes int64
}

// Zero reports whether nothing happened in the interval; Postfix logs
// nothing for such an interval.
func (s Stats) Zero() bool {
	return s.DestHits == 0 && s.DestMisses == 0 && s.EndpHits == 0 &&
		s.EndpMisses == 0 && s.PeakDests == 0 && s.PeakEndps == 0 &&
		s.PeakSessions == 0
}

// startLayout is ctime(3)'s "Mmm dd hh:mm:ss" part (ctime()+4, %.15s): the
// day of the month is padded with a space ("Nov  8").
const startLayout = "Jan _2 15:04:05"

// Lines returns the interval as the text of Postfix's statistics records,
// in order, exactly as scache.c:scache_status_dump() formats them:
//
//	statistics: start interval Nov 28 13:09:27
//	statistics: domain lookup hits=182 miss=18 success=91%
//	statistics: address lookup hits=10 miss=8 success=55%
//	statistics: max simultaneous domains=1 addresses=1 connection=8
//
// Each line after the first appears only if its own counters are non-zero;
// a Zero interval gives no lines. The start time is shown in local time,
// like ctime(3); success is hits*100/(hits+miss) rounded down.
func (s Stats) Lines() []string {
	if s.Zero() {
		return nil
	}
	lines := []string{"statistics: start interval " + s.Start.Local().Format(startLayout)}
	if s.DestHits != 0 || s.DestMisses != 0 {
		lines = append(lines, fmt.Sprintf("statistics: domain lookup hits=%d miss=%d success=%d%%",
			s.DestHits, s.DestMisses, success(s.DestHits, s.DestMisses)))
	}
	if s.EndpHits != 0 || s.EndpMisses != 0 {
		lines = append(lines, fmt.Sprintf("statistics: address lookup hits=%d miss=%d success=%d%%",
			s.EndpHits, s.EndpMisses, success(s.EndpHits, s.EndpMisses)))
	}
	if s.PeakDests != 0 || s.PeakEndps != 0 || s.PeakSessions != 0 {
		lines = append(lines, fmt.Sprintf("statistics: max simultaneous domains=%d addresses=%d connection=%d",
			s.PeakDests, s.PeakEndps, s.PeakSessions))
	}
	return lines
}

// success is Postfix's hit rate in percent, truncated by integer division.
// The caller guarantees hits+miss != 0; counters are never negative.
func success(hits, miss int) int {
	return hits * 100 / (hits + miss)
}

// Journal field names carried by every statistics record, so that the
// journal can be queried by number (journalctl SCACHE_DEST_MISSES=0).
const (
	FieldDestHits        = "SCACHE_DEST_HITS"
	FieldDestMisses      = "SCACHE_DEST_MISSES"
	FieldEndpHits        = "SCACHE_ENDP_HITS"
	FieldEndpMisses      = "SCACHE_ENDP_MISSES"
	FieldPeakDests       = "SCACHE_PEAK_DESTS"
	FieldPeakEndps       = "SCACHE_PEAK_ENDPS"
	FieldPeakSessions    = "SCACHE_PEAK_SESSIONS"
	FieldIntervalSeconds = "SCACHE_INTERVAL_SECONDS"
	// FieldGoroutines is scached's own (hence SCACHED_, not SCACHE_); it
	// is present only when Stats.Goroutines is set.
	FieldGoroutines = "SCACHED_GOROUTINES"
	// FieldCacheBytes is present only when Stats.CacheBytes is set.
	FieldCacheBytes = "SCACHED_CACHE_BYTES"
)

// Fields returns the interval's counters as journal fields, in decimal.
// SCACHE_INTERVAL_SECONDS is the interval rounded to the nearest second;
// SCACHED_GOROUTINES and SCACHED_CACHE_BYTES are present when Goroutines
// and CacheBytes are positive.
func (s Stats) Fields() map[string]string {
	f := map[string]string{
		FieldDestHits:        strconv.Itoa(s.DestHits),
		FieldDestMisses:      strconv.Itoa(s.DestMisses),
		FieldEndpHits:        strconv.Itoa(s.EndpHits),
		FieldEndpMisses:      strconv.Itoa(s.EndpMisses),
		FieldPeakDests:       strconv.Itoa(s.PeakDests),
		FieldPeakEndps:       strconv.Itoa(s.PeakEndps),
		FieldPeakSessions:    strconv.Itoa(s.PeakSessions),
		FieldIntervalSeconds: strconv.FormatInt(int64(s.Interval.Round(time.Second)/time.Second), 10),
	}
	if s.Goroutines > 0 {
		f[FieldGoroutines] = strconv.Itoa(s.Goroutines)
	}
	if s.CacheBytes > 0 {
		f[FieldCacheBytes] = strconv.FormatInt(s.CacheBytes, 10)
	}
	return f
}
