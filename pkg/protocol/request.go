package protocol

import "errors"

// RequestType tells which request a client sent.
type RequestType int

const (
	// NoRequest: the input was not a request (its first attribute was not
	// "request", or the list was empty); Postfix sends no reply.
	NoRequest RequestType = iota
	// UnknownRequest: a request name Postfix does not know; the reply is
	// status 1 without properties.
	UnknownRequest
	SaveEndp
	FindEndp
	SaveDest
	FindDest
)

var requestNames = [...]string{"(none)", "(unknown)", ReqSaveEndp, ReqFindEndp, ReqSaveDest, ReqFindDest}

func (t RequestType) String() string { return requestNames[t] }

// Properties is how many property attributes a reply to t carries: find_*
// replies always carry them, also on miss and on error.
func (t RequestType) Properties() int {
	switch t {
	case FindEndp:
		return 1
	case FindDest:
		return 2
	}
	return 0
}

// Request is one parsed client request.
type Request struct {
	Type RequestType
	// Valid is false when the request must be answered with status 1
	// (bad or missing parameter).
	Valid bool
	// TTL in seconds, as sent (save_endp, save_dest). It may be <= 0 only
	// when Valid is false.
	TTL int
	// Label is the endpoint label (save_endp, find_endp) or the
	// destination label (save_dest, find_dest).
	Label string
	// Prop is the endpoint properties (save_endp) or the destination
	// properties (save_dest).
	Prop string
	// EndpLabel is save_dest's endpoint label.
	EndpLabel string
	// LabelView, PropView and EndpLabelView are Label, Prop and EndpLabel
	// when the ServerConn was told so (SetViews): the bytes are not
	// copied, and they are valid only until the next read from the
	// connection (ReadRequest, ReadDummy, RecvFD, WaitInput), or, after
	// KeepViews, until the next KeepViews. Use them and let go of them before
	// then; string(LabelView) makes a copy to keep.
	LabelView, PropView, EndpLabelView []byte
	// Warnings are what Postfix's scache(8) would log while reading this
	// request, in order. They name attributes, never labels or properties.
	Warnings []string
}

var (
	wantSaveEndp      = []attrWant{{AttrTTL, true, false}, {AttrLabel, false, false}, {AttrProperty, false, false}}
	wantSaveEndpViews = []attrWant{{AttrTTL, true, false}, {AttrLabel, false, true}, {AttrProperty, false, true}}
	wantLabel         = []attrWant{{AttrLabel, false, false}}
	wantLabelView     = []attrWant{{AttrLabel, false, true}}
	wantSaveDest      = []attrWant{{AttrTTL, true, false}, {AttrLabel, false, false}, {AttrProperty, false, false}, {AttrLabel, false, false}}
	wantSaveDestViews = []attrWant{{AttrTTL, true, false}, {AttrLabel, false, true}, {AttrProperty, false, true}, {AttrLabel, false, true}}
	wantRequest       = []attrWant{{AttrRequest, false, true}}
	wantDummy         = []attrWant{{AttrDummy, false, false}}
)

// ServerConn is the server end of one client connection.
type ServerConn struct {
	*Conn
	sc        scanner
	limit     int
	skipValue bool   // the rest of a malformed request is to be skipped,
	skip      bool   // starting with a value if skipValue
	views     bool   // strings go to the Request's views
	kept      []byte // KeepViews' copies
}

// SetViews says whether ReadRequest returns the strings of a request as
// views into the read buffer that cost no allocation (Request.LabelView,
// PropView, EndpLabelView) instead of copying them into Request.Label,
// Prop and EndpLabel.
func (s *ServerConn) SetViews(on bool) { s.views = on }

// KeepViews copies req's views into a buffer of the ServerConn's own and
// points them there, so that they stay valid across reads until the next
// KeepViews: a save_endp's label and property while its descriptor is
// received. It allocates only to grow the buffer.
func (s *ServerConn) KeepViews(req *Request) {
	n := len(req.LabelView) + len(req.PropView) + len(req.EndpLabelView)
	if cap(s.kept) < n || cap(s.kept) > minReadBuf && n <= minReadBuf {
		s.kept = make([]byte, 0, max(n, 64))
	}
	s.kept = s.kept[:0]
	keep := func(v []byte) []byte {
		if v == nil {
			return nil
		}
		i := len(s.kept)
		s.kept = append(s.kept, v...)
		return s.kept[i:len(s.kept):len(s.kept)]
	}
	req.LabelView, req.PropView, req.EndpLabelView = keep(req.LabelView), keep(req.PropView), keep(req.EndpLabelView)
}

// NewServerConn wraps uc for a server. limit caps the bytes of one request
// (all its strings and terminators). The ServerConn owns uc.
func NewServerConn(c *Conn, peer string, limit int) *ServerConn {
	s := &ServerConn{Conn: c, limit: limit}
	s.sc = scanner{c: c, peer: peer}
	return s
}

// WriteGreeting queues protocol=connection_cache_protocol, the first thing
// a server says (scache.c:scache_post_accept()).
func (s *ServerConn) WriteGreeting() { s.WriteAttrs(AttrProtocol, ProtocolName) }

// ReadRequest reads the next request the way scache.c:scache_service()
// does: attr_scan with ATTR_FLAG_MORE for the request name, then the
// request's own attributes with ATTR_FLAG_STRICT.
//
// One deliberate difference: Postfix discards whatever input it has
// buffered when it writes a reply, so a second request that arrived in the
// same read is lost. Here only the unread rest of a request that was
// answered early (an unexpected attribute, a malformed number) is skipped,
// as far as it has already arrived; a following request is kept and
// answered.
//
// Errors: io.EOF when the client closed between requests; ErrTooLarge
// when a request exceeded the limit (the returned Request tells which
// request it was, if known, so that the caller can answer it); any other
// error when the stream broke.
func (s *ServerConn) ReadRequest() (Request, error) {
	s.skipRest()
	s.sc.budget = s.limit
	s.sc.warnings = nil
	req := Request{Type: NoRequest}
	res, err := s.sc.scan(wantRequest, true)
	if err != nil {
		return s.fail(req, err)
	}
	if res.n != 1 {
		// Postfix writes nothing and goes on reading string by string.
		req.Warnings = s.sc.warnings
		return req, nil
	}
	var wants []attrWant
	name := s.sc.views[0]
	switch string(name) {
	case ReqSaveEndp:
		req.Type, wants = SaveEndp, s.want(wantSaveEndp, wantSaveEndpViews)
	case ReqFindEndp:
		req.Type, wants = FindEndp, s.want(wantLabel, wantLabelView)
	case ReqSaveDest:
		req.Type, wants = SaveDest, s.want(wantSaveDest, wantSaveDestViews)
	case ReqFindDest:
		req.Type, wants = FindDest, s.want(wantLabel, wantLabelView)
	default:
		req.Type = UnknownRequest
		s.sc.warnf("unrecognized request: \"%s\", ignored", printable(name))
		req.Warnings = s.sc.warnings
		s.skip = true
		return req, nil
	}
	res, err = s.sc.scan(wants, false)
	if err != nil {
		return s.fail(req, err)
	}
	s.skip, s.skipValue = res.midList, res.valuePending
	req.Valid = res.n == len(wants)
	// Views: the scanner keeps them valid (in its own copy if the buffer
	// had to move) until the next read.
	v := &s.sc.views
	switch req.Type {
	case SaveEndp:
		req.TTL, req.Label, req.Prop = s.sc.nums[0], s.sc.strs[1], s.sc.strs[2]
		req.LabelView, req.PropView = v[1], v[2]
		req.Valid = req.Valid && req.TTL > 0
	case FindEndp, FindDest:
		req.Label, req.LabelView = s.sc.strs[0], v[0]
	case SaveDest:
		req.TTL, req.Label, req.Prop = s.sc.nums[0], s.sc.strs[1], s.sc.strs[2]
		req.EndpLabel = s.sc.strs[3]
		req.LabelView, req.PropView, req.EndpLabelView = v[1], v[2], v[3]
		req.Valid = req.Valid && req.TTL > 0
	}
	if !req.Valid {
		req.TTL, req.Label, req.Prop, req.EndpLabel = 0, "", "", ""
		req.LabelView, req.PropView, req.EndpLabelView = nil, nil, nil
	}
	req.Warnings = s.sc.warnings
	return req, nil
}

// want returns copies or views, as SetViews said.
func (s *ServerConn) want(copies, views []attrWant) []attrWant {
	if s.views {
		return views
	}
	return copies
}

func (s *ServerConn) fail(req Request, err error) (Request, error) {
	req.Warnings = s.sc.warnings
	if errors.Is(err, ErrTooLarge) {
		return req, ErrTooLarge
	}
	return req, err
}

// skipRest discards the rest of a request that was answered before its
// terminator, as far as it is already buffered; see ReadRequest.
func (s *ServerConn) skipRest() {
	if !s.skip {
		return
	}
	s.skip = false
	valueNext := s.skipValue
	for s.Buffered() > 0 {
		b, ok := s.bufferedString()
		if !ok {
			// Postfix drops a partial string with the buffer too.
			s.r = s.w
			s.dropArrivedBefore(s.base + int64(s.r))
			return
		}
		if !valueNext && len(b) == 0 {
			return
		}
		valueNext = !valueNext
	}
}

// bufferedString consumes the next string if it is complete in the buffer.
func (s *ServerConn) bufferedString() ([]byte, bool) {
	if s.Buffered() == 0 {
		return nil, false
	}
	for i := s.r; i < s.w; i++ {
		if s.rbuf[i] == 0 {
			b := s.rbuf[s.r:i]
			s.r = i + 1
			if len(s.arrived) > 0 {
				s.dropArrivedBefore(s.base + int64(s.r))
			}
			return b, true
		}
	}
	return nil, false
}

// RecvFD receives the descriptor of a save_endp request, after the dummy
// was queued. Like Postfix, which discards its unread input when it writes
// the dummy, it first skips what is left of the request (a tolerated extra
// attribute after the expected ones), so that the next byte is the one
// carrying the descriptor. See Conn.RecvFD for ownership and errors.
func (s *ServerConn) RecvFD() (int, error) {
	s.skipRest()
	return s.Conn.RecvFD()
}

// ReadDummy reads a dummy attribute list, as the server does around handing
// out a descriptor. It reports false, with Postfix's warnings in
// Warnings, when the client sent something else. What is left of the
// request that led to the hand-out is skipped first, as in RecvFD.
func (s *ServerConn) ReadDummy() (ok bool, warnings []string, err error) {
	s.skipRest()
	s.sc.budget = s.limit
	s.sc.warnings = nil
	res, err := s.sc.scan(wantDummy, false)
	if err != nil {
		return false, s.sc.warnings, err
	}
	return res.n == 1, s.sc.warnings, nil
}

// WriteStatus queues the reply to a request of type t: the status and, for
// find_*, that many empty property attributes (miss and error replies).
func (s *ServerConn) WriteStatus(t RequestType, status int) {
	s.wbuf = AppendNumber(s.wbuf, AttrStatus, status)
	for i := 0; i < t.Properties(); i++ {
		s.wbuf = AppendAttr(s.wbuf, AttrProperty, "")
	}
	s.wbuf = AppendEnd(s.wbuf)
}

// WriteFound queues a find hit: status 0 and the properties (one for
// find_endp, destination then endpoint properties for find_dest).
func (s *ServerConn) WriteFound(props ...string) {
	s.wbuf = AppendNumber(s.wbuf, AttrStatus, StatusOK)
	for _, p := range props {
		s.wbuf = AppendAttr(s.wbuf, AttrProperty, p)
	}
	s.wbuf = AppendEnd(s.wbuf)
}

// WriteFoundBytes is WriteFound with the properties as bytes, which it
// copies.
func (s *ServerConn) WriteFoundBytes(props ...[]byte) {
	s.wbuf = AppendNumber(s.wbuf, AttrStatus, StatusOK)
	for _, p := range props {
		s.wbuf = appendAttr(s.wbuf, AttrProperty, p)
	}
	s.wbuf = AppendEnd(s.wbuf)
}

// WriteDummy queues the dummy attribute list a receiver sends before a
// descriptor travels.
func (s *ServerConn) WriteDummy() { s.WriteAttrs(AttrDummy, "") }
