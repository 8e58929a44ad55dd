#!/usr/bin/env bash
# Writes .env for local development with fresh random secrets — only when .env does not exist.
# It never overwrites an existing .env (delete it to get new secrets) and .env is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f .env ]; then
  echo "make env: .env exists; keeping it (delete it to generate new secrets)"
  exit 0
fi

cargo build --quiet --bin bulwark
keys=$(target/debug/bulwark keygen | grep -v '^#')

umask 077
tmp=$(mktemp .env.XXXXXX)
# The temporary file holds secrets: never leave it behind.
trap 'rm -f "$tmp"' EXIT
{
  echo "# Local development settings written by 'make env' on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  echo "# Development only: never commit this file, never reuse these secrets elsewhere."
  echo "# Every variable is documented in .env.example."
  echo "APP_ENV=development"
  echo "DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bulwark}"
  echo "$keys"
  echo "HOST=127.0.0.1"
  echo "PORT=8080"
  echo "DOCS_UI=true"
  echo "LOG_FORMAT=text"
  echo "RUST_LOG=info,sqlx=warn,actix_http::h1::dispatcher=off"
} > "$tmp"
mv -n "$tmp" .env
echo "make env: wrote .env with fresh secrets"
