#!/usr/bin/env bash
# `make run`: .env (created when missing) → PostgreSQL reachable → migrations → serve on :8080.
# `make run-tls` runs this too, with TLS_CERT_PATH and friends set (scripts/run-tls.sh).
#
# PostgreSQL is looked for at DATABASE_URL (from the environment, else .env). When nothing answers
# there and a Docker engine runs, the compose file's `db` and `redis` services are started instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true APP_ENV=development

scripts/dev-env.sh
cargo build --quiet --bin bulwark

# The URL as the service will see it: the environment first, else .env (plain or `export` form).
db_url=${DATABASE_URL:-$(grep -E '^(export[[:space:]]+)?DATABASE_URL=' .env | tail -n1 | cut -d= -f2- | tr -d "\"'" || true)}
if [ -z "$db_url" ]; then
  echo "make run: DATABASE_URL is set neither in the environment nor in .env" >&2
  exit 1
fi
# host and port from postgres://[user[:pw]@]host[:port]/db
hostport=${db_url#*://}; hostport=${hostport##*@}; hostport=${hostport%%/*}; hostport=${hostport%%\?*}
host=${hostport%%:*}; port=5432
[[ $hostport == *:* ]] && port=${hostport##*:}

answers() { timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }

if answers "$host" "$port"; then
  echo "make run: PostgreSQL answers at $host:$port"
elif docker info >/dev/null 2>&1; then
  echo "make run: nothing answers at $host:$port; starting PostgreSQL and Redis with docker compose"
  docker compose up -d --wait db redis
  password=$(docker compose exec -T db cat /secrets/db/postgres_password)
  export DATABASE_URL="postgres://postgres:${password}@127.0.0.1:${BULWARK_DB_PORT:-55432}/bulwark"
else
  cat >&2 <<MSG
make run: PostgreSQL does not answer at $host:$port, and no Docker engine is running.
Either
  - start PostgreSQL locally and point DATABASE_URL in .env at it (the role needs CREATEDB the
    first time, or create the database yourself), or
  - run the whole stack in containers: docker compose up
MSG
  exit 1
fi

target/debug/bulwark migrate
if [ -n "${TLS_CERT_PATH:-}" ]; then
  # `make run-tls` (scripts/run-tls.sh) set the TLS variables.
  echo "make run: serving on https://localhost:${PORT} (docs: https://localhost:${PORT}/docs/; trust ${TLS_CERT_PATH})"
  [ -n "${TLS_REDIRECT_PORT:-}" ] && echo "make run: http://127.0.0.1:${TLS_REDIRECT_PORT} redirects there"
else
  echo "make run: serving on http://127.0.0.1:8080 (docs: http://127.0.0.1:8080/docs/)"
fi
exec target/debug/bulwark serve
