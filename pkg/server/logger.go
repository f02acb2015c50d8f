package server

import "github.com/scached/scached/pkg/journal"

// Logger receives everything the server logs. Messages never contain
// labels or properties above debug level: those may hold e-mail addresses
// and TLS session data. *journal.Logger implements it.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	// Statistics logs one interval in Postfix's four-line format.
	Statistics(journal.Stats)
}
