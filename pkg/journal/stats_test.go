package journal

import (
	"reflect"
	"testing"
	"time"
)

func TestStatsLines(t *testing.T) {
	// Local time: Lines shows the start as ctime(3) does.
	nov28 := time.Date(2024, time.November, 28, 13, 9, 27, 0, time.Local)
	nov8 := time.Date(2024, time.November, 8, 9, 5, 7, 0, time.Local)
	for _, tc := range []struct {
		name string
		s    Stats
		want []string
	}{
		{
			name: "zero logs nothing",
			s:    Stats{Start: nov28, Interval: 600 * time.Second},
			want: nil,
		},
		{
			name: "postfix e2e example",
			s: Stats{Start: nov28, DestHits: 182, DestMisses: 18,
				EndpHits: 10, EndpMisses: 8, PeakDests: 1, PeakEndps: 1, PeakSessions: 8},
			want: []string{
				"statistics: start interval Nov 28 13:09:27",
				"statistics: domain lookup hits=182 miss=18 success=91%",
				"statistics: address lookup hits=10 miss=8 success=55%", // 55.5 rounds down
				"statistics: max simultaneous domains=1 addresses=1 connection=8",
			},
		},
		{
			name: "single-digit day is space padded",
			s:    Stats{Start: nov8, DestMisses: 1},
			want: []string{
				"statistics: start interval Nov  8 09:05:07",
				"statistics: domain lookup hits=0 miss=1 success=0%",
			},
		},
		{
			name: "success is truncated, never rounded up",
			s:    Stats{Start: nov8, DestHits: 2, DestMisses: 1, EndpHits: 199, EndpMisses: 1},
			want: []string{
				"statistics: start interval Nov  8 09:05:07",
				"statistics: domain lookup hits=2 miss=1 success=66%",
				"statistics: address lookup hits=199 miss=1 success=99%",
			},
		},
		{
			name: "all hits",
			s:    Stats{Start: nov8, EndpHits: 7},
			want: []string{
				"statistics: start interval Nov  8 09:05:07",
				"statistics: address lookup hits=7 miss=0 success=100%",
			},
		},
		{
			name: "peaks only",
			s:    Stats{Start: nov8, PeakSessions: 3},
			want: []string{
				"statistics: start interval Nov  8 09:05:07",
				"statistics: max simultaneous domains=0 addresses=0 connection=3",
			},
		},
		{
			name: "any single peak prints the line",
			s:    Stats{Start: nov8, PeakDests: 2},
			want: []string{
				"statistics: start interval Nov  8 09:05:07",
				"statistics: max simultaneous domains=2 addresses=0 connection=0",
			},
		},
		{
			name: "ctime shows no year and no sub-seconds",
			s:    Stats{Start: time.Date(1999, time.January, 31, 23, 59, 59, 999999999, time.Local), PeakEndps: 1},
			want: []string{
				"statistics: start interval Jan 31 23:59:59",
				"statistics: max simultaneous domains=0 addresses=1 connection=0",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.Lines()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Lines() =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestStatsLinesLocalTime(t *testing.T) {
	// A start in another zone is shown in local time, like ctime(3).
	start := time.Date(2024, time.November, 8, 9, 5, 7, 0, time.FixedZone("X", 5*3600+1800))
	want := "statistics: start interval " + start.In(time.Local).Format("Jan _2 15:04:05")
	if got := (Stats{Start: start, DestHits: 1}).Lines()[0]; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStatsFields(t *testing.T) {
	s := Stats{
		Interval: 599*time.Second + 600*time.Millisecond,
		DestHits: 182, DestMisses: 18, EndpHits: 10, EndpMisses: 8,
		PeakDests: 1, PeakEndps: 2, PeakSessions: 8,
	}
	want := map[string]string{
		"SCACHE_DEST_HITS":        "182",
		"SCACHE_DEST_MISSES":      "18",
		"SCACHE_ENDP_HITS":        "10",
		"SCACHE_ENDP_MISSES":      "8",
		"SCACHE_PEAK_DESTS":       "1",
		"SCACHE_PEAK_ENDPS":       "2",
		"SCACHE_PEAK_SESSIONS":    "8",
		"SCACHE_INTERVAL_SECONDS": "600",
	}
	if got := s.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields() = %v, want %v", got, want)
	}
	for k := range want {
		if !validFieldName(k) {
			t.Errorf("%s is not a valid journal field name", k)
		}
	}
}

// validFieldName is go-systemd's rule (journal_unix.go:validVarName);
// journal.Send prints a complaint to stderr for a name that breaks it.
func validFieldName(name string) bool {
	if name == "" || name[0] == '_' {
		return false
	}
	for _, c := range name {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
