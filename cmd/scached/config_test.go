package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noMainCF stands for "main.cf does not exist".
const noMainCF = "\x00missing"

// load writes mainCF to a fresh config directory and loads it.
func load(t *testing.T, mainCF string, overrides ...string) (*config, string, error) {
	t.Helper()
	dir := t.TempDir()
	if mainCF != noMainCF {
		if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := loadConfig(dir, overrides)
	return cfg, dir, err
}

var defaults = config{
	TTLLimit:         2 * time.Second,
	StatusUpdateTime: 600 * time.Second,
	MaxIdle:          100 * time.Second,
	IPCTimeout:       3600 * time.Second,
	RequestSizeLimit: 4194304,
	SyslogName:       "postfix",
	LegacyClients:    "no",
	MailOwner:        "postfix",
	AuthorizedUsers:  "root, postfix",
	EndpointLimit:    1000,
	DestinationLimit: 100,
}

// with returns the defaults changed by f.
func with(f func(c *config)) config {
	c := defaults
	f(&c)
	return c
}

func TestConfigValues(t *testing.T) {
	tcs := []struct {
		name      string
		mainCF    string
		overrides []string
		want      config
		warnings  []string // substrings, in order
	}{
		{name: "missing main.cf", mainCF: noMainCF, want: defaults},
		{name: "empty main.cf", mainCF: "", want: defaults},
		{name: "only comments and blank lines", mainCF: "# comment\n\n   \n\t# indented comment\n", want: defaults},
		{
			name: "every parameter",
			mainCF: "connection_cache_ttl_limit = 3s\n" +
				"connection_cache_status_update_time = 10m\n" +
				"max_idle = 1h\n" +
				"ipc_timeout = 2d\n" +
				"syslog_name = postfix-out\n" +
				"scached_request_size_limit = 65536\n",
			want: config{
				TTLLimit: 3 * time.Second, StatusUpdateTime: 10 * time.Minute,
				MaxIdle: time.Hour, IPCTimeout: 48 * time.Hour,
				SyslogName: "postfix-out", RequestSizeLimit: 65536, LegacyClients: "no", MailOwner: "postfix", AuthorizedUsers: "root, postfix", EndpointLimit: 1000, DestinationLimit: 100,
			},
		},
		{name: "seconds without unit", mainCF: "max_idle = 30\n", want: with(func(c *config) { c.MaxIdle = 30 * time.Second })},
		{name: "unit w", mainCF: "ipc_timeout = 1w\n", want: with(func(c *config) { c.IPCTimeout = 7 * 24 * time.Hour })},
		{name: "largest time", mainCF: "ipc_timeout = 2147483647\n", want: with(func(c *config) { c.IPCTimeout = 2147483647 * time.Second })},
		{name: "minimum time", mainCF: "connection_cache_ttl_limit = 1s\n", want: with(func(c *config) { c.TTLLimit = time.Second })},
		{name: "minimum size", mainCF: "scached_request_size_limit = 1024\n", want: with(func(c *config) { c.RequestSizeLimit = 1024 })},
		{name: "legacy clients auto", mainCF: "scached_legacy_clients = auto\n", want: with(func(c *config) { c.LegacyClients = "auto" })},
		{name: "legacy clients yes", mainCF: "scached_legacy_clients =  yes \n", want: with(func(c *config) { c.LegacyClients = "yes" })},
		{name: "no blanks around =", mainCF: "max_idle=5s\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Second })},
		{name: "blanks and tabs trimmed", mainCF: "max_idle \t=\t 5s \t\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Second })},
		{name: "CRLF line ends", mainCF: "max_idle = 5s\r\nsyslog_name = x\r\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Second; c.SyslogName = "x" })},
		{name: "no final newline", mainCF: "max_idle = 5s", want: with(func(c *config) { c.MaxIdle = 5 * time.Second })},
		{
			name:   "continuation line",
			mainCF: "max_idle =\n    200s\n",
			want:   with(func(c *config) { c.MaxIdle = 200 * time.Second }),
		},
		{
			name:   "continuation keeps its leading blank",
			mainCF: "syslog_name = post\n fix\n",
			want:   with(func(c *config) { c.SyslogName = "post fix" }),
		},
		{
			name:   "continuation across comment and blank lines",
			mainCF: "syslog_name = a\n# flush-left comment\n  # indented comment\n\n   \n b\nmax_idle = 7s\n",
			want:   with(func(c *config) { c.SyslogName = "a b"; c.MaxIdle = 7 * time.Second }),
		},
		{
			name:   "# after text is not a comment",
			mainCF: "syslog_name = scache # not a comment\n",
			want:   with(func(c *config) { c.SyslogName = "scache # not a comment" }),
		},
		{
			name:     "logical line starting with whitespace is ignored",
			mainCF:   "  max_idle = 5s\n  ipc_timeout = 6s\nsyslog_name = x\n",
			want:     with(func(c *config) { c.SyslogName = "x" }),
			warnings: []string{"main.cf:1: logical line must not start with whitespace"},
		},
		{
			name:     "later entry wins",
			mainCF:   "max_idle = 5s\nmax_idle = 6s\nmax_idle = 6s\n",
			want:     with(func(c *config) { c.MaxIdle = 6 * time.Second }),
			warnings: []string{"main.cf:2: overriding earlier entry: max_idle=5s"},
		},
		{
			name:     "null byte",
			mainCF:   "syslog_name = ab\x00cd\n",
			want:     with(func(c *config) { c.SyslogName = "ab" }),
			warnings: []string{"main.cf:1: text after null byte is ignored"},
		},
		{
			name: "other parameters are not read",
			mainCF: "smtpd_banner = $myhostname ESMTP $mail_name\n" +
				"message_size_limit = lots\n" +
				"smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n" +
				"weird = ${unbalanced\n",
			want: defaults,
		},
		{name: "$name", mainCF: "t = 5s\nmax_idle = $t\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Second })},
		{name: "${name}", mainCF: "t = 5\nmax_idle = ${t}m\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Minute })},
		{name: "$(name)", mainCF: "t = 5\nmax_idle = $(t)h\n", want: with(func(c *config) { c.MaxIdle = 5 * time.Hour })},
		{
			name:   "recursive expansion",
			mainCF: "a = $b\nb = ${c}0\nc = 7\nmax_idle = $a\n",
			want:   with(func(c *config) { c.MaxIdle = 70 * time.Second }),
		},
		{
			name:   "reference defined later in the file",
			mainCF: "max_idle = $later\nlater = 9s\n",
			want:   with(func(c *config) { c.MaxIdle = 9 * time.Second }),
		},
		{
			name:   "reference to a built-in default",
			mainCF: "max_idle = $ipc_timeout\n",
			want:   with(func(c *config) { c.MaxIdle = 3600 * time.Second }),
		},
		{
			name:   "reference to a main.cf value of a known parameter",
			mainCF: "max_idle = $ipc_timeout\nipc_timeout = 50s\n",
			want:   with(func(c *config) { c.MaxIdle = 50 * time.Second; c.IPCTimeout = 50 * time.Second }),
		},
		{
			name:      "reference to a -o value",
			mainCF:    "max_idle = $ipc_timeout\nipc_timeout = 50s\n",
			overrides: []string{"ipc_timeout=40s"},
			want:      with(func(c *config) { c.MaxIdle = 40 * time.Second; c.IPCTimeout = 40 * time.Second }),
		},
		{name: "undefined name expands to nothing", mainCF: "syslog_name = scached$nosuchparameter\n", want: with(func(c *config) { c.SyslogName = "scached" })},
		{name: "undefined braced name", mainCF: "max_idle = ${nosuch}15s\n", want: with(func(c *config) { c.MaxIdle = 15 * time.Second })},
		{name: "$$ is a dollar", mainCF: "syslog_name = a$$b\n", want: with(func(c *config) { c.SyslogName = "a$b" })},
		{name: "config_directory", mainCF: "syslog_name = x${config_directory}x\n", want: with(func(c *config) { c.SyslogName = "x<dir>x" })},
		{
			name:   "Postfix's syslog_name default form, unset",
			mainCF: "syslog_name = ${multi_instance_name?{$multi_instance_name}:{postfix}}\n",
			want:   defaults,
		},
		{
			name:   "Postfix's syslog_name default form, set",
			mainCF: "multi_instance_name = postfix-out\nsyslog_name = ${multi_instance_name?{$multi_instance_name}:{postfix}}\n",
			want:   with(func(c *config) { c.SyslogName = "postfix-out" }),
		},
		{name: "${name?text} set", mainCF: "x = 1\nsyslog_name = a${x?yes}b\n", want: with(func(c *config) { c.SyslogName = "ayesb" })},
		{name: "${name?text} empty", mainCF: "x =\nsyslog_name = a${x?yes}b\n", want: with(func(c *config) { c.SyslogName = "ab" })},
		{name: "${name:text} unset", mainCF: "syslog_name = a${x:no}b\n", want: with(func(c *config) { c.SyslogName = "anob" })},
		{name: "${name:text} set", mainCF: "x = 1\nsyslog_name = a${x:no}b\n", want: with(func(c *config) { c.SyslogName = "ab" })},
		{name: "${name:{text}} with blanks", mainCF: "syslog_name = a${x: { no } }b\n", want: with(func(c *config) { c.SyslogName = "a no b" })},
		{name: "${name?a:b} is Postfix 2.11 text", mainCF: "x = 1\nsyslog_name = ${x?a:b}\n", want: with(func(c *config) { c.SyslogName = "a:b" })},
		{name: "conditional text is expanded", mainCF: "x = 1\ny = 8s\nmax_idle = ${x?$y}\n", want: with(func(c *config) { c.MaxIdle = 8 * time.Second })},
		{name: "conditional tests the raw value", mainCF: "x = $empty\nsyslog_name = ${x?raw}\n", want: with(func(c *config) { c.SyslogName = "raw" })},
		{name: "-o overrides main.cf", mainCF: "max_idle = 5s\n", overrides: []string{"max_idle=6s"}, want: with(func(c *config) { c.MaxIdle = 6 * time.Second })},
		{name: "-o without main.cf", mainCF: noMainCF, overrides: []string{"syslog_name=postfix-out"}, want: with(func(c *config) { c.SyslogName = "postfix-out" })},
		{name: "last -o wins", mainCF: "", overrides: []string{"max_idle=6s", "max_idle=7s"}, want: with(func(c *config) { c.MaxIdle = 7 * time.Second })},
		{name: "-o with blanks", mainCF: "", overrides: []string{" max_idle = 8s "}, want: with(func(c *config) { c.MaxIdle = 8 * time.Second })},
		{name: "-o value is expanded", mainCF: "t = 9s\n", overrides: []string{"max_idle=$t"}, want: with(func(c *config) { c.MaxIdle = 9 * time.Second })},
		{name: "-o value keeps =", mainCF: "", overrides: []string{"syslog_name=a=b"}, want: with(func(c *config) { c.SyslogName = "a=b" })},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			cfg, dir, err := load(t, tc.mainCF, tc.overrides...)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := tc.want
			want.SyslogName = strings.ReplaceAll(want.SyslogName, "<dir>", dir)
			got := *cfg
			got.Warnings = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if len(cfg.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %q", cfg.Warnings, tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(cfg.Warnings[i], w) || !strings.HasPrefix(cfg.Warnings[i], dir) {
					t.Errorf("warning %q, want %q in main.cf of %s", cfg.Warnings[i], w, dir)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tcs := []struct {
		name      string
		mainCF    string
		overrides []string
		kind      error
		msg       string // the error text; "<cf>" stands for the main.cf path
	}{
		// main.cf syntax.
		{name: "missing =", mainCF: "# c\nmax_idle 5s\n", kind: errSyntax,
			msg: `<cf>:2: missing '=' after attribute name: "max_idle 5s"`},
		{name: "missing name", mainCF: "max_idle = 5s\n= 5s\n", kind: errSyntax,
			msg: `<cf>:2: missing attribute name: "= 5s"`},
		{name: "syntax error in a parameter scached ignores", mainCF: "smtpd_banner\n", kind: errSyntax,
			msg: `<cf>:1: missing '=' after attribute name: "smtpd_banner"`},
		{name: "line number of a continued line", mainCF: "a = 1\n\nb\n  c\n", kind: errSyntax,
			msg: `<cf>:3: missing '=' after attribute name: "b  c"`},

		// Time values.
		{name: "bad unit", mainCF: "max_idle = 10x\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "10x": bad time unit 'x' (use s, m, h, d or w)`},
		{name: "negative", mainCF: "max_idle = -5\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "-5": negative time`},
		{name: "negative with unit", mainCF: "ipc_timeout = -5m\n", kind: errValue,
			msg: `<cf>:1: invalid ipc_timeout value "-5m": negative time`},
		{name: "junk", mainCF: "max_idle = soon\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "soon": not a number with an optional unit s, m, h, d or w`},
		{name: "two units", mainCF: "max_idle = 5ms\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "5ms": not a number with an optional unit s, m, h, d or w`},
		{name: "fraction", mainCF: "max_idle = 1.5s\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "1.5s": not a number with an optional unit s, m, h, d or w`},
		{name: "sign", mainCF: "max_idle = +5s\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "+5s": not a number with an optional unit s, m, h, d or w`},
		{name: "blank inside", mainCF: "max_idle = 5 s\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "5 s": not a number with an optional unit s, m, h, d or w`},
		{name: "trailing comment", mainCF: "max_idle = 5s # five seconds\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "5s # five seconds": not a number with an optional unit s, m, h, d or w`},
		{name: "empty time", mainCF: "max_idle =\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "": empty value`},
		{name: "overflow", mainCF: "ipc_timeout = 2147483648\n", kind: errValue,
			msg: `<cf>:1: invalid ipc_timeout value "2147483648": too large (max 2147483647s)`},
		{name: "overflow after unit", mainCF: "ipc_timeout = 3551w\n", kind: errValue,
			msg: `<cf>:1: invalid ipc_timeout value "3551w": too large (max 2147483647s)`},
		{name: "overflow int64", mainCF: "ipc_timeout = 99999999999999999999999\n", kind: errValue,
			msg: `<cf>:1: invalid ipc_timeout value "99999999999999999999999": too large (max 2147483647s)`},
		{name: "ttl limit below minimum", mainCF: "connection_cache_ttl_limit = 0\n", kind: errValue,
			msg: `<cf>:1: invalid connection_cache_ttl_limit value "0": below the minimum 1s`},
		{name: "status update time below minimum", mainCF: "connection_cache_status_update_time = 0s\n", kind: errValue,
			msg: `<cf>:1: invalid connection_cache_status_update_time value "0s": below the minimum 1s`},
		{name: "max_idle below minimum", mainCF: "max_idle = 0m\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "0m": below the minimum 1s`},
		{name: "ipc_timeout below minimum", mainCF: "ipc_timeout = 0\n", kind: errValue,
			msg: `<cf>:1: invalid ipc_timeout value "0": below the minimum 1s`},

		// Sizes.
		{name: "size below minimum", mainCF: "scached_request_size_limit = 1023\n", kind: errValue,
			msg: `<cf>:1: invalid scached_request_size_limit value "1023": below the minimum 1024`},
		{name: "legacy clients bad", mainCF: "scached_legacy_clients = maybe\n", kind: errValue,
			msg: `<cf>:1: invalid scached_legacy_clients value "maybe": not one of no, yes, auto`},
		{name: "size with unit", mainCF: "scached_request_size_limit = 4k\n", kind: errValue,
			msg: `<cf>:1: invalid scached_request_size_limit value "4k": not a decimal number of bytes`},
		{name: "negative size", mainCF: "scached_request_size_limit = -1\n", kind: errValue,
			msg: `<cf>:1: invalid scached_request_size_limit value "-1": negative size`},
		{name: "size overflow", mainCF: "scached_request_size_limit = 2147483648\n", kind: errValue,
			msg: `<cf>:1: invalid scached_request_size_limit value "2147483648": too large (max 2147483647)`},
		{name: "empty size", mainCF: "scached_request_size_limit =\n", kind: errValue,
			msg: `<cf>:1: invalid scached_request_size_limit value "": empty value`},

		// Strings.
		{name: "empty syslog_name", mainCF: "syslog_name =\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "": empty value`},
		{name: "syslog_name empty after expansion", mainCF: "syslog_name = $nothing\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "$nothing" (expanded: ""): empty value`},

		// Expansion.
		{name: "expanded value shown", mainCF: "t = 5x\nmax_idle = $t\n", kind: errValue,
			msg: `<cf>:2: invalid max_idle value "$t" (expanded: "5x"): bad time unit 'x' (use s, m, h, d or w)`},
		{name: "loop", mainCF: "a = $b\nb = ${a}\nmax_idle = $a\n", kind: errValue,
			msg: `<cf>:3: invalid max_idle value "$a": parameter loop: max_idle -> a -> b -> a`},
		{name: "self reference", mainCF: "max_idle = $max_idle\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "$max_idle": parameter loop: max_idle -> max_idle`},
		{name: "loop through a conditional", mainCF: "a = ${a?$a}\nsyslog_name = $a\n", kind: errValue,
			msg: `<cf>:2: invalid syslog_name value "$a": parameter loop: syslog_name -> a -> a`},
		{name: "truncated reference", mainCF: "max_idle = ${t\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "${t": truncated parameter reference "${t"`},
		{name: "truncated paren reference", mainCF: "max_idle = $(t\n", kind: errValue,
			msg: `<cf>:1: invalid max_idle value "$(t": truncated parameter reference "$(t"`},
		{name: "lone $", mainCF: "syslog_name = a$\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "a$": empty parameter name after '$' in "a$"`},
		{name: "$ before a non-name character", mainCF: "syslog_name = a$-b\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "a$-b": empty parameter name after '$' in "a$-b"`},
		{name: "empty braces", mainCF: "syslog_name = ${}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${}": empty parameter name after '$' in "${}"`},
		{name: "bad name in braces", mainCF: "syslog_name = ${a-b}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${a-b}": parameter name syntax error at "-b" in "${a-b}"`},
		{name: "conditional without a name", mainCF: "syslog_name = ${?x}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${?x}": empty parameter name in "${?x}"`},
		{name: "logical expression", mainCF: "syslog_name = ${{$a} == {b}?{x}:{y}}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${{$a} == {b}?{x}:{y}}": logical expressions like ${{$a} == {b}?{x}:{y}} are not supported`},
		{name: "unbalanced braces in conditional", mainCF: "syslog_name = ${a?{x}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${a?{x}": truncated parameter reference "${a?{x}"`},
		{name: "garbage after {text}", mainCF: "syslog_name = ${a?{x}y}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${a?{x}y}": ':' expected at "y" in "${a?{x}y}"`},
		{name: "garbage after else {text}", mainCF: "syslog_name = ${a?{x}:{y}z}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${a?{x}:{y}z}": unexpected input "z" in "${a?{x}:{y}z}"`},
		{name: "garbage after : {text}", mainCF: "syslog_name = ${a:{y}z}\n", kind: errValue,
			msg: `<cf>:1: invalid syslog_name value "${a:{y}z}": unexpected input "z" in "${a:{y}z}"`},

		// -o.
		{name: "-o without =", overrides: []string{"max_idle"}, kind: errOption,
			msg: `invalid "-o max_idle" option value: missing '=' after attribute name`},
		{name: "-o without name", overrides: []string{"=5s"}, kind: errOption,
			msg: `invalid "-o =5s" option value: missing attribute name`},
		{name: "-o empty", overrides: []string{""}, kind: errOption,
			msg: `invalid "-o " option value: missing attribute name`},
		{name: "-o unknown parameter", overrides: []string{"smtpd_banner=hi"}, kind: errOption,
			msg: `-o smtpd_banner=hi: unknown parameter "smtpd_banner"; scached reads connection_cache_ttl_limit, connection_cache_status_update_time, ipc_timeout, max_idle, syslog_name, scached_request_size_limit, scached_legacy_clients, mail_owner, scached_authorized_users, scached_session_limit, scached_endpoint_session_limit, scached_destination_binding_limit`},
		{name: "-o bad value", mainCF: "max_idle = 5s\n", overrides: []string{"max_idle=abc"}, kind: errValue,
			msg: `-o max_idle=abc: invalid max_idle value "abc": not a number with an optional unit s, m, h, d or w`},
		{name: "-o below minimum", overrides: []string{"connection_cache_ttl_limit=0"}, kind: errValue,
			msg: `-o connection_cache_ttl_limit=0: invalid connection_cache_ttl_limit value "0": below the minimum 1s`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			cfg, dir, err := load(t, tc.mainCF, tc.overrides...)
			if err == nil {
				t.Fatalf("loadConfig succeeded: %+v", cfg)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			want := strings.ReplaceAll(tc.msg, "<cf>", filepath.Join(dir, "main.cf"))
			if err.Error() != want {
				t.Errorf("error\n got  %s\n want %s", err, want)
			}
		})
	}
}

func TestConfigUnreadableMainCF(t *testing.T) {
	dir := t.TempDir()
	// A directory cannot be read as a file, even by root.
	if err := os.Mkdir(filepath.Join(dir, "main.cf"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(dir, nil)
	if err == nil {
		t.Fatal("loadConfig read a directory as main.cf")
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "main.cf")) {
		t.Errorf("error %q does not name main.cf", err)
	}
}

func TestConfigMissingDirectory(t *testing.T) {
	cfg, err := loadConfig(filepath.Join(t.TempDir(), "nonexistent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Warnings = nil
	if !reflect.DeepEqual(*cfg, defaults) {
		t.Errorf("got %+v, want defaults", *cfg)
	}
}

func TestConfigDeepNesting(t *testing.T) {
	// A chain of 150 references is not a loop, but exceeds Postfix's
	// nesting limit of 100.
	var b strings.Builder
	for i := 0; i < 150; i++ {
		b.WriteString("p" + strconv.Itoa(i) + " = $p" + strconv.Itoa(i+1) + "\n")
	}
	b.WriteString("p150 = 5s\nmax_idle = $p0\n")
	_, _, err := load(t, b.String())
	if !errors.Is(err, errValue) || !strings.Contains(err.Error(), "unreasonable nesting of parameter references") {
		t.Errorf("error %v, want unreasonable nesting", err)
	}
	// 50 deep is fine.
	b.Reset()
	for i := 0; i < 50; i++ {
		b.WriteString("p" + strconv.Itoa(i) + " = $p" + strconv.Itoa(i+1) + "\n")
	}
	b.WriteString("p50 = 5s\nmax_idle = $p0\n")
	cfg, _, err := load(t, b.String())
	if err != nil || cfg.MaxIdle != 5*time.Second {
		t.Errorf("50 nested references: %v, %v", cfg, err)
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "1s": 1, "1m": 60, "1h": 3600, "1d": 86400, "1w": 604800,
		"007": 7, " 5s ": 5, "3550w": 3550 * 604800, "2147483647s": 2147483647,
	} {
		got, err := parseTime(in, 1)
		if err != nil || got != want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "s", "-1", "1S", "1M", "1x", "1 s", "1ss", "0x10", "1e3", "٣", "1.0"} {
		if got, err := parseTime(in, 1); err == nil {
			t.Errorf("parseTime(%q) = %d, want error", in, got)
		}
	}
}

func TestAuthorizedUIDs(t *testing.T) {
	lookup := func(name string) (uint32, error) {
		switch name {
		case "root":
			return 0, nil
		case "postfix":
			return 107, nil
		}
		return 0, errors.New("unknown user")
	}
	for _, tc := range []struct {
		list     string
		want     map[uint32]bool
		warnings int
		err      bool
	}{
		{"root, postfix", map[uint32]bool{0: true, 107: true}, 0, false},
		{"root,postfix  1000", map[uint32]bool{0: true, 107: true, 1000: true}, 0, false},
		{"root, nosuchuser", map[uint32]bool{0: true}, 1, false},
		{"", map[uint32]bool{}, 0, false},
		{"root static:anyone", nil, 0, false},
		{"static:all", nil, 0, true},
		{"hash:/etc/postfix/users", nil, 0, true},
	} {
		got, w, err := authorizedUIDs(tc.list, lookup)
		if (err != nil) != tc.err || len(w) != tc.warnings || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v %q %v", tc.list, got, w, err)
		}
	}
}

// mail_owner from main.cf feeds the default scached_authorized_users.
func TestAuthorizedUsersFollowMailOwner(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("mail_owner = pfx\n"), 0o644)
	cfg, err := loadConfig(dir, nil)
	if err != nil || cfg.AuthorizedUsers != "root, pfx" || cfg.MailOwner != "pfx" {
		t.Fatalf("%+v %v", cfg, err)
	}
}

func TestLimitParameters(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("scached_session_limit = 5000\nscached_endpoint_session_limit = 0\n"), 0o644)
	cfg, err := loadConfig(dir, []string{"scached_destination_binding_limit=7"})
	if err != nil || cfg.SessionLimit != 5000 || cfg.EndpointLimit != 0 || cfg.DestinationLimit != 7 {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := loadConfig(dir, []string{"scached_session_limit=-1"}); err == nil || !strings.Contains(err.Error(), "scached_session_limit") {
		t.Errorf("negative limit: %v", err)
	}
	for nofile, want := range map[uint64]int{1024: 768, 4096: 3584, 65536: 57344, 1 << 20: 917504, 300: 150} {
		if got := defaultSessionLimit(nofile); got != want {
			t.Errorf("defaultSessionLimit(%d) = %d, want %d", nofile, got, want)
		}
	}
}
