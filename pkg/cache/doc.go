// Package cache is the connection cache of scached: the data structure
// behind Postfix's scache(8) requests save_endp, find_endp, save_dest and
// find_dest. It behaves like Postfix's in-memory multi-session cache
// (global/scache_multi.c) and is safe for concurrent use.
//
// The package is pure: no sockets, no logging, no goroutines, no timers, and
// it never closes a descriptor. Descriptors are plain ints that it stores and
// hands back; what happens to them is the caller's business.
//
// # Data model
//
// As in scache_multi.c, there are two name spaces, both keyed by exact byte
// strings (case-sensitive; the empty string and arbitrary bytes are valid):
//
//   - An endpoint label (e.g. "smtp\n192.0.2.1\n25\n0\n") names a FIFO list
//     of sessions, each a cached descriptor with its endpoint property
//     (scache_multi.c:scache_multi_save_endp() appends at the tail,
//     scache_multi.c:scache_multi_find_endp() takes the head: the oldest).
//     There is no duplicate check: every save is a new session.
//   - A destination label (e.g. "smtp\n[192.0.2.1]:25\n") names a list of
//     bindings, each an endpoint label with a destination property, oldest
//     first. Saving the binding (endpoint label, property) again only moves
//     its deadline; a new pair is appended
//     (scache_multi.c:scache_multi_save_dest()). FindDest walks the bindings
//     oldest first and takes a session of the first endpoint that has one;
//     the binding stays (scache_multi.c:scache_multi_find_dest()).
//
// Every session and every binding has its own deadline, now+ttl at the
// save. Checking and clamping the TTL is the caller's policy (scache.c
// rejects ttl <= 0 and clamps to connection_cache_ttl_limit), so a ttl <= 0
// reaching the cache is a broken invariant and panics, as scache_multi.c
// panics on a negative one. An entry whose deadline is <= now is dead: it
// is never handed out and never counted by [Cache.Sizes], whether or not
// [Cache.Expire] has run yet. As in Postfix, a label disappears when
// its last session or binding goes, so [Sizes] counts labels that still
// have entries (scache_multi.c:scache_multi_size()).
//
// # Ownership of descriptors
//
// [Cache.SaveEndp] takes ownership of the descriptor it is given. Every
// descriptor leaves the cache exactly once, handed back to the caller, who
// then owns it and must close it (after the call has returned, so no
// descriptor is ever closed while a cache lock is held):
//
//   - by [Cache.FindEndp] or [Cache.FindDest], to be passed to a client;
//   - by [Cache.Expire], once its deadline has passed (Postfix closes it in
//     scache_multi.c:scache_multi_drop_endp(); here the caller does);
//   - by [Cache.Drain], at shutdown.
//
// # Locking
//
// Entries are spread over shards by a hash (hash/maphash) of their label; a
// shard is a mutex, a table of endpoint labels, a table of destination
// labels, a min-heap of the deadlines of all its sessions and bindings, and
// the arena that holds them.
// A destination and the endpoints it binds usually live in different shards.
// No method holds more than one shard lock at any moment. FindDest copies the
// destination's live bindings (endpoint label, property) under the
// destination's shard lock, releases it, and then tries each endpoint in
// turn under that endpoint's shard lock. It is therefore not atomic: a
// session saved, or a binding saved or expired, while FindDest runs may or
// may not be seen, which is indistinguishable from the requests arriving in
// another order. Each session is still handed out at most once.
//
// A method that needs the time reads the clock once, before taking any
// lock, and uses that reading throughout. Helpers whose name ends in Locked
// need the shard's mutex held.
//
// # Expiry
//
// There is no timer and no goroutine per entry, and nothing ever scans the
// whole cache. Each shard keeps the deadlines of its entries in an intrusive
// 4-ary min-heap (an entry knows its heap index, so hand-out and refresh are
// O(log n)); sessions and bindings sit in intrusive doubly linked lists, so
// an entry is unlinked from the middle of its list in O(1).
//
// Like Postfix's event loop, which delivers due timers before any I/O
// (util/events.c:event_loop()), a method that locks a shard first removes
// that shard's due entries, up to a batch of them (128). Bindings are
// simply freed; the descriptors of the sessions are kept in the shard's
// pending list until the next Expire or Drain returns them. When more
// entries fall due together than a batch (a mass expiry: 100,000 sessions
// saved with the same ttl), the rest are removed by the next locks, a batch
// each, and by Expire, which releases the shard's lock between batches, so
// that no request waits for more than a batch. Until then a dead entry may
// still sit in a list: the operations that walk a list remove the dead
// entries they meet first, so a dead entry is never handed out, refreshed,
// counted by Sizes or counted against a limit. Expire costs O(shards +
// expired entries). [Cache.NextDeadline] reports a time <= now while due
// entries or such descriptors wait, so that a maintenance loop sleeping
// until NextDeadline wakes up to collect them.
//
// NextDeadline and [Cache.Counts] read per-shard figures published
// atomically at each unlock and take no lock; Sizes does the same after
// removing the due entries (a batch per lock), so it costs O(shards) plus
// the due entries. Under concurrent use they are a sum of recent per-shard
// values, not an atomic snapshot; when the cache is quiescent Sizes is
// exact, and so is Counts once Expire has run.
//
// # Memory
//
// A shard keeps its sessions, bindings and label lists as records in an
// arena of its own (arena.go): size classes of fixed slots carved out of
// chunks of anonymous memory from mmap(2), outside the Go heap; each record
// is a header of integers followed by its strings, and records refer to
// each other by 32-bit references, not pointers. The label tables
// (open addressing over the labels' hashes, table.go) and the deadline
// heaps live in such memory too. The garbage collector therefore neither
// scans the cache nor counts it towards its goal: 100,000 sessions with
// their destinations take about 45 MiB at smtp(8)'s label and property
// sizes, not the twice-the-live-heap that a pointer-linked Go structure
// costs under GOGC=100 (see docs/scale.md). Freed slots are reused first;
// when the last record of a class in a shard goes, the class's chunks but
// its first are unmapped, and tables and heaps shrink as they empty, so a
// cache that drained after a peak gives its memory back. Race-detector
// builds take the same memory from the Go heap so that the detector sees
// it.
//
// The cache copies the labels and properties it is given; a find copies
// the properties out under the lock. In steady state no operation
// allocates: FindEndpInto and FindDestInto copy into buffers of a Found
// that the caller reuses (FindEndp and FindDest are conveniences that
// return new strings), and everything else is recycled in the arena.
//
// # Limits
//
// Postfix has none (see the comment at the top of scache_multi.c); a Cache
// may have three (Config): sessions of one endpoint and bindings of one
// destination, enforced under that label's shard lock by removing the
// list's first (oldest) entry, and sessions in the whole cache. For the
// last, every shard keeps its sessions in save order (entry.allNext) and
// publishes, lock-free, when its oldest was saved; a save that takes the
// global count over the limit picks the shard with the oldest session and
// locks that shard alone to evict it. SaveEndp hands the evicted descriptor
// back to the caller, who closes it, as with Expire.
//
// # Room for later
//
// The following are not implemented; this is where they would go.
//
//   - A liveness check before hand-out (the remote server may have closed
//     the connection). The check is a system call, so it must not run under
//     a shard lock: FindEndp/FindDest would take the session as now, test it
//     after unlocking, and on failure hand the descriptor back for closing
//     and try again. This fits a Config.Alive func(fd int) bool test seam, or
//     can stay entirely in the caller's loop.
//   - Export and Import of all entries for the systemd file descriptor store
//     (FDSTORE=1), to survive a restart. Export would walk each shard under
//     its lock, list by list in FIFO order, yielding (kind, label, property,
//     endpoint label, fd, remaining TTL); the remaining TTL is the heap
//     deadline minus now, since deadlines are nanoseconds relative to the
//     monotonic base taken at New and mean nothing to another process.
//     Import would replay SaveEndp/SaveDest in the exported order, which
//     restores FIFO order and binding positions. Ownership: Export lends the
//     descriptors (the caller duplicates them into the store); Import takes
//     ownership, like SaveEndp.
package cache
