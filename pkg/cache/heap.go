package cache

// The shard's deadlines form an intrusive binary min-heap: s.heap[i].e.index
// == i for every i, so an entry can be deleted or moved without a search.
// It stands in for Postfix's per-entry timers
// (util/events.c:event_request_timer(), event_cancel_timer()).

// pushLocked adds e to the heap with the given deadline.
func (s *shard) pushLocked(e *entry, deadline int64) {
	e.index = len(s.heap)
	s.heap = append(s.heap, slot{deadline: deadline, e: e})
	s.upLocked(e.index)
}

// deleteLocked removes the element at index i.
func (s *shard) deleteLocked(i int) {
	last := len(s.heap) - 1
	if i != last {
		s.swapLocked(i, last)
	}
	s.heap[last] = slot{}
	s.heap = s.heap[:last]
	if i != last {
		s.fixLocked(i)
	}
}

// fixLocked restores the heap order after the deadline at index i changed.
func (s *shard) fixLocked(i int) {
	if !s.upLocked(i) {
		s.downLocked(i)
	}
}

// upLocked moves the element at i towards the root while it is earlier
// than its parent, and reports whether it moved.
func (s *shard) upLocked(i int) bool {
	start := i
	for i > 0 {
		p := (i - 1) / 2
		if s.heap[p].deadline <= s.heap[i].deadline {
			break
		}
		s.swapLocked(i, p)
		i = p
	}
	return i != start
}

// downLocked moves the element at i towards the leaves while a child is
// earlier.
func (s *shard) downLocked(i int) {
	n := len(s.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && s.heap[r].deadline < s.heap[c].deadline {
			c = r
		}
		if s.heap[i].deadline <= s.heap[c].deadline {
			return
		}
		s.swapLocked(i, c)
		i = c
	}
}

func (s *shard) swapLocked(i, j int) {
	h := s.heap
	h[i], h[j] = h[j], h[i]
	h[i].e.index = i
	h[j].e.index = j
}
