# One image that runs any service (and manage, and parked): pick the binary with the command,
# e.g. `docker run worker-kit-services example`.
# Base images are pinned to exact versions (the toolchain the workspace is tested with); bump
# them on purpose. .dockerignore is an allow-list: see it before adding a COPY.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p example -p greeter -p catalog -p worker-kit-manage -p worker-kit-parked \
    && mkdir /out \
    && cp target/release/example target/release/greeter target/release/catalog target/release/manage target/release/parked /out/

FROM debian:12.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app app
COPY --from=build /out/ /usr/local/bin/
COPY models /app/models
WORKDIR /app
USER app
# /metrics, /livez and /readyz (worker-kit's METRICS_ADDR); publish the port to scrape it.
ENV METRICS_ADDR=0.0.0.0:9090
EXPOSE 9090
# The service binary asks its own listener (no curl in the image). /proc/1/exe is the binary
# the container runs, whichever service CMD names; `manage` and `parked` (one-shot) have no health check
# and the compose file turns it off there.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/proc/1/exe", "healthcheck", "readyz"]
CMD ["example"]
