#!/usr/bin/env bash
# Big artifacts, small changes (issue #21): a 100 MB artifact (bench/make-artifact.py with 100
# MiB of incompressible vendor/ files) redeployed by cargo ship with `delta = true` after one
# 10 KB file changed, beside the floor: the whole artifact on each host's ssh stdin, every
# host at once (one connection, one session, `cat > /dev/null`: the host writes nothing, so
# the floor is if anything too fast). Prints, for each fleet size, the floor's wall time,
# cargo ship's first deploy (every file sent) and its redeploy (wall time and bytes sent
# per host, from the ssh transport's count), a redeploy of the same artifact (nothing sent:
# cargo ship's own cost) and the time `plan` takes to pack the directory, with ratios to the
# floor, all from one run, and cargo ship's peak resident memory in each.
#
#   bench/delta.sh [HOSTS...]      default: 10 30; needs root and openssh-server
#   CARGO_SHIP=path                that binary, not this tree's release build
#   UPLINK=1gbit                   the deploying machine's uplink shaped to that rate (tc htb
#                                  on lo, every packet to the hosts' port 2222 in one class;
#                                  removed at the end): on loopback a 100 MB upload costs
#                                  only the ssh encryption on this machine's cores, which a
#                                  real network's bandwidth does not; the floor and cargo
#                                  ship both go through it
#
# Hosts come from ../shared/bench/testbed.sh on TESTBED_NET (default 127.0.77), named
# TESTBED_PREFIX1.. (default d1..), each with a 400 MB tmpfs at /srv; stopped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
testbed=${TESTBED_SH:-$root/../shared/bench/testbed.sh}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 30)
max=0
for n in "${sizes[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
cargo build --release --offline --locked -q -p cargo-ship-deploy --manifest-path "$root/Cargo.toml"
ship=${CARGO_SHIP:-$root/target/release/cargo-ship}
export TESTBED_NET=${TESTBED_NET:-127.0.77} TESTBED_PREFIX=${TESTBED_PREFIX:-d}
tb=$(mktemp -d /tmp/ship-delta.XXXXXX)
"$testbed" up "$max" "$tb" 400m >/dev/null
# Stopped by the pids hosts.tsv lists (testbed.sh down stops at the first listener that has
# no connection left: its `pkill -P` fails under `set -e`).
stop() {
  [ -z "${UPLINK:-}" ] || tc qdisc del dev lo root 2>/dev/null || true
  "$testbed" down "$tb" >/dev/null 2>&1 || true
  cut -f4 "$tb/hosts.tsv" 2>/dev/null | while read -r p; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tb"
}
trap stop EXIT

if [ -n "${UPLINK:-}" ]; then
  # lo's packets are up to 64 KiB: a burst of a few of them, or the rate is not met
  tc qdisc add dev lo root handle 1: htb default 10 r2q 1000
  tc class add dev lo parent 1: classid 1:10 htb rate 100gbit quantum 200000
  tc class add dev lo parent 1: classid 1:20 htb rate "$UPLINK" ceil "$UPLINK" burst 256k cburst 256k quantum 200000
  tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport 2222 0xffff flowid 1:20
  echo "uplink: every packet to the hosts' sshd shaped to $UPLINK"
fi
python3 "$root/bench/make-artifact.py" "$tb/app.tar.gz" 1.0.0 100
mkdir -p "$tb/project/app"
tar -xzf "$tb/app.tar.gz" -C "$tb/project/app"
full=$(stat -c %s "$tb/app.tar.gz")

now() { date +%s.%N; }
# ten KiB of fresh bytes in one file of the app, as hex text
change() { head -c 5120 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 10240 > "$tb/project/app/app/views_000.py"; }
sent() { python3 -c 'import json,sys; h=json.loads(sys.stdin.read().splitlines()[-1])["hosts"]; print(sum(x["sent_bytes"] for x in h)/len(h))'; }
# The command's peak resident memory (its largest process: cargo ship itself) goes to $tb/peak.
peak() {
  python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))
sys.exit(rc)' "$tb/peak" "$@"
}
apply() { (cd "$tb/project" && peak "$ship" ship apply bench --release-id "$1" --format json) > "$tb/out.json" 2> "$tb/err.txt" || { cat "$tb/err.txt" >&2; tail -3 "$tb/out.json" >&2; exit 1; }; }

printf 'artifact: %s files, %.1f MB (.tar.gz)\n' "$(tar -tzf "$tb/app.tar.gz" | wc -l)" "$(echo "$full / 1000000" | bc -l)"
printf '%-6s %-28s %9s %8s %16s %9s %8s\n' hosts run wall ratio "sent/host" "of full" "peak MB"
id=20261201000000
for n in "${sizes[@]}"; do
  hosts=$(head -n "$n" "$tb/hosts.tsv" | cut -f1)
  t0=$(now)
  for h in $hosts; do ssh -F "$tb/ssh_config" "$h" 'cat > /dev/null' < "$tb/app.tar.gz" & done
  wait
  floor=$(echo "$(now) - $t0" | bc -l)
  printf '%-6s %-28s %8.2fs %8s %16s %9s\n' "$n" "floor (ssh cat, all hosts)" "$floor" "1.00x" "$full" "100%"
  cat > "$tb/project/Ship.toml" <<TOML
[default]
app = "bench"
deploy_to = "/srv/app$n"
source = { dir = "app" }
ssh_config = "$tb/ssh_config"
keep_releases = 2
parallel = $n
delta = true

[bench]
hosts = [$(echo "$hosts" | sed 's/.*/"&"/' | paste -sd, -)]
TOML
  for run in "first deploy (every file)" "redeploy, one 10 KB change" "redeploy, nothing changed"; do
    [ "$run" = "redeploy, nothing changed" ] || change
    id=$((id + 1))
    t0=$(now)
    apply "$id"
    wall=$(echo "$(now) - $t0" | bc -l)
    bytes=$(sent < "$tb/out.json")
    printf '%-6s %-28s %8.2fs %7.2fx %16.0f %8.2f%% %8s\n' "$n" "$run" "$wall" \
      "$(echo "$wall / $floor" | bc -l)" "$bytes" "$(echo "100 * $bytes / $full" | bc -l)" "$(cat "$tb/peak")"
  done
  # What packing the 100 MB directory alone costs (apply does it too): no host is reached.
  t0=$(now)
  (cd "$tb/project" && "$ship" ship plan bench > /dev/null 2>&1)
  printf '%-6s %-28s %8.2fs\n' "$n" "of which packing (plan)" "$(echo "$(now) - $t0" | bc -l)"
done
