package server

import "time"

// Config holds the server's parameters. The zero value of each field means
// Postfix's default, given in the field's comment.
type Config struct {
	// TTLLimit is connection_cache_ttl_limit (2s): the largest time to live
	// a client may ask for; larger requests are clamped silently.
	TTLLimit time.Duration
	// StatusUpdateTime is connection_cache_status_update_time (600s): how
	// often statistics are logged.
	StatusUpdateTime time.Duration
	// MaxIdle is max_idle (100s): the server exits after this long without a
	// connected client. Negative disables the idle exit.
	MaxIdle time.Duration
	// IPCTimeout is ipc_timeout (3600s): the limit for each read from and
	// write to a client.
	IPCTimeout time.Duration
	// RequestSizeLimit is scached_request_size_limit (4194304 bytes): the
	// largest request, all its strings counted, that a client may send.
	RequestSizeLimit int

	// Greeting is scached_legacy_clients (no): whether clients get
	// Postfix 3.6's greeting. See GreetingMode.
	Greeting GreetingMode
	// LegacyWait is how long GreetAuto waits for a Postfix <= 3.5 client to
	// speak first (20ms).
	LegacyWait time.Duration

	// SessionLimit is scached_session_limit: the most sessions cached at
	// once; a save beyond it evicts (closes) the session saved longest ago.
	// 0: no limit (the caller derives a default from RLIMIT_NOFILE).
	SessionLimit int
	// EndpointSessionLimit is scached_endpoint_session_limit: the most
	// sessions of one endpoint; beyond it the endpoint's oldest is evicted.
	// 0: no limit.
	EndpointSessionLimit int
	// DestinationBindingLimit is scached_destination_binding_limit: the
	// most bindings of one destination; beyond it the oldest is dropped.
	// 0: no limit.
	DestinationBindingLimit int

	// AuthorizedUIDs is scached_authorized_users resolved to user ids: a
	// client whose peer credentials (SO_PEERCRED) name another user is
	// refused with a warning and no reply. Nil admits every user; the
	// socket's file permissions are then the only gate.
	AuthorizedUIDs map[uint32]bool

	// Log receives all log records. Required.
	Log Logger
	// Verbose enables debug records (Postfix's -v). They may contain
	// labels; without it their arguments are not even formatted.
	Verbose bool
	// Ready, if set, is called once the server accepts clients
	// (sd_notify READY=1).
	Ready func()
	// Stopping, if set, is called once the server stops accepting clients
	// (sd_notify STOPPING=1).
	Stopping func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// GreetingMode says which Postfix clients a server serves. Postfix 3.6 and
// later wait for the server's greeting (protocol=connection_cache_protocol)
// before their first request; 3.5 and older send their first request at
// once and would read the greeting as the reply.
type GreetingMode int

const (
	// GreetAlways: greet every client, as Postfix's scache does since 3.6
	// (scached_legacy_clients = no).
	GreetAlways GreetingMode = iota
	// GreetNever: greet no client, as Postfix's scache did before 3.6
	// (scached_legacy_clients = yes).
	GreetNever
	// GreetAuto: serve both. A client whose first request arrives within
	// LegacyWait of being accepted is a 3.5 client and is not greeted;
	// any other is greeted after that wait (scached_legacy_clients =
	// auto). Each new 3.6 client connection waits LegacyWait once.
	GreetAuto
)

// DefaultLegacyWait is how long GreetAuto waits for a client to speak
// first. A Postfix 3.5 client writes its request right after connect(),
// long before the server accepts the connection.
const DefaultLegacyWait = 20 * time.Millisecond

// Defaults, as Postfix 3.7 ships them (postconf -d).
const (
	DefaultTTLLimit         = 2 * time.Second
	DefaultStatusUpdateTime = 600 * time.Second
	DefaultMaxIdle          = 100 * time.Second
	DefaultIPCTimeout       = 3600 * time.Second
	DefaultRequestSizeLimit = 4 << 20
)
