"""Assert the rules of the scached policy module on a linked kernel policy.

Usage: python3 check_policy.py POLICY_FILE

POLICY_FILE is a kernel policy (policy.33) linked from the full reference
policy plus scached.pp and scached_iftest.pp (check.sh builds one in a
private store). The queries are those of sesearch(1), made with setools,
the library sesearch runs on, in one pass over the policy instead of one
sesearch run (1.4 s) per assertion; each failure prints the sesearch
command that shows the rules involved.

A rule counts as present only when it is unconditional (no boolean can
take it away); for the absence assertions every allow rule counts,
conditional or not. Source and target match as sesearch matches them by
default: a rule on an attribute counts for each of its types.

Exit status: 0 when every assertion holds, 1 otherwise.
"""

import sys

import setools
from setools.exception import InvalidType, RuleNotConditional

if len(sys.argv) != 2:
    sys.exit("usage: check_policy.py POLICY_FILE")
path = sys.argv[1]
policy = setools.SELinuxPolicy(path)

failures = []
counts = {}


def record(section, ok, text, hint):
    counts.setdefault(section, 0)
    if ok:
        counts[section] += 1
    else:
        failures.append("%s: %s\n    %s" % (section, text, hint))


def conditional(rule):
    try:
        rule.conditional
        return True
    except RuleNotConditional:
        return False


def names_of(name):
    """The names a rule may use for the type name: itself and its attributes."""
    if name not in _names:
        try:
            _names[name] = {name} | {str(a) for a in policy.lookup_type(name).attributes()}
        except InvalidType:  # an attribute
            _names[name] = {name}
    return _names[name]


_names = {}

# One pass over the policy's rules keeps those whose source may be one of
# these types (setools' TERuleQuery would make one pass per query: a
# minute for this file instead of a second).
SOURCES = ("scached_t", "init_t", "postfix_smtp_t", "scached_iftest_t", "scached_runtime_t")
_source_names = set().union(*(names_of(t) for t in SOURCES))
RULES = [(str(r.ruletype), str(r.source), str(r.target), str(r.tclass), r)
         for r in policy.terules()
         if str(r.ruletype) in ("allow", "type_transition") and str(r.source) in _source_names]


def query(ruletype, source, target=None, tclass=None):
    """The rules sesearch -A/-T -s source [-t target] [-c tclass] shows."""
    assert source in SOURCES, source
    sn = names_of(source)
    tn = names_of(target) if target else None
    return [r for rt, src, tgt, cls, r in RULES
            if rt == ruletype and src in sn and (tn is None or tgt in tn)
            and (tclass is None or cls == tclass)]


def sesearch(ruletype, source=None, target=None, tclass=None):
    cmd = "sesearch %s -%s" % (path, {"allow": "A", "type_transition": "T"}[ruletype])
    for flag, value in (("-s", source), ("-t", target), ("-c", tclass)):
        if value:
            cmd += " %s %s" % (flag, value)
    return cmd


def allow(section, source, target, tclass, perms, why):
    """Every permission of perms is allowed unconditionally."""
    want = set(perms.split())
    have = set()
    for r in query("allow", source, target, tclass):
        if not conditional(r):
            have |= set(r.perms)
    missing = want - have
    text = "allow %s %s:%s { %s }  (%s)" % (source, target, tclass, perms, why)
    if missing:
        text += ": missing %s" % " ".join(sorted(missing))
    record(section, not missing, text, sesearch("allow", source, target, tclass))


def lacks(section, source, target, tclass, perms, why):
    """No allow rule, even a conditional one, has any of perms."""
    found = []
    for r in query("allow", source, target, tclass):
        if set(perms.split()) & set(r.perms):
            found.append(str(r))
    text = "no allow %s %s:%s { %s }  (%s)" % (source, target, tclass, perms, why)
    if found:
        text += ": found " + "; ".join(found)
    record(section, not found, text, sesearch("allow", source, target, tclass))


def transition(section, source, target, tclass, default, name=None, why=""):
    ok = False
    for r in query("type_transition", source, target, tclass):
        if conditional(r) or str(r.default) != default:
            continue
        if name is None or getattr(r, "filename", None) == name:
            ok = True
    text = "type_transition %s %s:%s %s%s  (%s)" % (
        source, target, tclass, default, ' "%s"' % name if name else "", why)
    record(section, ok, text, sesearch("type_transition", source, target, tclass))


# --- The daemon's domain, entered from systemd --------------------------
S = "domain transition"
transition(S, "init_t", "scached_exec_t", "process", "scached_t", why="systemd starts /usr/sbin/scached in scached_t")
allow(S, "init_t", "scached_exec_t", "file", "execute getattr open read", "systemd executes the binary")
allow(S, "init_t", "scached_t", "process", "transition", "systemd enters the domain")
allow(S, "init_t", "scached_t", "process2", "nnp_transition nosuid_transition", "under NoNewPrivileges= and nosuid mounts")
allow(S, "scached_t", "scached_exec_t", "file", "entrypoint execute map read", "the binary is the entry point")
role_ok = any(str(t) == "scached_t" for t in policy.lookup_role("system_r").types())
record(S, role_ok, "role system_r types scached_t", "seinfo %s -r system_r -x" % path)

# --- The socket: file in Postfix's private directory, listening socket --
S = "socket creation"
transition(S, "init_t", "postfix_private_t", "sock_file", "scached_runtime_t", "scached",
           "systemd creates private/scached with its own type")
allow(S, "init_t", "postfix_spool_t", "dir", "search", "path to the socket")
allow(S, "init_t", "postfix_private_t", "dir", "search add_name remove_name write", "bind and RemoveOnStop=")
allow(S, "init_t", "scached_runtime_t", "sock_file", "create getattr setattr unlink",
      "bind, SocketUser=/SocketMode=, RemoveOnStop=")
allow(S, "init_t", "init_t", "process", "setfscreate setsockcreate", "systemd labels the file and the socket")
allow(S, "init_t", "scached_t", "unix_stream_socket", "create bind listen getattr setopt",
      "systemd creates the listening socket labelled scached_t")
allow(S, "scached_runtime_t", "fs_t", "filesystem", "associate", "the socket file can exist on disk")

# --- smtp(8)/lmtp(8) connect ---------------------------------------------
S = "connectto"
allow(S, "postfix_smtp_t", "postfix_spool_t", "dir", "search", "/var/spool/postfix (the chroot of smtp)")
allow(S, "postfix_smtp_t", "postfix_private_t", "dir", "search", "private/")
allow(S, "postfix_smtp_t", "scached_runtime_t", "sock_file", "write", "connect(2) to private/scached")
allow(S, "postfix_smtp_t", "scached_t", "unix_stream_socket", "connectto", "connect(2) to the listening socket")
allow(S, "scached_t", "scached_t", "unix_stream_socket", "accept getattr getopt read write",
      "accept, SO_PEERCRED, requests and replies")
allow(S, "scached_t", "init_t", "fd", "use", "the listening socket, stdin, stdout and stderr come from systemd")
members = sorted(str(t) for t in policy.lookup_typeattr("scached_client").expand())
record(S, members == ["postfix_smtp_t", "scached_iftest_t"],
       "scached_client is exactly postfix_smtp_t (and the test module): got %s" % members,
       "seinfo %s -a scached_client -x" % path)

# --- Descriptors passed both ways ---------------------------------------
S = "fd passing"
allow(S, "scached_t", "postfix_smtp_t", "fd", "use", "receive a socket that smtp created")
allow(S, "scached_t", "postfix_smtp_t", "tcp_socket", "read write", "receive a TCP connection (its open mode)")
allow(S, "scached_t", "postfix_smtp_t", "unix_stream_socket", "read write",
      "receive a UNIX stream connection (tlsproxy, UNIX-domain LMTP)")
allow(S, "scached_t", "scached_t", "unix_stream_socket", "write", "send them back (sendmsg SCM_RIGHTS)")
allow(S, "postfix_smtp_t", "postfix_smtp_t", "tcp_socket", "read write", "smtp receives its own TCP sockets back")
allow(S, "postfix_smtp_t", "postfix_smtp_t", "unix_stream_socket", "read write",
      "smtp receives its own UNIX stream sockets back")
lacks(S, "postfix_smtp_t", "scached_t", "fd", "use",
      "not needed: a descriptor keeps the domain that created it, postfix_smtp_t")

# --- Journal -------------------------------------------------------------
S = "journal"
allow(S, "scached_t", "init_runtime_t", "dir", "search", "/run/systemd")
allow(S, "scached_t", "syslogd_runtime_t", "dir", "search", "/run/systemd/journal")
allow(S, "scached_t", "devlog_t", "sock_file", "write", "/run/systemd/journal/socket")
allow(S, "scached_t", "syslogd_t", "unix_dgram_socket", "sendto", "native journal records")
allow(S, "scached_t", "scached_t", "unix_dgram_socket", "create bind connect getattr write", "its datagram socket")
allow(S, "scached_t", "init_t", "unix_stream_socket", "getattr read write",
      "stdout/stderr journal stream, JOURNAL_STREAM check (fstat)")

# --- sd_notify -----------------------------------------------------------
S = "notify"
allow(S, "scached_t", "var_run_t", "dir", "search", "/run")
allow(S, "scached_t", "init_runtime_t", "sock_file", "write", "/run/systemd/notify")
allow(S, "scached_t", "init_t", "unix_dgram_socket", "sendto", "READY=1, STOPPING=1")

# --- Configuration and run-time environment ------------------------------
S = "main.cf and runtime"
allow(S, "scached_t", "etc_t", "dir", "search", "/etc")
allow(S, "scached_t", "postfix_etc_t", "dir", "search", "/etc/postfix")
allow(S, "scached_t", "postfix_etc_t", "file", "getattr open read", "/etc/postfix/main.cf")
lacks(S, "scached_t", "postfix_etc_t", "file", "write append create unlink setattr", "configuration is read-only")
allow(S, "scached_t", "etc_t", "file", "open read", "/etc/passwd, /etc/nsswitch.conf (user lookup)")
allow(S, "scached_t", "locale_t", "file", "open read", "/etc/localtime")
allow(S, "scached_t", "sysfs_t", "file", "open read", "Go: transparent_hugepage/hpage_pmd_size")
allow(S, "scached_t", "cgroup_t", "file", "open read", "Go: cgroup CPU limit")
allow(S, "scached_t", "scached_t", "file", "open read", "Go: /proc/self/cgroup, /proc/self/mountinfo")
allow(S, "scached_t", "scached_t", "process", "getsched signal", "Go: sched_getaffinity, preemption signals")

# --- Every interface of scached.if, expanded in the test module ---------
S = "interfaces"
transition(S, "scached_iftest_t", "scached_exec_t", "process", "scached_t", why="scached_domtrans")
allow(S, "scached_iftest_t", "scached_t", "process", "transition", "scached_domtrans")
allow(S, "scached_iftest_t", "scached_t", "unix_stream_socket", "connectto", "scached_stream_connect")
allow(S, "scached_iftest_t", "scached_runtime_t", "sock_file", "write", "scached_stream_connect")
allow(S, "scached_t", "scached_iftest_t", "fd", "use", "scached_stream_connect")
allow(S, "scached_t", "scached_iftest_t", "tcp_socket", "read write", "scached_stream_connect")
transition(S, "scached_iftest_t", "postfix_private_t", "sock_file", "scached_runtime_t", "scached",
           "scached_create_private_socket")
allow(S, "scached_iftest_t", "scached_runtime_t", "sock_file", "create getattr setattr unlink",
      "scached_create_private_socket")

# --- What scached_t must NOT have ---------------------------------------
S = "no network, no capabilities"
caps = ("capability", "capability2", "cap_userns", "cap2_userns")
all_rules = query("allow", "scached_t")
for r in all_rules:
    cls, perms = str(r.tclass), set(r.perms)
    bad = None
    if cls in caps:
        bad = "a capability"
    elif perms & {"name_bind", "name_connect", "node_bind"}:
        bad = "network port/node access"
    elif cls in ("node", "netif", "packet"):
        bad = "network access"
    elif cls.endswith("socket") and cls not in ("unix_stream_socket", "unix_dgram_socket") \
            and perms & {"create", "bind", "connect", "listen", "accept"}:
        bad = "a socket other than a UNIX one"
    if bad:
        record(S, False, "scached_t gets %s: %s" % (bad, r), sesearch("allow", "scached_t", None, cls))
for cls in caps:
    try:
        perms = " ".join(sorted(str(p) for p in policy.lookup_class(cls).perms))
    except setools.exception.InvalidClass:
        continue
    lacks(S, "scached_t", None, cls, perms, "no capability")
for cls in ("tcp_socket", "udp_socket", "rawip_socket", "sctp_socket", "icmp_socket"):
    lacks(S, "scached_t", None, cls, "create bind connect listen accept name_bind name_connect node_bind",
          "no network")

# --- Report ----------------------------------------------------------------
for section, n in counts.items():
    bad = sum(1 for f in failures if f.startswith(section + ":"))
    if bad:
        print("FAIL: %-26s %3d of %d assertions failed" % (section, bad, n + bad))
    else:
        print("ok: %-28s %3d assertions" % (section, n))
if failures:
    print("\n%d assertion(s) failed:" % len(failures), file=sys.stderr)
    for f in failures:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print("ok: %d assertions on %s (%d allow rules with source scached_t checked for network and capabilities)"
      % (sum(counts.values()), path, len(all_rules)))
