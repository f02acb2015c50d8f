package server

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/cache"
	"github.com/scached/scached/pkg/protocol"
)

// serveClient speaks the protocol with one client until it disconnects,
// times out or breaks the stream. It owns uc.
func (s *Server) serveClient(uc *net.UnixConn) {
	if !s.authorized(uc) {
		uc.Close()
		return
	}
	pc := protocol.NewServerConn(protocol.NewConn(uc, s.cfg.IPCTimeout), streamName, s.cfg.RequestSizeLimit)
	defer pc.Close()
	// Labels and properties are used in place (the cache copies what it
	// keeps); handle uses them before it reads from the connection again,
	// or keeps them (KeepViews).
	pc.SetViews(true)
	// What the finds hand out, in buffers reused for every request.
	var found cache.Found
	if !s.greet(pc) {
		return
	}
	for {
		req, err := pc.ReadRequest()
		s.warnAll(req.Warnings)
		s.warnDiscarded(pc)
		if err != nil {
			if errors.Is(err, protocol.ErrTooLarge) {
				s.cfg.Log.Warnf("request exceeds scached_request_size_limit=%d bytes; closing connection", s.cfg.RequestSizeLimit)
				pc.WriteStatus(req.Type, protocol.StatusBad)
				pc.Flush()
			} else if !errors.Is(err, io.EOF) {
				if s.cfg.Verbose {
					s.cfg.Log.Debugf("client: %v", err)
				}
			}
			return
		}
		if !s.handle(pc, req, &found) {
			return
		}
	}
}

// authorized checks the client's peer credentials against
// Config.AuthorizedUIDs.
func (s *Server) authorized(uc *net.UnixConn) bool {
	if s.cfg.AuthorizedUIDs == nil {
		return true
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		s.cfg.Log.Warnf("refusing connection: peer credentials: %v", err)
		return false
	}
	var cred *unix.Ucred
	var credErr error
	raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if credErr != nil {
		s.cfg.Log.Warnf("refusing connection: peer credentials: %v", credErr)
		return false
	}
	if !s.cfg.AuthorizedUIDs[cred.Uid] {
		s.warnings.warnf(s, "refused", "refusing connection from uid %d (pid %d): not in scached_authorized_users", cred.Uid, cred.Pid)
		return false
	}
	return true
}

// greet sends the greeting as Config.Greeting says. It reports false when
// the client is gone.
func (s *Server) greet(pc *protocol.ServerConn) bool {
	switch s.cfg.Greeting {
	case GreetNever:
		return true
	case GreetAuto:
		spoke, err := pc.WaitInput(s.cfg.LegacyWait)
		if err != nil {
			return false
		}
		if spoke {
			if s.cfg.Verbose {
				s.cfg.Log.Debugf("client spoke first: Postfix 3.5 or older, no greeting")
			}
			return true
		}
	}
	pc.WriteGreeting()
	return true
}

// handle answers one request. It reports false when the connection broke.
// f receives the finds' results.
func (s *Server) handle(pc *protocol.ServerConn, req protocol.Request, f *cache.Found) bool {
	switch req.Type {
	case protocol.NoRequest:
		return true
	case protocol.UnknownRequest:
		pc.WriteStatus(req.Type, protocol.StatusBad)
		return true
	}
	if !req.Valid {
		s.cfg.Log.Warnf("%s: bad or missing request parameter", serviceName(req.Type))
		pc.WriteStatus(req.Type, protocol.StatusBad)
		return true
	}
	switch req.Type {
	case protocol.SaveEndp:
		return s.saveEndp(pc, req)
	case protocol.SaveDest:
		why := s.cache.SaveDestBytes(s.clamp(req.TTL), req.LabelView, req.PropView, req.EndpLabelView)
		s.evicted(-1, why)
		s.saved()
		pc.WriteStatus(req.Type, protocol.StatusOK)
		s.samplePeaks(req.Type)
		if s.cfg.Verbose {
			s.cfg.Log.Debugf("save_dest ttl=%d dest=%q endp=%q", req.TTL, req.LabelView, req.EndpLabelView)
		}
		return true
	case protocol.FindEndp:
		ok := s.cache.FindEndpInto(f, req.LabelView)
		if s.cfg.Verbose {
			s.cfg.Log.Debugf("find_endp %q: found=%t", req.LabelView, ok)
		}
		if !ok {
			s.endpMisses.Add(1)
			pc.WriteStatus(req.Type, protocol.StatusFail)
			return true
		}
		s.endpHits.Add(1)
		pc.WriteFoundBytes(f.EndpProp)
		return s.handOut(pc, req.Type, f.FD)
	case protocol.FindDest:
		ok := s.cache.FindDestInto(f, req.LabelView)
		if s.cfg.Verbose {
			s.cfg.Log.Debugf("find_dest %q: found=%t", req.LabelView, ok)
		}
		if !ok {
			s.destMisses.Add(1)
			pc.WriteStatus(req.Type, protocol.StatusFail)
			return true
		}
		s.destHits.Add(1)
		pc.WriteFoundBytes(f.DestProp, f.EndpProp)
		return s.handOut(pc, req.Type, f.FD)
	}
	panic("server: unhandled request type " + req.Type.String())
}

// saveEndp receives the descriptor of a valid save_endp request and caches
// it (scache.c:scache_save_endp_service()).
func (s *Server) saveEndp(pc *protocol.ServerConn, req protocol.Request) bool {
	pc.KeepViews(&req) // receiving the descriptor reads from the connection
	pc.WriteDummy()
	fd, err := pc.RecvFD()
	s.warnDiscarded(pc)
	if err != nil {
		s.cfg.Log.Warnf("%s: unable to receive file descriptor: %s", serviceName(req.Type), errnoText(err))
		if !isDescriptorError(err) {
			return false // the stream broke; the reply would go nowhere
		}
		pc.WriteStatus(req.Type, protocol.StatusFail)
		return true
	}
	s.evicted(s.cache.SaveEndpBytes(s.clamp(req.TTL), req.LabelView, req.PropView, fd))
	s.saved()
	pc.WriteStatus(req.Type, protocol.StatusOK)
	s.samplePeaks(req.Type)
	if s.cfg.Verbose {
		s.cfg.Log.Debugf("save_endp ttl=%d endp=%q fd=%d", req.TTL, req.LabelView, fd)
	}
	return true
}

// handOut passes fd, which the caller has taken from the cache and whose
// status 0 reply is queued, to the client: dummy from the client,
// descriptor, dummy from the client. It always closes fd: the client has
// its own copy, or the connection is lost (scache.c closes it likewise).
func (s *Server) handOut(pc *protocol.ServerConn, t protocol.RequestType, fd int) bool {
	defer unix.Close(fd)
	ok, warnings, err := pc.ReadDummy()
	s.warnAll(warnings)
	if err == nil && ok {
		err = pc.SendFD(fd)
		if err == nil {
			ok, warnings, err = pc.ReadDummy()
			s.warnAll(warnings)
		}
	}
	s.warnDiscarded(pc)
	if err != nil || !ok {
		s.cfg.Log.Warnf("%s: cannot send file descriptor: %s", serviceName(t), errnoText(err))
	}
	return err == nil
}

// clamp applies connection_cache_ttl_limit to a ttl in seconds (> 0).
func (s *Server) clamp(ttl int) time.Duration {
	d := time.Duration(ttl) * time.Second
	if d > s.cfg.TTLLimit {
		return s.cfg.TTLLimit
	}
	return d
}

func (s *Server) warnAll(warnings []string) {
	for _, w := range warnings {
		s.cfg.Log.Warnf("%s", w)
	}
}

// warnDiscarded reports descriptors that a client sent where none was
// expected; they have been closed (Postfix 3.7 leaks or loses them).
func (s *Server) warnDiscarded(pc *protocol.ServerConn) {
	if n := pc.Discarded(); n > 0 {
		s.warnings.warnf(s, "unexpected-fd", "closed %d unexpected file descriptor(s) from client", n)
	}
}

// serviceName is the scache.c function whose warnings we reproduce.
func serviceName(t protocol.RequestType) string {
	return "scache_" + t.String() + "_service"
}

func isDescriptorError(err error) bool {
	return errors.Is(err, protocol.ErrNoDescriptor) || errors.Is(err, protocol.ErrManyDescriptors) ||
		errors.Is(err, protocol.ErrTruncated)
}

// errnoText renders an error as Postfix's %m does: the system error text,
// or "Application error" when no system call failed.
func errnoText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return unix.ETIMEDOUT.Error()
	}
	return "Application error"
}
