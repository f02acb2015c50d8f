package main

import (
	"math"
	"math/rand/v2"
	"sort"
)

// zipf draws integers in [0, n) with P(k) proportional to 1/(k+1)^s, the
// popularity of mail destinations: a few take most of the traffic, a long
// tail is seen now and then. s = 0 is uniform. Unlike math/rand's Zipf it
// accepts any s >= 0 (s = 1 is the classic law). The table is shared; each
// goroutine draws with its own *rand.Rand.
type zipf struct {
	cdf []float64 // cdf[k] = P(X <= k)
}

func newZipf(n int, s float64) *zipf {
	if n <= 0 || s < 0 || math.IsNaN(s) {
		panic("zipf: need n > 0 and s >= 0")
	}
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	cdf[n-1] = 1
	return &zipf{cdf: cdf}
}

// draw returns the next value, using r.
func (z *zipf) draw(r *rand.Rand) int {
	u := r.Float64()
	return sort.SearchFloat64s(z.cdf, u) // first k with cdf[k] >= u
}

// prob returns P(X = k).
func (z *zipf) prob(k int) float64 {
	if k == 0 {
		return z.cdf[0]
	}
	return z.cdf[k] - z.cdf[k-1]
}
