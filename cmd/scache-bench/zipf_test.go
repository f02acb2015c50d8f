package main

import (
	"math"
	mrand "math/rand/v2"
	"testing"
	"time"
)

func TestZipfFrequencies(t *testing.T) {
	for _, s := range []float64{0, 0.8, 1, 1.5} {
		z := newZipf(1000, s)
		r := mrand.New(mrand.NewPCG(1, 2))
		const draws = 400000
		counts := make([]int, 1000)
		for range draws {
			k := z.draw(r)
			if k < 0 || k >= 1000 {
				t.Fatalf("s=%v: draw %d out of range", s, k)
			}
			counts[k]++
		}
		// The law: P(k) ∝ 1/(k+1)^s.
		var norm float64
		for k := range 1000 {
			norm += math.Pow(float64(k+1), -s)
		}
		for _, k := range []int{0, 1, 9, 99} {
			want := math.Pow(float64(k+1), -s) / norm
			if math.Abs(z.prob(k)-want) > 1e-9 {
				t.Errorf("s=%v: prob(%d) = %v, want %v", s, k, z.prob(k), want)
			}
			got := float64(counts[k]) / draws
			// 5 standard deviations of a binomial count.
			tol := 5 * math.Sqrt(want*(1-want)/draws)
			if math.Abs(got-want) > tol {
				t.Errorf("s=%v: frequency of %d = %.5f, want %.5f ± %.5f", s, k, got, want, tol)
			}
		}
		for k := 1; k < 1000; k++ {
			if z.prob(k) > z.prob(k-1)+1e-12 {
				t.Fatalf("s=%v: prob(%d) > prob(%d)", s, k, k-1)
			}
		}
	}
}

func TestZipfOneValue(t *testing.T) {
	z := newZipf(1, 1)
	r := mrand.New(mrand.NewPCG(3, 4))
	for range 100 {
		if k := z.draw(r); k != 0 {
			t.Fatalf("draw = %d", k)
		}
	}
}

func TestZipfRejectsBadParameters(t *testing.T) {
	for _, tc := range []struct {
		n int
		s float64
	}{{0, 1}, {10, -1}, {10, math.NaN()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newZipf(%d, %v) did not panic", tc.n, tc.s)
				}
			}()
			newZipf(tc.n, tc.s)
		}()
	}
}

func TestHistogramQuantiles(t *testing.T) {
	for v := uint64(0); v < 1<<20; v = v*3/2 + 1 {
		i := histIndex(v)
		if lo, hi := histLower(i), histLower(i+1); v < lo || v >= hi {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
	}
	var h histogram
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 0.016 {
			t.Errorf("q%v = %v, want %v ± 1.6%%", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.quantile(1) != 100*time.Millisecond || time.Duration(h.max) != 100*time.Millisecond {
		t.Errorf("max = %v", h.quantile(1))
	}
	var m histogram
	m.merge(&h)
	m.merge(&h)
	if m.n != 2*h.n || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge: n %d, median %v", m.n, m.quantile(0.5))
	}
}
