// Package conformance is the differential conformance suite of scached: a
// set of scenarios, written once, that runs against any connection cache
// server listening on a UNIX-domain socket — Postfix's own scache(8) or
// scached — and checks what a client observes:
//
//   - the exact bytes of every reply, read with recvmsg() only (a plain
//     read() running past a descriptor-carrying byte would make Linux drop
//     the descriptor), with a deadline on every read;
//   - which descriptor comes back, by identity: the suite caches one end of
//     a socketpair, writes through the descriptor it gets back and reads at
//     the other end;
//   - hand-out order, expiry (with tolerances for Postfix's whole-second
//     timers), and what happens to the connection and to the cached
//     descriptors afterwards (the far end of a socketpair sees EOF once
//     every copy of the near end is closed).
//
// The expected behaviour is that of real Postfix 3.7.11 as recorded in
// postfix-scache-protocol.md (check names such as fifo_order_oldest_first
// are that document's). Where scached deliberately behaves better, the
// difference is listed in one table, Differences, and the scenario of the
// same name asserts Postfix's quirk against Postfix and the improvement
// against scached (Env.Improved).
//
// Every scenario labels its cache entries with a random prefix, so that
// scenarios do not see each other's entries and leftovers simply expire,
// closes every descriptor and connection it opened, and is bounded in
// time: a stalled Postfix is released by closing the staller.
//
// Run runs the suite and returns a Report; cmd/scache-conform runs it
// against any socket from the command line. The package's test runs it
// against an in-process scached and, as root with Postfix installed,
// against /var/spool/postfix/private/scache.
package conformance
