package conformance

import "fmt"

// Difference is a deliberate difference between scached and Postfix
// 3.7.11. The scenario of the same name asserts Postfix's behaviour when it
// runs against Postfix and scached's when it runs against scached.
type Difference struct {
	// Name is the name of the scenario that checks it (the reference's
	// check name, marked [quirk] there).
	Name string
	// Postfix is what Postfix's scache(8) does.
	Postfix string
	// Scached is what scached does instead.
	Scached string
}

// Differences is the complete list of deliberate differences; README.md
// repeats it (a test keeps the two in step).
var Differences = []Difference{
	{
		Name:    "pipelined_requests",
		Postfix: "two requests in one write: only the first is answered, the second is dropped with the read buffer (the client waits forever)",
		Scached: "every request is answered, in order",
	},
	{
		Name:    "stalled_client_does_not_break_others",
		Postfix: "a client stopped in the middle of a request, or after the dummy without sending the descriptor, blocks the whole single-threaded server (no greeting, no reply to anyone) until it disconnects or ipc_timeout passes",
		Scached: "every client has its own goroutine: the others are answered at once",
	},
	{
		Name:    "unexpected_descriptors_closed",
		Postfix: "a descriptor sent with request text is dropped by the kernel's read(); the two descriptors of a two-descriptor save_endp are leaked in the scache(8) process (or, once the CMSG_LEN workaround is active, the first is cached and the second dropped)",
		Scached: "every descriptor that arrives where none was asked for, or beside the one asked for, is closed at once",
	},
	{
		Name:    "descriptor_before_dummy",
		Postfix: "a descriptor sent together with its save_endp request is dropped by read(); the server sends the dummy and then waits for a descriptor that never comes (stall)",
		Scached: "the descriptor glued to its save_endp request is taken as the request's descriptor: the reply is the dummy, then status 0, and the session is cached",
	},
}

// Improved reports whether the server under test is expected to show the
// improvement of the named deliberate difference (scached) rather than
// Postfix's quirk. It panics on a name that is not in Differences, so that
// the table stays the one place that lists them.
func (e *Env) Improved(name string) bool {
	for _, d := range Differences {
		if d.Name == name {
			return e.Server == Scached
		}
	}
	panic(fmt.Sprintf("conformance: %q is not in Differences", name))
}
