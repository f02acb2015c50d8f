//go:build !race

package cache

import (
	"fmt"
	"syscall"
)

// The cache's memory comes from mmap(2), outside the Go heap (see
// arena.go). Race-detector builds take it from the Go heap instead
// (mem_race.go), so that the detector sees every access to it.

// allocMem returns n bytes of zeroed memory outside the Go heap: an
// anonymous private mapping. Its pages take memory only once touched, and
// the garbage collector neither scans them nor counts them towards its
// goal. Running out of memory is fatal, as it is for the Go heap.
func allocMem(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		panic(fmt.Sprintf("cache: out of memory: mmap of %d bytes: %v", n, err))
	}
	return b
}

// freeMem returns memory from allocMem to the system.
func freeMem(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("cache: munmap of %d bytes: %v", len(b), err))
	}
}
