package cache

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// TestScripts runs the scenario scripts in testdata, in the spirit of
// Postfix's global/scache_multi.in and scache_multi.ref: each
// testdata/NAME.script is run against a fresh cache on a fake clock and its
// transcript must equal testdata/NAME.golden (go test -run TestScripts
// -update rewrites them). Every script is run with one shard and with the
// default number of shards, and with an expiry batch of 1 (so that any
// two entries expiring together are a mass expiry); the transcripts must
// be identical.
//
// Script language, one command per line; arguments are separated by
// blanks, and an argument may be a Go-quoted string ("" is the empty
// string, "a\x00b" has a NUL byte). TTLs are whole seconds or Go durations.
//
//	save_endp TTL ENDP_LABEL ENDP_PROP FD
//	find_endp ENDP_LABEL
//	save_dest TTL DEST_LABEL DEST_PROP ENDP_LABEL
//	find_dest DEST_LABEL
//	advance DURATION   move the fake clock (whole seconds or a Go duration)
//	expire             run Expire, print the descriptors it returns, sorted
//	sizes              print Sizes
//	next               print NextDeadline relative to now ("due" if <= now)
//	drain              run Drain, print the descriptors it returns, sorted
//
// Blank lines and lines starting with # are copied to the transcript.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.script")
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) == 0 {
		t.Fatal("no testdata/*.script files")
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".script")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runScript(string(src), 1)
			if err != nil {
				t.Fatal(err)
			}
			sharded, err := runScript(string(src), 0)
			if err != nil {
				t.Fatal(err)
			}
			if sharded != got {
				t.Errorf("transcript differs between 1 shard and default shards:\n--- 1 shard\n%s\n--- default\n%s", got, sharded)
			}
			// An expiry batch of 1: every expiry of two entries or more
			// is a mass expiry, whose dead entries the requests meet.
			batched, err := runScriptBatch(string(src), 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if batched != got {
				t.Errorf("transcript differs with an expiry batch of 1:\n--- default\n%s\n--- batch 1\n%s", got, batched)
			}
			golden := strings.TrimSuffix(script, ".script") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestScripts -update)", err)
			}
			if got != string(want) {
				t.Errorf("transcript differs from %s:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// runScript runs src on a new cache with the given number of shards and
// returns the transcript.
func runScript(src string, shards int) (string, error) {
	return runScriptBatch(src, shards, expireBatch)
}

// runScriptBatch is runScript with the given expiry batch.
func runScriptBatch(src string, shards, batch int) (string, error) {
	c, clk := newTestCacheBatch(shards, batch)
	var out bytes.Buffer
	for n, line := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			fmt.Fprintln(&out, line)
			continue
		}
		fmt.Fprintf(&out, "> %s\n", line)
		args, err := splitArgs(line)
		if err == nil {
			err = runCommand(&out, c, clk, args)
		}
		if err != nil {
			return "", fmt.Errorf("line %d: %q: %w", n+1, line, err)
		}
		if err := checkInvariants(c); err != nil {
			return "", fmt.Errorf("line %d: %q: %w", n+1, line, err)
		}
	}
	return out.String(), nil
}

var errUsage = errors.New("wrong number of arguments")

func runCommand(out *bytes.Buffer, c *Cache, clk *fakeClock, args []string) error {
	want := map[string]int{
		"save_endp": 5, "find_endp": 2, "save_dest": 5, "find_dest": 2,
		"advance": 2, "expire": 1, "sizes": 1, "next": 1, "drain": 1,
	}
	n, known := want[args[0]]
	if !known {
		return fmt.Errorf("unknown command %q", args[0])
	}
	if len(args) != n {
		return errUsage
	}
	switch args[0] {
	case "save_endp":
		ttl, err := parseDuration(args[1])
		if err != nil {
			return err
		}
		fd, err := strconv.Atoi(args[4])
		if err != nil {
			return err
		}
		c.SaveEndp(ttl, args[2], args[3], fd)
	case "find_endp":
		if prop, fd, ok := c.FindEndp(args[1]); ok {
			fmt.Fprintf(out, "hit endp_prop=%q fd=%d\n", prop, fd)
		} else {
			fmt.Fprintf(out, "miss\n")
		}
	case "save_dest":
		ttl, err := parseDuration(args[1])
		if err != nil {
			return err
		}
		c.SaveDest(ttl, args[2], args[3], args[4])
	case "find_dest":
		if destProp, endpProp, fd, ok := c.FindDest(args[1]); ok {
			fmt.Fprintf(out, "hit dest_prop=%q endp_prop=%q fd=%d\n", destProp, endpProp, fd)
		} else {
			fmt.Fprintf(out, "miss\n")
		}
	case "advance":
		d, err := parseDuration(args[1])
		if err != nil {
			return err
		}
		clk.Advance(d)
	case "expire":
		fmt.Fprintf(out, "expired fds=%v\n", sorted(c.Expire(nil)))
	case "sizes":
		sz := c.Sizes()
		fmt.Fprintf(out, "dests=%d endps=%d sessions=%d\n", sz.Dests, sz.Endps, sz.Sessions)
	case "next":
		switch t, ok := c.NextDeadline(); {
		case !ok:
			fmt.Fprintf(out, "next none\n")
		case !t.After(clk.Now()):
			fmt.Fprintf(out, "next due\n")
		default:
			fmt.Fprintf(out, "next in %v\n", t.Sub(clk.Now()))
		}
	case "drain":
		fmt.Fprintf(out, "drained fds=%v\n", sorted(c.Drain(nil)))
	}
	return nil
}

// parseDuration parses whole seconds ("2") or a Go duration ("1500ms").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// splitArgs splits a command line at blanks; an argument that starts with
// a double quote is a Go string literal and may contain blanks.
func splitArgs(line string) ([]string, error) {
	var args []string
	for {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			return args, nil
		}
		if line[0] != '"' {
			arg, rest, _ := strings.Cut(line, " ")
			args = append(args, arg)
			line = rest
			continue
		}
		quoted, err := strconv.QuotedPrefix(line)
		if err != nil {
			return nil, fmt.Errorf("bad quoted argument: %w", err)
		}
		arg, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, err
		}
		args = append(args, arg)
		line = line[len(quoted):]
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			return nil, errors.New("no blank after quoted argument")
		}
	}
}

func sorted(fds []int) []int {
	slices.Sort(fds)
	return fds
}

// lineDiff shows the first line where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, wl, gl)
		}
	}
	return "(no difference)"
}
