package journal

import (
	"reflect"
	"strings"
	"testing"

	sdjournal "github.com/coreos/go-systemd/v22/journal"
)

// scached's goroutine count rides along with Postfix's statistics: a
// journal field on every record, a debug record after them, and not one
// byte of Postfix's text changed.

func TestStatsGoroutinesField(t *testing.T) {
	s := testStats
	if _, ok := s.Fields()[FieldGoroutines]; ok {
		t.Errorf("%s present with Goroutines unset", FieldGoroutines)
	}
	s.Goroutines = 12
	f := s.Fields()
	if got := f[FieldGoroutines]; got != "12" {
		t.Errorf("%s = %q, want \"12\"", FieldGoroutines, got)
	}
	if !validFieldName(FieldGoroutines) {
		t.Errorf("%s is not a valid journal field name", FieldGoroutines)
	}
	delete(f, FieldGoroutines)
	if want := testStats.Fields(); !reflect.DeepEqual(f, want) {
		t.Errorf("other fields changed: %v, want %v", f, want)
	}
	if !reflect.DeepEqual(s.Lines(), testStatsLines) {
		t.Errorf("Lines() changed: %q", s.Lines())
	}
}

func TestStatsGoroutinesNotActivity(t *testing.T) {
	// An idle interval logs nothing, as in Postfix, whatever runs.
	zero := Stats{Start: testStats.Start, Goroutines: 5}
	if !zero.Zero() || zero.Lines() != nil {
		t.Errorf("goroutines alone made an interval worth logging: %q", zero.Lines())
	}
	tl, out := newText(true)
	jl, j, jout := newJournal(true)
	tl.Statistics(zero)
	jl.Statistics(zero)
	if out.String() != "" || jout.String() != "" || len(j.records()) != 0 {
		t.Errorf("a zero interval was logged: %q %q %+v", out, jout, j.records())
	}
}

func TestStatisticsGoroutinesText(t *testing.T) {
	s := testStats
	s.Goroutines = 12
	postfix := prefix() + strings.Join(testStatsLines, "\n"+prefix()) + "\n"
	for _, verbose := range []bool{false, true} {
		l, out := newText(verbose)
		l.Statistics(s)
		want := postfix
		if verbose {
			want += prefix() + "statistics (scached): goroutines=12\n"
		}
		if got := out.String(); got != want {
			t.Errorf("verbose=%t: stderr =\n%s\nwant\n%s", verbose, got, want)
		}
	}
}

func TestStatisticsGoroutinesJournal(t *testing.T) {
	s := testStats
	s.Goroutines = 12
	vars := baseVars()
	for k, v := range s.Fields() {
		vars[k] = v
	}
	for _, verbose := range []bool{false, true} {
		l, j, out := newJournal(verbose)
		l.Statistics(s)
		var want []sent
		for _, line := range testStatsLines {
			want = append(want, sent{line, sdjournal.PriInfo, vars})
		}
		if verbose {
			want = append(want, sent{"statistics (scached): goroutines=12", sdjournal.PriDebug, vars})
		}
		if got := j.records(); !reflect.DeepEqual(got, want) {
			t.Errorf("verbose=%t: journal records:\n%+v\nwant\n%+v", verbose, got, want)
		}
		if vars[FieldGoroutines] != "12" {
			t.Errorf("journal records lack %s=12", FieldGoroutines)
		}
		if out.String() != "" {
			t.Errorf("stderr %q, want nothing", out.String())
		}
	}
}

// The cache's memory rides along the same way: a journal field, the debug
// record, never Postfix's text, never activity of its own.
func TestStatsCacheBytes(t *testing.T) {
	s := testStats
	if _, ok := s.Fields()[FieldCacheBytes]; ok {
		t.Errorf("%s present with CacheBytes unset", FieldCacheBytes)
	}
	s.Goroutines, s.CacheBytes = 12, 4<<20
	if got := s.Fields()[FieldCacheBytes]; got != "4194304" {
		t.Errorf("%s = %q, want \"4194304\"", FieldCacheBytes, got)
	}
	if !validFieldName(FieldCacheBytes) {
		t.Errorf("%s is not a valid journal field name", FieldCacheBytes)
	}
	if !reflect.DeepEqual(s.Lines(), testStatsLines) {
		t.Errorf("Lines() changed: %q", s.Lines())
	}
	l, out := newText(true)
	l.Statistics(s)
	if want := prefix() + "statistics (scached): goroutines=12 cache_bytes=4194304\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("stderr ends %q, want %q", out.String(), want)
	}
	only := Stats{Start: testStats.Start, CacheBytes: 1 << 20}
	if !only.Zero() || only.Lines() != nil {
		t.Errorf("cache bytes alone made an interval worth logging: %q", only.Lines())
	}
}
