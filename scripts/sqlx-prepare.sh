#!/usr/bin/env bash
# Regenerates the sqlx offline cache (.sqlx/) that lets every build check `query!` macros without a
# database (SQLX_OFFLINE=true). Run it (`make prepare`) after changing a query or a migration, and
# commit .sqlx/. It needs psql and a PostgreSQL server at TEST_DATABASE_URL (default: local).
#
# This does what `cargo sqlx prepare --workspace` does, without installing sqlx-cli: the macros write
# their query data into SQLX_OFFLINE_DIR whenever they run against a live database.
set -euo pipefail
cd "$(dirname "$0")/.."

server=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
name="bulwark_sqlx_prepare_$$"
db_url="${server%/*}/$name"

cleanup() { psql -q "$server" -c "drop database if exists $name with (force)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

psql -q -v ON_ERROR_STOP=1 "$server" -c "create database $name"
for migration in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$db_url" -f "$migration" >/dev/null
done

# Generate into a fresh directory and swap it in only on success: a failed run must not leave the
# committed cache empty (every offline build would break).
fresh=$(mktemp -d .sqlx.new.XXXXXX)
trap 'cleanup; rm -rf "$fresh"' EXIT
# Make cargo re-run the macros in every file that has a checked query.
grep -rlE 'query(_as|_scalar)?!' crates/*/src | xargs touch
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/$fresh" DATABASE_URL="$db_url" cargo check --workspace --all-targets --quiet
rm -rf .sqlx && mv "$fresh" .sqlx
echo "sqlx offline cache: $(ls .sqlx | wc -l) queries in .sqlx/"
