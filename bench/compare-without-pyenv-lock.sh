#!/usr/bin/env bash
# The floor and cargo ship side by side (../shared/bench/compare.py), with root's ~/.bashrc
# calling `pyenv init - --no-rehash` for the length of the run, then put back.
#
# Why: every SSH session, whichever tool opens it, starts root's bash, whose ~/.bashrc on
# these machines runs `pyenv init -`, which runs `pyenv rehash`: it takes a lock file in
# /root/.pyenv/shims and, when the lock is held, retries every 0.1 s. The testbed's hosts
# share /root (only /srv is theirs), so that one lock serializes the sessions of the whole
# fleet: about 0.1 s a host, whatever the tool. Separate machines each have their own home
# and their own lock. This run measures that case; every tool in it gets the same ~/.bashrc.
#
#   bench/compare-without-pyenv-lock.sh TESTBED ARTIFACT [HOSTS]     HOSTS default 10,30
set -euo pipefail
tb=${1:?usage: compare-without-pyenv-lock.sh TESTBED ARTIFACT [HOSTS]}
art=${2:?usage: compare-without-pyenv-lock.sh TESTBED ARTIFACT [HOSTS]}
hosts=${3:-10,30}
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH:-$root/../shared/bench}
rc=/root/.bashrc
grep -q 'eval "$(pyenv init -)"' "$rc" || { echo "no \`pyenv init -\` line in $rc: nothing to change" >&2; exit 1; }
cp "$rc" "$rc.cargo-ship-bench"
trap 'mv -f "$rc.cargo-ship-bench" "$rc"' EXIT
sed -i 's/eval "$(pyenv init -)"/eval "$(pyenv init - --no-rehash)"/' "$rc"
deploy=$root/bench/reference-deploy.sh
python3 "$bench/compare.py" "$tb" "$art" --hosts "$hosts" --rounds 5 --tools floor \
  --tool "cargo-ship-upload=UPLOAD=1 KEEP_CONNECTIONS= $deploy" \
  --tool "cargo-ship=KEEP_CONNECTIONS= $deploy" \
  --tool "cargo-ship-keep=KEEP_CONNECTIONS=5m $deploy"
