#!/usr/bin/env bash
# THE test command: formatting, lints, build, unit tests, then the end-to-end tests (the real
# bastion binary against the stock OpenSSH client) inside a network namespace that has only
# loopback, so a test of a forbidden destination can never send a packet off the machine.
#
# Everything that needs the network (dependency downloads) happens before the namespace; inside
# it cargo runs --offline. The e2e tests drive the release bastion (what ships; its debug build
# is 4x slower through the crypto), and the test binaries are debug builds with only `sha2`
# optimized (unoptimized SHA-256 runs at ~25 MB/s, far too slow to check 1 GiB; a full release
# build of the ten test binaries costs ~3 minutes more). Respects CARGO_TARGET_DIR. Extra
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

step "cargo build (debug, all targets)"
cargo build --workspace --all-targets
cargo test --workspace --no-run
done_step

step "unit tests"
cargo test --workspace --exclude e2e --no-fail-fast
done_step

# Only for the e2e crate's own build: it does not change the bastion's dependency graph.
e2e_cargo=(--config 'profile.dev.package.sha2.opt-level=3')

step "build for e2e (release bastion, test binaries)"
cargo build --release -p bastion
cargo test "${e2e_cargo[@]}" -p e2e --no-run
done_step

step "e2e tests in a loopback-only network namespace"
export BASTION_BIN=$target_dir/release/bastion
export CARGO_NET_OFFLINE=true
# --test-threads: most tests wait on timeouts or processes rather than CPU.
unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
  cargo test "${e2e_cargo[@]}" --offline --no-fail-fast -p e2e -- --test-threads 4 "$@"
done_step

echo
echo "==> summary"
printf '  %s\n' "${summary[@]}"
echo "  total $(($(date +%s) - started))s: all checks passed"
