# The EERP image: one static set of files, the `eerp` binary with the built-in modules
# compiled into it, run as an unprivileged user on a read-only root filesystem.
#
#   docker build -t eerp:0.1.0 .        # or: podman build / buildah bud
#
# The bases are arguments so that a registry mirror, or images made locally (see
# docs/scaling.md, "Building the image without a registry"), can stand in for Docker Hub.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The guests (modules/*) are built to wasm by build scripts, which need the wasm target:
# added here when rustup manages the toolchain (a toolchain without rustup must have it).
RUN if command -v rustup >/dev/null; then rustup target add wasm32-unknown-unknown; fi
COPY . .
# Debug information goes (169 MB of line tables down to 44 MB); symbols stay, so a
# backtrace still names its functions.
RUN cargo build --release --locked -p eerp-platform --bin eerp \
    && objcopy --strip-debug target/release/eerp /eerp

FROM ${RUNTIME_IMAGE}
COPY --from=build /eerp /usr/local/bin/eerp
# No account is needed: the process only reads its binary and talks over the network.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/eerp"]
CMD ["serve"]
