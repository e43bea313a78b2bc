#!/usr/bin/env python3
"""Synthetic viewers (`strata loadgen`) against Strata's edge and against nginx, Varnish and
Apache Traffic Server set up as caches in front of one origin, side by side.

The caches and the origin come from ../shared/bench-anchors (its scripts start
and stop them; its Meter measures CPU); Strata's edge plugs in as its `custom` cache. Every
repetition starts every cache cold, then runs each workload on each cache in turn (the
order rotates between repetitions), with the same loadgen arguments and the same seeded
Zipf title draws. Caches are pinned to cpu 0, loadgen and the origin to cpu 1 (`--no-pin` lets them
float). Prints one table per workload, medians over the repetitions, with Strata's ratio to
each peer, and writes every measurement as a JSON line.

Usage: bench/viewers.py [--caches strata,nginx,varnish,ats] [--reps 3] [--no-install] [--no-pin]
       bench/viewers.py --table results.jsonl      # re-print the table of a run

Environment: STRATA_BIN (target/release/strata), STRATA_EDGE_ARGS (added to `strata edge`,
for example `--disk-admission 16`), ANCHORS (../shared/bench-anchors),
CATALOG_DIR (/tmp/strata-viewers-catalog, made by `strata synth-catalog` if absent),
VIEWERS (120), ARRIVAL_PER_S (6), SESSION_S (30), DURATION_S (40), LINK_KBPS (8000),
ZIPF_ALPHA (0.9), FLASH_VIEWERS (120), FLASH_SHARE (0.8), CACHE_DISK_MB (128),
CACHE_MEM_MB (32), RESULTS_DIR, RUN_DIR.
"""
import argparse, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ANCHORS = os.path.abspath(os.environ.get("ANCHORS", os.path.join(REPO, "..", "shared", "bench-anchors")))
os.environ.setdefault("RUN_DIR", "/tmp/bench-run")
os.environ.setdefault("CACHE_DISK_MB", "128")
os.environ.setdefault("CACHE_MEM_MB", "32")
# Our synthetic catalog (valid HLS/DASH, segments sized like a 360p/720p/1080p ladder), which
# the harness's origin serves instead of its own (whose RESOLUTION=360p is not valid HLS).
os.environ.setdefault("CATALOG_DIR", "/tmp/strata-viewers-catalog")
sys.path.insert(0, os.path.join(ANCHORS, "lib"))
import bench as anchors  # noqa: E402  (the harness's Meter and origin-log readers)

STRATA = os.path.abspath(os.environ.get("STRATA_BIN", os.path.join(REPO, "target", "release", "strata")))
STRATA_ADMIN = "127.0.0.1:18194"
# name shown -> (anchors' cache script, port)
CACHES = {"strata": ("custom", 18184), "nginx": ("nginx", 18181), "varnish": ("varnish", 18182), "ats": ("ats", 18183)}
ENV = lambda k, d: type(d)(os.environ.get(k, d))  # noqa: E731


def workloads():
    """name -> loadgen arguments (titles appended per cache). The catalog's last title is
    kept out of the Zipf set so that the flash crowd starts on a title no cache holds."""
    common = ["--link-kbps", str(ENV("LINK_KBPS", 8000)), "--zipf-alpha", str(ENV("ZIPF_ALPHA", 0.9)), "--seed", "1"]
    return {
        "vod": common + ["--viewers", str(ENV("VIEWERS", 120)), "--arrival-per-s", str(ENV("ARRIVAL_PER_S", 6.0)),
                         "--session-s", str(ENV("SESSION_S", 30)), "--duration", str(ENV("DURATION_S", 40))],
        "flash": common + ["--viewers", str(ENV("FLASH_VIEWERS", 120)), "--arrival-per-s", "10",
                           "--session-s", "20", "--duration", "25",
                           "--flash-crowd", str(ENV("FLASH_SHARE", 0.8)), "--flash-at", "1"],
    }


TITLES, TITLE_S = 8, 40  # 8 titles of 40 s: about 0.3 GB, twice the caches' budget


def make_catalog():
    d = anchors.CATALOG_DIR
    if len([t for t in os.listdir(d) if t.startswith("t")] if os.path.isdir(d) else []) != TITLES:
        subprocess.run(["rm", "-rf", d], check=True)
        subprocess.run([STRATA, "synth-catalog", "--out", d, "--titles", str(TITLES), "--duration", str(TITLE_S)],
                       check=True)
    with open(os.path.join(d, "index.txt"), "w") as f:  # the harness waits for /index.txt
        f.write("\n".join(sorted(os.listdir(d))) + "\n")


def titles():
    names = sorted(t for t in os.listdir(anchors.CATALOG_DIR) if t.startswith("t"))
    return names[:-1], names[-1]


def run_one(cache, workload, args, rep, pin):
    script, port = CACHES[cache]
    zipf, flash = titles()
    base = "http://127.0.0.1:%d" % port
    cmd = anchors.taskset("1" if pin else "") + [STRATA, "loadgen", "--json"] + args
    if workload == "flash":
        cmd += ["--flash-title", "%s/%s/master.m3u8" % (base, flash)]
    if cache == "strata":
        cmd += ["--metrics", "http://%s/metrics" % STRATA_ADMIN]
    cmd += ["%s/%s/master.m3u8" % (base, t) for t in zipf]
    anchors.log("rep %d %s %s" % (rep, workload, cache))
    off = anchors.origin_offset()
    with anchors.Meter(script) as meter:
        r = subprocess.run(cmd, text=True, capture_output=True, timeout=600)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise SystemExit("loadgen on %s printed no report (exit %d): %s" % (cache, r.returncode, r.stderr[-2000:]))
    if report["sessions"] == 0 or report["failed_sessions"] == report["sessions"]:
        raise SystemExit("every session failed on %s (%s): %s" % (cache, workload, report["errors"]))
    origin_requests, origin_bytes = anchors.origin_since(off)
    row = {"cache": cache, "workload": workload, "rep": rep, "report": report,
           "origin_requests": origin_requests, "origin_bytes": origin_bytes, **meter.res}
    row["hit_ratio"] = 1 - origin_requests / report["requests"] if report["requests"] else None
    row["offload"] = 1 - origin_bytes / report["bytes"] if report["bytes"] else None
    cpu_s = meter.res["cache_cpu_pct"] / 100 * meter.res["wall_s"]
    row["cache_cpu_ms_per_1k_requests"] = 1e6 * cpu_s / report["requests"] if report["requests"] else None
    return row


# figure -> (label, getter, format, better: "lower" / "higher")
FIGURES = [
    ("sessions", lambda r: r["report"]["sessions"], "%.0f", None),
    ("failed sessions", lambda r: r["report"]["failed_sessions"], "%.0f", "lower"),
    ("startup p50 s", lambda r: r["report"]["startup_p50_s"], "%.3f", "lower"),
    ("startup p95 s", lambda r: r["report"]["startup_p95_s"], "%.3f", "lower"),
    ("startup p99 s", lambda r: r["report"]["startup_p99_s"], "%.3f", "lower"),
    ("rebuffering ratio", lambda r: r["report"]["rebuffering_ratio"], "%.4f", "lower"),
    ("average bitrate kbit/s", lambda r: r["report"]["average_bitrate_kbps"], "%.0f", "higher"),
    ("switches per minute", lambda r: r["report"]["switches_per_minute"], "%.2f", "lower"),
    ("requests", lambda r: r["report"]["requests"], "%.0f", None),
    ("request p50 ms", lambda r: r["report"]["request_p50_ms"], "%.1f", "lower"),
    ("request p99 ms", lambda r: r["report"]["request_p99_ms"], "%.1f", "lower"),
    ("throughput Mbit/s", lambda r: r["report"]["mbit_per_sec"], "%.1f", "higher"),
    ("errors", lambda r: sum(r["report"]["errors"].values()), "%.0f", "lower"),
    ("origin requests", lambda r: r["origin_requests"], "%.0f", "lower"),
    ("hit ratio (origin log)", lambda r: r["hit_ratio"], "%.3f", "higher"),
    ("origin offload (bytes)", lambda r: r["offload"], "%.3f", "higher"),
    ("cache CPU ms per 1k requests", lambda r: r["cache_cpu_ms_per_1k_requests"], "%.0f", "lower"),
]


def print_table(rows, out=sys.stdout):
    caches = [c for c in CACHES if any(r["cache"] == c for r in rows)]
    peers = [c for c in caches if c != "strata"]
    for wl in dict.fromkeys(r["workload"] for r in rows):
        n = len({r["rep"] for r in rows if r["workload"] == wl})
        print("\n%s (median of %d rep%s)" % (wl, n, "" if n == 1 else "s"), file=out)
        head = ["figure"] + caches + (["strata/" + p for p in peers] if "strata" in caches else [])
        print("| " + " | ".join(head) + " |", file=out)
        print("|" + "---|" * len(head), file=out)
        for label, get, fmt, _ in FIGURES:
            med = {}
            for c in caches:
                vals = [get(r) for r in rows if r["workload"] == wl and r["cache"] == c and get(r) is not None]
                med[c] = statistics.median(vals) if vals else None
            cells = [label] + [fmt % med[c] if med[c] is not None else "-" for c in caches]
            if "strata" in caches:
                for p in peers:
                    a, b = med.get("strata"), med.get(p)
                    cells.append("%.2fx" % (a / b) if a is not None and b else "-")
            print("| " + " | ".join(cells) + " |", file=out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--caches", default="strata,nginx,varnish,ats")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--table", metavar="JSONL", help="re-print the table of a results file and exit")
    a = ap.parse_args()
    if a.table:
        print_table([json.loads(l) for l in open(a.table)])
        return
    caches = a.caches.split(",")
    for c in caches:
        if c not in CACHES:
            sys.exit("unknown cache %s (one of %s)" % (c, ", ".join(CACHES)))
    if not os.access(STRATA, os.X_OK):
        sys.exit("%s is not built: cargo build --release (or set STRATA_BIN)" % STRATA)
    pin = not a.no_pin
    os.environ.update(SERVER_CPUS="0" if pin else "", ORIGIN_CPUS="1" if pin else "", CLIENT_CPUS="1" if pin else "")
    os.environ["EDGE_CMD"] = (
        "exec %s edge --listen 127.0.0.1:$EDGE_PORT --admin-listen %s --upstream $ORIGIN_URL "
        "--cache-dir $CACHE_DIR --memory-mb $CACHE_MEM_MB --disk-mb $CACHE_DISK_MB --threads 1 --log warn %s"
        % (STRATA, STRATA_ADMIN, os.environ.get("STRATA_EDGE_ARGS", "")))
    results = os.environ.get("RESULTS_DIR") or "/tmp/bench-results/viewers-%s" % time.strftime("%Y%m%dT%H%M%S")
    os.makedirs(results, exist_ok=True)
    if not a.no_install:
        subprocess.run([os.path.join(ANCHORS, "install-deps.sh")], check=True)
    make_catalog()
    script = lambda c, verb: subprocess.run([os.path.join(ANCHORS, "caches", CACHES[c][0] + ".sh"), verb], check=verb == "start")  # noqa: E731
    subprocess.run([os.path.join(ANCHORS, "origin.sh"), "start"], check=True)
    rows, wls = [], workloads()
    try:
        with open(os.path.join(results, "results.jsonl"), "w") as out:
            for rep in range(1, a.reps + 1):
                for c in caches:  # every repetition starts every cache cold
                    script(c, "start")
                order = caches[(rep - 1) % len(caches):] + caches[:(rep - 1) % len(caches)]
                for wl, args in wls.items():
                    for c in order:
                        row = run_one(c, wl, args, rep, pin)
                        rows.append(row)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                for c in caches:
                    script(c, "stop")
    finally:
        for c in caches:
            script(c, "stop")
        subprocess.run([os.path.join(ANCHORS, "origin.sh"), "stop"])
    with open(os.path.join(results, "table.md"), "w") as f:
        print("machine: %d cpus, %s; caches on cpu 0, loadgen and origin on cpu 1%s; cache budget %s MB disk + %s MB RAM"
              % (os.cpu_count(), os.uname().release, "" if pin else " (not pinned)",
                 os.environ["CACHE_DISK_MB"], os.environ["CACHE_MEM_MB"]), file=f)
        print("loadgen: %s" % json.dumps(wls), file=f)
        print_table(rows, f)
    print(open(os.path.join(results, "table.md")).read())
    print("results: %s" % results)


if __name__ == "__main__":
    main()
