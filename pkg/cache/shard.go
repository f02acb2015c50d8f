package cache

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// noDeadline is the published deadline of a shard that holds nothing.
const noDeadline = math.MaxInt64

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

// The records of a shard's arena (arena.go). Each is a header of integers,
// then its strings; they refer to each other by ref.

// link begins every session and binding record: an element of a list,
// the SCACHE_MULTI_ENDP and SCACHE_MULTI_DEST of scache_multi.c, with the
// heap position that replaces Postfix's per-entry timer.
type link struct {
	prev, next ref    // list linkage
	list       ref    // the list that holds the entry
	index      uint32 // position in shard.heap, which holds the deadline
}

// sessRec is a session, an element of an endpoint's list, followed by its
// endpoint property.
type sessRec struct {
	link
	// The shard's sessions in the order they were saved, for the total
	// session limit's eviction, and when this one was saved.
	allPrev, allNext ref
	fd               int32 // the cached descriptor
	propLen          uint32
	saved            int64
}

// bindRec is a binding, an element of a destination's list, followed by
// its destination property and its endpoint label.
type bindRec struct {
	link
	propLen, endpLen uint32
}

// listRec is the head of an endpoint's sessions or of a destination's
// bindings, oldest first (SCACHE_MULTI_HEAD), followed by its label. It is
// in its shard's table exactly while it is not empty.
type listRec struct {
	first, last ref
	n           uint32 // entries in the list
	hash        uint32 // the label's hash in the table
	labelLen    uint32
	dest        bool // a destination's bindings, not an endpoint's sessions
}

const (
	sessHdr = uint32(unsafe.Sizeof(sessRec{}))
	bindHdr = uint32(unsafe.Sizeof(bindRec{}))
	listHdr = uint32(unsafe.Sizeof(listRec{}))
)

// slot is a heap element: a deadline (nanoseconds since Cache.base) and the
// entry it belongs to. The deadline lives here, next to its neighbours, so
// that sifting does not touch the records.
type slot struct {
	deadline int64
	r        ref
}

// binding locates a copy of a binding in a find's buffer (Found.buf).
type binding struct {
	endpOff, endpLen, propOff, propLen uint32
}

// shard is one lock's worth of the cache. Everything but the published
// figures is guarded by mu.
type shard struct {
	mu      sync.Mutex
	ar      arena
	endps   table  // endpoint label -> sessions
	dests   table  // destination label -> bindings
	heap    []slot // min-heap of the deadlines of all entries, in heapMem
	heapMem []byte
	batch   int // expireBatch

	sessions int           // number of sessions in endps
	total    *atomic.Int64 // the cache's number of sessions, all shards

	// The shard's sessions, oldest saved first (sessRec.allNext).
	sessFirst, sessLast ref
	pending             []int // descriptors of expired sessions, for Expire
	pendingMin          int64 // earliest deadline among pending

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
	s.due.Store(noDeadline)
	s.next.Store(noDeadline)
	s.oldest.Store(noDeadline)
}

// Record access. The pointers are into the arena and valid until the
// record is freed; the strings alias it likewise.

func (s *shard) link(r ref) *link       { return (*link)(s.ar.ptr(r)) }
func (s *shard) sess(r ref) *sessRec    { return (*sessRec)(s.ar.ptr(r)) }
func (s *shard) bind(r ref) *bindRec    { return (*bindRec)(s.ar.ptr(r)) }
func (s *shard) list(r ref) *listRec    { return (*listRec)(s.ar.ptr(r)) }
func (s *shard) deadline(r ref) int64   { return s.heap[s.link(r).index].deadline }
func (s *shard) isDest(l ref) bool      { return s.list(l).dest }
func (a *arena) listLabel(r ref) string { return a.stringAt(r, listHdr, (*listRec)(a.ptr(r)).labelLen) }

func (s *shard) sessProp(r ref) []byte {
	return s.ar.bytesAt(r, sessHdr, s.sess(r).propLen)
}

func (s *shard) bindProp(r ref) []byte {
	return s.ar.bytesAt(r, bindHdr, s.bind(r).propLen)
}

func (s *shard) bindEndp(r ref) []byte {
	b := s.bind(r)
	return s.ar.bytesAt(r, bindHdr+b.propLen, b.endpLen)
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
		s.expireEntryLocked(s.heap[0].r)
	}
	return s.hasDueLocked(now)
}

// hasDueLocked reports whether an entry of the shard is due at now; when
// none is, every entry is live.
func (s *shard) hasDueLocked(now int64) bool {
	return len(s.heap) > 0 && s.heap[0].deadline <= now
}

// liveLocked removes the dead entries of l, a list of the shard or 0, as
// expired, and returns l, or 0 when that emptied it. It costs nothing
// while the shard has no due entry; otherwise it walks l.
func (s *shard) liveLocked(l ref, now int64) ref {
	if l == 0 || !s.hasDueLocked(now) {
		return l
	}
	for e := s.list(l).first; e != 0; {
		next := s.link(e).next
		if s.deadline(e) <= now {
			last := s.list(l).n == 1
			s.expireEntryLocked(e)
			if last {
				return 0
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
	s.nDests.Store(int64(s.dests.count))
	s.nEndps.Store(int64(s.endps.count))
	s.nSessions.Store(int64(s.sessions))
	oldest := int64(noDeadline)
	if s.sessFirst != 0 {
		oldest = s.sess(s.sessFirst).saved
	}
	s.oldest.Store(oldest)
	s.mu.Unlock()
}

// expireEntryLocked removes e, which is dead; a session's descriptor goes to
// the pending list
// (scache_multi.c:scache_multi_expire_endp(), scache_multi_expire_dest()).
func (s *shard) expireEntryLocked(e ref) {
	if !s.isDest(s.link(e).list) {
		d := s.deadline(e)
		if len(s.pending) == 0 || d < s.pendingMin {
			s.pendingMin = d
		}
		s.pending = append(s.pending, int(s.sess(e).fd))
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

// findListLocked returns the list of label (hash h) in t, or 0.
func (s *shard) findListLocked(t *table, h uint32, label string) ref {
	return t.find(&s.ar, h, label)
}

// saveListLocked returns the live list of label (hash h) in t, s.endps or
// s.dests, making an empty one and filing it in t if there is none.
func (s *shard) saveListLocked(t *table, h uint32, label string, now int64) ref {
	if l := s.liveLocked(s.findListLocked(t, h, label), now); l != 0 {
		return l
	}
	r := s.ar.alloc(int(listHdr) + len(label))
	*s.list(r) = listRec{hash: h, labelLen: uint32(len(label)), dest: t == &s.dests}
	s.ar.putString(r, listHdr, label)
	t.insert(h, r)
	return r
}

// saveEndpLocked appends a session to the endpoint label's list. When the
// list is then longer than limit (> 0), its oldest session is removed and
// its descriptor returned for the caller to close; otherwise it returns -1.
func (s *shard) saveEndpLocked(now, deadline int64, h uint32, label, prop string, fd int, limit int) (evicted int) {
	l := s.saveListLocked(&s.endps, h, label, now)
	e := s.ar.alloc(int(sessHdr) + len(prop))
	// The clock was read before the lock: a racing save may have appended
	// a later time already. Keep save times in list order.
	saved := now
	if s.sessLast != 0 {
		saved = max(saved, s.sess(s.sessLast).saved)
	}
	*s.sess(e) = sessRec{allPrev: s.sessLast, fd: int32(fd), propLen: uint32(len(prop)), saved: saved}
	s.ar.putString(e, sessHdr, prop)
	s.appendLocked(l, e, deadline)
	if s.sessLast != 0 {
		s.sess(s.sessLast).allNext = e
	} else {
		s.sessFirst = e
	}
	s.sessLast = e
	s.sessions++
	s.total.Add(1)
	if n := s.list(l).n; limit > 0 && int(n) > limit {
		return s.evictLocked(s.list(l).first)
	}
	return -1
}

// evictLocked removes session e and returns its descriptor; the caller
// owns it.
func (s *shard) evictLocked(e ref) int {
	fd := int(s.sess(e).fd)
	s.removeLocked(e)
	return fd
}

// findEndpLocked removes the oldest live session of l, an endpoint's list
// (0: the label has none), appends its property to dst and returns its
// descriptor; the caller owns fd.
func (s *shard) findEndpLocked(l ref, now int64, dst []byte) (_ []byte, fd int, ok bool) {
	l = s.liveLocked(l, now)
	if l == 0 {
		return dst, -1, false
	}
	e := s.list(l).first
	dst = append(dst, s.sessProp(e)...)
	fd = int(s.sess(e).fd)
	s.removeLocked(e)
	return dst, fd, true
}

// saveDestLocked refreshes or appends a binding of the destination label.
// When a new binding makes the list longer than limit (> 0), the oldest
// binding is removed and it reports true.
func (s *shard) saveDestLocked(now, deadline int64, h uint32, label, prop, endpLabel string, limit int) (evicted bool) {
	l := s.saveListLocked(&s.dests, h, label, now)
	for e := s.list(l).first; e != 0; e = s.link(e).next {
		if string(s.bindEndp(e)) == endpLabel && string(s.bindProp(e)) == prop {
			i := s.link(e).index
			s.heap[i].deadline = deadline
			s.fixLocked(int(i))
			return false
		}
	}
	e := s.ar.alloc(int(bindHdr) + len(prop) + len(endpLabel))
	*s.bind(e) = bindRec{propLen: uint32(len(prop)), endpLen: uint32(len(endpLabel))}
	off := s.ar.putString(e, bindHdr, prop)
	s.ar.putString(e, off, endpLabel)
	s.appendLocked(l, e, deadline)
	if n := s.list(l).n; limit > 0 && int(n) > limit {
		s.removeLocked(s.list(l).first)
		return true
	}
	return false
}

// bindingsLocked copies the live bindings of l, a destination's list (0:
// the label has none), oldest first: their strings to buf, their places
// in it to dst.
func (s *shard) bindingsLocked(l ref, now int64, buf []byte, dst []binding) ([]byte, []binding) {
	l = s.liveLocked(l, now)
	if l == 0 {
		return buf, dst
	}
	for e := s.list(l).first; e != 0; e = s.link(e).next {
		b := binding{endpOff: uint32(len(buf))}
		buf = append(buf, s.bindEndp(e)...)
		b.endpLen = uint32(len(buf)) - b.endpOff
		b.propOff = uint32(len(buf))
		buf = append(buf, s.bindProp(e)...)
		b.propLen = uint32(len(buf)) - b.propOff
		dst = append(dst, b)
	}
	return buf, dst
}

// drainLocked empties the shard, appending every session descriptor it
// holds, pending ones included, to dst.
func (s *shard) drainLocked(dst []int) []int {
	dst = s.takePendingLocked(dst)
	for len(s.heap) > 0 {
		e := s.heap[len(s.heap)-1].r
		if !s.isDest(s.link(e).list) {
			dst = append(dst, int(s.sess(e).fd))
		}
		s.removeLocked(e)
	}
	return dst
}

// appendLocked puts a new entry at the tail of l and in the heap.
func (s *shard) appendLocked(l, e ref, deadline int64) {
	lr := s.list(l)
	k := s.link(e)
	k.list, k.prev, k.next = l, lr.last, 0
	if lr.last != 0 {
		s.link(lr.last).next = e
	} else {
		lr.first = e
	}
	lr.last = e
	lr.n++
	s.pushLocked(e, deadline)
}

// removeLocked takes e out of its list and the heap and frees it. When
// its list becomes empty, the label goes from its table
// (scache_multi.c:scache_multi_drop_endp(), scache_multi_drop_dest()).
func (s *shard) removeLocked(e ref) {
	k := s.link(e)
	s.deleteLocked(int(k.index))
	l := k.list
	lr := s.list(l)
	if k.prev != 0 {
		s.link(k.prev).next = k.next
	} else {
		lr.first = k.next
	}
	if k.next != 0 {
		s.link(k.next).prev = k.prev
	} else {
		lr.last = k.prev
	}
	lr.n--
	if !lr.dest {
		s.sessions--
		s.total.Add(-1)
		se := s.sess(e)
		if se.allPrev != 0 {
			s.sess(se.allPrev).allNext = se.allNext
		} else {
			s.sessFirst = se.allNext
		}
		if se.allNext != 0 {
			s.sess(se.allNext).allPrev = se.allPrev
		} else {
			s.sessLast = se.allPrev
		}
	}
	if lr.first == 0 {
		if lr.dest {
			s.dests.remove(lr.hash, l)
		} else {
			s.endps.remove(lr.hash, l)
		}
		s.ar.free(l)
	}
	s.ar.free(e)
}
