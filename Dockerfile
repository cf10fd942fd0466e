# syntax=docker/dockerfile:1
# The operator image: docker build -t ghcr.io/webcluster/webcluster-operator:0.1.0 .
# Without a Docker engine, `make image` (hack/image.sh) builds the same image: the same
# user, entrypoint and port (tests/image.rs compares them), the same Debian 12 glibc.

# bookworm = Debian 12, the same glibc as the runtime image (plain rust:1.95 is Debian 13,
# whose newer glibc symbols the distroless debian12 image would lack).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin webcluster-operator \
    && cp target/release/webcluster-operator /webcluster-operator

# A default Rust build links glibc (and libgcc_s): the distroless "cc" image has both,
# "static" has neither. The nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /webcluster-operator /webcluster-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/webcluster-operator", "run"]
