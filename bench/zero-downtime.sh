#!/usr/bin/env bash
# Zero failed requests, measured: the end-to-end test tests/tests/zero_downtime.rs with
# longer windows. On 3 local sshd hosts (tests/src/fleet.rs: needs root, openssh-server,
# supervisor, gunicorn, curl, node, and PyPI once for circus), a steady load of ZD_RATE
# requests a second (default 150), one HTTP/1.1 connection each, straight to the hosts
# (no load balancer to retry a failure away), runs ZD_SETTLE seconds (default 15) before
# and after each of: a deploy, a deploy of an unhealthy release (reverted), a rollback
# (supervisord + gunicorn), and a deploy and a rollback (circus + node). Each window prints
# its requests, failures (bad status, refused or failed connections, cut answers), p99 and
# max latency, and the versions answered.
#
#   bench/zero-downtime.sh                                  # the README's recipes
#   ZD_SUPERVISOR_RESTART=restart bench/zero-downtime.sh    # `supervisorctl restart` instead
#   ZD_SUPERVISOR_RESTART=hup-no-chdir bench/zero-downtime.sh   # HUP, gunicorn without --chdir
#   ZD_NODE=bind bench/zero-downtime.sh                     # node binding its port, restarted
#
# The test fails (exit 101) when a request failed or a version did not switch within 3 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZD_RATE="${ZD_RATE:-150}" ZD_SETTLE="${ZD_SETTLE:-15}"
echo "zero-downtime: $(date -u +%Y-%m-%dT%H:%MZ), ${ZD_RATE} requests/s over 3 hosts, ${ZD_SETTLE}s windows," \
  "supervisord restart=${ZD_SUPERVISOR_RESTART:-hup}, node=${ZD_NODE:-socket}"
cargo test --locked -p ship-tests --test zero_downtime -- --nocapture --test-threads 1 \
  supervisord_gunicorn circus_node 2>&1 |
  grep -E '^(supervisord|circus)|^  |panicked|^test |test result'
