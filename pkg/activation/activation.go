// Package activation gives scached its listening socket and tells systemd
// how it is doing.
//
// In production systemd owns the socket (scached.socket) and passes it to
// the service on descriptor 3 with LISTEN_FDS=1, LISTEN_PID and
// LISTEN_FDNAMES (sd_listen_fds(3)); Listener takes it over and checks that
// it is what scached can serve: one listening UNIX-domain stream socket.
// It never returns an empty result without an error, unlike go-systemd's
// activation.Listeners, which silently skips what it cannot use.
//
// For development and tests Listen creates a socket of our own, the way
// Postfix's master(8) creates a private socket.
//
// Notify sends sd_notify(3) state changes (READY=1, STOPPING=1) when
// systemd asked for them with NOTIFY_SOCKET.
//
// The package is Linux-only (SO_DOMAIN, SO_ACCEPTCONN).
package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Errors that classify why Listener or Listen failed; test with errors.Is.
// The returned errors carry the details (variable values, descriptor
// numbers, paths) in their text.
var (
	// ErrNoSocket: systemd passed no socket (LISTEN_FDS unset).
	ErrNoSocket = errors.New("no socket passed by systemd")
	// ErrEnvironment: the LISTEN_* variables are malformed or
	// inconsistent.
	ErrEnvironment = errors.New("bad socket activation environment")
	// ErrNotOurs: LISTEN_PID names another process, so the sockets
	// were meant for someone else (sd_listen_fds(3) ignores them too).
	ErrNotOurs = errors.New("the sockets were passed to another process")
	// ErrSocketCount: systemd passed more (or fewer) than one socket.
	ErrSocketCount = errors.New("scached takes exactly one socket")
	// ErrSocketKind: the passed descriptor is not a listening
	// UNIX-domain stream socket.
	ErrSocketKind = errors.New("scached needs a listening UNIX-domain stream socket")

	// ErrInUse: Listen found a server listening on the path already.
	ErrInUse = errors.New("another server is listening on it")
	// ErrNotSocket: Listen found a file that is not a socket on the path.
	ErrNotSocket = errors.New("refusing to replace a file that is not a socket")
)

// listenFDsStart is SD_LISTEN_FDS_START, the first passed descriptor.
const listenFDsStart = 3

// Listener takes over the single socket that systemd passed to this
// process (socket activation) and returns it with its name, the unit's
// FileDescriptorName= (LISTEN_FDNAMES), or "LISTEN_FD_3" when systemd gave
// none.
//
// It always unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, so that they
// do not leak to child processes. An empty variable counts as unset. It fails, with an error naming what was
// wrong, unless exactly one descriptor was passed to this very process and
// that descriptor is a listening UNIX-domain SOCK_STREAM socket.
//
// Descriptor ownership: on success the caller owns the listener; its Close
// closes the descriptor but, as the path belongs to the socket unit, does
// not unlink the socket file. Descriptor 3 itself is closed either way
// (the listener holds a duplicate), as are the passed descriptors when the
// environment addressed this process but Listener fails.
func Listener() (*net.UnixListener, string, error) {
	// An empty variable counts as unset, as "export LISTEN_FDS=" is a
	// common way to clear it.
	pidEnv := os.Getenv("LISTEN_PID")
	fdsEnv := os.Getenv("LISTEN_FDS")
	havePID, haveFDs := pidEnv != "", fdsEnv != ""

	// Files checks LISTEN_PID and LISTEN_FDS again and returns nil when
	// either is wrong; the checks below say which. It marks the
	// descriptors close-on-exec and unsets the environment.
	files := sdactivation.Files(true)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()

	if !haveFDs {
		// With or without LISTEN_PID: sd_listen_fds(3) too says "no
		// descriptors" then.
		return nil, "", fmt.Errorf("%w (LISTEN_FDS unset): use -listen PATH", ErrNoSocket)
	}
	nfds, err := strconv.Atoi(fdsEnv)
	if err != nil || nfds < 0 {
		return nil, "", fmt.Errorf("%w: LISTEN_FDS=%q is not a number of descriptors", ErrEnvironment, fdsEnv)
	}
	if !havePID {
		return nil, "", fmt.Errorf("%w: LISTEN_FDS=%s but LISTEN_PID unset", ErrEnvironment, fdsEnv)
	}
	pid, err := strconv.Atoi(pidEnv)
	if err != nil || pid <= 0 {
		return nil, "", fmt.Errorf("%w: LISTEN_PID=%q is not a process id", ErrEnvironment, pidEnv)
	}
	if pid != os.Getpid() {
		return nil, "", fmt.Errorf("LISTEN_PID=%d, not our pid %d: %w", pid, os.Getpid(), ErrNotOurs)
	}
	if nfds != 1 {
		return nil, "", fmt.Errorf("LISTEN_FDS=%d: %w", nfds, ErrSocketCount)
	}
	if len(files) != 1 {
		// Cannot happen: Files saw the same environment.
		return nil, "", fmt.Errorf("%w: go-systemd returned %d descriptors for LISTEN_FDS=1", ErrEnvironment, len(files))
	}
	f := files[0]
	name := f.Name()
	fd := listenFDsStart

	// Check the descriptor before wrapping it: net.FileListener would
	// accept a TCP or datagram socket, or fail with a vague error.
	// SyscallConn, unlike Fd, leaves the descriptor's blocking mode alone
	// (its open file description is shared with systemd).
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, "", fmt.Errorf("fd %d (%s): %w", fd, name, err)
	}
	var checkErr error
	if err := rc.Control(func(sysfd uintptr) { checkErr = checkListening(int(sysfd)) }); err != nil {
		return nil, "", fmt.Errorf("fd %d (%s): %w", fd, name, err)
	}
	if checkErr != nil {
		return nil, "", fmt.Errorf("fd %d (%s) %w", fd, name, checkErr)
	}

	ln, err := net.FileListener(f)
	if err != nil {
		return nil, "", fmt.Errorf("fd %d (%s): %w", fd, name, err)
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		return nil, "", fmt.Errorf("fd %d (%s) is a %T: %w", fd, name, ln, ErrSocketKind)
	}
	ul.SetUnlinkOnClose(false)
	return ul, name, nil
}

// checkListening reports why fd is not a listening UNIX-domain stream
// socket, as a predicate that follows "fd N (name) ", or nil if it is one.
func checkListening(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	switch {
	case errors.Is(err, unix.EBADF):
		return fmt.Errorf("is not open (%w): %w", err, ErrSocketKind)
	case errors.Is(err, unix.ENOTSOCK):
		return fmt.Errorf("is not a socket (%w): %w", err, ErrSocketKind)
	case err != nil:
		return fmt.Errorf("cannot be checked: getsockopt SO_DOMAIN: %w", err)
	}
	if domain != unix.AF_UNIX {
		return fmt.Errorf("is %s socket, not a UNIX-domain socket: %w", domainName(domain), ErrSocketKind)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("cannot be checked: getsockopt SO_TYPE: %w", err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("is %s socket, not a stream socket: %w", typeName(typ), ErrSocketKind)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("cannot be checked: getsockopt SO_ACCEPTCONN: %w", err)
	}
	if acc == 0 {
		return fmt.Errorf("is a UNIX-domain stream socket that is not listening: %w", ErrSocketKind)
	}
	return nil
}

func domainName(d int) string {
	switch d {
	case unix.AF_INET:
		return "an IPv4"
	case unix.AF_INET6:
		return "an IPv6"
	case unix.AF_NETLINK:
		return "a netlink"
	case unix.AF_PACKET:
		return "a packet"
	case unix.AF_VSOCK:
		return "a vsock"
	}
	return "an address family " + strconv.Itoa(d)
}

func typeName(t int) string {
	switch t {
	case unix.SOCK_DGRAM:
		return "a datagram"
	case unix.SOCK_SEQPACKET:
		return "a seqpacket"
	case unix.SOCK_RAW:
		return "a raw"
	}
	return "a type " + strconv.Itoa(t)
}

// DefaultMode is the permission of a socket that Listen creates when
// called with mode 0: like the private sockets of Postfix's master(8),
// everyone may connect; the directory decides who can reach it.
const DefaultMode os.FileMode = 0o666

// staleProbeTimeout bounds the connect that tells a stale socket file from
// a live one; a live server answers connect() at once from its backlog.
const staleProbeTimeout = time.Second

// Listen creates a listening UNIX-domain stream socket at path, for
// running scached without systemd (the -listen flag). An existing socket
// file is replaced only when nobody listens on it (connect() is refused);
// any other existing file is left alone and reported (ErrNotSocket). The
// socket gets permission mode (DefaultMode when 0).
//
// Ownership: the caller owns the listener; its Close removes the socket
// file, as Go's ListenUnix does by default.
func Listen(path string, mode os.FileMode) (*net.UnixListener, error) {
	if mode == 0 {
		mode = DefaultMode
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err // *net.OpError names the operation and path
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode.Perm()); err != nil {
		ln.Close()
		return nil, err // *fs.PathError names the operation and path
	}
	return ln, nil
}

// removeStale removes path if it is a socket that nobody listens on. It
// leaves a missing path alone and refuses anything else.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("listen on %s: %w (%s)", path, ErrNotSocket, fileKind(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen on %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		// EAGAIN (a full backlog) means a live, busy server; EACCES
		// means we could not tell. Either way: hands off.
		return fmt.Errorf("listen on %s: cannot tell whether the socket is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listen on %s: remove stale socket: %w", path, err)
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case os.ModeDir:
		return "a directory"
	case os.ModeSymlink:
		return "a symbolic link"
	case os.ModeNamedPipe:
		return "a FIFO"
	case os.ModeDevice, os.ModeDevice | os.ModeCharDevice:
		return "a device"
	}
	return "mode " + m.String()
}

// Notify sends state (for example "READY=1" or "STOPPING=1") to the
// service manager over $NOTIFY_SOCKET (sd_notify(3)). It reports false and
// no error when NOTIFY_SOCKET is unset: not running under systemd, or a
// unit that is not Type=notify. NOTIFY_SOCKET stays set for later calls.
func Notify(state string) (bool, error) {
	sent, err := sddaemon.SdNotify(false, state)
	if err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return sent, nil
}
