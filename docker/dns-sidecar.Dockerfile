# syntax=docker/dockerfile:1
#
# The dns-sidecar image: one static binary and the CA bundle in an empty (`scratch`) image. No
# shell: ECS runs `/dns-sidecar healthcheck` for its health check.
#
#   From source (needs the rust image):
#     docker build -f docker/dns-sidecar.Dockerfile -t dns-sidecar .
#   From a static binary built on the host (no rust image needed; scripts/build-images.sh does this):
#     RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
#       cargo build --locked --release --target x86_64-unknown-linux-gnu -p dns-sidecar
#     (for arm64: --target aarch64-unknown-linux-gnu, and --build-arg BIN_PATH=target/aarch64-
#     unknown-linux-gnu/release/dns-sidecar with --platform linux/arm64)
#     cp /etc/ssl/certs/ca-certificates.crt target/x86_64-unknown-linux-gnu/release/
#     docker build -f docker/dns-sidecar.Dockerfile --build-arg BIN_STAGE=prebuilt -t dns-sidecar .
#
# TLS (Route 53, EC2, ECS APIs, the optional IP echo) uses rustls with the platform's native
# roots, which it reads from SSL_CERT_FILE: the image carries Debian's CA bundle.
#
# The binary is linked statically against glibc (`+crt-static`; `--target` keeps build scripts
# and proc macros dynamic). Name lookup: glibc >= 2.34 has its `files` and `dns` resolvers inside
# libc itself, so a static binary resolves the AWS endpoints without libnss_*.so. A scratch image
# has no /etc at all: lookups rely on the /etc/hosts and /etc/resolv.conf that the container
# runtime (ECS/Fargate, Docker, Podman) injects at run time.
# Randomness: `--cfg getrandom_backend="linux_getrandom"` makes the getrandom crate call glibc's
# getrandom() directly; its default finds it with dlsym, which fails in a static binary, and
# would fall back to reading /dev/urandom. So the binary needs no /dev.

# Which stage provides /dns-sidecar and the CA bundle: `build` or `prebuilt` (from the context).
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
      cargo build --locked --release --target "$triple" -p dns-sidecar \
    && cp "target/$triple/release/dns-sidecar" /dns-sidecar \
    && cp /etc/ssl/certs/ca-certificates.crt /ca-certificates.crt

FROM scratch AS prebuilt
# Paths inside the build context of the host-built static binary and of a PEM CA bundle.
ARG BIN_PATH=target/x86_64-unknown-linux-gnu/release/dns-sidecar
ARG CA_BUNDLE=target/x86_64-unknown-linux-gnu/release/ca-certificates.crt
COPY ${BIN_PATH} /dns-sidecar
COPY ${CA_BUNDLE} /ca-certificates.crt

# Builders skip the stage that is not selected (BuildKit; buildah --skip-unused-stages, its
# default), so with BIN_STAGE=prebuilt the rust image is never pulled.
FROM ${BIN_STAGE} AS bin

FROM scratch
COPY --from=bin --chmod=0444 /ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=bin --chmod=0555 /dns-sidecar /dns-sidecar
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# The key files' directory (KEYS_DIR=/keys in the task definition), owned by the sidecar's user:
# ECS copies a VOLUME's path, with its owner and mode, from the image into the task volume
# mounted there, so the sidecar can write the keys as 65532 (the default owner would be root).
COPY --chown=65532:65532 --chmod=0755 docker/keys/ /keys/
VOLUME ["/keys"]
# 65532: the conventional "nonroot" id (distroless); the image has no /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/dns-sidecar"]
