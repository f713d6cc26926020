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
# dns-sidecar (and its Route 53 crate) is built once, in release (below): a debug build of the
# AWS SDK crates would cost another ~10 minutes of both cores.
no_sdk=(--workspace --exclude dns-sidecar --exclude dns-sidecar-route53)
cargo build --locked "${no_sdk[@]}" --all-targets
cargo test --locked "${no_sdk[@]}" --no-run
done_step

step "unit tests (bastion)"
cargo test --locked "${no_sdk[@]}" --exclude e2e --no-fail-fast
done_step

# What ships: fully static binaries (glibc, crt-static), the same ones the images hold. The
# e2e tests drive these, so the tested binary is the shipped one.
triple=x86_64-unknown-linux-gnu
static_dir=$target_dir/$triple/release
static=(--locked --release --target "$triple")
# RUSTFLAGS with --target reaches only the target's units (not build scripts or proc macros),
# and only these commands: the debug and e2e builds stay dynamic and keep their cache.
# getrandom_backend: the getrandom crate calls the getrandom() system call through glibc instead
# of looking it up with dlsym, which fails in a static binary and falls back to /dev/urandom.
static_cargo() { RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' cargo "$@"; }

# One cargo run per package, on purpose: cargo unifies features across the packages of one
# run, so building bastion and dns-sidecar together gives their shared crates (tokio, serde_json,
# ...) a feature set that `cargo test -p dns-sidecar` alone does not have, and the test run then
# recompiles the whole AWS SDK (measured: 18 minutes). Built alone, the test run reuses it all.
step "release build: static bastion"
static_cargo build "${static[@]}" -p bastion
# The bastion's dependency tree stays free of AWS crates: key sources are read by the sidecar.
bastion_tree=$(cargo tree --locked --offline -p bastion -e normal --target "$triple" --prefix none)
aws_crates=$(grep -iE '^aws[-_]' <<<"$bastion_tree" || true)
if [[ -n "$aws_crates" ]]; then
  echo "error: the bastion depends on AWS crates (they belong in dns-sidecar):" >&2
  echo "$aws_crates" | sort -u >&2
  exit 1
fi
done_step

step "release build: static dns-sidecar, and its unit tests"
static_cargo build "${static[@]}" -p dns-sidecar
static_cargo test "${static[@]}" -p dns-sidecar --no-fail-fast
done_step

# A separate cargo run, on purpose: aws-smithy-mocks (a dev-dependency of dns-sidecar-route53)
# turns on `test-util` features at the root of the SDK's dependency graph, which recompiles
# every SDK crate in the build. Tested alone, that is aws-sdk-route53 and the smithy runtime
# only; the shipped binary above is built without them.
step "dns-sidecar Route 53 retry tests (release, aws-smithy-mocks)"
static_cargo test "${static[@]}" -p dns-sidecar-route53 --no-fail-fast
done_step

step "deploy checks: hadolint, cfn-lint, task definition, IAM"
.local/venv/bin/python scripts/check-deploy.py \
  --bastion-bin "$static_dir/bastion" --dns-sidecar-bin "$static_dir/dns-sidecar"
done_step

step "container images (buildah, from the static binaries)"
scripts/build-images.sh --no-build
done_step

# The libFuzzer targets of fuzz/ (its own workspace; scripts/fuzz installs the pinned cargo-fuzz,
# which needs crates.io, so it runs here and not in the network namespace): an unoptimized
# build, then each target for FUZZ_SECONDS from its committed seeds, new inputs into a scratch
# directory. A crash fails the step and names the crashing input.
step "fuzz targets: build (dev), then ${FUZZ_SECONDS:=10}s each"
FUZZ_SECONDS=$FUZZ_SECONDS FUZZ_PROFILE=dev scripts/fuzz
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
