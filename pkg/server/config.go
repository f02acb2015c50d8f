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

// Defaults, as Postfix 3.7 ships them (postconf -d).
const (
	DefaultTTLLimit         = 2 * time.Second
	DefaultStatusUpdateTime = 600 * time.Second
	DefaultMaxIdle          = 100 * time.Second
	DefaultIPCTimeout       = 3600 * time.Second
	DefaultRequestSizeLimit = 4 << 20
)
