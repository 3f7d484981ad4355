#!/usr/bin/env bash
# A local fleet of SSH hosts for trying cargo ship (and for its quickstart).
# Each host is an OpenSSH sshd on its own loopback address (127.0.2.N, port 2222; set
# FLEET_NET=5 for 127.0.5.N, to run two fleets at once) in its own
# mount namespace with a private tmpfs at /srv: each host has its own filesystem, as separate
# machines would. Needs root and openssh-server (apt-get install -y openssh-server).
#
#   fleet.sh up DIR NAME...     start hosts NAME... ; DIR gets keys, ssh_config, known_hosts
#   fleet.sh down DIR           stop them
#   fleet.sh sh DIR NAME CMD    run CMD inside host NAME's filesystem (no ssh)
set -euo pipefail
cmd=${1:?usage: fleet.sh up DIR NAME... | down DIR | sh DIR NAME CMD}

up() {
  local dir=$1; shift
  [ "$(id -u)" = 0 ] || { echo "fleet.sh: run as root (sshd and mount namespaces need it)" >&2; exit 1; }
  [ -x /usr/sbin/sshd ] || { echo "fleet.sh: sshd is missing: apt-get install -y openssh-server" >&2; exit 1; }
  mkdir -p "$dir" /run/sshd /srv
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519" -C cargo-ship-fleet
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519" -C cargo-ship-fleet-host
  : > "$dir/known_hosts"; : > "$dir/ssh_config"; : > "$dir/hosts.tsv"
  local i=0
  for name in "$@"; do
    i=$((i + 1))
    local ip="127.0.${FLEET_NET:-2}.$i" cfg="$dir/sshd_$name.conf"
    cat > "$cfg" <<CFG
ListenAddress $ip:2222
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/id_ed25519.pub
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxSessions 64
LogLevel VERBOSE
PidFile $dir/sshd_$name.pid
CFG
    rm -f "$dir/sshd_$name.pid"
    unshare --mount --propagation private sh -c \
      "mount -t tmpfs -o size=128m tmpfs /srv && exec /usr/sbin/sshd -f '$cfg' -E '$dir/sshd_$name.log'"
    echo "[$ip]:2222 $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >> "$dir/known_hosts"
    cat >> "$dir/ssh_config" <<SSH
Host $name
  HostName $ip
  Port 2222
  User root
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes

SSH
  done
  for name in "$@"; do
    for _ in $(seq 1 100); do [ -s "$dir/sshd_$name.pid" ] && break; sleep 0.05; done
    [ -s "$dir/sshd_$name.pid" ] || {
      echo "fleet.sh: $name did not start (is its address taken by another fleet? FLEET_NET=N picks 127.0.N.x):" >&2
      tail -3 "$dir/sshd_$name.log" >&2
      down "$dir"; exit 1; }
    printf '%s\t%s\n' "$name" "$(cat "$dir/sshd_$name.pid")" >> "$dir/hosts.tsv"
  done
  echo "fleet: $# hosts up ($*); try: ssh -F $dir/ssh_config $1 uptime"
}

down() {
  local dir=$1
  for p in "$dir"/sshd_*.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
    rm -f "$p"
  done
}

in_host() {
  local dir=$1 name=$2; shift 2
  local pid; pid=$(awk -v h="$name" '$1==h {print $2}' "$dir/hosts.tsv")
  [ -n "$pid" ] || { echo "fleet.sh: no host $name" >&2; exit 1; }
  nsenter -t "$pid" -m sh -c "$*"
}

case $cmd in
  up) up "${2:?DIR}" "${@:3}" ;;
  down) down "${2:?DIR}" ;;
  sh) in_host "${2:?DIR}" "${3:?NAME}" "${@:4}" ;;
  *) echo "fleet.sh: unknown command $cmd" >&2; exit 2 ;;
esac
