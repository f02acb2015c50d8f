#!/usr/bin/env python3
"""test/soak/analyze.py: joins the soak's /proc samples with scached's
statistics records from the journal, asserts that the series stay flat and
bounded and that the generator accounted for every descriptor, and writes
soak.csv and soak.md. Run by test/soak/run.sh; exit status 1 on a failed
check (the series is printed)."""

import argparse
import bisect
import csv
import datetime
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    for a in ("proc", "journal", "result", "out", "command", "load", "daemon",
              "term_result", "term_journal", "term_load", "tree"):
        ap.add_argument("--" + a.replace("_", "-"), required=True)
    ap.add_argument("--term-rc", type=int, required=True)
    ap.add_argument("--term-exit", type=int, required=True)
    ap.add_argument("--generator-rc", type=int, required=True)
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    a = ap.parse_args()

    fails = []

    def check(ok, what):
        if not ok:
            fails.append(what)
        return ok

    # The statistics records: one per interval ("start interval" line;
    # the other lines of the interval carry the same fields).
    stats, warnings, evicted = [], [], 0
    with open(a.journal) as f:
        for line in f:
            e = json.loads(line)
            msg = e.get("MESSAGE", "")
            if isinstance(msg, list):  # journald gives bytes as a list
                msg = bytes(msg).decode("utf-8", "replace")
            t = int(e["__REALTIME_TIMESTAMP"]) / 1e6
            if msg.startswith("statistics: start interval"):
                stats.append({
                    "t": t,
                    "goroutines": int(e.get("SCACHED_GOROUTINES", "0")),
                    "peak_sessions": int(e.get("SCACHE_PEAK_SESSIONS", "0")),
                })
            elif e.get("PRIORITY") in ("0", "1", "2", "3", "4"):
                warnings.append(msg)
                if "evicted" in msg:
                    evicted += 1
    stats.sort(key=lambda s: s["t"])
    during = [s for s in stats if a.start < s["t"] < a.start + a.duration]
    stimes = [s["t"] for s in stats]
    check(all(s["goroutines"] > 0 for s in stats) and stats,
          "statistics records without SCACHED_GOROUTINES (or none at all)")

    rows = []
    with open(a.proc) as f:
        for r in csv.DictReader(f):
            t = float(r["time"])
            # The interval that contains t is the first record logged
            # after t; the one before bounds sessions saved before it.
            i = bisect.bisect_left(stimes, t)
            cur = stats[i] if i < len(stats) else None
            prev = stats[i - 1] if i > 0 else None
            peak = max([s["peak_sessions"] for s in (cur, prev) if s] or [0])
            # Goroutines are counted when a record is made: take the
            # record nearest to t among those made while the load ran.
            gor = min(during, key=lambda s: abs(s["t"] - t))["goroutines"] if during else 0
            rows.append({
                "t_s": round(t - a.start, 1) + 0.0,  # never -0.0
                "phase": r["phase"],
                "fds": int(r["fds"]),
                "rss_kib": int(r["rss_kib"]),
                "threads": int(r["threads"]),
                "goroutines": gor if r["phase"] == "load" else "",
                "peak_sessions": peak if r["phase"] == "load" else "",
            })

    os.makedirs(a.out, exist_ok=True)
    cols = ["t_s", "phase", "fds", "rss_kib", "threads", "goroutines", "peak_sessions"]
    with open(os.path.join(a.out, "soak.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)

    load = [r for r in rows if r["phase"] == "load"]
    steady = [r for r in load if r["t_s"] >= a.warmup]
    before = next((r for r in rows if r["phase"] == "before"), None)
    after = next((r for r in rows if r["phase"] == "after"), None)
    c = a.clients

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    trends = []
    if check(len(steady) >= 6, "fewer than 6 samples after the warm-up"):
        k = len(steady) // 3
        first, last = steady[:k], steady[-k:]
        for key, rel, absol in (("fds", 0.10, 2 * c + 8), ("rss_kib", 0.10, 2048),
                                ("threads", 0, 2), ("goroutines", 0, 2)):
            m0, m1 = mean([r[key] for r in first]), mean([r[key] for r in last])
            limit = m0 * (1 + rel) + absol
            ok = check(m1 <= limit, "%s trends upward: mean of the last third %.1f > %.1f (first third %.1f)"
                       % (key, m1, limit, m0))
            trends.append((key, m0, m1, limit, ok))
    for r in steady:
        fcap = r["peak_sessions"] + 2 * c + 16
        check(r["fds"] <= fcap, "t=%.0fs: %d descriptors > %d cached sessions + 2*%d clients + 16"
              % (r["t_s"], r["fds"], r["peak_sessions"], c))
        check(c <= r["goroutines"] <= c + 12, "t=%.0fs: %d goroutines, want %d clients .. clients + 12"
              % (r["t_s"], r["goroutines"], c))
    if before and after:
        check(after["fds"] <= before["fds"], "scached holds %d descriptors after the run, %d before"
              % (after["fds"], before["fds"]))

    res = json.load(open(a.result))
    acct = res.get("account") or {}
    e = res["errors"]
    check(a.generator_rc == 0, "the generator exited with status %d" % a.generator_rc)
    check(e["total"] == 0, "the generator counted %d errors: %s"
          % (e["total"], {k: v for k, v in e.items() if v}))
    check(res["generator"]["fds_leaked"] == 0, "the generator leaked %d descriptors" % res["generator"]["fds_leaked"])
    check(acct.get("unaccounted", 1) == 0 and acct.get("in_hand_at_end", 1) == 0 and acct.get("balanced"),
          "descriptors not accounted for: %s" % acct)
    check(not warnings, "scached warned: %s" % warnings[:5])

    # The shutdown: SIGTERM to a scached holding sessions that would not
    # expire for an hour; its shutdown closes every one.
    term = load_json(a.term_result)
    tacct = (term or {}).get("account") or {}
    term_warnings = [m for m, prio in journal_messages(a.term_journal) if prio in ("0", "1", "2", "3", "4")]
    check(a.term_rc == 0 and term is not None, "shutdown: the generator exited with status %d" % a.term_rc)
    if term is not None:
        check(term["errors"]["total"] == 0, "shutdown: the generator counted %d errors: %s"
              % (term["errors"]["total"], {k: v for k, v in term["errors"].items() if v}))
        check(term["generator"]["fds_leaked"] == 0, "shutdown: the generator leaked %d descriptors" % term["generator"]["fds_leaked"])
        check(tacct.get("term") and tacct.get("held_at_term", 0) > 0,
              "shutdown: no sessions held at SIGTERM: %s" % tacct)
        check(tacct.get("unaccounted", 1) == 0 and tacct.get("in_hand_at_end", 1) == 0 and tacct.get("balanced")
              and tacct.get("closed_at_shutdown") == tacct.get("held_at_term") == tacct.get("closed_by_server"),
              "shutdown: descriptors not accounted for: %s" % tacct)
    check(a.term_exit == 0, "shutdown: scached exited with status %d after SIGTERM" % a.term_exit)
    check(not term_warnings, "shutdown: scached warned: %s" % term_warnings[:5])

    # The series, always on stdout.
    print("soak: series (%ss warm-up; goroutines and peak sessions from the statistics record of each interval)" % a.warmup)
    print("  %7s %-6s %6s %8s %7s %10s %13s" % tuple(cols))
    for r in rows:
        print("  %7.1f %-6s %6d %8d %7d %10s %13s" % (r["t_s"], r["phase"], r["fds"], r["rss_kib"],
                                                     r["threads"], r["goroutines"], r["peak_sessions"]))
    for key, m0, m1, limit, ok in trends:
        print("soak: %-10s first third %9.1f, last third %9.1f, limit %9.1f  %s" % (key, m0, m1, limit, "ok" if ok else "RISING"))

    if term is not None:
        print("soak: shutdown: %d sessions held at SIGTERM, %d closed by the shutdown; saved %d = handed back %d + closed %d + unaccounted %d; exit %d"
              % (tacct.get("held_at_term", 0), tacct.get("closed_at_shutdown", 0), tacct.get("saved", 0),
                 tacct.get("handed_back", 0), tacct.get("closed_by_server", 0), tacct.get("unaccounted", 0), a.term_exit))

    write_md(a, res, acct, rows, steady, trends, before, after, evicted, warnings, fails, term, tacct, term_warnings)
    if fails:
        print("soak: FAILED checks:", file=sys.stderr)
        for f in fails:
            print("  - " + f, file=sys.stderr)
        return 1
    print("soak: all checks passed")
    return 0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def journal_messages(path):
    """(MESSAGE, PRIORITY) of each record of a journalctl -o json dump."""
    out = []
    try:
        f = open(path)
    except OSError:
        return out
    with f:
        for line in f:
            e = json.loads(line)
            msg = e.get("MESSAGE", "")
            if isinstance(msg, list):
                msg = bytes(msg).decode("utf-8", "replace")
            out.append((msg, e.get("PRIORITY")))
    return out


def write_md(a, res, acct, rows, steady, trends, before, after, evicted, warnings, fails, term, tacct, term_warnings):
    first, last = (steady[0], steady[-1]) if steady else ({}, {})
    types = res["types"]
    date = datetime.datetime.fromtimestamp(a.start, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    p = L.append
    p("# Soak")
    p("")
    p("scached under a moderate realistic load with expiry churn, for %s, sampled every 5 s: "
      "descriptors, RSS, threads and goroutines stay flat, and every descriptor the "
      "load generator saved came back or was closed by scached's expiry; stopped with "
      "SIGTERM, scached closes every descriptor it still holds ([Shutdown](#shutdown)). "
      "Generated by `test/soak/run.sh` (`make soak`); the series is [soak.csv](soak.csv)."
      % human(a.duration))
    p("")
    p("![descriptors, RSS, threads and goroutines of scached over the soak](soak.png)")
    p("")
    p("| | |")
    p("| --- | --- |")
    p("| command | `%s` |" % a.command)
    p("| date | %s, %d CPUs, %s |" % (date, res["machine"]["cpus"], "PASS" if not fails else "FAIL"))
    p("| tree | %s |" % a.tree)
    p("| daemon | `%s` |" % a.daemon)
    p("| load | `%s` |" % a.load)
    p("| duration | %.0f s of load (warm-up for the checks: first %d s), then a drain past the last TTL |" % (res["elapsed_s"], a.warmup))
    p("| requests | %d (%.0f/s): find_dest %d (%.1f%% hits), find_endp %d (%.1f%% hits), save_dest %d, save_endp %d |" % (
        res["requests"], res["rate"], types["find_dest"]["count"], 100 * types["find_dest"].get("hit_rate", 0),
        types["find_endp"]["count"], 100 * types["find_endp"].get("hit_rate", 0),
        types["save_dest"]["count"], types["save_endp"]["count"]))
    p("| latency | p50 %.0f µs, p99 %.0f µs, max %.1f ms |" % (res["all"]["p50_us"], res["all"]["p99_us"], res["all"]["max_us"] / 1000))
    p("| errors | %d (I/O, timeouts, reconnects, wrong/unknown/duplicate descriptors, failed saves, leaks); scached warnings: %d |"
      % (res["errors"]["total"], len(warnings)))
    p("| descriptors checked | %d received, each identified by inode; %d verified by writing through |" % (res["descriptors_received"], res["descriptors_verified"]))
    if acct:
        p("| accounting | saved %d = handed back %d + closed by scached %d (expiry %d, eviction %d; %d of them seen only at the final check) + unaccounted %d |" % (
            acct["saved"], acct["handed_back"], acct["closed_by_server"], acct["closed_by_server"] - evicted, evicted,
            acct["closed_at_final_check"], acct["unaccounted"]))
    p("| generator | descriptors before %d, after %d (leaked %d) |" % (res["generator"]["fds_before"], res["generator"]["fds_after"], res["generator"]["fds_leaked"]))
    p("| expiry lag | %d sessions seen closed after their deadline: p50 %.0f ms, max %.0f ms (50 ms sweep) |" % (
        res["expiry_lag"]["count"], res["expiry_lag"]["p50_us"] / 1000, res["expiry_lag"]["max_us"] / 1000))
    if steady:
        p("| first vs last sample after warm-up | descriptors %d → %d, RSS %d → %d KiB, threads %d → %d, goroutines %d → %d (peak sessions %s → %s) |" % (
            first["fds"], last["fds"], first["rss_kib"], last["rss_kib"], first["threads"], last["threads"],
            first["goroutines"], last["goroutines"], first["peak_sessions"], last["peak_sessions"]))
    if before and after:
        p("| scached idle | %d descriptors, %d KiB before the load; %d descriptors, %d KiB after the drain |" % (
            before["fds"], before["rss_kib"], after["fds"], after["rss_kib"]))
    p("")
    p("## Checks")
    p("")
    p("After the warm-up, the mean of the last third of the samples against the first third:")
    p("")
    p("| series | first third | last third | limit | |")
    p("| --- | ---: | ---: | ---: | --- |")
    for key, m0, m1, limit, ok in trends:
        p("| %s | %.1f | %.1f | %.1f | %s |" % (key, m0, m1, limit, "flat" if ok else "RISING"))
    p("")
    p("Limits: descriptors +10% + 2×clients + 8, RSS +10% + 2 MiB, threads +2, goroutines +2. "
      "Ceilings at every sample: descriptors ≤ cached sessions (SCACHE_PEAK_SESSIONS of the "
      "sample's interval and the one before) + 2×clients + 16; goroutines between clients and "
      "clients + 12. Also: no generator error, no scached warning, no generator descriptor "
      "leaked, every saved descriptor accounted for, scached back to its idle descriptor count; "
      "at the shutdown, every descriptor held at SIGTERM closed by it, no warning, exit status 0.")
    p("")
    if fails:
        p("Failed:")
        p("")
        for f in fails:
            p("- " + f)
        p("")
    if term is not None:
        tt = term["types"]
        p("## Shutdown")
        p("")
        p("Every cached descriptor is also closed when scached stops: a second scached, "
          "with `connection_cache_ttl_limit=1h` so that nothing expires, takes the same load "
          "for %.0f s; then the generator sends it SIGTERM (`-term`) and polls the kept end "
          "of every session it still holds." % term["elapsed_s"])
        p("")
        p("| | |")
        p("| --- | --- |")
        p("| load | `%s` |" % a.term_load)
        p("| requests | %d: find_dest %d (%.1f%% hits), find_endp %d, save_dest %d, save_endp %d; errors %d |" % (
            term["requests"], tt["find_dest"]["count"], 100 * tt["find_dest"].get("hit_rate", 0),
            tt["find_endp"]["count"], tt["save_dest"]["count"], tt["save_endp"]["count"], term["errors"]["total"]))
        p("| at SIGTERM | %d sessions cached (%d descriptors in scached before the load) |" % (
            tacct.get("held_at_term", 0), term["server"]["fds_before"]))
        p("| accounting | saved %d = handed back %d + closed by scached %d (all by the shutdown: %d; %d of them seen only at the final check) + unaccounted %d |" % (
            tacct.get("saved", 0), tacct.get("handed_back", 0), tacct.get("closed_by_server", 0),
            tacct.get("closed_at_shutdown", 0), tacct.get("closed_at_final_check", 0), tacct.get("unaccounted", 0)))
        p("| generator | descriptors before %d, after %d (leaked %d) |" % (
            term["generator"]["fds_before"], term["generator"]["fds_after"], term["generator"]["fds_leaked"]))
        p("| scached | exit status %d, warnings %d |" % (a.term_exit, len(term_warnings)))
        p("")
    p("## How it is measured")
    p("")
    p("- Descriptors: entries of `/proc/PID/fd`; RSS: `VmRSS`; threads: `Threads` of "
      "`/proc/PID/status`, sampled every 5 s on a fixed grid.")
    p("- Goroutines: scached logs them itself, as the journal field `SCACHED_GOROUTINES` "
      "(`runtime.NumGoroutine()` when the record is made) of every statistics record; "
      "`connection_cache_status_update_time=5s` makes one per sample. Postfix's message "
      "text is unchanged; with `-v` a debug record `statistics (scached): goroutines=N` "
      "shows the figure on stderr too. Each sample takes the figure of the nearest "
      "record made while the load ran (at most 5 s away).")
    p("- Expiry churn: `connection_cache_ttl_limit=2s`, saves with ttl 2 s, and 20000 "
      "destinations drawn with zipf exponent 0.6 (endpoint = destination mod 5000): the "
      "popular ones are found again within the TTL, the long tail expires.")
    p("- Accounting (`scache-bench -account`): the generator keeps the peer end of every "
      "socketpair it saves. Each save ends when a find hands the descriptor back "
      "(identified by inode) or when the kept end sees POLLHUP/POLLRDHUP (scached closed "
      "the last copy: expiry, or eviction, which scached would have warned about). After "
      "the load it waits 3 s past the last deadline, then polls every kept end still "
      "registered; one that is still open is unaccounted.")
    p("")
    p("## Series")
    p("")
    p("`t_s` counts from the start of the load; phase `before`/`after` are scached idle; "
      "`drain` is after the load, while the last sessions expire.")
    p("")
    p("| t (s) | phase | descriptors | RSS (KiB) | threads | goroutines | peak sessions |")
    p("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        p("| %.1f | %s | %d | %d | %d | %s | %s |" % (r["t_s"], r["phase"], r["fds"], r["rss_kib"], r["threads"], r["goroutines"], r["peak_sessions"]))
    with open(os.path.join(a.out, "soak.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def human(s):
    return "%d minutes" % (s // 60) if s % 60 == 0 and s >= 120 else "%d s" % s


if __name__ == "__main__":
    sys.exit(main())
