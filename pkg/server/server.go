package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/cache"
	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/protocol"
)

// streamName is how Postfix's warnings name a client stream.
const streamName = "scache socket"

// Server is a connection cache server. Create it with New; Serve it once.
type Server struct {
	cfg   Config
	cache *cache.Cache
	now   func() time.Time

	// Statistics of the current interval, as scache.c counts them.
	destHits, destMisses, endpHits, endpMisses atomic.Int64
	peakDests, peakEndps, peakSessions         atomic.Int64
	statsStart                                 time.Time // owned by the maintenance goroutine and Serve's exit

	// Client connections, for the idle timer and for shutdown.
	mu        sync.Mutex
	conns     map[*net.UnixConn]struct{}
	idleTimer *time.Timer
	idle      chan struct{} // closed when MaxIdle passed without a client
	idleOnce  sync.Once
	stopping  bool

	warnings  rateLimited
	evictions [4]atomic.Int64 // by cache.Eviction, for the statistics

	// The maintenance goroutine parks while the cache is empty.
	parked atomic.Bool
	kick   chan struct{}
}

// New checks cfg, fills in defaults and returns a server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		return nil, errors.New("server: Config.Log is required")
	}
	if cfg.TTLLimit == 0 {
		cfg.TTLLimit = DefaultTTLLimit
	}
	if cfg.StatusUpdateTime == 0 {
		cfg.StatusUpdateTime = DefaultStatusUpdateTime
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.IPCTimeout == 0 {
		cfg.IPCTimeout = DefaultIPCTimeout
	}
	if cfg.RequestSizeLimit == 0 {
		cfg.RequestSizeLimit = DefaultRequestSizeLimit
	}
	if cfg.LegacyWait == 0 {
		cfg.LegacyWait = DefaultLegacyWait
	}
	if cfg.SessionLimit < 0 || cfg.EndpointSessionLimit < 0 || cfg.DestinationBindingLimit < 0 {
		return nil, errors.New("server: negative cache limit")
	}
	if cfg.TTLLimit < time.Second || cfg.StatusUpdateTime <= 0 || cfg.IPCTimeout <= 0 || cfg.RequestSizeLimit < 1024 {
		return nil, fmt.Errorf("server: parameter out of range: ttl limit %v, status update time %v, ipc timeout %v, request size limit %d",
			cfg.TTLLimit, cfg.StatusUpdateTime, cfg.IPCTimeout, cfg.RequestSizeLimit)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Server{
		cfg: cfg,
		now: now,
		cache: cache.New(cache.Config{
			Now:             now,
			MaxSessions:     cfg.SessionLimit,
			MaxEndpSessions: cfg.EndpointSessionLimit,
			MaxDestBindings: cfg.DestinationBindingLimit,
		}),
		conns: make(map[*net.UnixConn]struct{}),
		idle:  make(chan struct{}),
		kick:  make(chan struct{}, 1),
	}, nil
}

// Serve accepts clients on ln until ctx is cancelled or, when MaxIdle is
// positive, no client has been connected for MaxIdle.
//
// On the idle exit it first closes ln, which is its own copy when systemd
// passed the socket (new clients then wait in systemd's backlog and
// re-activate the service), lets the accept loop end, and serves every
// client already accepted to the end. On cancellation it also closes ln,
// then shuts down the reading side of every client connection, so that a
// request being served is still answered and the client then sees EOF.
// Either way it then logs the statistics, closes every cached descriptor
// and returns nil.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	reserveDescriptors(ln)
	s.statsStart = s.now()
	maintCtx, stopMaint := context.WithCancel(context.Background())
	maintDone := make(chan struct{})
	go func() {
		defer close(maintDone)
		s.maintain(maintCtx)
	}()

	if s.cfg.MaxIdle > 0 {
		s.mu.Lock()
		s.idleTimer = time.AfterFunc(s.cfg.MaxIdle, s.idleExpired)
		s.mu.Unlock()
	}

	var clients sync.WaitGroup
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- s.acceptLoop(ln, &clients) }()
	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}

	var acceptErr error
	select {
	case <-ctx.Done():
		s.cfg.Log.Debugf("stopping on signal")
	case <-s.idle:
		s.cfg.Log.Debugf("idle for %v, exiting", s.cfg.MaxIdle)
	case acceptErr = <-acceptDone:
		acceptDone <- acceptErr
	}
	if s.cfg.Stopping != nil {
		s.cfg.Stopping()
	}
	s.mu.Lock()
	s.stopping = true
	if s.idleTimer != nil {
		s.idleTimer.Stop()
	}
	s.mu.Unlock()
	ln.Close()
	if err := <-acceptDone; acceptErr == nil {
		acceptErr = err
	}
	if ctx.Err() != nil {
		s.shutdownClients(&clients)
	}
	clients.Wait()

	stopMaint()
	<-maintDone
	s.dumpStatistics()
	closeFDs(s.cache.Drain(nil))
	return acceptErr
}

// maxReservedDescriptors caps the descriptor table that Serve reserves.
const maxReservedDescriptors = 1 << 20

// reserveDescriptors grows the process's descriptor table to hold
// RLIMIT_NOFILE descriptors (at most maxReservedDescriptors), before any
// client is served. Linux grows the table when a new descriptor does not
// fit, doubling it, and in a threaded process waits for an RCU grace period
// meanwhile (fs/file.c:expand_fdtable()), during which every thread that
// makes a descriptor waits: accept, a save_endp's SCM_RIGHTS, a hand-out's
// recvmsg in the client. That was the longest stall of the scale benchmark
// (12-20 ms when the sessions crossed 8192 descriptors, during their mass
// expiry as much as otherwise). Reserved at start, the wait happens once,
// before the first client, for 8 bytes of kernel memory per descriptor
// (512 KiB under scached.service's LimitNOFILE=65536); the table never
// shrinks anyway. It duplicates ln's descriptor to the highest number
// allowed with F_DUPFD (which never replaces an open descriptor) and closes
// the copy; on any error it leaves the table as it is.
func reserveDescriptors(ln *net.UnixListener) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 2 {
		return
	}
	raw, err := ln.SyscallConn()
	if err != nil {
		return
	}
	top := int(min(rl.Cur, maxReservedDescriptors) - 1)
	raw.Control(func(fd uintptr) {
		if nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, top); err == nil {
			unix.Close(nfd)
		}
	})
}

// shutdownGrace is how long a client being served when the server is
// told to stop may take to get its reply.
const shutdownGrace = time.Second

// shutdownClients ends every client connection on a signal: the reading
// side at once (a request being served is still answered, then the client
// sees EOF), the whole connection after shutdownGrace (a client that does
// not read its replies would otherwise hold a blocked write, and the exit,
// for up to ipc_timeout).
func (s *Server) shutdownClients(clients *sync.WaitGroup) {
	s.mu.Lock()
	for uc := range s.conns {
		uc.CloseRead()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { clients.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(shutdownGrace):
	}
	s.mu.Lock()
	for uc := range s.conns {
		uc.Close()
	}
	s.mu.Unlock()
}

// acceptLoop accepts clients until ln is closed. It returns nil when ln was
// closed by Serve, the error otherwise.
func (s *Server) acceptLoop(ln *net.UnixListener, clients *sync.WaitGroup) error {
	var delay time.Duration
	for {
		uc, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
				errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) ||
				errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EINTR) {
				// Out of resources for now: back off and retry, as
				// net/http does; the client waits in the backlog.
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay < time.Second {
					delay *= 2
				}
				s.cfg.Log.Warnf("accept connection: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept connection: %w", err)
		}
		delay = 0
		if !s.clientStart(uc) {
			uc.Close()
			continue
		}
		clients.Add(1)
		go func() {
			defer clients.Done()
			defer s.clientEnd(uc)
			s.serveClient(uc)
		}()
	}
}

// clientStart registers a new client and stops the idle timer. It reports
// false once the server is shutting down after a signal.
func (s *Server) clientStart(uc *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[uc] = struct{}{}
	if s.idleTimer != nil && !s.stopping {
		s.idleTimer.Stop()
	}
	return true
}

// clientEnd unregisters a client and, when it was the last one, starts the
// idle timer.
func (s *Server) clientEnd(uc *net.UnixConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, uc)
	if len(s.conns) == 0 && s.idleTimer != nil && !s.stopping {
		s.idleTimer.Reset(s.cfg.MaxIdle)
	}
}

// idleExpired runs when the idle timer fires. A client may have connected
// at the same moment; that is harmless: Serve serves every accepted client
// before it returns.
func (s *Server) idleExpired() {
	s.mu.Lock()
	busy := len(s.conns) > 0
	s.mu.Unlock()
	if !busy {
		s.idleOnce.Do(func() { close(s.idle) })
	}
}

// maintain expires cache entries as their deadlines pass and logs the
// statistics every StatusUpdateTime. It parks while the cache is empty.
func (s *Server) maintain(ctx context.Context) {
	const maxSleep = 100 * time.Millisecond
	nextStats := s.now().Add(s.cfg.StatusUpdateTime)
	timer := time.NewTimer(maxSleep)
	defer timer.Stop()
	var fds []int
	for {
		fds = s.cache.Expire(fds[:0])
		closeFDs(fds)

		now := s.now()
		if !now.Before(nextStats) {
			s.dumpStatistics()
			nextStats = now.Add(s.cfg.StatusUpdateTime)
		}
		sleep := nextStats.Sub(now)
		s.parked.Store(true)
		if next, ok := s.cache.NextDeadline(); ok {
			s.parked.Store(false)
			sleep = min(sleep, max(next.Sub(now), time.Millisecond), maxSleep)
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
		s.parked.Store(false)
	}
}

// saved wakes the maintenance goroutine if it parked on an empty cache.
func (s *Server) saved() {
	if s.parked.Load() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// dumpStatistics logs and resets the interval's statistics
// (scache.c:scache_status_dump()).
func (s *Server) dumpStatistics() {
	now := s.now()
	st := journal.Stats{
		Start:        s.statsStart,
		Interval:     now.Sub(s.statsStart),
		DestHits:     int(s.destHits.Swap(0)),
		DestMisses:   int(s.destMisses.Swap(0)),
		EndpHits:     int(s.endpHits.Swap(0)),
		EndpMisses:   int(s.endpMisses.Swap(0)),
		PeakDests:    int(s.peakDests.Swap(0)),
		PeakEndps:    int(s.peakEndps.Swap(0)),
		PeakSessions: int(s.peakSessions.Swap(0)),
		Goroutines:   runtime.NumGoroutine(),
	}
	s.statsStart = now
	if !st.Zero() {
		st.CacheBytes = s.cache.Memory() // locks every shard: only when logged
		s.cfg.Log.Statistics(st)
	}
}

// evicted handles what a save pushed out of the cache: it closes the
// descriptor (if a session was evicted), counts the eviction and warns,
// rate-limited, naming the limit.
func (s *Server) evicted(fd int, why cache.Eviction) {
	if why == cache.NoEviction {
		return
	}
	if fd >= 0 {
		unix.Close(fd)
	}
	n := s.evictions[why].Add(1)
	var param string
	var limit int
	switch why {
	case cache.SessionLimit:
		param, limit = "scached_session_limit", s.cfg.SessionLimit
	case cache.EndpointLimit:
		param, limit = "scached_endpoint_session_limit", s.cfg.EndpointSessionLimit
	case cache.DestinationLimit:
		param, limit = "scached_destination_binding_limit", s.cfg.DestinationBindingLimit
	}
	what := "connection"
	if why == cache.DestinationLimit {
		what = "destination binding"
	}
	s.warnings.warnf(s, param, "%s=%d reached: evicted the oldest cached %s (%d evictions so far)", param, limit, what, n)
}

// samplePeaks updates the maxima after a successful save, as scache.c does
// with scache_size(). It reads the cache's published counts (Counts), not
// Sizes: during a mass expiry Sizes would make this request expire every
// due entry of every shard first. Entries that died but are not yet
// removed may be counted; they were alive moments before, so a peak is
// hardly ever larger for them.
func (s *Server) samplePeaks(t protocol.RequestType) {
	sz := s.cache.Counts()
	if t == protocol.SaveDest {
		atomicMax(&s.peakDests, int64(sz.Dests))
	} else {
		atomicMax(&s.peakSessions, int64(sz.Sessions))
	}
	atomicMax(&s.peakEndps, int64(sz.Endps))
}

func atomicMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// closeFDs closes descriptors handed back by the cache.
func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
