//go:build race

package cache

// In race-detector builds the cache's memory comes from the Go heap, where
// the detector sees every access (it ignores memory from mmap). The layout
// and the code that uses it are the same.

func allocMem(n int) []byte { return make([]byte, n) }

func freeMem([]byte) {}
