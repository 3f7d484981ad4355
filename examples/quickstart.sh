#!/usr/bin/env bash
# The README's quickstart: start a local fleet of three SSH hosts, plan the example app's
# deploy to it, apply the plan, deploy a change, roll it back, and stop the fleet.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/webxample"
command -v cargo-ship >/dev/null || { echo "quickstart: install cargo ship first: cargo install --path cargo-ship --locked" >&2; exit 1; }

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

"$here/fleet.sh" up .fleet web1 web2 worker1
trap '"$here/fleet.sh" down .fleet; rm -rf target' EXIT
# What never ships in an artifact: each host's own settings, in shared/.
for h in web1 web2 worker1; do
  "$here/fleet.sh" sh .fleet "$h" 'mkdir -p /srv/webxample/shared/config && echo "SECRET_KEY=local-$(hostname)" > /srv/webxample/shared/config/settings.env'
done

step cargo ship check production
step cargo ship plan production
step cargo ship apply
step cargo ship run production -- 'cat index.html | head -3; cat restart.txt'
sed -i.orig 's/Hello from webxample/Hello again from webxample/' app/index.html
trap 'mv app/index.html.orig app/index.html; "$here/fleet.sh" down .fleet; rm -rf target' EXIT
sleep 1 # a new timestamp for the new release
step cargo ship apply production
step cargo ship releases production
step cargo ship rollback production
step cargo ship run production --roles web -- 'grep Hello index.html'
