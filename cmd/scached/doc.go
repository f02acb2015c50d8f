/*
Scached is a drop-in replacement for Postfix's scache(8) shared connection
cache server, started by systemd socket activation.

# NAME

scached - Postfix shared connection cache server for systemd

# SYNOPSIS

	scached [-c config_directory] [-o name=value ...] [-v ...]
	scached -listen path [-c config_directory] [-o name=value ...] [-v ...]
	scached -version

# DESCRIPTION

The scached(8) server maintains a shared multi-connection cache, as
Postfix's scache(8) does. This information can be used by, for example,
Postfix SMTP clients or other Postfix delivery agents. It speaks
scache(8)'s protocol byte for byte, so Postfix's clients use it unchanged.

The connection cache is organized into logical destination names, physical
endpoint names, and connections. As a specific example, logical SMTP
destinations specify (transport, domain, port), and physical SMTP endpoints
specify (transport, IP address, port). An SMTP connection may be saved after
a successful mail transaction.

In the general case, one logical destination may refer to zero or more
physical endpoints, one physical endpoint may be referenced by zero or more
logical destinations, and one endpoint may refer to zero or more
connections. The exact syntax of a logical destination or endpoint name is
application dependent; scached(8) does not care. A connection is stored as
a file descriptor together with application-dependent information that is
needed to re-activate a connection object; again scached(8) is completely
unaware of the details of that information.

All information is stored with a finite time to live (ttl), at most
connection_cache_ttl_limit; larger requests are reduced silently. The
server terminates when no client has been connected for max_idle; systemd
keeps the socket and starts it again for the next client.

This server implements the following requests:

save_endp ttl endpoint endpoint_properties file_descriptor
  - Save the specified file descriptor and connection property data under
    the specified endpoint name. The endpoint properties are used by the
    client to re-activate a passivated connection object.

find_endp endpoint
  - Look up cached properties and a cached file descriptor for the
    specified endpoint. Connections of one endpoint are handed out oldest
    first, each at most once.

save_dest ttl destination destination_properties endpoint
  - Save the binding between a logical destination and an endpoint under
    the destination name, together with destination specific connection
    properties. Saving the same binding (same endpoint, same properties)
    again extends its ttl.

find_dest destination
  - Look up cached destination properties, cached endpoint properties, and
    a cached file descriptor for the specified logical destination, trying
    its endpoints in the order they were bound.

Unlike scache(8), scached(8) serves each client on its own: a client that
stops in the middle of a request delays only itself, not the whole cache.

# PROTOCOL

Clients connect to the UNIX-domain stream socket
$queue_directory/private/$connection_cache_service_name. The server speaks
first, with the attribute list protocol=connection_cache_protocol. Each
request and reply is a Postfix attribute list (attr_print0(3)): name and
value as NUL-terminated strings, the list ended by an empty name. A request
starts with the attribute request, its value one of the four requests
above; the reply carries status (0 success, 1 malformed request, 2 not found
or no descriptor received) and, for find_endp and find_dest, the property
attributes. Descriptors travel as SCM_RIGHTS messages with one data byte;
before a descriptor travels the receiver sends an attribute list with the
single attribute dummy, and after it the sender reads one more message, as
Postfix's scache(8) and its clients do.

# SECURITY

The scached(8) server is not security-sensitive. It does not talk to the
network, and it does not talk to local users. It never opens its socket: it
receives it from systemd, and the socket's owner and mode (postfix:postfix
0660 in the postfix-owned private/ directory) decide who can connect. It
needs no privileges and can run as a dynamic unprivileged user.

The scached(8) server is not a trusted process. It must not be used to
store information that is security sensitive: any client can take any
connection that another client saved.

Each request is limited to scached_request_size_limit bytes, all its strings
counted; scache(8) has no such limit.

On top of the socket's permissions, scached(8) reads the peer credentials
(SO_PEERCRED) of every client and refuses, with a rate-limited warning and
no reply, a user not in scached_authorized_users (root and mail_owner by
default). The two combine: the file mode keeps other users from connecting
at all; the check still holds where the socket is more open (a -listen
socket is 0666) and names who tried. A client that is allowed in is
trusted to speak for Postfix: it can save and take any connection.

Labels and properties (they hold host names, e-mail addresses and TLS
session data) are kept in memory only while their entry lives, and logged
only at debug level (-v); warnings name attributes, never their values.

# DIAGNOSTICS

Problems and transactions are logged to the systemd journal, or to standard
error outside systemd, tagged $syslog_name/scache (postfix/scache by
default) as scache(8)'s records are, with "warning: ", "error: " or
"fatal: " before the text. Every connection_cache_status_update_time and
when it exits, the server logs usage statistics with connection cache hit
and miss rates in scache(8)'s format:

	statistics: start interval Nov 28 13:09:27
	statistics: domain lookup hits=182 miss=18 success=91%
	statistics: address lookup hits=10 miss=8 success=55%
	statistics: max simultaneous domains=1 addresses=1 connection=8

Configuration errors name the file and line, or the -o option, for example

	fatal: /etc/postfix/main.cf:12: invalid max_idle value "10x": bad time unit 'x' (use s, m, h, d or w)

and socket hand-over errors say what systemd passed, for example "fatal: no
socket passed by systemd (LISTEN_FDS unset): use -listen PATH", "fatal:
LISTEN_FDS=2: scached takes exactly one socket" or "fatal: fd 3 (scache) is
a datagram socket, not a stream socket: scached needs a listening
UNIX-domain stream socket".

Exit status: 0 after an idle exit or after SIGTERM or SIGINT; 1 after a
fatal error (configuration, socket hand-over, server failure); 2 when the
command line cannot be parsed.

# BUGS

The session cache cannot be shared among multiple machines.

When a connection expires from the cache, it is closed without the
appropriate protocol specific handshake.

The cache lives in the memory of one process: it is empty again after an
idle exit, a restart, or a stop.

Logical expressions in parameter values (${{text} == {text}?...}) are not
supported.

# CONFIGURATION PARAMETERS

Parameters are read from main.cf in config_directory (-c, default
/etc/postfix) when it exists, with Postfix's syntax (postconf(5)): "name =
value" lines, lines starting with whitespace continue the previous one,
lines starting with # are comments, $name, ${name} and $(name) are replaced
by that parameter's value (from main.cf, or the built-in default of the
parameters below; other unknown names by nothing), and ${name?text},
${name:text} and ${name?{text1}:{text2}} are conditional. Then each -o
name=value option, as in master.cf, replaces one parameter's value. Only the
parameters below are read; others in main.cf are ignored.

Changes to main.cf are picked up when the server starts again, after its
idle exit. Use "systemctl restart scached.service" to speed up a change.

Time values are a number with an optional unit: s (seconds), m (minutes),
h (hours), d (days) or w (weeks); seconds when none is given.

connection_cache_ttl_limit (2s)
  - The maximal time-to-live value that the server allows (at least 1s).

connection_cache_status_update_time (600s)
  - How frequently the server logs usage statistics with connection cache
    hit and miss rates for logical destinations and for physical endpoints
    (at least 1s).

ipc_timeout (3600s)
  - The time limit for sending or receiving information over an internal
    communication channel: here, each read from and write to a client (at
    least 1s).

max_idle (100s)
  - The maximum amount of time that an idle server process waits for an
    incoming connection before terminating voluntarily (at least 1s).
    Ignored with -listen.

syslog_name (postfix)
  - The mail system name that is prepended to the process name in log
    records, so that "scache" becomes, for example, "postfix/scache".

scached_request_size_limit (4194304)
  - The largest request, in bytes, all its strings counted, that a client
    may send (at least 1024). This parameter is specific to scached(8).

mail_owner (postfix)
  - The UNIX system account that owns the Postfix queue and that smtp(8)
    and lmtp(8) run as; it only feeds scached_authorized_users.

scached_authorized_users (root, $mail_owner)
  - The users whose processes may use the cache, by name or numeric id,
    separated by commas or white space; static:anyone admits every user.
    Peer credentials are read with SO_PEERCRED. Names that do not resolve
    are ignored with a warning. This parameter is specific to scached(8).

scached_session_limit (0)
  - The most connections cached at once. A save beyond it closes the
    connection saved longest ago, and a warning (at most one a minute)
    names the limit. 0 derives the limit from the descriptor limit
    (RLIMIT_NOFILE) at start, leaving an eighth of it, at least 256, for
    client connections: accepting a client never fails because cached
    connections used up the descriptors. Each cached connection with its
    destination takes about half a kilobyte of scached's memory (100,000
    take about 45 MiB), besides its socket in the kernel. This parameter
    is specific to scached(8).

scached_endpoint_session_limit (1000)
  - The most connections cached for one endpoint; beyond it the endpoint's
    oldest is closed. 0: no limit. This parameter is specific to scached(8).

scached_destination_binding_limit (100)
  - The most endpoint bindings of one destination; beyond it the oldest is
    dropped. 0: no limit. This parameter is specific to scached(8).

scached_legacy_clients (no)
  - Which Postfix clients to serve. Postfix 3.6 and later wait for the
    server's greeting before their first request; 3.5 and older send their
    first request at once and take a greeting for a broken reply. no: greet
    every client (Postfix 3.6 and later, what Postfix's own scache does
    since 3.6); yes: greet none (Postfix 3.5 and older only); auto: serve
    both, taking a client whose first request arrives within 20ms of being
    accepted for an old one, and greeting every other after that wait (each
    new connection of a newer client then waits 20ms once). This parameter
    is specific to scached(8).

# OPTIONS

-c config_directory
  - Read main.cf from config_directory instead of /etc/postfix.

-o name=value
  - Override the named main.cf parameter. Repeatable. Naming a parameter
    that scached(8) does not read is an error.

-v
  - Enable verbose (debug) logging. Repeatable, as in Postfix.

-listen path
  - Create the socket at path (mode 0666) instead of receiving it from
    systemd, for development and tests. An existing socket there is
    replaced only if nobody listens on it; any other file is left alone.
    The idle exit is disabled, because nothing would start the server
    again. The socket is removed at exit.

-version
  - Print the version and exit.

# SYSTEMD INTEGRATION

scached.socket owns the socket /var/spool/postfix/private/scached (owner
postfix:postfix, mode 0660, FileDescriptorName=scache) and starts
scached.service for the first client. The service receives exactly one
listening UNIX-domain stream socket (LISTEN_FDS=1, LISTEN_PID,
LISTEN_FDNAMES, sd_listen_fds(3)) and refuses anything else. It is of
Type=notify: it sends READY=1 once it accepts clients and STOPPING=1 when
it stops (sd_notify(3)). After max_idle without clients it exits with
status 0; systemd keeps listening, new clients wait in the socket's backlog,
and the next one starts the service again.

To use it, let Postfix's clients connect to it instead of to scache(8):

	systemctl enable --now scached.socket
	postconf connection_cache_service_name=scached
	postfix reload

The socket is named scached, not scache, because master.cf still defines
scache and master(8) would remove and re-create private/scache.

To change a parameter for scached(8) only, pass -o in a drop-in
(systemctl edit scached.service):

	[Service]
	ExecStart=
	ExecStart=/usr/sbin/scached -o max_idle=300s

The shipped service is sandboxed ("systemd-analyze security scached.service"
rates it 0.4): it runs as a dynamic user of its own with no capabilities,
in a network namespace of its own with only the loopback device, on a
read-only file system with /var and /home hidden, under a system call
filter. It reads main.cf and /etc/passwd; a configuration directory given
with -c must be readable by any user, as /etc/postfix is, and lie outside
/var and /home. LimitNOFILE=65536 bounds the descriptors, and with them
scached_session_limit when it is 0. The service is restarted 2 seconds
after a failure, without a start limit, so that its socket never fails;
clients wait in the backlog meanwhile.

# SEE ALSO

scache(8), Postfix shared connection cache server;
smtp(8), SMTP client;
postconf(5), configuration parameters;
master(8), process manager;
systemd.socket(5), systemd.service(5), sd_notify(3), sd_listen_fds(3);
CONNECTION_CACHE_README, Postfix connection cache.
*/
package main
