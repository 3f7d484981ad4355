#!/usr/bin/env bash
# Planning and the deploy machine at fleet scale: for each size (default 1,000, 3,000 and
# 10,000 hosts; three roles, 12 tasks), one process (tests/tests/scale.rs `scale_figures`,
# release build) plans the stage, renders its text and JSON, reads the JSON back, and
# applies the plan with the machine over in-memory hosts that do every step right. It
# prints the time of each part and the process's peak RSS, then the growth per host.
#
#   bench/plan-10k.sh [SIZES...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 3000 10000)
bin=$(cargo test --release --offline --locked -q -p ship-tests --test scale --no-run \
  --manifest-path "$root/Cargo.toml" --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "scale":
        print(m["executable"])')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for n in "${sizes[@]}"; do
  SHIP_SCALE_HOSTS=$n "$bin" --ignored --exact scale_figures --nocapture 2>/dev/null | grep '^scale:' | tee -a "$out"
done
python3 - "$out" <<'PY'
import sys
rows = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(sys.argv[1])]
print(f"\n{'hosts':>6} {'plan ms':>8} {'text ms':>8} {'json ms':>8} {'apply ms':>9} {'peak MB':>8} "
      f"{'plan µs/host':>12} {'apply µs/host':>13} {'KB/host':>8} {'text lines':>10}")
for r in rows:
    n = int(r["hosts"]); rss = int(r["peak_rss_kb"])
    print(f"{n:>6} {float(r['plan_ms']):>8.0f} {float(r['text_ms']):>8.1f} {float(r['json_ms']):>8.0f} "
          f"{float(r['apply_ms']):>9.0f} {rss / 1024:>8.0f} {float(r['plan_ms']) * 1e3 / n:>12.0f} "
          f"{float(r['apply_ms']) * 1e3 / n:>13.0f} {rss / n:>8.0f} {r['text_lines']:>10}")
PY
