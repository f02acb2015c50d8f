package cache

import "unsafe"

// The shard's deadlines form an intrusive 4-ary min-heap: the record of
// s.heap[i].r has index i for every i, so an entry can be deleted or moved
// without a search. The array is in memory from allocMem, like the arena.
// It stands in for Postfix's per-entry timers
// (util/events.c:event_request_timer(), event_cancel_timer()).
//
// Four children a node rather than two halve the depth, and every level
// that an element moves through costs a store into the entry moved (its
// index), usually a cache miss with many entries: the sifts move a hole
// and write each displaced element once, and the children's deadlines,
// side by side in s.heap, are compared without touching the entries.

// heapArity is the number of children of a heap node: those of i are
// heapArity*i+1 to heapArity*i+heapArity, its parent is (i-1)/heapArity.
const heapArity = 4

// heapMin is the smallest capacity of the heap array (4 KiB); it stays.
const heapMin = 256

// resizeHeapLocked moves the heap to an array of n slots.
func (s *shard) resizeHeapLocked(n int) {
	mem := allocMem(n * int(unsafe.Sizeof(slot{})))
	h := unsafe.Slice((*slot)(unsafe.Pointer(&mem[0])), n)[:len(s.heap)]
	copy(h, s.heap)
	if s.heapMem != nil {
		freeMem(s.heapMem)
	}
	s.heap, s.heapMem = h, mem
}

// pushLocked adds r to the heap with the given deadline.
func (s *shard) pushLocked(r ref, deadline int64) {
	if len(s.heap) == cap(s.heap) {
		s.resizeHeapLocked(max(heapMin, 2*cap(s.heap)))
	}
	s.heap = s.heap[:len(s.heap)+1]
	s.upLocked(len(s.heap)-1, slot{deadline: deadline, r: r})
}

// deleteLocked removes the element at index i.
func (s *shard) deleteLocked(i int) {
	last := len(s.heap) - 1
	x := s.heap[last]
	s.heap[last] = slot{}
	s.heap = s.heap[:last]
	if i != last {
		s.placeLocked(i, x)
	}
	if cap(s.heap) > heapMin && len(s.heap)*8 < cap(s.heap) {
		s.resizeHeapLocked(cap(s.heap) / 2)
	}
}

// fixLocked restores the heap order after the deadline at index i changed.
func (s *shard) fixLocked(i int) {
	s.placeLocked(i, s.heap[i])
}

// placeLocked puts x into the hole at i and moves it up or down to where
// it belongs.
func (s *shard) placeLocked(i int, x slot) {
	if i > 0 && x.deadline < s.heap[(i-1)/heapArity].deadline {
		s.upLocked(i, x)
	} else {
		s.downLocked(i, x)
	}
}

// upLocked moves the hole at i towards the root while x is earlier than
// the hole's parent, then puts x there.
func (s *shard) upLocked(i int, x slot) {
	for i > 0 {
		p := (i - 1) / heapArity
		if s.heap[p].deadline <= x.deadline {
			break
		}
		s.setLocked(i, s.heap[p])
		i = p
	}
	s.setLocked(i, x)
}

// downLocked moves the hole at i towards the leaves while a child is
// earlier than x, then puts x there.
func (s *shard) downLocked(i int, x slot) {
	n := len(s.heap)
	for {
		c := heapArity*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < min(c+heapArity, n); j++ {
			if s.heap[j].deadline < s.heap[m].deadline {
				m = j
			}
		}
		if x.deadline <= s.heap[m].deadline {
			break
		}
		s.setLocked(i, s.heap[m])
		i = m
	}
	s.setLocked(i, x)
}

func (s *shard) setLocked(i int, x slot) {
	s.heap[i] = x
	s.link(x.r).index = uint32(i)
}
