package main

import (
	"testing"
	"time"

	"github.com/scached/scached/pkg/server"
)

func testConfig(socket, workload string) config {
	return config{
		Socket: socket, Workload: workload, Clients: 4, Duration: 700 * time.Millisecond,
		Warmup: 200 * time.Millisecond, Dests: 200, Endpoints: 50, Zipf: 1, TTL: 1,
		Timeout: 5 * time.Second, Sample: 0.1, Drain: 2 * time.Second, FillRate: 5000,
	}
}

func logTo(t *testing.T) func(string, ...any) {
	return func(f string, args ...any) { t.Logf(f, args...) }
}

// A short run of every workload against an in-process scached ends with
// no error of any kind, every session closed by the server on expiry and
// no descriptor left open, in the generator or in the server.
func TestRunAgainstScached(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	base := openFDs(t)
	dir := t.TempDir()
	path, stop := startScached(t, dir, server.Config{TTLLimit: 5 * time.Second})
	for _, w := range []string{"realistic", "find-heavy", "save-heavy", "scale"} {
		cfg := testConfig(path, w)
		if w == "realistic" {
			cfg.Verify = true
		}
		if w == "scale" {
			cfg.Sessions, cfg.TTL, cfg.Duration = 2000, 0, 500*time.Millisecond
		}
		res, err := run(cfg, logTo(t))
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if !res.OK || res.Errors.Total != 0 || res.Errors.Reconnects != 0 {
			t.Errorf("%s: errors %+v", w, res.Errors)
		}
		if res.Requests == 0 || res.Received == 0 || res.Verified == 0 {
			t.Errorf("%s: %d requests, %d descriptors received, %d verified", w, res.Requests, res.Received, res.Verified)
		}
		if res.Generator.FDsLeaked != 0 {
			t.Errorf("%s: generator leaked %d descriptors", w, res.Generator.FDsLeaked)
		}
		if w == "scale" && (res.Scale.ExpiredByServer+res.Scale.Taken < 1900 || res.Scale.ExpiryS < 0) {
			t.Errorf("scale: %+v", res.Scale)
		}
		if w == "realistic" && res.Verified != res.Received {
			t.Errorf("-verify: %d of %d descriptors verified", res.Verified, res.Received)
		}
	}
	stop()
	if n := openFDs(t); n != base {
		t.Errorf("descriptors: %d before, %d after the server stopped", base, n)
	}
}

// The identity checks catch a server that hands out the wrong
// descriptors: the limit server returns any saved descriptor for any
// label, which a run without -limit must report.
func TestRunDetectsWrongDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a second")
	}
	path, stop := startLimit(t, t.TempDir(), 1, 1)
	cfg := testConfig(path, "realistic")
	cfg.Drain = -1
	res, err := run(cfg, logTo(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors.WrongLabel == 0 || res.OK {
		t.Errorf("wrong descriptors went unnoticed: %+v", res.Errors)
	}
	stop()
	// With -limit the same run is clean (on a fresh limit server: the
	// old one still holds the first run's descriptors).
	// The in-process limit server's ring still holds descriptors when the
	// run ends: they count as the generator's until it stops.
	base := openFDs(t)
	path, stop = startLimit(t, t.TempDir(), 1, 1)
	cfg.Socket = path
	cfg.AnyLabel = true
	if res, err = run(cfg, logTo(t)); err != nil {
		t.Fatal(err)
	}
	if res.Errors.Total != res.Errors.Leaked || res.Received == 0 {
		t.Errorf("-limit: %d received, errors %+v", res.Received, res.Errors)
	}
	stop()
	if n := openFDs(t); n != base {
		t.Errorf("descriptors: %d before, %d after", base, n)
	}
}
