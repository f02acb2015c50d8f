// Package bench holds scached's benchmarks that need no daemon: the codec
// (pkg/protocol) and the cache (pkg/cache) at up to 100,000 sessions, with
// allocations per operation. run.sh, next to this file, is `make bench`:
// the side-by-side load benchmark against Postfix's scache; see
// docs/benchmarks.md. The subdirectories are its tools: report renders the
// results, scached-prof is scached's server with profiling.
package bench
