#!/usr/bin/env bash
# Builds the two release images (docker/bastion.Dockerfile, docker/dns-sidecar.Dockerfile) with
# buildah from static binaries built on this host, so no base image is ever pulled: each final
# image is `FROM scratch` (BIN_STAGE=prebuilt selects the stage that copies the host binary; the
# rust builder stage is skipped). Then it checks each image (contents, user, entrypoint), runs
# it (`--help`; the bastion also starts and answers its own `healthcheck`), and prints the sizes.
#
#   scripts/build-images.sh [--no-build] [bastion] [dns-sidecar]     (default: both)
#
#   --no-build   use the binaries already in $target/<host triple>/release (x86_64- or
#                aarch64-unknown-linux-gnu: the host's architecture; only x86_64 was ever run)
#   TAG=...      image tag (default: dev); images are localhost/jumpbox/<name>:$TAG
#   CA_BUNDLE=   PEM bundle for the dns-sidecar image (default: /etc/ssl/certs/ca-certificates.crt)
#
# Runs as root (buildah vfs storage, chroot isolation). Storage is private to the repository
# (.local/containers), never the system's. Builds and runs happen in a network namespace with
# only loopback when `unshare -n` works, so nothing can be pulled or reached by accident.
# Respects CARGO_TARGET_DIR. To publish: buildah push --root ... localhost/jumpbox/bastion:dev
# docker://<registry>/jumpbox/bastion:<tag> (scripts/deploy does this).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
# The host's own architecture (the binaries are built here, natively): x86_64 or aarch64.
case $(uname -m) in
  x86_64) triple=x86_64-unknown-linux-gnu arch=amd64 ;;
  aarch64) triple=aarch64-unknown-linux-gnu arch=arm64 ;;
  *) echo "build-images.sh: unsupported host architecture $(uname -m) (x86_64 or aarch64)" >&2; exit 1 ;;
esac
release=$target_dir/$triple/release
tag=${TAG:-dev}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
store=$root/.local/containers
bah=(buildah --root "$store/storage" --runroot "$store/run" --storage-driver vfs)

build=1
names=()
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    bastion | dns-sidecar) names+=("$arg") ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build-images.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
((${#names[@]})) || names=(bastion dns-sidecar)

die() { echo "build-images.sh: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
((EUID == 0)) || die "run as root (buildah with vfs storage and chroot isolation)"

# Loopback-only network namespace for buildah, when available.
offline=()
if unshare -n true 2>/dev/null; then
  offline=(unshare -n --)
else
  echo "note: unshare -n is not available; buildah runs in the host network namespace"
fi

containers=()
bg_pid=
cleanup() {
  local status=$?
  [[ -n $bg_pid ]] && kill "$bg_pid" 2>/dev/null && wait "$bg_pid" 2>/dev/null
  for c in "${containers[@]}"; do "${bah[@]}" rm "$c" >/dev/null 2>&1 || true; done
  # buildah 1.28 leaves the working container of the instruction-less `FROM ${BIN_STAGE} AS bin`
  # stage behind; the storage is this script's own, so remove every container, then the
  # untagged intermediate images, and the staging contexts.
  "${bah[@]}" rm --all >/dev/null 2>&1 || true
  "${bah[@]}" rmi --prune >/dev/null 2>&1 || true
  rm -rf "$store/context"
  exit "$status"
}
trap cleanup EXIT

if ((build)); then
  # One package per cargo run, as scripts/test.sh does: built together, their shared crates
  # would get unified features and miss the cache the test run leaves (and vice versa).
  for name in "${names[@]}"; do
    echo "==> cargo build (static glibc, $triple): $name"
    RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
      cargo build --locked --release --target "$triple" -p "$name"
  done
fi

new_container() { # image -> container id (recorded for cleanup)
  local c
  c=$("${bah[@]}" from --pull=never "$1")
  containers+=("$c")
  echo "$c"
}

for name in "${names[@]}"; do
  bin=$release/$name
  [[ -x $bin ]] || die "$bin is missing: build it (without --no-build) or set CARGO_TARGET_DIR"
  if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    die "$bin is dynamically linked: build it with RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"'"
  fi
  image=localhost/jumpbox/$name:$tag

  echo "==> buildah build $image"
  ctx=$store/context/$name
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$bin" "$ctx/$name"
  # TARGETARCH: buildah (1.28) does not set it as BuildKit does; the Dockerfiles' build stage
  # (skipped here) names its cache after it.
  args=(--build-arg BIN_STAGE=prebuilt --build-arg "BIN_PATH=$name" --build-arg "TARGETARCH=$arch")
  if [[ $name == dns-sidecar ]]; then
    [[ -s $ca_bundle ]] || die "CA bundle $ca_bundle is missing (apt-get install ca-certificates, or set CA_BUNDLE)"
    cp "$ca_bundle" "$ctx/ca-certificates.crt"
    args+=(--build-arg CA_BUNDLE=ca-certificates.crt)
    mkdir -p "$ctx/docker" && cp -r docker/keys "$ctx/docker/"
  fi
  "${offline[@]}" "${bah[@]}" build --quiet --pull=never --isolation chroot --layers=false \
    "${args[@]}" -f "docker/$name.Dockerfile" -t "$image" "$ctx" >/dev/null

  echo "==> check $image"
  user=$("${bah[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
  entrypoint=$("${bah[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$image")
  [[ $user == 65532:65532 ]] || die "$image: user is '$user', want 65532:65532"
  [[ $entrypoint == "[/$name]" ]] || die "$image: entrypoint is $entrypoint, want [/$name]"
  c=$(new_container "$image")
  mnt=$("${bah[@]}" mount "$c")
  files=$(cd "$mnt" && find . -mindepth 1 \( -type f -o -type l \) | sort | tr '\n' ' ')
  keys_owner=$(stat -c '%u:%g %a' "$mnt/keys" 2>/dev/null || echo missing)
  "${bah[@]}" umount "$c" >/dev/null
  want="./$name "
  [[ $name == dns-sidecar ]] && want="./dns-sidecar ./etc/ssl/certs/ca-certificates.crt ./keys/README "
  [[ $files == "$want" ]] || die "$image: unexpected files: $files(want: $want)"
  if [[ $name == dns-sidecar ]]; then
    # The key sync writes here as 65532; ECS copies the VOLUME path's owner into the task volume.
    [[ $keys_owner == "65532:65532 755" ]] || die "$image: /keys is '$keys_owner', want 65532:65532 755"
    volumes=$("${bah[@]}" inspect --type image --format '{{.OCIv1.Config.Volumes}}' "$image")
    [[ $volumes == *"/keys"* ]] || die "$image: /keys is not declared a VOLUME ($volumes)"
    echo "    /keys: owner and mode $keys_owner, VOLUME"
  fi
  echo "    files: $files; user $user; entrypoint $entrypoint"

  echo "==> run $image: $name --help"
  help=$("${offline[@]}" "${bah[@]}" run --isolation chroot "$c" -- "/$name" --help)
  prefix=BASTION_
  [[ $name == dns-sidecar ]] && prefix=DNS_
  n=$(grep -c "\[env: $prefix" <<<"$help" || true)
  ((n > 0)) || die "$image: '$name --help' documents no $prefix* variables"
  echo "    ok ($n ${prefix}* variables documented)"

  if [[ $name == bastion ]]; then
    # Start the server in its image (ephemeral host key: exercises the random source) and ask
    # it with the image's own healthcheck, as ECS will. One shared loopback-only namespace.
    echo "==> run $image: serve on 127.0.0.1:2222, then bastion healthcheck"
    command -v ssh-keygen >/dev/null || die "ssh-keygen is needed for the smoke test (apt-get install openssh-client)"
    keydir=$(mktemp -d)
    ssh-keygen -q -t ed25519 -N '' -C smoke -f "$keydir/key"
    key=$(cat "$keydir/key.pub")
    rm -rf "$keydir"
    log=$store/bastion-smoke.log
    # shellcheck disable=SC2016 # expanded by the inner shell
    if ! CONTAINER=$c KEY=$key LOG=$log "${offline[@]}" bash -c '
      set -u
      ip link set lo up 2>/dev/null || true
      "$@" run --isolation chroot -e BASTION_LISTEN=127.0.0.1:2222 -e "BASTION_AUTHORIZED_KEYS=$KEY" \
        -e BASTION_SHUTDOWN_GRACE=1s -e BASTION_LOG_FORMAT=json "$CONTAINER" -- /bastion 2>"$LOG" &
      server=$!
      status=1
      for _ in $(seq 50); do
        if "$@" run --isolation chroot "$CONTAINER" -- /bastion healthcheck 2>&1; then status=0; break; fi
        kill -0 $server 2>/dev/null || break
        sleep 0.2
      done
      # buildah run does not forward SIGTERM (it kills its child); signal the bastion itself,
      # found among the descendants of the buildah run we started, as ECS would signal it.
      descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
      for p in $(descendants $server); do
        [[ $(cat /proc/$p/comm 2>/dev/null) == bastion ]] && kill -TERM "$p"
      done
      wait $server
      exit $status
    ' smoke "${bah[@]}" | tail -1 | sed 's/^/    /'; then
      sed 's/^/    log: /' "$log" >&2
      die "$image: the bastion did not start or did not answer its healthcheck"
    fi
    grep -q '"event":"listening"' "$log" || { sed 's/^/    log: /' "$log" >&2; die "$image: no listening event"; }
    grep -q '"event":"shutdown"' "$log" || { sed 's/^/    log: /' "$log" >&2; die "$image: no shutdown event after SIGTERM"; }
    echo "    ok (listening, healthy, clean shutdown on SIGTERM)"
    rm -f "$log"
  fi
done

echo
echo "==> images (uncompressed size as stored; compressed size as a registry would hold it)"
for name in "${names[@]}"; do
  image=localhost/jumpbox/$name:$tag
  size=$("${bah[@]}" images --format '{{.Size}}' "$image")
  oci=$store/oci-$name
  rm -rf "$oci"
  "${bah[@]}" push --quiet --compression-format gzip "$image" "oci:$oci" >/dev/null
  compressed=$(find "$oci/blobs" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.2f MB", s / 1e6}')
  rm -rf "$oci"
  printf '  %-36s %10s   %s compressed\n' "$image" "$size" "$compressed"
done
