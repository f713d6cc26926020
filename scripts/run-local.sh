#!/usr/bin/env bash
# Start the bastion locally for a first try: listens on 127.0.0.1:2222, accepts your own SSH
# public keys (~/.ssh/*.pub), keeps a stable host key in .local/, and lets tunnels reach this
# machine's loopback ports and the private ranges. Any BASTION_* variable you set wins.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
chmod 700 .local

if [ -z "${BASTION_AUTHORIZED_KEYS:-}" ] && [ -z "${BASTION_AUTHORIZED_KEYS_FILE:-}" ]; then
  keys=$(cat "$HOME"/.ssh/*.pub 2>/dev/null || true)
  if [ -z "$keys" ]; then
    if [ ! -f .local/id_ed25519 ]; then
      ssh-keygen -q -t ed25519 -N '' -C "bastion-local-try" -f .local/id_ed25519
    fi
    keys=$(cat .local/id_ed25519.pub)
    echo "No ~/.ssh/*.pub found: generated .local/id_ed25519; connect with: ssh -i .local/id_ed25519 ..." >&2
  fi
  export BASTION_AUTHORIZED_KEYS="$keys"
fi

if [ -z "${BASTION_HOST_KEY:-}" ] && [ -z "${BASTION_HOST_KEY_FILE:-}" ]; then
  [ -f .local/host_key ] || ssh-keygen -q -t ed25519 -N '' -C "bastion-local-host" -f .local/host_key
  export BASTION_HOST_KEY_FILE=.local/host_key
fi

export BASTION_LISTEN="${BASTION_LISTEN:-127.0.0.1:2222}"
export BASTION_PERMIT_OPEN="${BASTION_PERMIT_OPEN:-127.0.0.1:*,10.0.0.0/8:*,172.16.0.0/12:*,192.168.0.0/16:*,[fc00::/7]:*}"
export BASTION_LOG_FORMAT="${BASTION_LOG_FORMAT:-text}"

cat >&2 <<MSG
Starting the bastion on $BASTION_LISTEN. In another terminal, for example:
  ssh -p ${BASTION_LISTEN##*:} -N -L 15432:127.0.0.1:5432 you@127.0.0.1   # then: psql -h 127.0.0.1 -p 15432
Stop it with Ctrl-C.
MSG
exec cargo run --quiet --release -p bastion
