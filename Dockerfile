# Multi-stage build: compile in the Rust image, run from a small Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The production build: no sandbox, no mock servers (README "Docker").
RUN cargo build --release --locked --no-default-features --bin railgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 railgate
COPY --from=build /src/target/release/railgate /usr/local/bin/railgate
USER railgate
WORKDIR /var/lib/railgate
ENV RAILGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["railgate"]
CMD ["serve", "--config", "/etc/railgate/railgate.toml"]
