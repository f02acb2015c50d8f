package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/scached/scached/pkg/activation"
	"github.com/scached/scached/pkg/journal"
	"github.com/scached/scached/pkg/server"
)

// Exit statuses (see DIAGNOSTICS in doc.go).
const (
	exitOK      = 0
	exitFailure = 1 // configuration, start-up or run-time failure, logged as "fatal: ..."
	exitUsage   = 2 // the command line cannot be parsed; said on stderr
)

// version is set at build time: go build -ldflags "-X main.version=1.0.0".
var version string

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// logger is what main needs of *journal.Logger.
type logger interface {
	server.Logger
	// Fatalf logs "fatal: ..." and exits with status 1.
	Fatalf(format string, args ...any)
}

// newLogger makes the logger; tests replace it.
var newLogger = func(syslogName string, verbose int) logger {
	return journal.New(journal.Options{SyslogName: syslogName, Verbose: verbose > 0})
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	configDir string
	overrides []string
	verbose   int
	listen    string
	version   bool
}

// stringList is a repeatable string flag (-o).
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// counter is a repeatable boolean flag (-v -v).
type counter int

func (c *counter) String() string   { return strconv.Itoa(int(*c)) }
func (c *counter) IsBoolFlag() bool { return true }
func (c *counter) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if b {
		*c++
	}
	return nil
}

const usage = "usage: scached [-c config_directory] [-o name=value ...] [-v ...] [-listen path] [-version]"

// parseFlags parses the command line. On a mistake it prints the reason
// and the usage to stderr and returns an error; for -h it
// returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err // flag printed it with the usage; or flag.ErrHelp
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scached: unexpected command-line argument: %s\n%s\n", fs.Arg(0), usage)
		return nil, fmt.Errorf("unexpected command-line argument: %s", fs.Arg(0))
	}
	return o, nil
}

// newFlagSet defines the flags, stored into o.
func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("scached", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.configDir, "c", defaultConfigDirectory, "read main.cf from `config_directory`")
	fs.Var((*stringList)(&o.overrides), "o", "override a main.cf parameter, as in master.cf (repeatable: `name=value`)")
	fs.Var((*counter)(&o.verbose), "v", "verbose logging (repeatable)")
	fs.StringVar(&o.listen, "listen", "", "create and listen on the socket at `path` (mode 0666) instead of taking it from systemd; disables the idle exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if opts.version {
		fmt.Fprintf(stdout, "scached %s\n", versionString())
		return exitOK
	}

	// A client that goes away must not kill us; writes to it fail with
	// EPIPE instead (Postfix: multi_server.c:multi_server_main()).
	signal.Ignore(syscall.SIGPIPE)

	cfg, err := loadConfig(opts.configDir, opts.overrides)
	if err != nil {
		// syslog_name is part of what failed: log as Postfix's default.
		return fatalf(newLogger(defaultSyslogName, opts.verbose), "%v", err)
	}
	log := newLogger(cfg.SyslogName, opts.verbose)
	for _, w := range cfg.Warnings {
		log.Warnf("%s", w)
	}

	if cfg.SessionLimit == 0 {
		// Go has raised the soft limit to the hard one at start-up.
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fatalf(log, "getrlimit RLIMIT_NOFILE: %v", err)
		}
		cfg.SessionLimit = defaultSessionLimit(rl.Cur)
		if opts.verbose > 0 {
			log.Debugf("scached_session_limit = %d (RLIMIT_NOFILE %d)", cfg.SessionLimit, rl.Cur)
		}
	}
	uids, uidWarnings, err := authorizedUIDs(cfg.AuthorizedUsers, lookupUser)
	if err != nil {
		return fatalf(log, "%v", err)
	}
	for _, w := range uidWarnings {
		log.Warnf("%s", w)
	}

	var (
		ln   *net.UnixListener
		name string
	)
	if opts.listen != "" {
		if fds, ok := os.LookupEnv("LISTEN_FDS"); ok {
			return fatalf(log, "-listen %s: systemd passed a socket already (LISTEN_FDS=%s); drop -listen", opts.listen, fds)
		}
		if ln, err = activation.Listen(opts.listen, activation.DefaultMode); err != nil {
			return fatalf(log, "%v", err)
		}
		name = opts.listen
		// Nothing would start us again after an idle exit.
		cfg.MaxIdle = -1
		log.Infof("listening on %s; idle exit disabled (max_idle is for socket activation)", opts.listen)
	} else if ln, name, err = activation.Listener(); err != nil {
		return fatalf(log, "%v", err)
	}
	log.Debugf("starting scached %s (socket %s)", versionString(), name)

	srv, err := server.New(server.Config{
		TTLLimit:         cfg.TTLLimit,
		StatusUpdateTime: cfg.StatusUpdateTime,
		MaxIdle:          cfg.MaxIdle,
		IPCTimeout:       cfg.IPCTimeout,
		RequestSizeLimit: cfg.RequestSizeLimit,
		Greeting:         greetingModes[cfg.LegacyClients],
		AuthorizedUIDs:   uids,

		SessionLimit:            cfg.SessionLimit,
		EndpointSessionLimit:    cfg.EndpointLimit,
		DestinationBindingLimit: cfg.DestinationLimit,
		Log:                     log,
		Verbose:                 opts.verbose > 0,
		Ready:                   func() { notify(log, "READY=1") },
		Stopping:                func() { notify(log, "STOPPING=1") },
	})
	if err != nil {
		ln.Close()
		return fatalf(log, "%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Serve(ctx, ln); err != nil {
		return fatalf(log, "%v", err)
	}
	log.Debugf("stopped")
	return exitOK
}

// greetingModes maps scached_legacy_clients to the server's mode.
var greetingModes = map[string]server.GreetingMode{
	"no":   server.GreetAlways,
	"yes":  server.GreetNever,
	"auto": server.GreetAuto,
}

// fatalf logs a start-up or run-time failure and exits with status 1. It
// returns only with a logger that does not exit (tests).
func fatalf(log logger, format string, args ...any) int {
	log.Fatalf(format, args...)
	return exitFailure
}

// notify tells systemd about a state change. Failing to is worth a
// warning, not an exit: with Type=notify systemd then times the start-up
// out and says so itself.
func notify(log logger, state string) {
	sent, err := activation.Notify(state)
	switch {
	case err != nil:
		log.Warnf("%v", err)
	case sent:
		log.Debugf("sent %s to systemd", state)
	}
}
