#!/usr/bin/env bash
# The reference deploy (../shared/bench/README.md) done by cargo ship: deploys $ARTIFACT to the
# first $BENCH_HOSTS hosts named in $TESTBED/hosts.tsv, through $TESTBED/ssh_config: unpack into
# /srv/app/releases/<timestamp>, link config/settings.py and log/ from shared/, REVISION, switch
# `current` atomically, touch restart.txt, keep 5 releases.
#
# As a tool of ../shared/bench/compare.py:
#   compare.py TB ART --hosts 10,30 --tool "cargo-ship=$PWD/bench/reference-deploy.sh"
# CARGO_SHIP names the binary (default: target/release/cargo-ship of this repository);
# KEEP_CONNECTIONS=5m keeps each host's connection open for the next run (keep_connections).
# UPLOAD=1 deploys a new artifact every run, so that every host is sent it: the tarball's
# files are unpacked once into a directory, a NONCE file changes each run, and cargo ship
# packs the directory (source = { dir }), its packing timed too. Without it, every run
# after the first deploys an artifact the hosts already have (nothing is uploaded).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ship=${CARGO_SHIP:-$root/target/release/cargo-ship}
: "${TESTBED:?}" "${ARTIFACT:?}"
n=${BENCH_HOSTS:-1000}
work=$TESTBED/cargo-ship-project
mkdir -p "$work"
hosts=$(head -n "$n" "$TESTBED/hosts.tsv" | cut -f1 | sed 's/.*/"&"/' | paste -sd, -)
count=$(head -n "$n" "$TESTBED/hosts.tsv" | wc -l)
source_line="source = { archive = \"$ARTIFACT\" }"
if [ -n "${UPLOAD:-}" ]; then
  if [ ! -f "$work/app.from" ] || [ "$(cat "$work/app.from")" != "$ARTIFACT" ]; then
    rm -rf "$work/app" && mkdir -p "$work/app" && tar -xzf "$ARTIFACT" -C "$work/app"
    echo "$ARTIFACT" > "$work/app.from"
  fi
  date +%s%N > "$work/app/NONCE"
  source_line="source = { dir = \"app\" }"
fi
keep_line=""
if [ -n "${KEEP_CONNECTIONS:-}" ]; then keep_line="keep_connections = \"$KEEP_CONNECTIONS\""; fi
cat > "$work/Ship.toml" <<TOML
[default]
app = "bench"
deploy_to = "/srv/app"
$source_line
ssh_config = "$TESTBED/ssh_config"
linked_files = ["config/settings.py"]
linked_dirs = ["log"]
keep_releases = 5
parallel = $count
$keep_line

[default.tasks.restart]
run = "touch /srv/app/restart.txt"
after = "switch"

[bench]
hosts = [$hosts]
TOML
cd "$work"
exec "$ship" apply bench >/dev/null
