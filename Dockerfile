# syntax=docker/dockerfile:1
#
# Two stages: a full Rust toolchain builds a release binary; a slim Debian image runs it as an
# unprivileged user. The build needs no database (SQLX_OFFLINE=true reads the committed .sqlx/
# cache) and uses Cargo.lock exactly (--locked).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin bulwark \
 && cp target/release/bulwark /usr/local/bin/bulwark

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 bulwark \
 && useradd --system --uid 10001 --gid bulwark --no-create-home --shell /usr/sbin/nologin bulwark \
 && mkdir -p /secrets/app \
 && chown bulwark:bulwark /secrets/app \
 && chmod 700 /secrets/app
COPY --from=build /usr/local/bin/bulwark /usr/local/bin/bulwark
# Fail closed: without configuration the image is production (TLS proxy required, no docs UI).
ENV APP_ENV=production HOST=0.0.0.0 PORT=8080 LOG_FORMAT=json
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["bulwark"]
CMD ["serve"]
