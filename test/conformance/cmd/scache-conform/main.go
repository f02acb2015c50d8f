// Command scache-conform runs the scache conformance suite against a
// connection cache server listening on a UNIX-domain socket and prints
// the report, ending with "N passed, M failed".
//
// Usage:
//
//	scache-conform -socket PATH [-postfix] [-ttl-limit 2s] [-run REGEXP] [-v]
//
// -socket is the server's socket, e.g. /var/spool/postfix/private/scached
// for a scached started separately, or /var/spool/postfix/private/scache
// for Postfix's own scache(8). -postfix says that the server is Postfix:
// the scenarios of the deliberate differences then assert Postfix's
// quirks instead of scached's improvements, and a restart of the scache
// process is recognised. -ttl-limit is the server's
// connection_cache_ttl_limit. -run selects scenarios by name. -v prints
// each result as soon as it is known.
//
// Exit status: 0 when every scenario passed (or was skipped), 1 when one
// failed, 2 on a usage error or when the socket does not answer.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/scached/scached/test/conformance"
)

func main() {
	socket := flag.String("socket", "", "server socket `path` (required)")
	postfix := flag.Bool("postfix", false, "the server is Postfix's scache(8): assert its quirks")
	ttlLimit := flag.Duration("ttl-limit", 2*time.Second, "the server's connection_cache_ttl_limit")
	timeout := flag.Duration("timeout", 3*time.Second, "limit for every read and write")
	run := flag.String("run", "", "run only scenarios whose name matches `regexp`")
	verbose := flag.Bool("v", false, "print each result as soon as it is known")
	flag.Parse()
	if *socket == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	opts := conformance.Options{TTLLimit: *ttlLimit, Timeout: *timeout}
	if *postfix {
		opts.Server = conformance.Postfix
		opts.Instance = conformance.PostfixInstance(*socket)
	}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scache-conform: -run:", err)
			os.Exit(2)
		}
		opts.Match = re.MatchString
	}
	if *verbose {
		opts.Progress = func(r conformance.Result) {
			fmt.Fprintf(os.Stderr, "%s %s %v %s\n", r.Outcome, r.Name, r.Elapsed.Round(time.Millisecond), r.Reason)
		}
	}
	if err := conformance.WaitReady(*socket, 5*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "scache-conform: %s does not answer: %v\n", *socket, err)
		os.Exit(2)
	}
	rep := conformance.Run(*socket, opts)
	rep.Write(os.Stdout)
	if !rep.OK() {
		os.Exit(1)
	}
}
