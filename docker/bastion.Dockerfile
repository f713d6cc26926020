# syntax=docker/dockerfile:1
#
# The bastion image: one static binary in an empty (`scratch`) image. No shell, no package
# manager, no libc files: ECS runs `/bastion healthcheck` for its health check.
#
#   From source (needs the rust image):
#     docker build -f docker/bastion.Dockerfile -t bastion .
#   From a static binary built on the host (no rust image needed; scripts/build-images.sh does this):
#     RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
#       cargo build --locked --release --target x86_64-unknown-linux-gnu -p bastion
#     (for arm64: --target aarch64-unknown-linux-gnu, and --build-arg BIN_PATH=target/aarch64-
#     unknown-linux-gnu/release/bastion with --platform linux/arm64)
#     docker build -f docker/bastion.Dockerfile --build-arg BIN_STAGE=prebuilt -t bastion .
#
# The binary is linked statically against glibc (`+crt-static`; `--target` keeps build scripts
# and proc macros dynamic). Name lookup: glibc >= 2.34 has its `files` and `dns` resolvers inside
# libc itself, so a static binary resolves names (RDS endpoints, /etc/hosts entries) without
# libnss_*.so. A scratch image has no /etc at all: lookups rely on the /etc/hosts and
# /etc/resolv.conf that the container runtime (ECS/Fargate, Docker, Podman) injects at run time.
# Randomness: `--cfg getrandom_backend="linux_getrandom"` makes the getrandom crate call glibc's
# getrandom() directly; its default finds it with dlsym, which fails in a static binary, and
# would fall back to reading /dev/urandom. So the binary needs no /dev.

# Which stage provides /bastion: `build` (compile here) or `prebuilt` (copy from the context).
ARG BIN_STAGE=build

# Builds for the platform this stage runs on (native, or emulated under
# `docker buildx build --platform ...`): BuildKit's TARGETARCH names it (amd64, arm64); builders
# that do not set it fall back to this stage's own `uname -m`. Only amd64 and arm64 are known.
FROM rust:1-bookworm AS build
ARG TARGETARCH
WORKDIR /src
COPY . .
# One cargo cache per architecture: two platforms built at once must not share target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=jumpbox-target-${TARGETARCH} \
    case "${TARGETARCH:-$(uname -m)}" in \
      amd64 | x86_64) triple=x86_64-unknown-linux-gnu ;; \
      arm64 | aarch64) triple=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported platform '${TARGETARCH:-$(uname -m)}': amd64 or arm64" >&2; exit 1 ;; \
    esac \
    && RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
      cargo build --locked --release --target "$triple" -p bastion \
    && cp "target/$triple/release/bastion" /bastion

FROM scratch AS prebuilt
# Path of the host-built static binary inside the build context.
ARG BIN_PATH=target/x86_64-unknown-linux-gnu/release/bastion
COPY ${BIN_PATH} /bastion

# Builders skip the stage that is not selected (BuildKit; buildah --skip-unused-stages, its
# default), so with BIN_STAGE=prebuilt the rust image is never pulled.
FROM ${BIN_STAGE} AS bin

FROM scratch
COPY --from=bin --chmod=0555 /bastion /bastion
# 65532: the conventional "nonroot" id (distroless); the image has no /etc/passwd.
USER 65532:65532
EXPOSE 2222
ENTRYPOINT ["/bastion"]
