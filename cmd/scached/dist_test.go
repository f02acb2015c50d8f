package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scached/scached/pkg/server"
)

// The man page exists twice: as this package's doc comment (doc.go) and
// as hand-written roff (dist/scached.8). These tests keep both in step
// with the code, and check the shipped systemd units.

const (
	manPage  = "../../dist/scached.8"
	unitsDir = "../../dist/systemd"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManPagesListParameters: every parameter, with its default, is
// documented in doc.go, in dist/scached.8 and in scached.service's comment.
func TestManPagesListParameters(t *testing.T) {
	doc := readFile(t, "doc.go")
	man := readFile(t, manPage)
	unit := readFile(t, filepath.Join(unitsDir, "scached.service"))
	for _, p := range params {
		if s := "\n" + p.name + " (" + p.def + ")\n"; !strings.Contains(doc, s) {
			t.Errorf("doc.go lacks the line %q", strings.TrimSpace(s))
		}
		if s := `.IP "\fB` + p.name + " (" + p.def + `)\fR"`; !strings.Contains(man, s) {
			t.Errorf("scached.8 lacks %q", s)
		}
		if !regexp.MustCompile(`(?m)^#\s+` + p.name + ` = ` + regexp.QuoteMeta(p.def) + `\b`).MatchString(unit) {
			t.Errorf("scached.service's comment lacks %q", p.name+" = "+p.def)
		}
	}
	// No parameter documented that the code does not read.
	for _, m := range regexp.MustCompile(`(?m)^\.IP "\\fB(\w+) \(`).FindAllStringSubmatch(man, -1) {
		if _, ok := lookupParam(m[1]); !ok {
			t.Errorf("scached.8 documents parameter %s, which scached does not read", m[1])
		}
	}
}

// TestManPagesListOptions: every flag is documented in both pages.
func TestManPagesListOptions(t *testing.T) {
	doc := readFile(t, "doc.go")
	man := readFile(t, manPage)
	n := 0
	newFlagSet(&options{}, io.Discard).VisitAll(func(f *flag.Flag) {
		n++
		if !regexp.MustCompile(`(?m)^-` + f.Name + `\b`).MatchString(doc) {
			t.Errorf("doc.go OPTIONS lacks -%s", f.Name)
		}
		if !regexp.MustCompile(`(?m)^\.BI? \\-` + f.Name + `\b`).MatchString(man) {
			t.Errorf("scached.8 OPTIONS lacks -%s", f.Name)
		}
	})
	if n != 5 {
		t.Errorf("%d flags; update this test and the man pages", n)
	}
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "PROTOCOL", "SECURITY", "DIAGNOSTICS", "BUGS",
		"CONFIGURATION PARAMETERS", "OPTIONS", "SYSTEMD INTEGRATION", "SEE ALSO"} {
		if !strings.Contains(doc, "\n# "+sec+"\n") {
			t.Errorf("doc.go lacks section %s", sec)
		}
		if !strings.Contains(man, "\n.SH "+sec+"\n") {
			t.Errorf("scached.8 lacks section %s", sec)
		}
	}
}

// TestDefaultsMatchServer: the parameter table and the server agree on
// Postfix's defaults.
func TestDefaultsMatchServer(t *testing.T) {
	cfg, err := loadConfig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][2]time.Duration{
		parTTLLimit:         {cfg.TTLLimit, server.DefaultTTLLimit},
		parStatusUpdateTime: {cfg.StatusUpdateTime, server.DefaultStatusUpdateTime},
		parMaxIdle:          {cfg.MaxIdle, server.DefaultMaxIdle},
		parIPCTimeout:       {cfg.IPCTimeout, server.DefaultIPCTimeout},
	} {
		if got[0] != got[1] {
			t.Errorf("%s default %v, server's %v", name, got[0], got[1])
		}
	}
	if cfg.RequestSizeLimit != server.DefaultRequestSizeLimit {
		t.Errorf("%s default %d, server's %d", parRequestSizeLimit, cfg.RequestSizeLimit, server.DefaultRequestSizeLimit)
	}
}

// TestManPageLint runs mandoc's linter; any message fails.
func TestManPageLint(t *testing.T) {
	mandoc, err := exec.LookPath("mandoc")
	if err != nil {
		t.Skip("SKIP: mandoc not installed (apt-get install --no-install-recommends mandoc): scached.8 NOT linted")
	}
	out, err := exec.Command(mandoc, "-T", "lint", "-W", "warning", manPage).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("mandoc -T lint -W warning %s: %v\n%s", manPage, err, out)
	}
}

// unitSettings returns the "Key=Value" lines of a unit file, keyed by
// "[Section]Key".
func unitSettings(t *testing.T, name string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	section := ""
	for _, line := range strings.Split(readFile(t, filepath.Join(unitsDir, name)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s: not Key=Value: %q", name, line)
			}
			m[section+k] = append(m[section+k], v)
		}
	}
	return m
}

// TestUnits pins the settings the integration depends on.
func TestUnits(t *testing.T) {
	for unit, want := range map[string]map[string]string{
		"scached.socket": {
			"[Unit]ConditionPathIsDirectory": "/var/spool/postfix/private",
			"[Unit]Before":                   "postfix.service",
			"[Socket]ListenStream":           "/var/spool/postfix/private/scached",
			"[Socket]SocketUser":             "postfix",
			"[Socket]SocketGroup":            "postfix",
			"[Socket]SocketMode":             "0660",
			"[Socket]Accept":                 "no",
			"[Socket]FileDescriptorName":     "scache",
			"[Install]WantedBy":              "sockets.target",
		},
		"scached.service": {
			"[Unit]Requires":     "scached.socket",
			"[Unit]After":        "scached.socket",
			"[Service]Type":      "notify",
			"[Service]ExecStart": "/usr/sbin/scached",
			"[Service]Restart":   "on-failure",
		},
	} {
		got := unitSettings(t, unit)
		for k, v := range want {
			if len(got[k]) != 1 || got[k][0] != v {
				t.Errorf("%s: %s=%q, want %q", unit, k, got[k], v)
			}
		}
	}
}

// TestUnitsVerify runs dist/systemd/verify.sh (systemd-analyze verify in a
// throwaway root).
func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("SKIP: systemd-analyze not installed: the systemd units are NOT verified")
	}
	out, err := exec.Command("sh", filepath.Join(unitsDir, "verify.sh")).CombinedOutput()
	if err != nil {
		t.Errorf("verify.sh: %v\n%s", err, out)
	}
}
