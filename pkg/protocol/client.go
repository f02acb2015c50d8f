package protocol

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultClientTimeout is Postfix's connection_cache_protocol_timeout.
const DefaultClientTimeout = 5 * time.Second

// maxReply caps one reply the client accepts.
const maxReply = 64 << 20

// Client is the client side of the protocol, speaking it byte for byte as
// Postfix's global/scache_clnt.c does: it checks the greeting, sends the
// dummies around every descriptor transfer, and passes descriptors with
// one NUL data byte. Unlike scache_clnt.c it neither retries nor closes
// the descriptors it is given. A Client is not safe for concurrent use;
// open one per goroutine, as each Postfix process keeps one connection.
type Client struct {
	c  *Conn
	sc scanner
}

// Dial connects to the server socket at path and checks its greeting. Each
// read and write must complete within timeout (zero: no limit).
func Dial(path string, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	cl, err := NewClient(nc.(*net.UnixConn), timeout)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return cl, nil
}

// DialLegacy connects like Postfix 3.5 and older (global/scache_clnt.c
// before 3.6): no greeting is expected, the first request is sent at once.
func DialLegacy(path string, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	return NewLegacyClient(nc.(*net.UnixConn), timeout), nil
}

// NewLegacyClient takes over uc without reading a greeting, as Postfix 3.5
// and older do.
func NewLegacyClient(uc *net.UnixConn, timeout time.Duration) *Client {
	cl := &Client{c: NewConn(uc, timeout)}
	cl.sc = scanner{c: cl.c, peer: "server"}
	return cl
}

// NewClient takes over uc and reads the server's greeting
// (scache_clnt.c:scache_clnt_handshake()). On error the caller still owns
// uc.
func NewClient(uc *net.UnixConn, timeout time.Duration) (*Client, error) {
	cl := NewLegacyClient(uc, timeout)
	res, err := cl.scanReply([]attrWant{{AttrProtocol, false, false}})
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if res.n != 1 || cl.sc.strs[0] != ProtocolName {
		return nil, fmt.Errorf("read greeting: %w: %s", ErrProtocol, cl.describe(res, "protocol="+ProtocolName))
	}
	return cl, nil
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// Conn returns the underlying stream, for tests that need to step outside
// the protocol.
func (cl *Client) Conn() *Conn { return cl.c }

func (cl *Client) scanReply(wants []attrWant) (scanResult, error) {
	cl.sc.budget = maxReply
	cl.sc.warnings = nil
	return cl.sc.scan(wants, false)
}

func (cl *Client) describe(res scanResult, wanted string) string {
	if len(cl.sc.warnings) > 0 {
		return strings.Join(cl.sc.warnings, "; ")
	}
	return fmt.Sprintf("expected %s, got %d attributes", wanted, res.n)
}

func (cl *Client) send(nameValues ...string) error {
	cl.c.WriteAttrs(nameValues...)
	return cl.c.Flush()
}

var (
	wantStatus      = []attrWant{{AttrStatus, true, false}}
	wantStatusProp  = []attrWant{{AttrStatus, true, false}, {AttrProperty, false, false}}
	wantStatusProp2 = []attrWant{{AttrStatus, true, false}, {AttrProperty, false, false}, {AttrProperty, false, false}}
)

func (cl *Client) readStatus(wants []attrWant) (int, error) {
	res, err := cl.scanReply(wants)
	if err != nil {
		return -1, err
	}
	if res.n != len(wants) {
		return -1, fmt.Errorf("%w: %s", ErrProtocol, cl.describe(res, "status"))
	}
	return cl.sc.nums[0], nil
}

// SaveEndp asks the server to cache fd with prop under endpoint label for
// ttl seconds (scache_clnt.c:scache_clnt_save_endp()). It returns the
// server's status. The caller keeps its own copy of fd (Postfix's client
// closes it after the call; do the same once the status is known).
func (cl *Client) SaveEndp(ttl int, label, prop string, fd int) (int, error) {
	cl.c.wbuf = AppendAttr(cl.c.wbuf, AttrRequest, ReqSaveEndp)
	cl.c.wbuf = AppendNumber(cl.c.wbuf, AttrTTL, ttl)
	if err := cl.send(AttrLabel, label, AttrProperty, prop); err != nil {
		return -1, err
	}
	// The server answers a bad request with its status instead of the
	// dummy; Postfix's client would call that a protocol error.
	cl.sc.budget, cl.sc.warnings = maxReply, nil
	name, err := cl.sc.next()
	if err != nil {
		return -1, err
	}
	switch string(name) {
	case AttrDummy:
		if _, err := cl.sc.next(); err != nil {
			return -1, err
		}
		if end, err := cl.sc.next(); err != nil || len(end) != 0 {
			return -1, fmt.Errorf("%w: extra attributes after dummy", ErrProtocol)
		}
	case AttrStatus:
		v, err := cl.sc.next()
		if err != nil {
			return -1, err
		}
		st, ok := ParseNumber(v)
		if end, err := cl.sc.next(); !ok || err != nil || len(end) != 0 {
			return -1, fmt.Errorf("%w: malformed status", ErrProtocol)
		}
		return st, nil
	default:
		return -1, fmt.Errorf("%w: expected dummy, got attribute %s", ErrProtocol, printable(name))
	}
	if err := cl.c.SendFD(fd); err != nil {
		return -1, err
	}
	return cl.readStatus(wantStatus)
}

// FindEndp asks for a cached connection to endpoint label
// (scache_clnt.c:scache_clnt_find_endp()). On status 0 the caller owns the
// returned descriptor; otherwise fd is -1.
func (cl *Client) FindEndp(label string) (status int, prop string, fd int, err error) {
	if err := cl.send(AttrRequest, ReqFindEndp, AttrLabel, label); err != nil {
		return -1, "", -1, err
	}
	st, err := cl.readStatus(wantStatusProp)
	if err != nil || st != StatusOK {
		return st, "", -1, err
	}
	prop = cl.sc.strs[1]
	fd, err = cl.takeFD()
	return st, prop, fd, err
}

// SaveDest binds destination label to endpoint endpLabel with the
// destination properties prop for ttl seconds
// (scache_clnt.c:scache_clnt_save_dest()).
func (cl *Client) SaveDest(ttl int, label, prop, endpLabel string) (int, error) {
	cl.c.wbuf = AppendAttr(cl.c.wbuf, AttrRequest, ReqSaveDest)
	cl.c.wbuf = AppendNumber(cl.c.wbuf, AttrTTL, ttl)
	if err := cl.send(AttrLabel, label, AttrProperty, prop, AttrLabel, endpLabel); err != nil {
		return -1, err
	}
	return cl.readStatus(wantStatus)
}

// FindDest asks for a cached connection to destination label
// (scache_clnt.c:scache_clnt_find_dest()). On status 0 the caller owns the
// returned descriptor; otherwise fd is -1.
func (cl *Client) FindDest(label string) (status int, destProp, endpProp string, fd int, err error) {
	if err := cl.send(AttrRequest, ReqFindDest, AttrLabel, label); err != nil {
		return -1, "", "", -1, err
	}
	st, err := cl.readStatus(wantStatusProp2)
	if err != nil || st != StatusOK {
		return st, "", "", -1, err
	}
	destProp, endpProp = cl.sc.strs[1], cl.sc.strs[2]
	fd, err = cl.takeFD()
	return st, destProp, endpProp, fd, err
}

// takeFD runs the hand-out after a find hit: dummy, descriptor, dummy.
func (cl *Client) takeFD() (int, error) {
	cl.c.WriteAttrs(AttrDummy, "")
	fd, err := cl.c.RecvFD()
	if err != nil {
		return -1, fmt.Errorf("receive file descriptor: %w", err)
	}
	if err := cl.send(AttrDummy, ""); err != nil {
		return fd, err
	}
	return fd, nil
}
