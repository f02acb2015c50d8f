package cache

import (
	"hash/maphash"
	"math"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultShards is the number of shards when Config.Shards is 0.
const DefaultShards = 64

// maxShards bounds Config.Shards; larger values are treated as maxShards.
const maxShards = 1 << 16

// Config configures a Cache. The zero value is ready to use.
type Config struct {
	// Shards is the number of shards, rounded up to a power of two (at
	// most 65536). 0 means DefaultShards; a negative value panics.
	Shards int

	// Now is the clock. nil means time.Now. Tests inject a fake clock.
	Now func() time.Time

	// Limits; 0 means none. When a save goes over one, the oldest entry
	// it concerns is evicted: the oldest session of the endpoint, the
	// oldest binding of the destination, the session saved longest ago in
	// the whole cache.
	MaxSessions     int // sessions in the whole cache
	MaxEndpSessions int // sessions of one endpoint label
	MaxDestBindings int // bindings of one destination label
}

// Eviction says which limit made a save evict an entry.
type Eviction int

const (
	NoEviction       Eviction = iota
	EndpointLimit             // Config.MaxEndpSessions
	SessionLimit              // Config.MaxSessions
	DestinationLimit          // Config.MaxDestBindings
)

// Cache is a connection cache with Postfix's scache_multi semantics. It is
// safe for concurrent use. See the package documentation for the data
// model, descriptor ownership and locking. The zero Cache is not usable;
// create one with New.
type Cache struct {
	now    func() time.Time
	base   time.Time // deadlines are nanoseconds since base
	seed   maphash.Seed
	mask   uint64
	shards []shard
	limits Config
	total  atomic.Int64 // sessions in all shards
}

// Sizes counts what the cache holds, as Postfix's scache_size() reports it
// (scache_multi.c:scache_multi_size()).
type Sizes struct {
	Dests    int // destination labels with at least one binding
	Endps    int // endpoint labels with at least one session
	Sessions int // cached sessions
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.Shards < 0 {
		panic("cache: negative Config.Shards")
	}
	n := cfg.Shards
	if n == 0 {
		n = DefaultShards
	}
	n = min(n, maxShards)
	size := 1
	for size < n {
		size <<= 1
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c := &Cache{
		now:    now,
		base:   now(),
		seed:   maphash.MakeSeed(),
		mask:   uint64(size - 1),
		shards: make([]shard, size),
		limits: cfg,
	}
	for i := range c.shards {
		c.shards[i].init()
		c.shards[i].total = &c.total
	}
	return c
}

// clock returns the current time in nanoseconds since c.base.
func (c *Cache) clock() int64 {
	return int64(c.now().Sub(c.base))
}

// shardOf returns the shard that holds label and the label's hash in
// that shard's tables: the low bits of one 64-bit hash pick the shard, the
// high 32 bits are the table's.
func (c *Cache) shardOf(label string) (*shard, uint32) {
	h := maphash.String(c.seed, label)
	return &c.shards[h&c.mask], uint32(h >> 32)
}

// bytesString returns b as a string without copying it, for a lookup that
// reads it only during the call.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// deadline returns now+ttl, saturating instead of overflowing. It panics
// if ttl <= 0: the caller rejects or clamps TTLs before they get here.
func deadline(now int64, ttl time.Duration) int64 {
	if ttl <= 0 {
		panic("cache: ttl <= 0")
	}
	if int64(ttl) >= noDeadline-max(now, 0) {
		return noDeadline - 1 // about 292 years after New
	}
	return now + int64(ttl)
}

// SaveEndp stores the session fd with endpoint property prop under the
// endpoint label for ttl, at the tail of the label's sessions; there is no
// duplicate check (scache_multi.c:scache_multi_save_endp()). The cache takes
// ownership of fd: it is handed back exactly once, by FindEndp, FindDest,
// Expire, Drain or as evicted here. ttl must be > 0 (the caller has
// clamped it); otherwise SaveEndp panics.
//
// When the save goes over a limit, one session is evicted: the endpoint's
// oldest (EndpointLimit) or the one saved longest ago in the whole cache
// (SessionLimit); with a limit of 1 that can be the session just saved.
// The evicted descriptor is returned and the caller owns it; otherwise
// evicted is -1. The cache keeps copies of label and prop. fd must fit in
// 32 bits, as descriptor numbers do; otherwise SaveEndp panics.
func (c *Cache) SaveEndp(ttl time.Duration, label, prop string, fd int) (evicted int, why Eviction) {
	if fd < math.MinInt32 || fd > math.MaxInt32 {
		panic("cache: descriptor out of range")
	}
	now := c.clock()
	d := deadline(now, ttl)
	s, h := c.shardOf(label)
	s.lock(now)
	evicted = s.saveEndpLocked(now, d, h, label, prop, fd, c.limits.MaxEndpSessions)
	s.unlock()
	if evicted >= 0 {
		return evicted, EndpointLimit
	}
	if c.limits.MaxSessions > 0 && c.total.Load() > int64(c.limits.MaxSessions) {
		if evicted = c.evictOldest(now); evicted >= 0 {
			return evicted, SessionLimit
		}
	}
	return -1, NoEviction
}

// SaveEndpBytes is SaveEndp with the label and property as bytes, which
// it only reads during the call (views into a read buffer will do).
func (c *Cache) SaveEndpBytes(ttl time.Duration, label, prop []byte, fd int) (evicted int, why Eviction) {
	return c.SaveEndp(ttl, bytesString(label), bytesString(prop), fd)
}

// evictOldest removes the session saved longest ago in the whole cache and
// returns its descriptor, or -1 when the cache is no longer over
// MaxSessions (other goroutines took or evicted sessions meanwhile). It
// reads every shard's published oldest save time without locking, then
// locks the one shard it picked; if that shard was emptied in between, it
// looks again.
func (c *Cache) evictOldest(now int64) int {
	for range c.shards {
		if c.total.Load() <= int64(c.limits.MaxSessions) {
			return -1
		}
		best, oldest := -1, int64(noDeadline)
		for i := range c.shards {
			if t := c.shards[i].oldest.Load(); t < oldest {
				best, oldest = i, t
			}
		}
		if best < 0 {
			return -1
		}
		s := &c.shards[best]
		s.lock(now)
		fd := -1
		// The oldest sessions may be dead, not yet expired: expire them
		// (up to a batch) rather than evict a live one in their place.
		for range s.batch {
			e := s.sessFirst
			if e == 0 || s.deadline(e) > now {
				break
			}
			s.expireEntryLocked(e)
		}
		if s.sessFirst != 0 && c.total.Load() > int64(c.limits.MaxSessions) {
			fd = s.evictLocked(s.sessFirst)
		}
		s.unlock()
		if fd >= 0 {
			return fd
		}
	}
	return -1
}

// Found receives what FindEndpInto and FindDestInto hand out. The
// properties are copies in a buffer of Found's own, valid until the next
// find with the same Found; a goroutine that keeps one Found for all its
// finds makes them allocate nothing once the buffer has grown to the
// largest properties. The zero Found is ready to use.
type Found struct {
	DestProp []byte // FindDestInto: the binding's destination property
	EndpProp []byte // the session's endpoint property
	FD       int    // the session's descriptor, which the caller owns; -1 on a miss

	buf      []byte
	bindings []binding
}

func (f *Found) miss() bool {
	f.DestProp, f.EndpProp, f.FD = nil, nil, -1
	return false
}

// FindEndp removes and returns the oldest live session of the endpoint
// label: its property and descriptor (scache_multi.c:scache_multi_find_endp()).
// The caller owns fd and must close it. On a miss ok is false, prop is ""
// and fd is -1.
func (c *Cache) FindEndp(label string) (prop string, fd int, ok bool) {
	var f Found
	ok = c.findEndp(&f, label)
	return string(f.EndpProp), f.FD, ok
}

// FindEndpInto is FindEndp with the label as bytes, which it only reads
// during the call (a view into a read buffer will do), and the result in
// f: EndpProp and FD.
func (c *Cache) FindEndpInto(f *Found, label []byte) bool {
	return c.findEndp(f, bytesString(label))
}

func (c *Cache) findEndp(f *Found, label string) (ok bool) {
	f.buf, f.FD, ok = c.takeSession(c.clock(), label, f.buf[:0])
	if !ok {
		return f.miss()
	}
	f.DestProp, f.EndpProp = nil, f.buf
	return true
}

// takeSession removes the oldest live session of the endpoint label under
// its shard's lock, appends its property to dst and returns its
// descriptor, which the caller owns: the lookup of FindEndp, and of each
// endpoint FindDest tries. label is only read before dst is appended to.
func (c *Cache) takeSession(now int64, label string, dst []byte) (_ []byte, fd int, ok bool) {
	s, h := c.shardOf(label)
	s.lock(now)
	dst, fd, ok = s.findEndpLocked(s.findListLocked(&s.endps, h, label), now, dst)
	s.unlock()
	return dst, fd, ok
}

// SaveDest binds the destination label to the endpoint label endpLabel
// with destination property prop for ttl. If the destination already has a
// live binding with the same endpLabel and the same prop, only that
// binding's deadline is set to now+ttl and it keeps its place; otherwise a
// new binding is appended at the tail
// (scache_multi.c:scache_multi_save_dest()). The endpoint need not have
// sessions. ttl must be > 0; otherwise SaveDest panics. No descriptor is
// involved. A new binding that makes the destination go over
// MaxDestBindings evicts its oldest binding (DestinationLimit).
func (c *Cache) SaveDest(ttl time.Duration, label, prop, endpLabel string) Eviction {
	now := c.clock()
	d := deadline(now, ttl)
	s, h := c.shardOf(label)
	s.lock(now)
	evicted := s.saveDestLocked(now, d, h, label, prop, endpLabel, c.limits.MaxDestBindings)
	s.unlock()
	if evicted {
		return DestinationLimit
	}
	return NoEviction
}

// SaveDestBytes is SaveDest with the strings as bytes, which it only reads
// during the call (views into a read buffer will do).
func (c *Cache) SaveDestBytes(ttl time.Duration, label, prop, endpLabel []byte) Eviction {
	return c.SaveDest(ttl, bytesString(label), bytesString(prop), bytesString(endpLabel))
}

// FindDest walks the live bindings of the destination label oldest first
// and takes the oldest live session of the first endpoint that has one
// (scache_multi.c:scache_multi_find_dest()); each endpoint is searched as by
// FindEndp. The binding stays. It returns the binding's destination
// property, the session's endpoint property and its descriptor, which the
// caller owns and must close. On a miss ok is false, the properties are ""
// and fd is -1.
//
// The bindings are copied under the destination's shard lock and the
// endpoints are searched afterwards, each under its own shard lock; see
// the package documentation.
func (c *Cache) FindDest(label string) (destProp, endpProp string, fd int, ok bool) {
	var f Found
	ok = c.findDest(&f, label)
	return string(f.DestProp), string(f.EndpProp), f.FD, ok
}

// FindDestInto is FindDest with the label as bytes, which it only reads
// during the call (a view into a read buffer will do), and the result in
// f: DestProp, EndpProp and FD.
func (c *Cache) FindDestInto(f *Found, label []byte) bool {
	return c.findDest(f, bytesString(label))
}

func (c *Cache) findDest(f *Found, label string) bool {
	now := c.clock()
	s, h := c.shardOf(label)
	s.lock(now)
	f.buf, f.bindings = s.bindingsLocked(s.findListLocked(&s.dests, h, label), now, f.buf[:0], f.bindings[:0])
	s.unlock()
	for _, b := range f.bindings {
		// endp aliases f.buf, which takeSession appends to after the lookup.
		endp := bytesString(f.buf[b.endpOff : b.endpOff+b.endpLen])
		n := len(f.buf)
		var ok bool
		f.buf, f.FD, ok = c.takeSession(now, endp, f.buf)
		if ok {
			f.DestProp, f.EndpProp = f.buf[b.propOff:b.propOff+b.propLen], f.buf[n:]
			return true
		}
	}
	return f.miss()
}

// Expire removes every session and binding whose deadline has passed and
// appends the removed sessions' descriptors to dst, which it returns. The
// caller owns those descriptors and must close them (Postfix closes them on
// expiry, scache_multi.c:scache_multi_expire_endp()). The order of the
// descriptors is unspecified. Expire costs O(shards + expired entries); it
// skips a shard without taking its lock when nothing in it is due, and
// holds a shard's lock for a batch of entries at a time (expireBatch), so
// that a mass expiry delays no request by more than a batch.
func (c *Cache) Expire(dst []int) []int {
	now := c.clock()
	for i := range c.shards {
		s := &c.shards[i]
		if s.next.Load() > now {
			continue
		}
		for {
			s.lock(now)
			dst = s.takePendingLocked(dst)
			more := s.hasDueLocked(now)
			s.unlock()
			if !more {
				break
			}
			runtime.Gosched() // let a request waiting for the lock in
		}
	}
	return dst
}

// NextDeadline returns the earliest deadline of any entry in the cache, or
// of the descriptors already removed as expired that wait for Expire (then
// the time is <= now). ok is false when the cache holds nothing. It takes no
// lock.
func (c *Cache) NextDeadline() (t time.Time, ok bool) {
	next := int64(noDeadline)
	for i := range c.shards {
		next = min(next, c.shards[i].next.Load())
	}
	if next == noDeadline {
		return time.Time{}, false
	}
	return c.base.Add(time.Duration(next)), true
}

// Sizes returns the number of destination labels, endpoint labels and
// sessions, counting live entries only (the due entries of a shard are
// removed first, a batch per lock, as by Expire). Under concurrent use the
// result is a sum of per-shard figures, each exact at some recent moment.
// It costs O(shards + due entries); see Counts for a figure without
// expiry.
func (c *Cache) Sizes() Sizes {
	now := c.clock()
	for i := range c.shards {
		s := &c.shards[i]
		for s.due.Load() <= now {
			s.lock(now)
			s.unlock()
		}
	}
	return c.Counts()
}

// Counts is Sizes without the expiry: the figures the shards published
// when they were last unlocked, read without taking a lock. Entries that
// died since are counted until they are removed (at the latest by the
// next Expire); otherwise Counts and Sizes agree. It costs O(shards) and
// suits a figure sampled at every request, such as a peak.
func (c *Cache) Counts() Sizes {
	var sz Sizes
	for i := range c.shards {
		s := &c.shards[i]
		sz.Dests += int(s.nDests.Load())
		sz.Endps += int(s.nEndps.Load())
		sz.Sessions += int(s.nSessions.Load())
	}
	return sz
}

// Memory returns the bytes of memory the cache has in use for its
// records, label tables and heaps: the slots ever handed out in each size
// class (freed ones included, as they stay touched until their class
// empties), the tables' and heaps' arrays. It excludes the Go structures
// of a fixed size (the shards themselves) and the pending descriptor
// lists. It locks each shard in turn, without expiring anything.
func (c *Cache) Memory() int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.ar.inUse() + int64(len(s.endps.mem)+len(s.dests.mem)+len(s.heapMem))
		s.mu.Unlock()
	}
	return n
}

// Drain removes every session and binding, live or not, and appends all
// session descriptors still held (including expired ones not yet returned
// by Expire) to dst, which it returns. The caller owns those descriptors
// and must close them. The cache is empty and usable afterwards. Drain is
// meant for shutdown; concurrent saves may refill the cache behind it.
func (c *Cache) Drain(dst []int) []int {
	now := c.clock()
	for i := range c.shards {
		s := &c.shards[i]
		s.lock(now)
		dst = s.drainLocked(dst)
		s.unlock()
	}
	return dst
}
