#!/usr/bin/env bash
# cargo ship at hundreds of hosts, beside the plain-ssh floor (../shared/bench/peers/floor:
# one connection and one session per host, the tarball on stdin), in one run: one testbed
# fleet of the largest size, and for each size N the first N of its hosts. Rounds alternate
# floor, cargo ship, floor, cargo ship ...; cargo ship deploys a new artifact every run
# (bench/reference-deploy.sh with UPLOAD=1, `parallel` = N, as the floor starts every host
# at once). Each run is measured by bench/measure.py: wall time, CPU (user + sys of cargo
# ship or the floor's shell and every ssh process under it) and the whole machine's busy CPU
# seconds (`all CPU`: the hosts' sshd, shells and tar included, as they share it) in timed
# rounds, not sampled; the peak PSS of those processes and the most file descriptors one
# of them held in one more round of each tool, sampled every 0.1 s.
#
#   bench/scale.sh [SIZES...]         default: 10 100 200 300
#   ROUNDS=3                          runs of each tool per size (medians are printed)
#   ARTIFACT_MB=100                   add an incompressible file of that many MB to the
#                                     artifact (the memory-vs-artifact-size check)
#   TESTBED_NET=127.77 TESTBED_PREFIX=z   the fleet's addresses (127.77.0.1, ...: a /16,
#                                     since a fleet may pass 254 hosts) and names
#   TMPFS=512m                        each host's /srv
#   KEEP=1                            keep the raw lines in bench/scale-<date>.txt
# Needs root, openssh-server, python3, and `ulimit -n` above 4 per host plus 100 (see the
# README). The testbed's sshd processes run on this machine's cores too, so the figure is
# the ratio to the floor measured in the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$root/../shared/bench" && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 200 300)
rounds=${ROUNDS:-3}
max=0; for n in "${sizes[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
export TESTBED_NET=${TESTBED_NET:-127.77} TESTBED_PREFIX=${TESTBED_PREFIX:-z}

cargo build --release --offline --locked -q -p cargo-ship-deploy --manifest-path "$root/Cargo.toml"
export CARGO_SHIP=$root/target/release/cargo-ship
tb=$(mktemp -d /tmp/ship-scale.XXXXXX)
# testbed.sh down stops at the first listener without a connection (pkill -P finds none
# and set -e ends it): stop each listener started here, and its children, one by one.
cleanup() {
  for p in "$tb"/sshd_h*.pid; do
    [ -f "$p" ] || continue
    pkill -TERM -P "$(cat "$p")" 2>/dev/null || true
    kill "$(cat "$p")" 2>/dev/null || true
  done
  rm -rf "$tb"
}
trap cleanup EXIT
"$shared/testbed.sh" up "$max" "$tb" "${TMPFS:-512m}" >/dev/null
# A /16 net: testbed.sh writes 127.77.300, which ssh reads as 127.77.1.44 and looks up in
# known_hosts by that form: write the keys under it too.
key=$(cut -d' ' -f1,2 "$tb/host_ed25519.pub")
while IFS=$'\t' read -r _ ip _ _; do
  canon=$(python3 -c 'import socket,sys; print(socket.inet_ntoa(socket.inet_aton(sys.argv[1])))' "$ip")
  echo "[$canon]:2222 $key" >> "$tb/known_hosts"
done < "$tb/hosts.tsv"

# Each host's own ~/.bashrc (its private copy-on-write /root) calls `pyenv init - --no-rehash`:
# `pyenv rehash` takes a lock file in ~/.pyenv/shims, and this machine's /root, the hosts'
# lower layer, is used by other runs meanwhile, whose lock a host's overlay may go on seeing
# (a session then waits 60 s, whatever the tool). The real /root is not touched.
[ "${TESTBED_SHARED_HOME:-0}" = 1 ] || for name in $(cut -f1 "$tb/hosts.tsv"); do
  "$shared/testbed.sh" sh "$tb" "$name" \
    "sed -i 's/eval \"\$(pyenv init -)\"/eval \"\$(pyenv init - --no-rehash)\"/' /root/.bashrc" || true
done

python3 "$root/bench/make-artifact.py" "$tb/app.tar.gz"
if [ -n "${ARTIFACT_MB:-}" ]; then
  mkdir "$tb/big" && tar -xzf "$tb/app.tar.gz" -C "$tb/big"
  head -c "$((ARTIFACT_MB << 20))" /dev/urandom > "$tb/big/blob.bin"
  tar -czf "$tb/app.tar.gz" -C "$tb/big" . && rm -rf "$tb/big"
fi
"$shared/setup-hosts.sh" "$tb"
# setup-hosts.sh starts every host's ssh at once and checks none: under load (300 logins on
# 2 cores) some fail, and the floor's script then fails on those hosts (its `test -f`, without
# a word). Each host is checked, and set up again where it is not, 20 at a time.
cut -f1 "$tb/hosts.tsv" | xargs -P 20 -I{} sh -c '
  ssh -F "$1/ssh_config" "$2" "test -f /srv/app/shared/config/settings.py" 2>/dev/null ||
  ssh -F "$1/ssh_config" "$2" "mkdir -p /srv/app/shared/config /srv/app/shared/log && echo SECRET=1 > /srv/app/shared/config/settings.py"
' sh "$tb" {}
export TESTBED=$tb ARTIFACT=$tb/app.tar.gz UPLOAD=1
floor() { "$shared/peers/floor/run.sh" "$tb" "$ARTIFACT" "$1" >/dev/null 2>>"$tb/floor.err" || { tail -5 "$tb/floor.err" >&2; return 1; }; }
ship() { BENCH_HOSTS=$1 "$root/bench/reference-deploy.sh" 2>>"$tb/ship.err" || { tail -5 "$tb/ship.err" >&2; return 1; }; }
export -f floor ship
export shared root tb

raw=$tb/raw.txt
: > "$raw"
for n in "${sizes[@]}"; do
  # a warm-up of each (the first cargo ship run also unpacks the tarball to pack it)
  bash -c "floor $n" || { echo "scale: the floor's warm-up at $n hosts failed" >&2; exit 1; }
  bash -c "ship $n" || { echo "scale: cargo ship's warm-up at $n hosts failed" >&2; exit 1; }
  # Timed rounds are not sampled (measure.py's sampler reads every process's smaps each
  # 0.1 s: hundreds of ssh masters that live the whole deploy cost it more than the floor's
  # short-lived clients, a few ms a host); one more sampled round of each gives the memory.
  for r in $(seq 1 "$rounds") mem; do
    interval=3600; [ "$r" = mem ] && interval=0.1
    for tool in floor ship; do
      sleep 1.05 # release ids are timestamps, one per second
      line=$(python3 "$root/bench/measure.py" --interval "$interval" -- bash -c "$tool $n")
      echo "$n $tool $r $line" | tee -a "$raw" >&2
    done
  done
done

echo
python3 - "$raw" "$(du -k "$ARTIFACT" | cut -f1)" <<'PY'
import statistics, sys
rows, mem, by_round = {}, {}, {}
for line in open(sys.argv[1]):
    n, tool, r, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    if d["rc"] != "0":
        print(f"{tool} at {n} hosts failed a run", file=sys.stderr)
        continue
    (mem if r == "mem" else rows).setdefault((int(n), tool), []).append({k: float(v) for k, v in d.items()})
    if r != "mem":
        by_round.setdefault((int(n), r), {})[tool] = float(d["wall"])
# Each cargo ship round against the floor's round just before it (the machine's load drifts
# over minutes; a pair is seconds apart): the median of those ratios, beside the ratio of
# the medians.
paired = lambda n: statistics.median(
    p["ship"] / p["floor"] for (m, _), p in by_round.items() if m == n and len(p) == 2)
med = lambda n, t, k: statistics.median(r[k] for r in rows[(n, t)])
# Memory and descriptors from the sampled round (older raw files have none: the timed ones).
peak = lambda n, t, k: max(r[k] for r in mem.get((n, t)) or rows[(n, t)])
print(f"artifact {int(sys.argv[2]) / 1024:.1f} MB; medians of {len(next(iter(rows.values())))} runs each")
print(f"{'hosts':>5} {'floor s':>8} {'ship s':>8} {'vs floor':>9} {'ms/host':>8} {'extra ms/host':>13} "
      f"{'PSS MB':>7} {'floor PSS':>9} {'MB/host':>8} {'CPU s':>6} {'floor CPU':>9} {'CPU ms/host':>11} {'fds':>5} "
      f"{'all CPU':>8} {'vs floor':>9} {'paired':>7}")
for n in sorted({k[0] for k in rows}):
    if (n, "floor") not in rows or (n, "ship") not in rows:
        continue
    f, s = med(n, "floor", "wall"), med(n, "ship", "wall")
    p, fp = peak(n, "ship", "pss_mb"), peak(n, "floor", "pss_mb")
    c, fc = med(n, "ship", "cpu"), med(n, "floor", "cpu")
    fds = peak(n, "ship", "fds")
    a, fa = med(n, "ship", "all_cpu"), med(n, "floor", "all_cpu")
    print(f"{n:>5} {f:>8.2f} {s:>8.2f} {s / f:>8.2f}x {s / n * 1e3:>8.1f} {(s - f) / n * 1e3:>13.1f} "
          f"{p:>7.1f} {fp:>9.1f} {p / n:>8.2f} {c:>6.2f} {fc:>9.2f} {c / n * 1e3:>11.1f} {int(fds):>5} "
          f"{a:>8.1f} {a / fa:>8.2f}x {paired(n):>6.2f}x")
PY
if [ -n "${KEEP:-}" ]; then
  # A second run the same day is kept beside the first (-2, -3, ...), not over it.
  base="$root/bench/scale-$(date -u +%Y-%m-%d)${ARTIFACT_MB:+-${ARTIFACT_MB}mb}"
  out=$base.txt; i=1
  while [ -e "$out" ]; do i=$((i + 1)); out=$base-$i.txt; done
  cp "$raw" "$out" && echo "kept in $out" >&2
fi
