package main

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openFDs counts this process' open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// pass simulates the server handing out the travelling end x: a new
// descriptor for the same socket.
func pass(t *testing.T, x int) int {
	t.Helper()
	fd, err := unix.Dup(x)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestIdentityChecks(t *testing.T) {
	base := openFDs(t)
	r := newRegistry()
	x1, s1, err := r.create()
	if err != nil {
		t.Fatal(err)
	}
	x2, s2, err := r.create()
	if err != nil {
		t.Fatal(err)
	}
	r.saving(s1, 7, r.mono()+int64(time.Second))
	r.saving(s2, 8, r.mono()+int64(time.Second))

	// The right descriptor under the right label.
	fd := pass(t, x1)
	if s, err := r.take(fd, 7); err != nil || s != s1 {
		t.Fatalf("take(right) = %v, %v", s, err)
	}
	if err := verify(fd, s1, 42); err != nil {
		t.Fatalf("verify(right): %v", err)
	}
	// Handed out again while we hold it.
	fd2 := pass(t, x1)
	if _, err := r.take(fd2, 7); !errors.Is(err, errTwice) {
		t.Errorf("second hand-out: %v, want errTwice", err)
	}
	unix.Close(fd2)
	unix.Close(fd)

	// The descriptor of another endpoint.
	fd = pass(t, x2)
	if s, err := r.take(fd, 7); !errors.Is(err, errWrongLabel) || s != s2 {
		t.Errorf("wrong endpoint: %v, %v, want errWrongLabel", s, err)
	}
	// ... which is accepted by a limit run (any label), once saved again.
	r.saving(s2, 8, r.mono()+int64(time.Second))
	if s, err := r.take(fd, -1); err != nil || s != s2 {
		t.Errorf("any label: %v, %v", s, err)
	}
	// Writing through a descriptor does not come out at another session's
	// kept end.
	if err := verify(fd, s1, 43); !errors.Is(err, errVerify) {
		t.Errorf("verify(wrong session) = %v, want errVerify", err)
	}
	unix.Close(fd)

	// A socket the generator never saved.
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.take(p[0], 7); !errors.Is(err, errUnknownFD) {
		t.Errorf("foreign socket: %v, want errUnknownFD", err)
	}
	if nonblocking(p[0]) {
		t.Errorf("a fresh socket is non-blocking")
	}
	unix.SetNonblock(p[0], true)
	if !nonblocking(p[0]) {
		t.Errorf("O_NONBLOCK not seen")
	}
	unix.Close(p[0])
	unix.Close(p[1])
	// Not a socket at all.
	var pp [2]int
	unix.Pipe(pp[:])
	if _, err := r.take(pp[0], 7); !errors.Is(err, errNotSocket) {
		t.Errorf("pipe: %v, want errNotSocket", err)
	}
	unix.Close(pp[0])
	unix.Close(pp[1])

	unix.Close(x1)
	unix.Close(x2)
	if n := r.closeAll(); n != 2 || r.live.Load() != 0 {
		t.Errorf("closeAll = %d, live %d", n, r.live.Load())
	}
	if n := openFDs(t); n != base {
		t.Errorf("descriptors: %d before, %d after", base, n)
	}
}

// The sweeper forgets exactly the sessions whose last travelling copy is
// closed, and nothing that was taken again meanwhile.
func TestSweeper(t *testing.T) {
	base := openFDs(t)
	r := newRegistry()
	var w sweeper
	var xs []int
	var ss []*session
	for i := range 1200 { // more than one poll batch
		x, s, err := r.create()
		if err != nil {
			t.Fatal(err)
		}
		g := r.saving(s, i, r.mono())
		w.push(sweepEntry{s: s, gen: g, deadline: r.mono()})
		xs, ss = append(xs, x), append(ss, s)
	}
	// The "server" closes the even ones; an odd one is taken and saved
	// again (its first entry is stale).
	for i := 0; i < len(xs); i += 2 {
		unix.Close(xs[i])
	}
	fd := pass(t, xs[1])
	if _, err := r.take(fd, 1); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	g := r.saving(ss[1], 1, r.mono()+int64(time.Hour))
	w.push(sweepEntry{s: ss[1], gen: g, deadline: r.mono() + int64(time.Hour)})

	closed := 0
	w.sweep(r, r.mono(), 0, func(int64) { closed++ })
	if closed != 600 || r.live.Load() != 600 {
		t.Fatalf("closed %d, live %d; want 600, 600", closed, r.live.Load())
	}
	// The rest close later; a final sweep (grace < 0) sees them all.
	for i := 1; i < len(xs); i += 2 {
		unix.Close(xs[i])
	}
	w.sweep(r, r.mono(), -1, func(int64) { closed++ })
	if closed != 1200 || r.live.Load() != 0 || w.pending() != 0 {
		t.Fatalf("closed %d, live %d, pending %d", closed, r.live.Load(), w.pending())
	}
	if n := openFDs(t); n != base {
		t.Errorf("descriptors: %d before, %d after", base, n)
	}
}
