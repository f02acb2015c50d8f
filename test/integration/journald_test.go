package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scached/scached/pkg/protocol"
)

// journalStageEnv makes the test binary the part of TestJournald that runs
// inside test/journald/run.sh, next to a private journald.
const journalStageEnv = "SCACHED_IT_JOURNAL_STAGE"

// TestJournald runs the real binary with its stderr connected to a real
// journald (as under systemd: JOURNAL_STREAM names stderr) and reads the
// records back with journalctl: Postfix's message text, PRIORITY,
// SYSLOG_IDENTIFIER and the SCACHE_* fields of the statistics records.
func TestJournald(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: TestJournald needs root (a private journald in a mount namespace)")
	}
	for _, tool := range []string{"systemd-cat", "journalctl", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: TestJournald needs %s", tool)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "journald", "run.sh")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), journalStageEnv+"="+bin, "GORACE=atexit_sleep_ms=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 77 {
		t.Skipf("SKIP: %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	var entries []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			entries = append(entries, e)
		}
	}
	find := func(msg string) map[string]any {
		for _, e := range entries {
			if e["MESSAGE"] == msg {
				return e
			}
		}
		t.Errorf("no journal entry %q among %d entries:\n%s", msg, len(entries), out)
		return map[string]any{}
	}
	w := find("warning: scache_save_endp_service: bad or missing request parameter")
	if w["PRIORITY"] != "4" || w["SYSLOG_IDENTIFIER"] != "postfix/scache" {
		t.Errorf("warning entry: %v", w)
	}
	fields := map[string]string{
		"SCACHE_DEST_HITS": "1", "SCACHE_DEST_MISSES": "1", "SCACHE_ENDP_HITS": "0",
		"SCACHE_ENDP_MISSES": "1", "SCACHE_PEAK_DESTS": "1", "SCACHE_PEAK_ENDPS": "1",
		"SCACHE_PEAK_SESSIONS": "1",
	}
	for _, msg := range []string{
		"statistics: domain lookup hits=1 miss=1 success=50%",
		"statistics: address lookup hits=0 miss=1 success=0%",
		"statistics: max simultaneous domains=1 addresses=1 connection=1",
	} {
		e := find(msg)
		if e["PRIORITY"] != "6" || e["SYSLOG_IDENTIFIER"] != "postfix/scache" {
			t.Errorf("%q: %v", msg, e)
		}
		for k, v := range fields {
			if e[k] != v {
				t.Errorf("%q: %s=%v, want %s", msg, k, e[k], v)
			}
		}
		if _, ok := e["SCACHE_INTERVAL_SECONDS"]; !ok {
			t.Errorf("%q: no SCACHE_INTERVAL_SECONDS", msg)
		}
	}
	// Labels never reach the journal without -v.
	if bytes.Contains(out, []byte("user@example.com")) {
		t.Error("a label was logged")
	}
}

// journalStage runs inside run.sh: scached with stderr on the journal,
// some requests, SIGTERM, then the journal's records on stdout as JSON.
func journalStage() int {
	binary := os.Getenv(journalStageEnv)
	dir, err := os.MkdirTemp("", "scached-journal")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "scached")
	// systemd-cat connects stdout and stderr to journald's stream socket;
	// JOURNAL_STREAM tells the daemon so, as systemd does for a service.
	d := exec.Command("systemd-cat", "-t", "scached-stderr", "sh", "-c",
		`JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM; exec "$0" "$@"`,
		binary, "-c", dir, "-listen", path)
	if err := d.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		d.Process.Kill()
		d.Wait()
		return 1
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fail("scached did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := protocol.Dial(path, 10*time.Second)
	if err != nil {
		return fail("dial: %v", err)
	}
	fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	const endp, dest = "smtp\nuser@example.com\n25\n", "smtp\nexample.com\n"
	if st, _ := cl.SaveEndp(0, endp, "p", fds[0]); st != protocol.StatusBad {
		return fail("ttl 0 accepted")
	}
	if st, _ := cl.SaveEndp(2, endp, "p", fds[0]); st != 0 {
		return fail("save_endp: %d", st)
	}
	unix.Close(fds[0])
	cl.FindDest(dest) // miss
	cl.SaveDest(2, dest, "dp", endp)
	if st, _, _, fd, _ := cl.FindDest(dest); st != 0 {
		return fail("find_dest: %d", st)
	} else {
		unix.Close(fd)
	}
	cl.FindEndp(endp) // miss
	cl.Close()
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		return fail("scached exit: %v", err)
	}
	if out, err := exec.Command("journalctl", "--sync").CombinedOutput(); err != nil {
		return fail("journalctl --sync: %v %s", err, out)
	}
	out, err := exec.Command("journalctl", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=postfix/scache").Output()
	if err != nil {
		return fail("journalctl: %v", err)
	}
	os.Stdout.Write(out)
	if !strings.Contains(string(out), "statistics") {
		fmt.Fprintln(os.Stderr, "no statistics in the journal")
		return 1
	}
	return 0
}
