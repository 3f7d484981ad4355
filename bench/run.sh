#!/usr/bin/env bash
# cargo ship's deploy benchmark: starts N local SSH hosts (examples/fleet.sh), then times the
# reference deploy (bench/reference-deploy.sh), a redeploy of the same artifact (nothing to
# upload) and a rollback, and prints wall time and SSH sessions per host for each.
#
#   bench/run.sh [HOSTS]        default 10; needs root and openssh-server
set -euo pipefail
n=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked -q -p cargo-ship-deploy --manifest-path "$root/Cargo.toml"
export CARGO_SHIP=$root/target/release/cargo-ship
tb=$(mktemp -d)
names=$(seq -f 'h%g' 1 "$n" | tr '\n' ' ')
# shellcheck disable=SC2086
"$root/examples/fleet.sh" up "$tb" $names >/dev/null
trap '"$root/examples/fleet.sh" down "$tb"; rm -rf "$tb"' EXIT
python3 "$root/bench/make-artifact.py" "$tb/app.tar.gz"
for h in $names; do
  "$root/examples/fleet.sh" sh "$tb" "$h" 'mkdir -p /srv/app/shared/config && echo SECRET=1 > /srv/app/shared/config/settings.py'
done
export TESTBED=$tb ARTIFACT=$tb/app.tar.gz BENCH_HOSTS=$n

sessions() { cat "$tb"/sshd_*.log | grep -c 'Starting session' || true; }
connections() { cat "$tb"/sshd_*.log | grep -c 'Accepted publickey' || true; }
measure() {
  local label=$1; shift
  sleep 1.05 # release ids are timestamps, one per second
  local s0 c0 t0 t1; s0=$(sessions); c0=$(connections); t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  awk -v l="$label" -v t0="$t0" -v t1="$t1" -v s="$(( $(sessions) - s0 ))" -v c="$(( $(connections) - c0 ))" -v n="$n" \
    'BEGIN { printf "%-34s %8.2f s %12.1f %14.1f\n", l, t1 - t0, c / n, s / n }'
}
printf '%-34s %10s %12s %14s\n' "cargo ship, $n hosts" "wall" "conns/host" "sessions/host"
measure "deploy (artifact uploaded)" "$root/bench/reference-deploy.sh"
measure "redeploy (artifact already there)" "$root/bench/reference-deploy.sh"
measure "rollback" sh -c "cd '$tb/cargo-ship-project' && '$CARGO_SHIP' rollback bench >/dev/null"
