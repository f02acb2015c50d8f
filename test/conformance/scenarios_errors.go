package conformance

import (
	"fmt"
	"time"
)

// matrixRow is one row of the reference's error matrix (section 7): the
// input in one write, the exact reply, and a follow-up request on the same
// connection with its reply (the connection must stay usable, and nothing
// may have been stored).
type matrixRow struct {
	name          string
	in, reply     []byte
	after, reply2 []byte
}

func errorMatrixRows(env *Env) []matrixRow {
	L, D, E := env.Label("L"), env.Label("D"), env.Label("E")
	endpGone := func(name string, in, reply []byte) matrixRow {
		return matrixRow{name, in, reply, findEndpReq(L), endpMiss}
	}
	destGone := func(name string, in, reply []byte) matrixRow {
		return matrixRow{name, in, reply, findDestReq(D), destMiss}
	}
	return []matrixRow{
		// Unknown request names: status 1 without properties.
		endpGone("unknown request FIND_ENDP", List("request", "FIND_ENDP", "label", L), statusBad),
		endpGone("unknown request with trailing blank", List("request", "find_endp ", "label", L), statusBad),
		endpGone("unknown request empty name", List("request", "", "label", L), statusBad),
		endpGone("unknown request empty name, no attributes", List("request", ""), statusBad),
		endpGone("unknown request bogus", List("request", "bogus"), statusBad),
		endpGone("unknown request save_endp with newline", List("request", "save_endp\n", "ttl", "2", "label", L, "property", "P"), statusBad),
		// Missing attributes (early terminator).
		endpGone("save_endp without attributes", List("request", "save_endp"), statusBad),
		endpGone("save_endp without label", List("request", "save_endp", "ttl", "2"), statusBad),
		endpGone("save_endp without property", List("request", "save_endp", "ttl", "2", "label", L), statusBad),
		destGone("save_dest without attributes", List("request", "save_dest"), statusBad),
		destGone("save_dest without property", List("request", "save_dest", "ttl", "2", "label", D), statusBad),
		destGone("save_dest without endpoint label", List("request", "save_dest", "ttl", "2", "label", D, "property", "P"), statusBad),
		endpGone("find_endp without label", List("request", "find_endp"), endpBad),
		endpGone("find_endp unexpected attribute", List("request", "find_endp", "foo", L), endpBad),
		endpGone("find_endp label misspelt", List("request", "find_endp", "Label", L), endpBad),
		destGone("find_dest without label", List("request", "find_dest"), destBad),
		destGone("find_dest unexpected attribute", List("request", "find_dest", "foo", D), destBad),
		// Out of order, and extra attributes in the middle.
		destGone("save_dest label before ttl", List("request", "save_dest", "label", D, "ttl", "2", "property", "P", "label", E), statusBad),
		endpGone("save_endp property before label", List("request", "save_endp", "ttl", "2", "property", "P", "label", L), statusBad),
		endpGone("save_endp label before ttl", List("request", "save_endp", "label", L, "ttl", "2", "property", "P"), statusBad),
		endpGone("find_endp property before label", List("request", "find_endp", "property", "x", "label", L), endpBad),
		destGone("save_dest extra attribute in the middle", List("request", "save_dest", "ttl", "2", "foo", "x", "label", D, "property", "P", "label", E), statusBad),
		endpGone("save_endp extra attribute in the middle", List("request", "save_endp", "ttl", "2", "label", L, "foo", "x", "property", "P"), statusBad),
		destGone("find_dest extra attribute before label", List("request", "find_dest", "foo", "x", "label", D), destBad),
		// An extra attribute after all expected ones: executed normally.
		endpGone("find_endp trailing extra attribute", List("request", "find_endp", "label", L, "foo", "bar"), endpMiss),
		destGone("find_dest trailing extra attribute", List("request", "find_dest", "label", D, "foo", "bar"), destMiss),
		destGone("find_dest two trailing extra attributes", List("request", "find_dest", "label", D, "foo", "bar", "baz", "qux"), destMiss),
	}
}

func errorMatrix(env *Env) error {
	for _, row := range errorMatrixRows(env) {
		r, err := env.Raw()
		if err != nil {
			return err
		}
		if err := r.Send(row.in); err != nil {
			return err
		}
		if err := r.Expect(row.reply); err != nil {
			return fmt.Errorf("%s: input %s: %w", row.name, Show(row.in), err)
		}
		if err := r.Request(row.after, row.reply2); err != nil {
			return fmt.Errorf("%s: afterwards: %w", row.name, err)
		}
		r.Close()
	}
	return nil
}

// Requests with an extra attribute after all expected ones are executed
// normally, including the descriptor exchanges: Postfix's attr_scan()
// returns the full count, and writing the dummy discards the unread rest.
func extraTrailingExecuted(env *Env) error {
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	L, D := env.Label("LX"), env.Label("DX")
	r, err := env.Raw()
	if err != nil {
		return err
	}
	in := List("request", "save_dest", "ttl", "2", "label", D, "property", "DP", "label", L, "foo", "bar")
	if err := r.Request(in, statusOK); err != nil {
		return fmt.Errorf("save_dest with trailing extra attribute: %w", err)
	}
	in = List("request", "save_endp", "ttl", "2", "label", L, "property", "P0", "foo", "bar")
	if err := r.Send(in); err != nil {
		return err
	}
	if err := r.Expect(dummy); err != nil {
		return fmt.Errorf("save_endp with trailing extra attribute %s: %w", Show(in), err)
	}
	if err := r.SendFD(ps[0].Near); err != nil {
		return err
	}
	env.CloseFD(ps[0].Near)
	if err := r.Expect(statusOK); err != nil {
		return fmt.Errorf("save_endp with trailing extra attribute %s, descriptor sent after the dummy: %w", Show(in), err)
	}
	if err := r.SaveEndp("2", L, "P1", ps[1]); err != nil {
		return err
	}
	// find_dest hit with an extra attribute, then find_endp hit with one.
	if err := r.Request(List("request", "find_dest", "label", D, "foo", "bar"), destReply(0, "DP", "P0")); err != nil {
		return fmt.Errorf("find_dest with trailing extra attribute: %w", err)
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, ps[0]); err != nil {
		return err
	}
	env.CloseFD(fd)
	if err := r.Request(List("request", "find_endp", "label", L, "foo", "bar"), endpReply(0, "P1")); err != nil {
		return fmt.Errorf("find_endp with trailing extra attribute: %w", err)
	}
	if fd, err = r.TakeFD(); err != nil {
		return err
	}
	if err := env.Is(fd, ps[1]); err != nil {
		return err
	}
	env.CloseFD(fd)
	return r.Request(findEndpReq(L), endpMiss)
}

// A list that does not start with "request", and an empty list, get no
// reply at all; the connection stays usable.
func noReplyNotRequest(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	for _, in := range [][]byte{
		List("foo", "bar"),
		W("^@"),
		W("^@^@^@"),
		List("status", "0"),
		List("dummy", ""),
		List("label", env.Label("L"), "property", "P"),
		List("Request", "find_endp", "label", env.Label("L")),
	} {
		// The input and a request in two writes: the first bytes that
		// come back must be the request's reply.
		if err := r.Send(in); err != nil {
			return err
		}
		if err := r.Request(findEndpReq(env.Label("L")), endpMiss); err != nil {
			return fmt.Errorf("after %s: %w", Show(in), err)
		}
	}
	// Nor does a reply come late.
	if err := r.Send(List("foo", "bar")); err != nil {
		return err
	}
	return r.ExpectNothing(env.Quiet)
}

// After a non-request, every string is read as an attribute name, and a
// "request" string anywhere starts a request.
func resyncOnRequestString(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	L := env.Label("L")
	if err := cl.Save(2, L, "P", p); err != nil {
		return err
	}
	r, err := env.Raw()
	if err != nil {
		return err
	}
	// The reference's example: find_endp with its label missing.
	if err := r.Request(W("label^@x^@request^@find_endp^@^@"), endpBad); err != nil {
		return err
	}
	// "foo" is consumed as a name, "request" as the next name: a complete
	// find_endp follows and is executed.
	in := cat(W("foo^@"), findEndpReq(L))
	if err := r.Request(in, endpReply(0, "P")); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, p); err != nil {
		return err
	}
	env.CloseFD(fd)
	return r.Request(findEndpReq(L), endpMiss)
}

func pipelinedRequests(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	L, D, E := env.Label("L"), env.Label("D"), env.Label("E")
	if err := r.Send(findEndpReq(L), saveDestReq("2", D, "DP", E)); err != nil {
		return err
	}
	improved := env.Improved("pipelined_requests")
	if improved {
		if err := r.Expect(cat(endpMiss, statusOK)); err != nil {
			return fmt.Errorf("both pipelined requests must be answered: %w", err)
		}
	} else {
		if err := r.Expect(endpMiss); err != nil {
			return err
		}
		if err := r.ExpectNothing(env.Quiet); err != nil {
			return fmt.Errorf("quirk: Postfix answers only the first of two requests in one write: %w", err)
		}
	}
	// The connection is usable, and the second request was executed
	// (scached) or dropped (Postfix), not delayed.
	if err := r.Request(findEndpReq(L), endpMiss); err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	if err := r.SaveEndp("2", E, "P", p); err != nil {
		return err
	}
	if improved {
		if err := r.Request(findDestReq(D), destReply(0, "DP", "P")); err != nil {
			return fmt.Errorf("the pipelined save_dest: %w", err)
		}
		fd, err := r.TakeFD()
		if err != nil {
			return err
		}
		return env.Is(fd, p)
	}
	if err := r.Request(findDestReq(D), destMiss); err != nil {
		return fmt.Errorf("the dropped save_dest: %w", err)
	}
	env.Notef("postfix: second request of the write dropped, connection still usable")
	return r.Request(findEndpReq(E), endpReply(0, "P"))
}

// The trailing dummy of a hand-out and the next request in one write: the
// request is answered.
func dummyConcatenated(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	L := env.Label("L")
	for i, p := range ps {
		if err := cl.Save(2, L, fmt.Sprint("s", i), p); err != nil {
			return err
		}
	}
	r, err := env.Raw()
	if err != nil {
		return err
	}
	if err := r.Request(findEndpReq(L), endpReply(0, "s0")); err != nil {
		return err
	}
	next := findEndpReq(L)
	for i := 0; i < 2; i++ {
		if err := r.Send(dummy); err != nil {
			return err
		}
		fd, err := r.RecvFD()
		if err != nil {
			return err
		}
		if err := env.Is(fd, ps[i]); err != nil {
			return err
		}
		env.CloseFD(fd)
		if i == 1 {
			next = findDestReq(env.Label("none"))
		}
		if err := r.Send(dummy, next); err != nil {
			return err
		}
		want := endpReply(0, "s1")
		if i == 1 {
			want = destMiss
		}
		if err := r.Expect(want); err != nil {
			return fmt.Errorf("request glued to the trailing dummy: %w", err)
		}
	}
	return cl.Hit(L, "s2", ps[2])
}

// Something other than the dummy after a find hit: the session is lost
// (closed by the server), the input is read as new input.
func wrongAttributeInsteadOfDummy(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	ps, err := env.Pairs(2)
	if err != nil {
		return err
	}
	L := env.Label("L")
	for i, p := range ps {
		if err := cl.Save(2, L, fmt.Sprint("s", i), p); err != nil {
			return err
		}
	}
	r, err := env.Raw()
	if err != nil {
		return err
	}
	if err := r.Request(findEndpReq(L), endpReply(0, "s0")); err != nil {
		return err
	}
	if err := r.Send(findEndpReq(L)); err != nil {
		return err
	}
	if err := r.ExpectNothing(env.Quiet); err != nil {
		return fmt.Errorf("request instead of the dummy: %w", err)
	}
	if _, err := env.FarEOF(ps[0], env.Timeout); err != nil {
		return fmt.Errorf("the session whose hand-out failed: %w", err)
	}
	if err := r.Request(findEndpReq(L), endpReply(0, "s1")); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, ps[1]); err != nil {
		return err
	}
	env.CloseFD(fd)
	return r.Request(findEndpReq(L), endpMiss)
}

func saveEndpMissingDescriptor(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	L := env.Label("L")
	for _, b := range []byte{0, 'x'} {
		if err := r.Request(saveEndpReq("2", L, "P"), dummy); err != nil {
			return err
		}
		if err := r.Send([]byte{b}); err != nil {
			return err
		}
		if err := r.Expect(statusFailed); err != nil {
			return fmt.Errorf("byte %s without a descriptor: %w", Show([]byte{b}), err)
		}
		if err := r.Request(findEndpReq(L), endpMiss); err != nil {
			return err
		}
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	if err := r.SaveEndp("2", L, "P", p); err != nil {
		return fmt.Errorf("the connection must stay usable: %w", err)
	}
	if err := r.Request(findEndpReq(L), endpReply(0, "P")); err != nil {
		return err
	}
	fd, err := r.TakeFD()
	if err != nil {
		return err
	}
	return env.Is(fd, p)
}

// twoFDSave sends a save_endp whose descriptor byte carries two
// descriptors and returns the status (the scenario's copies are closed).
func twoFDSave(env *Env, r *Raw, label string, a, b Pair) (int, error) {
	if err := r.Request(saveEndpReq("2", label, "P"), dummy); err != nil {
		return -1, err
	}
	err := r.SendMsg([]byte{0}, a.Near, b.Near)
	env.CloseFD(a.Near)
	env.CloseFD(b.Near)
	if err != nil {
		return -1, err
	}
	// All three status replies have the same length; read exactly that.
	got := make([]byte, len(statusOK))
	deadline := time.Now().Add(env.Timeout)
	n := 0
	for n < len(got) {
		m, fds, err := r.recv(got[n:], deadline)
		n += m
		if len(fds) > 0 {
			return -1, fmt.Errorf("descriptor in the status reply %s", Show(got[:n]))
		}
		if err != nil {
			return -1, fmt.Errorf("status after two descriptors: got %s: %w", Show(got[:n]), err)
		}
	}
	for st := 0; st <= 2; st++ {
		if string(got) == string(statusReply(st)) {
			return st, nil
		}
	}
	return -1, fmt.Errorf("status after two descriptors: got %s", Show(got))
}

// forceSendFailure makes the server fail to send a descriptor: the client
// shuts down its reading side before it sends the dummy of a find hit. The
// session is lost. In Postfix that switches unix_send_fd()/unix_recv_fd()
// to the CMSG_LEN workaround for the rest of the scache(8) process' life.
func forceSendFailure(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	p, err := env.Pair()
	if err != nil {
		return err
	}
	L := env.Label("send-failure")
	if err := cl.Save(2, L, "P", p); err != nil {
		return err
	}
	r, err := env.Raw()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Request(findEndpReq(L), endpReply(0, "P")); err != nil {
		return err
	}
	if err := r.ShutdownRead(); err != nil {
		return err
	}
	if err := r.Send(dummy); err != nil {
		return err
	}
	if _, err := env.FarEOF(p, env.Timeout); err != nil {
		return fmt.Errorf("session whose hand-out failed: %w", err)
	}
	return cl.Miss(L)
}

// Two descriptors with save_endp's descriptor byte. scached: status 2,
// nothing cached. Postfix 3.7: status 2 in a fresh scache(8) process; once
// any descriptor send has failed in that process (which this scenario then
// provokes), the CMSG_LEN workaround makes it cache the first descriptor
// with status 0.
func saveEndpMultipleDescriptors(env *Env) error {
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	for round := 1; round <= 2; round++ {
		if round == 2 {
			if err := forceSendFailure(env); err != nil {
				return fmt.Errorf("provoking a failed descriptor send: %w", err)
			}
		}
		r, err := env.Raw()
		if err != nil {
			return err
		}
		ps, err := env.Pairs(2)
		if err != nil {
			return err
		}
		L := env.Label(fmt.Sprint("L", round))
		st, err := twoFDSave(env, r, L, ps[0], ps[1])
		if err != nil {
			return err
		}
		switch {
		case st == 2:
			if env.Server == Postfix && round == 2 {
				return fmt.Errorf("round 2: status 2, but after a failed descriptor send Postfix's CMSG_LEN workaround accepts the first of two descriptors (status 0)")
			}
			if err := cl.Miss(L); err != nil {
				return fmt.Errorf("round %d: status 2, yet: %w", round, err)
			}
			if env.Server == Postfix {
				env.Notef("round 1: fresh scache(8) (no CMSG_LEN workaround): status 2")
			}
		case st == 0 && env.Server == Postfix:
			if err := cl.Hit(L, "P", ps[0]); err != nil {
				return fmt.Errorf("round %d: status 0 (CMSG_LEN workaround) must cache the first descriptor: %w", round, err)
			}
			env.Notef("round %d: CMSG_LEN workaround active: status 0, first descriptor cached", round)
		default:
			return fmt.Errorf("round %d: status %d, want 2", round, st)
		}
		if err := r.Request(findDestReq(env.Label("none")), destMiss); err != nil {
			return fmt.Errorf("round %d: connection must stay usable: %w", round, err)
		}
	}
	return nil
}

// Descriptors the server did not ask for. scached closes them. Postfix's
// read() makes the kernel drop those that come with request text; it leaks
// the two descriptors of a two-descriptor save_endp (or, with the CMSG_LEN
// workaround, caches the first and the kernel drops the second).
func unexpectedDescriptorsClosed(env *Env) error {
	improved := env.Improved("unexpected_descriptors_closed")
	cl, err := env.Dial()
	if err != nil {
		return err
	}
	r, err := env.Raw()
	if err != nil {
		return err
	}
	L := env.Label("L")

	// 1. With request text.
	p, err := env.Pair()
	if err != nil {
		return err
	}
	err = r.SendMsg(findEndpReq(L), p.Near)
	env.CloseFD(p.Near)
	if err != nil {
		return err
	}
	if err := r.Expect(endpMiss); err != nil {
		return fmt.Errorf("request carrying a descriptor: %w", err)
	}
	if _, err := env.FarEOF(p, env.Timeout); err != nil {
		return fmt.Errorf("descriptor sent with request text: %w", err)
	}

	// 2. Alone, between requests (a NUL byte: an empty list, no reply).
	if p, err = env.Pair(); err != nil {
		return err
	}
	err = r.SendFD(p.Near)
	env.CloseFD(p.Near)
	if err != nil {
		return err
	}
	if err := r.ExpectNothing(env.Quiet); err != nil {
		return fmt.Errorf("descriptor between requests: %w", err)
	}
	if _, err := env.FarEOF(p, env.Timeout); err != nil {
		return fmt.Errorf("descriptor sent between requests: %w", err)
	}
	if err := r.Request(findEndpReq(L), endpMiss); err != nil {
		return err
	}

	// 3. With the dummies of a hand-out.
	ps, err := env.Pairs(3)
	if err != nil {
		return err
	}
	if err := cl.Save(2, L, "P", ps[0]); err != nil {
		return err
	}
	if err := r.Request(findEndpReq(L), endpReply(0, "P")); err != nil {
		return err
	}
	err = r.SendMsg(dummy, ps[1].Near)
	env.CloseFD(ps[1].Near)
	if err != nil {
		return err
	}
	fd, err := r.RecvFD()
	if err != nil {
		return err
	}
	if err := env.Is(fd, ps[0]); err != nil {
		return err
	}
	env.CloseFD(fd)
	err = r.SendMsg(dummy, ps[2].Near)
	env.CloseFD(ps[2].Near)
	if err != nil {
		return err
	}
	for i, p := range ps[1:] {
		if _, err := env.FarEOF(p, env.Timeout); err != nil {
			return fmt.Errorf("descriptor sent with the %s dummy: %w", []string{"first", "trailing"}[i], err)
		}
	}
	if err := r.Request(findEndpReq(L), endpMiss); err != nil {
		return err
	}

	// 4. Two descriptors where save_endp wants one.
	if ps, err = env.Pairs(2); err != nil {
		return err
	}
	L2 := env.Label("L2")
	st, err := twoFDSave(env, r, L2, ps[0], ps[1])
	if err != nil {
		return err
	}
	switch {
	case improved:
		if st != 2 {
			return fmt.Errorf("two descriptors: status %d, want 2", st)
		}
		for i, p := range ps {
			if _, err := env.FarEOF(p, env.Timeout); err != nil {
				return fmt.Errorf("descriptor %d of two: %w", i+1, err)
			}
		}
	case st == 2:
		for i, p := range ps {
			if err := env.FarOpen(p, env.Quiet); err != nil {
				return fmt.Errorf("quirk: Postfix 3.7 leaks both descriptors of a two-descriptor save_endp; descriptor %d: %w", i+1, err)
			}
		}
		env.Notef("postfix: both descriptors of a two-descriptor save_endp leaked in scache(8) (status 2)")
	case st == 0:
		if _, err := env.FarEOF(ps[1], env.Timeout); err != nil {
			return fmt.Errorf("CMSG_LEN workaround: the second descriptor is dropped by the kernel: %w", err)
		}
		if err := cl.Hit(L2, "P", ps[0]); err != nil {
			return fmt.Errorf("CMSG_LEN workaround: the first descriptor is cached: %w", err)
		}
		env.Notef("postfix: CMSG_LEN workaround active: first of two descriptors cached, second dropped")
	default:
		return fmt.Errorf("two descriptors: status %d", st)
	}
	return r.Request(findEndpReq(L), endpMiss)
}

// A descriptor sent together with its save_endp request, before the
// server's dummy.
func descriptorBeforeDummy(env *Env) error {
	r, err := env.Raw()
	if err != nil {
		return err
	}
	p, err := env.Pair()
	if err != nil {
		return err
	}
	L := env.Label("L")
	err = r.SendMsg(cat(saveEndpReq("2", L, "P"), []byte{0}), p.Near)
	env.CloseFD(p.Near)
	if err != nil {
		return err
	}
	if env.Improved("descriptor_before_dummy") {
		if err := r.Expect(cat(dummy, statusOK)); err != nil {
			return err
		}
		cl, err := env.Dial()
		if err != nil {
			return err
		}
		return cl.Hit(L, "P", p)
	}
	if err := r.Expect(dummy); err != nil {
		return err
	}
	if err := r.ExpectNothing(env.Quiet); err != nil {
		return fmt.Errorf("quirk: Postfix waits for a descriptor after the dummy: %w", err)
	}
	if _, err := env.FarEOF(p, env.Timeout); err != nil {
		return fmt.Errorf("the descriptor read() dropped: %w", err)
	}
	// Release the stalled server: a byte without a descriptor.
	if err := r.Send([]byte{0}); err != nil {
		return err
	}
	if err := r.Expect(statusFailed); err != nil {
		return fmt.Errorf("releasing the stall: %w", err)
	}
	env.Notef("postfix: descriptor dropped by read(), server stalled after the dummy until the next byte")
	return r.Request(findEndpReq(L), endpMiss)
}
