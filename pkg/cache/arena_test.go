package cache

import (
	"math/rand/v2"
	"testing"
)

// TestArenaRecords allocates and frees records of every kind of size,
// small, at the class boundaries and larger than any class, in a random
// order, and checks that every live record keeps its contents (so no two
// live records share memory), that classes give their chunks back when
// they empty, and that the live counts add up.
func TestArenaRecords(t *testing.T) {
	var a arena
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 8, 16, 17, 40, 119, 256, 257, 1024, 1025, 4095, 4096, 4097, 9000}
	type rec struct {
		r    ref
		n    int
		fill byte
	}
	var live []rec
	check := func() {
		t.Helper()
		for _, x := range live {
			b := a.bytesAt(x.r, 0, uint32(x.n))
			for i, c := range b {
				if c != x.fill {
					t.Fatalf("record %#x (%d bytes) byte %d is %d, want %d", x.r, x.n, i, c, x.fill)
				}
			}
		}
	}
	for round := range 20 {
		for range 500 {
			n := sizes[r.IntN(len(sizes))]
			if r.IntN(4) == 0 {
				n = 1 + r.IntN(5000)
			}
			x := rec{r: a.alloc(n), n: n, fill: byte(r.IntN(256))}
			if c := x.r.class(); c != bigClass && int(classSizes[c]) < n {
				t.Fatalf("%d bytes in class %d of %d", n, c, classSizes[c])
			}
			b := a.bytesAt(x.r, 0, uint32(n))
			for i := range b {
				b[i] = x.fill
			}
			live = append(live, x)
		}
		check()
		// Free a random half, or everything every fifth round.
		r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		keep := len(live) / 2
		if round%5 == 4 {
			keep = 0
		}
		for _, x := range live[keep:] {
			a.free(x.r)
		}
		live = live[:keep]
		check()
		n := a.bigLive
		for i := range a.pools {
			n += int(a.pools[i].live)
		}
		if n != len(live) {
			t.Fatalf("arena counts %d live records, %d are", n, len(live))
		}
		if keep == 0 {
			chunks, _ := a.usage()
			for i := range a.pools {
				if len(a.pools[i].chunks) > 1 {
					t.Fatalf("class %d keeps %d chunks while empty", i, len(a.pools[i].chunks))
				}
			}
			if a.big != nil || chunks > len(classSizes) {
				t.Fatalf("empty arena keeps %d chunks, %d large records", chunks, len(a.big))
			}
		}
	}
}
