package main

// Flags and main.cf → configuration.
//
// scached reads the few main.cf parameters that Postfix's scache(8) reads,
// with Postfix's syntax and defaults, so that an operator configures it the
// way he configures scache. The rules below follow Postfix's code:
//
//   - logical lines: util/readlline.c:readllines(). Blank lines and lines
//     whose first non-blank character is '#' are ignored; a line that
//     starts with whitespace continues the logical line, even across
//     ignored lines, and is appended as is (so "a = b" + "  c" gives
//     "a = b  c"); a logical line that starts with whitespace is ignored
//     with a warning. '#' elsewhere is not a comment.
//   - "name = value": util/split_nameval.c:split_nameval(); whitespace
//     around name and value is trimmed; errors are fatal
//     (util/dict.c:dict_load_fp()); a later entry overrides an earlier
//     one, with a warning when the values differ.
//   - $name, ${name}, $(name), $$, ${name?text}, ${name:text},
//     ${name?{text1}:{text2}}: util/mac_parse.c and util/mac_expand.c,
//     expanded recursively as mail_conf_eval() does; an undefined name
//     expands to nothing.
//   - time values: global/mail_conf_time.c:convert_mail_conf_time(): a
//     number with an optional one-letter unit s, m, h, d or w, seconds by
//     default; minima as in scache.c:main() and mail_params.c.
//   - -o name=value: master/multi_server.c:multi_server_main(): split as
//     above, applied after main.cf, then expanded like main.cf values.
//
// Stricter than Postfix, on purpose: a sign, blanks inside a number, or a
// value that overflows is an error instead of whatever sscanf() made of
// it; -o naming a parameter scached does not read is an error instead of
// being ignored; a logical expression (${{a} == {b}?...}) is an error.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Postfix's defaults of config_directory and syslog_name.
const (
	defaultConfigDirectory = "/etc/postfix"
	defaultSyslogName      = "postfix"
)

// paramKind is how a parameter's value is converted.
type paramKind int

const (
	kindTime   paramKind = iota // seconds, with an optional unit
	kindBytes                   // a decimal number
	kindString                  // text
	kindChoice                  // one of no, yes, auto
	kindCount                   // a decimal number of things
)

// param is one parameter that scached reads.
type param struct {
	name string
	def  string // the default, as postconf -d shows it
	kind paramKind
	min  int64 // lowest value (seconds, bytes) or length
}

// Parameter names.
const (
	parTTLLimit         = "connection_cache_ttl_limit"
	parStatusUpdateTime = "connection_cache_status_update_time"
	parMaxIdle          = "max_idle"
	parIPCTimeout       = "ipc_timeout"
	parSyslogName       = "syslog_name"
	parRequestSizeLimit = "scached_request_size_limit"
	parLegacyClients    = "scached_legacy_clients"
	parMailOwner        = "mail_owner"
	parAuthorizedUsers  = "scached_authorized_users"
	parSessionLimit     = "scached_session_limit"
	parEndpointLimit    = "scached_endpoint_session_limit"
	parDestinationLimit = "scached_destination_binding_limit"
)

// params are the parameters scached reads, with Postfix's defaults and
// minima (scache.c:main(), global/mail_params.c) and our own
// scached_request_size_limit. The man page lists the same (a test checks).
var params = []param{
	{parTTLLimit, "2s", kindTime, 1},
	{parStatusUpdateTime, "600s", kindTime, 1},
	{parIPCTimeout, "3600s", kindTime, 1},
	{parMaxIdle, "100s", kindTime, 1},
	{parSyslogName, defaultSyslogName, kindString, 1},
	{parRequestSizeLimit, "4194304", kindBytes, 1024},
	{parLegacyClients, "no", kindChoice, 0},
	{parMailOwner, "postfix", kindString, 1},
	{parAuthorizedUsers, "root, $mail_owner", kindString, 0},
	{parSessionLimit, "0", kindCount, 0},
	{parEndpointLimit, "1000", kindCount, 0},
	{parDestinationLimit, "100", kindCount, 0},
}

func lookupParam(name string) (param, bool) {
	for _, p := range params {
		if p.name == name {
			return p, true
		}
	}
	return param{}, false
}

func paramNames() string {
	var names []string
	for _, p := range params {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

// config is the result of reading main.cf and the -o overrides.
type config struct {
	TTLLimit         time.Duration
	StatusUpdateTime time.Duration
	MaxIdle          time.Duration
	IPCTimeout       time.Duration
	RequestSizeLimit int
	SyslogName       string
	// LegacyClients is scached_legacy_clients: "no", "yes" or "auto".
	LegacyClients string
	// MailOwner is Postfix's mail_owner, the user smtp(8) runs as.
	MailOwner string
	// SessionLimit, EndpointLimit and DestinationLimit are the cache limits
	// (0: none; for SessionLimit, derived from RLIMIT_NOFILE at start).
	SessionLimit, EndpointLimit, DestinationLimit int
	// AuthorizedUsers is scached_authorized_users, expanded: user names or
	// ids separated by commas or white space, or static:anyone.
	AuthorizedUsers string

	// Warnings are problems in main.cf that Postfix too only warns
	// about; log them once a logger exists.
	Warnings []string
}

// Errors that classify a configuration failure; test with errors.Is. The
// errors' text does not repeat them.
var (
	// errOption: a malformed -o option, or one naming a parameter that
	// scached does not read.
	errOption = errors.New("bad -o option")
	// errSyntax: main.cf is not "name = value" lines.
	errSyntax = errors.New("syntax error")
	// errValue: a parameter value cannot be used.
	errValue = errors.New("invalid value")
)

// classified is an error whose kind is one of the sentinels above.
type classified struct {
	kind error
	msg  string
}

func (e *classified) Error() string        { return e.msg }
func (e *classified) Is(target error) bool { return target == e.kind }

func optionErr(format string, args ...any) error {
	return &classified{errOption, fmt.Sprintf(format, args...)}
}

func syntaxErr(format string, args ...any) error {
	return &classified{errSyntax, fmt.Sprintf(format, args...)}
}

func valueErr(format string, args ...any) error {
	return &classified{errValue, fmt.Sprintf(format, args...)}
}

// setting is one parameter value and where it came from.
type setting struct {
	value string
	where string // "/etc/postfix/main.cf:12", "-o max_idle=5s", "default"
}

// loadConfig reads dir/main.cf, when it exists, then applies the -o
// overrides ("name=value" each) and converts the parameters scached uses.
// A missing main.cf means Postfix's defaults; an unreadable one is an
// error.
func loadConfig(dir string, overrides []string) (*config, error) {
	path := filepath.Join(dir, "main.cf")
	cfg := &config{}
	table := map[string]setting{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err // *fs.PathError: "open /etc/postfix/main.cf: permission denied"
	default:
		if table, cfg.Warnings, err = parseMainCF(path, data); err != nil {
			return nil, err
		}
	}
	for _, o := range overrides {
		name, value, err := splitNameValue(o)
		if err != nil {
			return nil, optionErr("invalid \"-o %s\" option value: %v", o, err)
		}
		if _, ok := lookupParam(name); !ok {
			return nil, optionErr("-o %s: unknown parameter %q; scached reads %s", o, name, paramNames())
		}
		table[name] = setting{value, "-o " + o}
	}
	// Postfix's built-in values of the names that scached knows, for
	// expansion and for parameters that are not set.
	builtin := map[string]string{"config_directory": dir}
	for _, p := range params {
		builtin[p.name] = p.def
	}
	ex := &expander{table: table, builtin: builtin}

	for _, p := range params {
		s, ok := table[p.name]
		if !ok {
			s = setting{p.def, "default"}
		}
		v, err := ex.expand(s.value, []string{p.name})
		if err != nil {
			return nil, fmt.Errorf("%s: invalid %s value %q: %w", s.where, p.name, s.value, err)
		}
		if err := cfg.set(p, v); err != nil {
			shown := fmt.Sprintf("%q", s.value)
			if v != s.value {
				shown += fmt.Sprintf(" (expanded: %q)", v)
			}
			return nil, fmt.Errorf("%s: invalid %s value %s: %w", s.where, p.name, shown, err)
		}
	}
	return cfg, nil
}

// set converts the expanded value v of p and stores it in cfg.
func (cfg *config) set(p param, v string) error {
	switch p.kind {
	case kindTime:
		secs, err := parseTime(v, p.min)
		if err != nil {
			return err
		}
		d := time.Duration(secs) * time.Second
		switch p.name {
		case parTTLLimit:
			cfg.TTLLimit = d
		case parStatusUpdateTime:
			cfg.StatusUpdateTime = d
		case parMaxIdle:
			cfg.MaxIdle = d
		case parIPCTimeout:
			cfg.IPCTimeout = d
		default:
			panic("config: unhandled time parameter " + p.name)
		}
	case kindBytes:
		n, err := parseBytes(v, p.min)
		if err != nil {
			return err
		}
		cfg.RequestSizeLimit = int(n)
	case kindCount:
		n, err := parseCount(v)
		if err != nil {
			return err
		}
		switch p.name {
		case parSessionLimit:
			cfg.SessionLimit = int(n)
		case parEndpointLimit:
			cfg.EndpointLimit = int(n)
		case parDestinationLimit:
			cfg.DestinationLimit = int(n)
		default:
			panic("config: unhandled count parameter " + p.name)
		}
	case kindChoice:
		switch v = strings.Trim(v, whitespace); v {
		case "no", "yes", "auto":
			cfg.LegacyClients = v
		default:
			return valueErr("not one of no, yes, auto")
		}
	case kindString:
		if int64(len(strings.Trim(v, whitespace))) < p.min {
			return valueErr("empty value")
		}
		switch p.name {
		case parSyslogName:
			cfg.SyslogName = v
		case parMailOwner:
			cfg.MailOwner = strings.Trim(v, whitespace)
		case parAuthorizedUsers:
			cfg.AuthorizedUsers = v
		default:
			panic("config: unhandled string parameter " + p.name)
		}
	}
	return nil
}

// maxValue is the largest time (seconds) or size (bytes): Postfix keeps
// these parameters in a C int.
const maxValue = math.MaxInt32

// timeUnits are conv_time()'s units, in seconds.
var timeUnits = map[byte]int64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}

// parseTime converts a Postfix time value ("100s", "5m", "30") to seconds
// and checks it against min.
func parseTime(v string, min int64) (int64, error) {
	v = strings.Trim(v, whitespace)
	if v == "" {
		return 0, valueErr("empty value")
	}
	digits := v
	unit := int64(1)
	if last := v[len(v)-1]; last < '0' || last > '9' {
		digits = v[:len(v)-1]
		u, ok := timeUnits[last]
		if !ok && allDigits(digits) {
			return 0, valueErr("bad time unit %q (use s, m, h, d or w)", last)
		}
		unit = u
	}
	if strings.HasPrefix(digits, "-") && allDigits(digits[1:]) {
		return 0, valueErr("negative time")
	}
	if !allDigits(digits) {
		return 0, valueErr("not a number with an optional unit s, m, h, d or w")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > maxValue/unit {
		return 0, valueErr("too large (max %ds)", int64(maxValue))
	}
	n *= unit
	if n < min {
		return 0, valueErr("below the minimum %ds", min)
	}
	return n, nil
}

// parseBytes converts a decimal byte count and checks it against min.
func parseBytes(v string, min int64) (int64, error) {
	v = strings.Trim(v, whitespace)
	switch {
	case v == "":
		return 0, valueErr("empty value")
	case strings.HasPrefix(v, "-") && allDigits(v[1:]):
		return 0, valueErr("negative size")
	case !allDigits(v):
		return 0, valueErr("not a decimal number of bytes")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxValue {
		return 0, valueErr("too large (max %d)", int64(maxValue))
	}
	if n < min {
		return 0, valueErr("below the minimum %d", min)
	}
	return n, nil
}

// parseCount converts a decimal count (0 or more).
func parseCount(v string) (int64, error) {
	v = strings.Trim(v, whitespace)
	if !allDigits(v) {
		return 0, valueErr("not a decimal number")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxValue {
		return 0, valueErr("too large (max %d)", int64(maxValue))
	}
	return n, nil
}

// sessionReserve is how many descriptors the default session limit leaves
// for client connections, the listener, the journal and the runtime.
func sessionReserve(nofile uint64) uint64 {
	return max(256, nofile/8)
}

// defaultSessionLimit derives scached_session_limit = 0 from the
// descriptor limit, so that cached connections never use up the
// descriptors that accepting clients needs.
func defaultSessionLimit(nofile uint64) int {
	if nofile <= 2*sessionReserve(nofile) {
		return int(max(nofile/2, 1))
	}
	return int(min(nofile-sessionReserve(nofile), maxValue))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// whitespace is Postfix's ISSPACE() set.
const whitespace = " \t\n\v\f\r"

func isSpace(c byte) bool { return strings.IndexByte(whitespace, c) >= 0 }

// parseMainCF splits main.cf into settings, keyed by name; the last
// entry of a name wins. Syntax errors are fatal, as in Postfix.
func parseMainCF(path string, data []byte) (map[string]setting, []string, error) {
	table := map[string]setting{}
	var warnings []string

	// The logical line being collected, and the physical line where it
	// started.
	var logical []byte
	first, lineno := 0, 0
	collecting := false

	flush := func() error {
		if !collecting {
			return nil
		}
		collecting = false
		line := logical
		if i := bytes.IndexByte(line, 0); i >= 0 {
			warnings = append(warnings, fmt.Sprintf("%s:%d: text after null byte is ignored", path, first))
			line = line[:i]
		}
		if isSpace(line[0]) {
			warnings = append(warnings, fmt.Sprintf("%s:%d: logical line must not start with whitespace: %q", path, first, abbrev(string(line))))
			return nil
		}
		name, value, err := splitNameValue(string(line))
		if err != nil {
			return syntaxErr("%s:%d: %v: %q", path, first, err, abbrev(string(line)))
		}
		if old, ok := table[name]; ok && old.value != value {
			warnings = append(warnings, fmt.Sprintf("%s:%d: overriding earlier entry: %s=%s", path, first, name, old.value))
		}
		table[name] = setting{value, fmt.Sprintf("%s:%d", path, first)}
		return nil
	}

	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		lineno++
		line := sc.Bytes()
		text := bytes.TrimLeft(line, whitespace)
		if len(text) == 0 || text[0] == '#' {
			continue // blank or comment: does not end a logical line
		}
		if isSpace(line[0]) && collecting {
			logical = append(logical, line...)
			continue
		}
		if err := flush(); err != nil {
			return nil, nil, err
		}
		logical = append(logical[:0], line...)
		first = lineno
		collecting = true
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return table, warnings, nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// splitNameValue splits "name = value" as split_nameval() does: the name
// ends at whitespace or '='; blanks around the value are trimmed.
func splitNameValue(s string) (name, value string, err error) {
	s = strings.TrimLeft(s, whitespace)
	end := strings.IndexFunc(s, func(r rune) bool { return r == '=' || r < 0x80 && isSpace(byte(r)) })
	if end == 0 || s == "" {
		return "", "", errors.New("missing attribute name")
	}
	if end < 0 {
		return "", "", errors.New("missing '=' after attribute name")
	}
	name = s[:end]
	rest := strings.TrimLeft(s[end:], whitespace)
	if !strings.HasPrefix(rest, "=") {
		return "", "", errors.New("missing '=' after attribute name")
	}
	return name, strings.Trim(rest[1:], whitespace), nil
}

// maxNesting bounds expansion depth, like mac_expand()'s "unreasonable
// macro call nesting" check.
const maxNesting = 100

// expander expands $name references in parameter values.
type expander struct {
	table   map[string]setting // main.cf and -o
	builtin map[string]string  // defaults of the names scached knows
}

// lookup returns the raw value of name and whether it is defined.
func (ex *expander) lookup(name string) (string, bool) {
	if s, ok := ex.table[name]; ok {
		return s.value, true
	}
	v, ok := ex.builtin[name]
	return v, ok
}

// expand expands every reference in s. stack holds the names whose values
// are being expanded, to catch loops.
func (ex *expander) expand(s string, stack []string) (string, error) {
	if len(stack) > maxNesting {
		return "", valueErr("unreasonable nesting of parameter references")
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			out.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' { // $$ is a literal $
			out.WriteByte('$')
			i += 2
			continue
		}
		i++
		var body string
		braced := false
		if i < len(s) && (s[i] == '{' || s[i] == '(') {
			open, close := s[i], byte('}')
			if open == '(' {
				close = ')'
			}
			level, j := 1, i+1
			for ; j < len(s) && level > 0; j++ {
				switch s[j] {
				case open:
					level++
				case close:
					level--
				}
			}
			if level > 0 {
				return "", valueErr("truncated parameter reference %q", s[i-1:])
			}
			body, i, braced = s[i+1:j-1], j, true
		} else {
			j := i
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			body, i = s[i:j], j
		}
		if body == "" {
			return "", valueErr("empty parameter name after '$' in %q", s)
		}
		v, err := ex.reference(body, braced, stack)
		if err != nil {
			return "", err
		}
		out.WriteString(v)
	}
	return out.String(), nil
}

func isNameChar(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// reference expands the body of one reference: name, name?text,
// name:text or name?{text1}:{text2} (mac_expand.c:mac_expand_callback()).
func (ex *expander) reference(body string, braced bool, stack []string) (string, error) {
	if strings.HasPrefix(strings.TrimLeft(body, macWhitespace), "{") {
		return "", valueErr("logical expressions like ${%s} are not supported", body)
	}
	end := 0
	for end < len(body) && isNameChar(body[end]) {
		end++
	}
	name, rest := body[:end], body[end:]
	if rest != "" && (!braced || rest[0] != '?' && rest[0] != ':') {
		return "", valueErr("parameter name syntax error at %q in \"${%s}\"", rest, body)
	}
	if name == "" {
		return "", valueErr("empty parameter name in \"${%s}\"", body)
	}
	raw, defined := ex.lookup(name)
	if rest == "" {
		if !defined {
			return "", nil // Postfix: an undefined name expands to nothing
		}
		if slices.Contains(stack, name) {
			return "", valueErr("parameter loop: %s -> %s", strings.Join(stack, " -> "), name)
		}
		return ex.expand(raw, append(stack, name))
	}

	// Conditional: choose the text, then expand it.
	nonEmpty := defined && raw != ""
	op, text := rest[0], rest[1:]
	var ifTrue, ifFalse string
	if op == '?' {
		t, after, curly, err := operand(text, body)
		if err != nil {
			return "", err
		}
		ifTrue = t
		if curly && after != "" {
			if after[0] != ':' {
				return "", valueErr("':' expected at %q in \"${%s}\"", after, body)
			}
			if ifFalse, after, _, err = operand(after[1:], body); err != nil {
				return "", err
			}
			if after != "" {
				return "", valueErr("unexpected input %q in \"${%s}\"", after, body)
			}
		}
	} else {
		f, after, _, err := operand(text, body)
		if err != nil {
			return "", err
		}
		if after != "" {
			return "", valueErr("unexpected input %q in \"${%s}\"", after, body)
		}
		ifFalse = f
	}
	if nonEmpty {
		return ex.expand(ifTrue, stack)
	}
	return ex.expand(ifFalse, stack)
}

// macWhitespace is MAC_EXP_WHITESPACE.
const macWhitespace = " \t\r\n"

// operand takes the text after '?' or ':': either {text} (balanced braces,
// whitespace around ignored) followed by more, or plain text to the end.
func operand(s, body string) (text, after string, curly bool, err error) {
	t := strings.TrimLeft(s, macWhitespace)
	if !strings.HasPrefix(t, "{") {
		return s, "", false, nil
	}
	level := 0
	for j := 0; j < len(t); j++ {
		switch t[j] {
		case '{':
			level++
		case '}':
			level--
			if level == 0 {
				return t[1:j], strings.TrimLeft(t[j+1:], macWhitespace), true, nil
			}
		}
	}
	return "", "", false, valueErr("unbalanced {} in \"${%s}\"", body)
}

// anyone is the scached_authorized_users value that admits every user, as
// in Postfix's authorized_*_users parameters.
const anyone = "static:anyone"

// authorizedUIDs resolves scached_authorized_users to user ids. Nil means
// anyone. A name that does not resolve is reported in warnings and left
// out (on a machine without the postfix user, root alone remains).
func authorizedUIDs(list string, lookup func(string) (uint32, error)) (uids map[uint32]bool, warnings []string, err error) {
	uids = map[uint32]bool{}
	for _, name := range strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || strings.ContainsRune(whitespace, r)
	}) {
		if name == anyone {
			return nil, nil, nil
		}
		if strings.HasPrefix(name, "static:") || strings.ContainsAny(name, ":/") {
			return nil, nil, valueErr("%s: %q: only user names, user ids and %s are supported", parAuthorizedUsers, name, anyone)
		}
		if id, perr := strconv.ParseUint(name, 10, 32); perr == nil {
			uids[uint32(id)] = true
			continue
		}
		id, lerr := lookup(name)
		if lerr != nil {
			warnings = append(warnings, fmt.Sprintf("%s: unknown user %q, ignored: %v", parAuthorizedUsers, name, lerr))
			continue
		}
		uids[id] = true
	}
	return uids, warnings, nil
}

// lookupUser resolves a user name with the system's user database.
func lookupUser(name string) (uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(id), err
}
