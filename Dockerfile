# One image that runs any service (and manage): pick the binary with the command,
# e.g. `docker run worker-kit-services example`.
# Base images are pinned to exact versions (the toolchain the workspace is tested with); bump
# them on purpose. .dockerignore is an allow-list: see it before adding a COPY.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p example -p greeter -p catalog -p worker-kit-manage \
    && mkdir /out \
    && cp target/release/example target/release/greeter target/release/catalog target/release/manage /out/

FROM debian:12.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app app
COPY --from=build /out/ /usr/local/bin/
COPY models /app/models
WORKDIR /app
USER app
CMD ["example"]
