package conformance

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultPostfixSocket is where Postfix's own scache(8) listens with the
// default queue_directory and service name.
const DefaultPostfixSocket = "/var/spool/postfix/private/scache"

// PostfixInstance returns an Options.Instance for Postfix's scache(8): the
// socket's inode (master(8) re-creates it on restart) and the process ids
// of the running scache processes (a `postfix reload` replaces the
// process, and with it the whole cache, without touching the socket).
func PostfixInstance(path string) func() string {
	return func() string {
		return socketInstance(path) + " scache pids " + strings.Join(scachePIDs(), ",")
	}
}

// scachePIDs lists the processes named scache, from /proc.
func scachePIDs() []string {
	ents, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []string
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil || strings.TrimSpace(string(b)) != "scache" {
			continue
		}
		pids = append(pids, filepath.Base(filepath.Dir(e)))
	}
	sort.Strings(pids)
	return pids
}
