package server

import (
	"sync"
	"time"
)

// refusals rate-limits the warnings about refused clients: a misconfigured
// or hostile local process that reconnects in a loop must not flood the
// log. At most one warning a minute; the next one says how many were
// suppressed.
type refusals struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *refusals) warn(s *Server, uid uint32, pid int32) {
	r.mu.Lock()
	now := s.now()
	if !r.last.IsZero() && now.Sub(r.last) < time.Minute {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		s.cfg.Log.Warnf("refusing connection from uid %d (pid %d): not in scached_authorized_users (%d more refused since the last warning)", uid, pid, n)
	} else {
		s.cfg.Log.Warnf("refusing connection from uid %d (pid %d): not in scached_authorized_users", uid, pid)
	}
}
