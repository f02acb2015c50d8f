package cache

import (
	"math"
	"sync"
	"sync/atomic"
)

// noDeadline is the published deadline of a shard that holds nothing.
const noDeadline = math.MaxInt64

// maxFree is the number of free entries, and of free lists, a shard keeps
// for reuse; beyond it they are left to the garbage collector.
const maxFree = 256

// maxPendingCap is the capacity of the pending descriptor list that a shard
// keeps after handing its contents out.
const maxPendingCap = 1024

// expireBatch is the most due entries that one lock of a shard removes
// (shard.batch; tests make it smaller). When more fall due at once, a mass
// expiry, the rest stay until the shard's next lock or until Expire, which
// takes and releases the lock once per batch: no request waits for more
// than a batch, however many entries expire together. Until then a dead
// entry may still be in a list; the operations that meet one remove it
// first (liveLocked), so that nothing dead is ever handed out, refreshed
// or counted against a limit.
const expireBatch = 128

// entry is a session (an element of an endpoint's list) or a binding (an
// element of a destination's list): the SCACHE_MULTI_ENDP and
// SCACHE_MULTI_DEST of scache_multi.c, with the heap position that replaces
// Postfix's per-entry timer.
type entry struct {
	prev, next *entry // list linkage; next also links the free list
	list       *list  // the list that holds the entry
	index      int    // position in shard.heap, which holds the deadline
	prop       string // session: endpoint property; binding: destination property
	endpLabel  string // binding: the endpoint label; session: ""
	fd         int    // session: the cached descriptor; binding: -1

	// Sessions only: the shard's sessions in the order they were saved,
	// for the total session limit's eviction, and when this one was saved.
	allPrev, allNext *entry
	saved            int64
}

// list is the head of an endpoint's sessions or of a destination's
// bindings, oldest first (SCACHE_MULTI_HEAD). It is in its shard's map
// exactly while it is not empty. It takes 48 bytes.
type list struct {
	label       string
	first, last *entry
	nextFree    *list // free list linkage
	n           int32 // entries in the list
	dest        bool  // a destination's bindings, not an endpoint's sessions
}

// slot is a heap element: a deadline (nanoseconds since Cache.base) and the
// entry it belongs to. The deadline lives here, next to its neighbours, so
// that sifting does not chase pointers.
type slot struct {
	deadline int64
	e        *entry
}

// binding is a copy of a binding taken by FindDest.
type binding struct {
	endpLabel, prop string
}

// shard is one lock's worth of the cache. Everything but the published
// figures is guarded by mu.
type shard struct {
	mu    sync.Mutex
	endps map[string]*list // endpoint label -> sessions
	dests map[string]*list // destination label -> bindings
	heap  []slot           // min-heap of the deadlines of all entries
	batch int              // expireBatch

	sessions int           // number of sessions in endps
	total    *atomic.Int64 // the cache's number of sessions, all shards

	// The shard's sessions, oldest saved first (entry.allNext).
	sessFirst, sessLast *entry
	pending             []int // descriptors of expired sessions, for Expire
	pendingMin          int64 // earliest deadline among pending

	freeEntries *entry // linked by next
	nFreeEntry  int
	freeLists   *list // linked by nextFree
	nFreeList   int

	// Published at each unlock for readers that take no lock.
	due       atomic.Int64 // earliest deadline in heap, or noDeadline
	next      atomic.Int64 // min(due, pendingMin if pending)
	nDests    atomic.Int64
	nEndps    atomic.Int64
	nSessions atomic.Int64
	oldest    atomic.Int64 // when sessFirst was saved, or noDeadline

	_ [64]byte // keep neighbouring shards' mutexes off this cache line
}

func (s *shard) init() {
	s.batch = expireBatch
	s.endps = make(map[string]*list)
	s.dests = make(map[string]*list)
	s.due.Store(noDeadline)
	s.next.Store(noDeadline)
	s.oldest.Store(noDeadline)
}

// lock locks the shard and removes its entries that are due at now, as
// Postfix delivers due timers before it serves a request: up to a batch of
// them (see expireBatch).
func (s *shard) lock(now int64) {
	s.mu.Lock()
	s.expireLocked(now)
}

// expireLocked removes up to a batch of the entries that are due at now
// and reports whether due entries remain.
func (s *shard) expireLocked(now int64) (more bool) {
	for range s.batch {
		if !s.hasDueLocked(now) {
			return false
		}
		s.expireEntryLocked(s.heap[0].e)
	}
	return s.hasDueLocked(now)
}

// hasDueLocked reports whether an entry of the shard is due at now; when
// none is, every entry is live.
func (s *shard) hasDueLocked(now int64) bool {
	return len(s.heap) > 0 && s.heap[0].deadline <= now
}

// liveLocked removes the dead entries of l, a list of the shard or nil,
// as expired, and returns l, or nil when that emptied it. It costs
// nothing while the shard has no due entry; otherwise it walks l.
func (s *shard) liveLocked(l *list, now int64) *list {
	if l == nil || !s.hasDueLocked(now) {
		return l
	}
	for e := l.first; e != nil; {
		next := e.next
		if s.heap[e.index].deadline <= now {
			last := l.n == 1
			s.expireEntryLocked(e)
			if last {
				return nil
			}
		}
		e = next
	}
	return l
}

// unlock publishes the shard's figures and unlocks it.
func (s *shard) unlock() {
	due := int64(noDeadline)
	if len(s.heap) > 0 {
		due = s.heap[0].deadline
	}
	next := due
	if len(s.pending) > 0 {
		next = min(next, s.pendingMin)
	}
	s.due.Store(due)
	s.next.Store(next)
	s.nDests.Store(int64(len(s.dests)))
	s.nEndps.Store(int64(len(s.endps)))
	s.nSessions.Store(int64(s.sessions))
	oldest := int64(noDeadline)
	if s.sessFirst != nil {
		oldest = s.sessFirst.saved
	}
	s.oldest.Store(oldest)
	s.mu.Unlock()
}

// expireEntryLocked removes e, which is dead; a session's descriptor goes to
// the pending list
// (scache_multi.c:scache_multi_expire_endp(), scache_multi_expire_dest()).
func (s *shard) expireEntryLocked(e *entry) {
	d := s.heap[e.index].deadline
	if !e.list.dest {
		if len(s.pending) == 0 || d < s.pendingMin {
			s.pendingMin = d
		}
		s.pending = append(s.pending, e.fd)
	}
	s.removeLocked(e)
}

// takePendingLocked appends the pending descriptors to dst and forgets
// them; the caller owns them.
func (s *shard) takePendingLocked(dst []int) []int {
	dst = append(dst, s.pending...)
	if cap(s.pending) > maxPendingCap {
		s.pending = nil
	} else {
		s.pending = s.pending[:0]
	}
	return dst
}

// saveEndpLocked appends a session to the endpoint label's list. When the
// list is then longer than limit (> 0), its oldest session is removed and
// its descriptor returned for the caller to close; otherwise it returns -1.
func (s *shard) saveEndpLocked(now, deadline int64, label, prop string, fd int, limit int) (evicted int) {
	l := s.liveLocked(s.endps[label], now)
	if l == nil {
		l = s.newListLocked(label, false)
		s.endps[label] = l
	}
	e := s.newEntryLocked()
	e.prop = prop
	e.fd = fd
	// The clock was read before the lock: a racing save may have appended
	// a later time already. Keep save times in list order.
	e.saved = now
	if s.sessLast != nil && s.sessLast.saved > now {
		e.saved = s.sessLast.saved
	}
	s.appendLocked(l, e, deadline)
	e.allPrev = s.sessLast
	if s.sessLast != nil {
		s.sessLast.allNext = e
	} else {
		s.sessFirst = e
	}
	s.sessLast = e
	s.sessions++
	s.total.Add(1)
	if limit > 0 && int(l.n) > limit {
		return s.evictLocked(l.first)
	}
	return -1
}

// evictLocked removes session e and returns its descriptor; the caller
// owns it.
func (s *shard) evictLocked(e *entry) int {
	fd := e.fd
	s.removeLocked(e)
	return fd
}

// findEndpLocked removes the oldest live session of l, an endpoint's
// list (nil: the label has none), and returns its property and
// descriptor; the caller owns fd.
func (s *shard) findEndpLocked(l *list, now int64) (prop string, fd int, ok bool) {
	l = s.liveLocked(l, now)
	if l == nil {
		return "", -1, false
	}
	e := l.first
	prop, fd = e.prop, e.fd
	s.removeLocked(e)
	return prop, fd, true
}

// saveDestLocked refreshes or appends a binding of the destination label.
// When a new binding makes the list longer than limit (> 0), the oldest
// binding is removed and it reports true.
func (s *shard) saveDestLocked(now, deadline int64, label, prop, endpLabel string, limit int) (evicted bool) {
	l := s.liveLocked(s.dests[label], now)
	if l == nil {
		l = s.newListLocked(label, true)
		s.dests[label] = l
	}
	for e := l.first; e != nil; e = e.next {
		if e.endpLabel == endpLabel && e.prop == prop {
			s.heap[e.index].deadline = deadline
			s.fixLocked(e.index)
			return false
		}
	}
	e := s.newEntryLocked()
	e.prop = prop
	e.endpLabel = endpLabel
	e.fd = -1
	s.appendLocked(l, e, deadline)
	if limit > 0 && int(l.n) > limit {
		s.removeLocked(l.first)
		return true
	}
	return false
}

// bindingsLocked appends the live bindings of l, a destination's list
// (nil: the label has none), oldest first, to dst.
func (s *shard) bindingsLocked(l *list, now int64, dst []binding) []binding {
	l = s.liveLocked(l, now)
	if l == nil {
		return dst
	}
	for e := l.first; e != nil; e = e.next {
		dst = append(dst, binding{endpLabel: e.endpLabel, prop: e.prop})
	}
	return dst
}

// drainLocked empties the shard, appending every session descriptor it
// holds, pending ones included, to dst.
func (s *shard) drainLocked(dst []int) []int {
	dst = s.takePendingLocked(dst)
	for len(s.heap) > 0 {
		e := s.heap[len(s.heap)-1].e
		if !e.list.dest {
			dst = append(dst, e.fd)
		}
		s.removeLocked(e)
	}
	return dst
}

// appendLocked puts a new entry at the tail of l and in the heap.
func (s *shard) appendLocked(l *list, e *entry, deadline int64) {
	e.list = l
	e.prev = l.last
	if l.last != nil {
		l.last.next = e
	} else {
		l.first = e
	}
	l.last = e
	l.n++
	s.pushLocked(e, deadline)
}

// removeLocked takes e out of its list and the heap and frees it. When
// its list becomes empty, the label goes from its map
// (scache_multi.c:scache_multi_drop_endp(), scache_multi_drop_dest()).
func (s *shard) removeLocked(e *entry) {
	s.deleteLocked(e.index)
	l := e.list
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.first = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.last = e.prev
	}
	l.n--
	if !l.dest {
		s.sessions--
		s.total.Add(-1)
		if e.allPrev != nil {
			e.allPrev.allNext = e.allNext
		} else {
			s.sessFirst = e.allNext
		}
		if e.allNext != nil {
			e.allNext.allPrev = e.allPrev
		} else {
			s.sessLast = e.allPrev
		}
	}
	if l.first == nil {
		if l.dest {
			delete(s.dests, l.label)
		} else {
			delete(s.endps, l.label)
		}
		s.freeListLocked(l)
	}
	s.freeEntryLocked(e)
}

func (s *shard) newEntryLocked() *entry {
	e := s.freeEntries
	if e == nil {
		return new(entry)
	}
	s.freeEntries = e.next
	s.nFreeEntry--
	e.next = nil
	return e
}

func (s *shard) freeEntryLocked(e *entry) {
	*e = entry{} // drop references to strings and neighbours
	if s.nFreeEntry < maxFree {
		e.next = s.freeEntries
		s.freeEntries = e
		s.nFreeEntry++
	}
}

func (s *shard) newListLocked(label string, dest bool) *list {
	l := s.freeLists
	if l == nil {
		l = new(list)
	} else {
		s.freeLists = l.nextFree
		s.nFreeList--
		l.nextFree = nil
	}
	l.label = label
	l.dest = dest
	return l
}

func (s *shard) freeListLocked(l *list) {
	*l = list{}
	if s.nFreeList < maxFree {
		l.nextFree = s.freeLists
		s.freeLists = l
		s.nFreeList++
	}
}
