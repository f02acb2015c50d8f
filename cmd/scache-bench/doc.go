// Command scache-bench is a load generator for connection cache servers
// that speak Postfix's scache(8) protocol (scached, Postfix's own scache),
// and the "limit" server that gives the ceiling for the same load.
//
//	scache-bench -socket PATH [-workload NAME] [-clients N] [-duration D | -requests N]
//	             [-warmup D] [-json] [-o FILE] [flags]
//	scache-bench -serve-limit PATH [-hit-dest P] [-hit-endp P] [-ring N]
//
// # Load
//
// N clients, each a goroutine with one persistent connection like a Postfix
// delivery process, send one request at a time through pkg/protocol's
// client for -duration (or -requests) after -warmup. Workloads:
//
//   - realistic: what smtp(8) does for a delivery: find_dest; on a miss
//     find_endp; on a miss a new connection (one end of a socketpair; the
//     generator keeps the other); then save_dest and save_endp (-ttl), and
//     the connection is closed, the server's copy being the only one.
//     Destinations are drawn zipf-like (-zipf) from -dests; destination d
//     is served by endpoint d % -endpoints.
//   - find-heavy: 7 of 8 iterations look up a destination nothing was saved
//     for (find_dest and find_endp miss); 1 of 8 is realistic.
//   - save-heavy: 7 of 8 iterations save a new connection without a
//     lookup; 1 of 8 is realistic. Sessions alive are kept within the
//     descriptor budget (below); saves beyond it become realistic
//     iterations and are counted (throttled).
//   - scale: fill the cache with -sessions sessions, all due in the same
//     second, look up and save back random ones while they are held, then
//     look up (misses) while they all expire. The server's ttl limit must
//     exceed the fill (scached -o connection_cache_ttl_limit=3600s).
//
// Labels carry a per-run nonce, so a long-lived server never hands one run
// another run's sessions.
//
// # Checks
//
// Every descriptor a server hands out is identified by its inode: it must
// be one the generator saved, under that endpoint label (with -limit: under
// any), and not already handed out. A sample (-sample, all with -verify) is
// written through and must come out at the kept end, and must not have
// O_NONBLOCK set. After the run the generator waits (-drain past the last
// deadline) until the server has closed every session it holds (the kept
// ends hang up), then counts its own descriptors: none may leak. Errors,
// timeouts (-timeout) and reconnects are counted; the exit status is 3 when
// any error was seen.
//
// Each live session is a descriptor in the server and one here, so the
// generator raises its RLIMIT_NOFILE as far as it may and keeps the
// sessions alive below 90% of the smaller of its own limit and the
// server's (/proc/PID/limits).
//
// # Soak
//
// -rate R spaces the iterations so that all clients together make R per
// second (each an equal share), for a moderate load over a long run.
// -account accounts for every save: it ends when a find hands the
// descriptor back or when the kept end hangs up (the server closed the
// last copy: expiry or eviction); after the drain the kept end of every
// session still registered is polled once more, and one still open is
// unaccounted (an error). The report gives saved = handed back + closed by
// the server + unaccounted. -term (with -account and -pid) sends the
// server SIGTERM after the load instead of waiting for expiry: its
// shutdown must close every descriptor it holds (run it with a ttl longer
// than the load, so that those are the ones it closes).
// test/soak/run.sh (make soak) uses all three.
//
// # Report
//
// Per request type: rate, hit rate, p50/p90/p99/p99.9/max latency; the
// server's CPU time per request (utime+stime from /proc/PID/stat over the
// measured window), peak RSS (sampled every 100 ms) and descriptors before
// and after (/proc/PID/fd, no clients connected); the generator's CPU and
// the CPU other processes took meanwhile. -pid names the server; by
// default it is found with SO_PEERCRED, and when that is Postfix's
// master(8), as master's child named scache. Text, or JSON with -json / -o.
//
// # The limit server
//
// -serve-limit PATH serves a mirror of a cache server with no cache and no
// logic: per request it makes the system calls scached makes (recvmsg per
// read, write per reply, sendmsg per descriptor handed out, close after a
// hand-out), with a goroutine per client, and replies canned bytes of the
// same sizes. Saved descriptors go into a ring of -ring; a find hits with
// probability -hit-dest / -hit-endp (give it the hit rates of a real run,
// so that the mix of requests and transfers is the same) by handing out
// the oldest. Run the generator against it with -limit. test/bench/run.sh
// (make bench) runs all of this side by side; see docs/benchmarks.md.
//
// -cpuprofile FILE profiles this process (generator or limit server).
package main
