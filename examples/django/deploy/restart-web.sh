# Reloads gunicorn under supervisord without dropping a request. Runs after the switch and
# after a rollback (`after = "switch"`), in the release now live. See the README of cargo
# ship, "Restarting without dropping requests".
set -eu
program=mysite-web
# 1. Preflight: this release on a spare port must answer before users get it. If it does
#    not, the task fails, the deploy is reverted, and the live gunicorn was never touched.
pidfile="$SHIP_DEPLOY_TO/shared/preflight.pid"
venv/bin/gunicorn --chdir "$PWD" --bind 127.0.0.1:8001 --workers 1 --pid "$pidfile" \
  --daemon --log-file "$SHIP_DEPLOY_TO/shared/log/preflight.log" mysite.wsgi
ok=1
for _ in $(seq 50); do
  if curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8001/; then ok=0; break; fi
  sleep 0.2
done
for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
kill "$(cat "$pidfile")" 2>/dev/null || true
[ $ok = 0 ] || { echo "release $SHIP_RELEASE does not answer on 127.0.0.1:8001" >&2; exit 1; }
# 2. Same virtualenv as the running master: HUP. gunicorn starts new workers in the
#    release `current` points to and lets the old ones finish their requests.
#    A new virtualenv (the requirements changed): the master's own Python must change, so
#    a full restart, which refuses connections for about a second.
venv=$(readlink -f venv)
if [ "$venv" = "$(cat "$SHIP_DEPLOY_TO/shared/gunicorn.venv" 2>/dev/null)" ] &&
  sudo supervisorctl status "$program" | grep -q RUNNING; then
  sudo supervisorctl signal HUP "$program"
else
  sudo supervisorctl restart "$program"
fi
echo "$venv" > "$SHIP_DEPLOY_TO/shared/gunicorn.venv"
