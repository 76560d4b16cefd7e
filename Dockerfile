# syntax=docker/dockerfile:1
# tailops in a container: a multi-stage build (Rust + Go for the embedded
# tailnet node) onto debian-slim, running as a non-root user with its node
# state on a volume. Not built in CI (no image registry is reachable there);
# linted by hadolint in tests/run.sh.
#
#   docker build -t tailops .
#   docker run -d --name tailops -v tailops-state:/var/lib/tailops \
#     -e TS_AUTHKEY=tskey-auth-… tailops
#
# The host tools see the container, not the host, unless the host is passed
# in: --pid=host (processes), -v /run/docker.sock:/run/docker.sock with
# --group-add <its gid> (Docker tools; root-equivalent), -v
# /run/dbus/system_bus_socket:/run/dbus/system_bus_socket (systemd tools).
# See README "Containers and Proxmox LXC".

ARG RUST_VERSION=1.95
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS go

FROM rust:${RUST_VERSION}-bookworm AS build
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local CGO_ENABLED=1
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tailops \
    && install -m 0755 target/release/tailops /tailops

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system tailops \
    && useradd --system --gid tailops --home-dir /var/lib/tailops --shell /usr/sbin/nologin tailops \
    && install -d -m 0700 -o tailops -g tailops /var/lib/tailops
COPY --from=build /tailops /usr/local/bin/tailops
USER tailops
ENV TAILOPS_STATE_DIR=/var/lib/tailops TAILOPS_LOG_FORMAT=json
VOLUME ["/var/lib/tailops"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tailops"]
CMD ["serve"]
