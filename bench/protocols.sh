#!/usr/bin/env bash
# HTTP/1.1 vs HTTP/2 vs HTTP/3 on one edge and one cache: 2-4 MB segments, all cached
# (warmed first), fetched for DURATION seconds per protocol over TLS with `strata fetch-bench`.
# The edge runs with one worker thread pinned to cpu 0, the client on cpu 1; the edge's CPU is
# read from /proc before and after each run. Loopback only. Usage: bench/protocols.sh [BIN]
set -euo pipefail
BIN=${1:-target/release/strata}
DURATION=${DURATION:-10}
DIR=$(mktemp -d /tmp/strata-protocols.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/content/v" "$DIR/certs"
for i in 1 2 3 4; do head -c $(( (1 + i) * 1000000 )) /dev/urandom > "$DIR/content/v/seg-$i.m4s"; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$DIR/certs/key.pem" -out "$DIR/certs/cert.pem" 2>/dev/null
taskset -c 1 "$BIN" origin --root "$DIR/content" --listen 127.0.0.1:18280 --admin-listen 127.0.0.1:18290 --log warn &
taskset -c 0 "$BIN" edge --listen 127.0.0.1:18281 --admin-listen 127.0.0.1:18291 --upstream http://127.0.0.1:18280 \
  --cache-dir "$DIR/cache" --memory-mb 256 --disk-mb 0 --threads 1 --log warn \
  --tls-listen 127.0.0.1:18282 --tls-cert "$DIR/certs/cert.pem" --tls-key "$DIR/certs/key.pem" &
EDGE=$!
sleep 2
URLS=(); for i in 1 2 3 4; do URLS+=("https://127.0.0.1:18282/v/seg-$i.m4s"); done
for u in "${URLS[@]}"; do curl -sk -o /dev/null "$u"; done
ticks() { awk '{print $14 + $15}' "/proc/$EDGE/stat"; }
HZ=$(getconf CLK_TCK)
echo "protocol | conns x streams | req/s | Gbit/s | p50 ms | p99 ms | errors | edge cpu % | edge core-s per Gbit"
for spec in "h1 16 1" "h2 4 4" "h3 4 4"; do
  set -- $spec
  before=$(ticks)
  out=$(taskset -c 1 "$BIN" fetch-bench --protocol "$1" --connections "$2" --streams "$3" \
        --duration "$DURATION" --insecure --json "${URLS[@]}")
  after=$(ticks)
  python3 - "$out" "$before" "$after" "$HZ" "$DURATION" "$1" "$2x$3" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); before, after, hz, dur = map(float, sys.argv[2:6])
cpu = (after - before) / hz / r["seconds"]
print(f'{sys.argv[6]:<8} | {sys.argv[7]:<15} | {r["requests_per_sec"]:.0f} | {r["gbit_per_sec"]:.2f} | '
      f'{r["p50_ms"]:.1f} | {r["p99_ms"]:.1f} | {r["errors"]} | {cpu*100:.0f} | {cpu / max(r["gbit_per_sec"], 1e-9):.3f}')
PY
done
