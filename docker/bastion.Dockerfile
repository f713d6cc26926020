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

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
      cargo build --locked --release --target x86_64-unknown-linux-gnu -p bastion \
    && cp target/x86_64-unknown-linux-gnu/release/bastion /bastion

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
