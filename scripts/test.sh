#!/usr/bin/env bash
# THE test command: formatting, lints, build, unit tests, deploy checks and images, then the
# end-to-end tests (the real static binaries against the stock OpenSSH client, haproxy, moto,
# PostgreSQL and Redis) inside a network namespace that has only loopback, so a test of a
# forbidden destination, or a misconfigured AWS endpoint, can never send a packet off the machine.
#
# Everything that needs the network (dependency downloads) happens before the namespace; inside
# it cargo runs --offline. The e2e tests drive the static release binaries (what ships; the
# bastion's debug build is 4x slower through the crypto), and the test binaries are debug
# builds with only `sha2` optimized (unoptimized SHA-256 runs at ~25 MB/s, far too slow to
# check 1 GiB; a full release build of the test binaries costs ~3 minutes more). Respects CARGO_TARGET_DIR. Extra
# arguments go to the e2e test binaries (e.g. a test name filter).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

started=$(date +%s)
declare -a summary=()
step() {
  step_name=$1
  step_started=$(date +%s)
  echo
  echo "==> $step_name"
}
done_step() {
  summary+=("$(printf '%-40s %4ss' "$step_name" $(($(date +%s) - step_started)))")
}
trap 'status=$?; if ((status != 0)); then echo; echo "FAILED during: ${step_name:-setup} (exit $status)"; fi' EXIT

step "install test dependencies"
scripts/install-test-deps.sh
done_step

step "cargo fmt --check"
cargo fmt --all -- --check
done_step

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
done_step

step "cargo build (debug: bastion and the e2e harness)"
# dns-sidecar is built once, in release (below): a debug build of the AWS SDK crates would
# cost another ~10 minutes of both cores.
cargo build --locked --workspace --exclude dns-sidecar --all-targets
cargo test --locked --workspace --exclude dns-sidecar --no-run
done_step

step "unit tests (bastion)"
cargo test --locked --workspace --exclude e2e --exclude dns-sidecar --no-fail-fast
done_step

# What ships: fully static binaries (glibc, crt-static), the same ones the images hold. The
# e2e tests drive these, so the tested binary is the shipped one.
triple=x86_64-unknown-linux-gnu
static_dir=$target_dir/$triple/release
static=(--locked --release --target "$triple")
# RUSTFLAGS with --target reaches only the target's units (not build scripts or proc macros),
# and only these commands: the debug and e2e builds stay dynamic and keep their cache.
static_cargo() { RUSTFLAGS="-C target-feature=+crt-static" cargo "$@"; }

step "release build: static bastion and dns-sidecar"
static_cargo build "${static[@]}" -p bastion -p dns-sidecar
done_step

# aws-smithy-mocks (a dev-dependency) turns on `test-util` features at the root of the SDK's
# dependency graph, so this step compiles the SDK crates a second time; the shipped binary
# above is built without them.
step "dns-sidecar unit and retry tests (release)"
static_cargo test "${static[@]}" -p dns-sidecar --no-fail-fast
done_step

step "deploy checks: hadolint, cfn-lint, task definition, IAM"
.local/venv/bin/python scripts/check-deploy.py \
  --bastion-bin "$static_dir/bastion" --dns-sidecar-bin "$static_dir/dns-sidecar"
done_step

step "container images (buildah, from the static binaries)"
scripts/build-images.sh --no-build
done_step

# Only for the e2e crate's own build: it does not change the bastion's dependency graph.
e2e_cargo=(--config 'profile.dev.package.sha2.opt-level=3')

step "build the e2e tests"
cargo test --locked "${e2e_cargo[@]}" -p e2e --no-run
done_step

step "e2e tests in a loopback-only network namespace"
export BASTION_BIN=$static_dir/bastion
export DNS_SIDECAR_BIN=$static_dir/dns-sidecar
export CARGO_NET_OFFLINE=true
# --test-threads: most tests wait on timeouts or processes rather than CPU.
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  cargo test "${e2e_cargo[@]}" --offline --no-fail-fast -p e2e -- --test-threads 4 "$@"
done_step

echo
echo "==> summary"
printf '  %s\n' "${summary[@]}"
echo "  total $(($(date +%s) - started))s: all checks passed"
