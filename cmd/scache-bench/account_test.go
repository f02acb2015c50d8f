package main

import (
	"sync"
	"testing"
	"time"

	"github.com/scached/scached/pkg/server"
)

// A rate-limited run with -account against an in-process scached: the
// rate is kept, and every save ends handed back or closed by expiry, with
// none unaccounted and no descriptor left in the generator.
func TestAccountAgainstScached(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	path, stop := startScached(t, t.TempDir(), server.Config{TTLLimit: time.Second})
	defer stop()
	cfg := testConfig(path, "realistic")
	cfg.Dests, cfg.Endpoints, cfg.Zipf = 2000, 500, 0.6 // a long tail that expires
	cfg.Duration, cfg.Warmup = 1500*time.Millisecond, 0
	cfg.Rate, cfg.Account = 400, true
	res, err := run(cfg, logTo(t))
	if err != nil {
		t.Fatal(err)
	}
	a := res.Account
	if !res.OK || res.Errors.Total != 0 || a == nil {
		t.Fatalf("errors %+v, account %+v", res.Errors, a)
	}
	if !a.Balanced || a.Unaccounted != 0 || a.InHand != 0 || a.HandedBack == 0 || a.Closed == 0 ||
		a.Saved != a.HandedBack+a.Closed {
		t.Errorf("account %+v", a)
	}
	if res.Generator.FDsLeaked != 0 {
		t.Errorf("generator leaked %d descriptors", res.Generator.FDsLeaked)
	}
	if r := res.IterRate; r < 300 || r > 440 {
		t.Errorf("-rate 400: %.0f iterations/s", r)
	}
}

// A server that keeps descriptors and never closes them (the limit server
// has no expiry) leaves saves unaccounted, and the run fails.
func TestAccountDetectsHeldDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a second")
	}
	path, stop := startLimit(t, t.TempDir(), 0, 0)
	defer stop()
	cfg := testConfig(path, "realistic")
	cfg.AnyLabel, cfg.Account = true, true
	cfg.Duration, cfg.Warmup, cfg.Drain = 300*time.Millisecond, 0, 100*time.Millisecond
	res, err := run(cfg, logTo(t))
	if err != nil {
		t.Fatal(err)
	}
	a := res.Account
	if a == nil || a.Unaccounted == 0 || !a.Balanced || a.ok() || res.OK {
		t.Errorf("held descriptors went unnoticed: ok %t, account %+v", res.OK, a)
	}
}

// -term: the server is stopped as SIGTERM stops scached while it holds
// sessions that would not expire for an hour; its shutdown closes every
// one, and the accounting balances with them counted as closed at
// shutdown.
func TestAccountTerm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	path, stop := startScached(t, t.TempDir(), server.Config{TTLLimit: time.Hour})
	var once sync.Once
	stopOnce := func() error { once.Do(stop); return nil }
	defer stopOnce()
	cfg := testConfig(path, "realistic")
	cfg.Dests, cfg.Endpoints, cfg.Zipf, cfg.TTL = 2000, 500, 0.6, 3600
	cfg.Duration, cfg.Warmup = 700*time.Millisecond, 0
	cfg.Rate, cfg.Account, cfg.Term = 1000, true, true
	cfg.stopServer = stopOnce
	res, err := run(cfg, logTo(t))
	if err != nil {
		t.Fatal(err)
	}
	a := res.Account
	if !res.OK || res.Errors.Total != 0 || a == nil {
		t.Fatalf("errors %+v, account %+v", res.Errors, a)
	}
	if !a.Term || a.HeldAtTerm == 0 || a.ClosedAtShutdown != a.HeldAtTerm || a.Closed != a.ClosedAtShutdown ||
		!a.Balanced || a.Unaccounted != 0 || a.InHand != 0 || a.HandedBack == 0 || a.Saved != a.HandedBack+a.Closed {
		t.Errorf("account %+v", a)
	}
	// The in-process server closed its listener meanwhile: fewer is fine.
	if res.Generator.FDsLeaked > 0 {
		t.Errorf("generator leaked %d descriptors", res.Generator.FDsLeaked)
	}
}

// -term needs a server process other than the generator's.
func TestAccountTermNeedsPID(t *testing.T) {
	path, stop := startScached(t, t.TempDir(), server.Config{TTLLimit: time.Second})
	defer stop()
	cfg := testConfig(path, "realistic")
	cfg.Account, cfg.Term = true, true
	if _, err := run(cfg, logTo(t)); err == nil {
		t.Error("-term against this very process ran")
	}
	cfg.Account = false
	if _, err := run(cfg, logTo(t)); err == nil {
		t.Error("-term without -account ran")
	}
}
