#!/usr/bin/env bash
# Byte ranges into one large object, as a player of a single-file rendition sends them:
# RANGES requests of 2 MB at random offsets (the same seeded offsets each run) on a cold edge,
# with slicing (`--slice-kb 4096`) and without (`--slice-kb 0`: a range miss fetches the whole
# object). Prints, per mode: time to first byte and to the last byte (p50 / max, ms), the
# bytes the origin sent, and the edge's CPU seconds. Origin and edge on loopback, edge on cpu
# 0 with one thread, curl on cpu 1. Usage: bench/slices.sh [BIN]
set -euo pipefail
BIN=${1:-target/release/strata}
OBJ_MB=${OBJ_MB:-1024}
RANGES=${RANGES:-20}
DIR=$(mktemp -d /tmp/strata-slices.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/content/v"
head -c $((OBJ_MB << 20)) /dev/urandom > "$DIR/content/v/movie.mp4"
SIZE=$((OBJ_MB << 20))
OFFSETS=$(python3 -c "
import random; r = random.Random(7)
print(' '.join(str(r.randrange(0, $SIZE - 2_000_000)) for _ in range($RANGES)))")
HZ=$(getconf CLK_TCK)
echo "mode | ttfb p50 ms | ttfb max ms | done p50 ms | done max ms | origin MB sent | edge cpu s"
for slice in 4096 0; do
  rm -rf "$DIR/cache"
  taskset -c 1 "$BIN" origin --root "$DIR/content" --listen 127.0.0.1:18380 --admin-listen 127.0.0.1:18390 --log warn &
  ORIGIN=$!
  taskset -c 0 "$BIN" edge --listen 127.0.0.1:18381 --admin-listen 127.0.0.1:18391 --upstream http://127.0.0.1:18380 \
    --cache-dir "$DIR/cache" --memory-mb 256 --disk-mb $((OBJ_MB * 2)) --threads 1 --log warn --slice-kb "$slice" &
  EDGE=$!
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18391/metrics && break; sleep 0.2; done
  before=$(awk '{print $14 + $15}' "/proc/$EDGE/stat")
  times=$DIR/times-$slice
  : > "$times"
  for off in $OFFSETS; do
    taskset -c 1 curl -sf -o /dev/null -r "$off-$((off + 1999999))" \
      -w '%{time_starttransfer} %{time_total}\n' http://127.0.0.1:18381/v/movie.mp4 >> "$times"
  done
  # A whole-object fill goes on after the last range was served: let it finish.
  sleep 3
  after=$(awk '{print $14 + $15}' "/proc/$EDGE/stat")
  sent=$(curl -s http://127.0.0.1:18390/metrics | awk '/^strata_origin_response_bytes_total/ {print $2}')
  python3 - "$times" "$slice" "$sent" "$before" "$after" "$HZ" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
ttfb = sorted(r[0] * 1000 for r in rows); done = sorted(r[1] * 1000 for r in rows)
mode = f"slices {sys.argv[2]} KiB" if sys.argv[2] != "0" else "whole object"
cpu = (float(sys.argv[5]) - float(sys.argv[4])) / float(sys.argv[6])
print(f"{mode} | {ttfb[len(ttfb)//2]:.1f} | {ttfb[-1]:.1f} | {done[len(done)//2]:.1f} | {done[-1]:.1f} | "
      f"{float(sys.argv[3]) / 1e6:.0f} | {cpu:.2f}")
PY
  kill "$EDGE" "$ORIGIN"; wait "$EDGE" "$ORIGIN" 2>/dev/null || true
done
