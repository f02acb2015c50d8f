package cache

// The shard's deadlines form an intrusive 4-ary min-heap: s.heap[i].e.index
// == i for every i, so an entry can be deleted or moved without a search.
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

// pushLocked adds e to the heap with the given deadline.
func (s *shard) pushLocked(e *entry, deadline int64) {
	s.heap = append(s.heap, slot{})
	s.upLocked(len(s.heap)-1, slot{deadline: deadline, e: e})
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
	x.e.index = i
}
