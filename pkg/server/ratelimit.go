package server

import (
	"fmt"
	"sync"
	"time"
)

// warnInterval is how often one kind of recurring warning is logged.
const warnInterval = time.Minute

// rateLimited logs recurring warnings at most once per warnInterval for
// each kind (a hostile or misconfigured client must not flood the log);
// the next warning of a kind says how many were suppressed.
type rateLimited struct {
	mu    sync.Mutex
	kinds map[string]*warnState
}

type warnState struct {
	last       time.Time
	suppressed int
}

func (r *rateLimited) warnf(s *Server, kind, format string, args ...any) {
	r.mu.Lock()
	if r.kinds == nil {
		r.kinds = make(map[string]*warnState)
	}
	st := r.kinds[kind]
	if st == nil {
		st = &warnState{}
		r.kinds[kind] = st
	}
	now := s.now()
	if !st.last.IsZero() && now.Sub(st.last) < warnInterval {
		st.suppressed++
		r.mu.Unlock()
		return
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if n > 0 {
		msg += fmt.Sprintf(" (%d more since the last warning)", n)
	}
	s.cfg.Log.Warnf("%s", msg)
}
