#!/usr/bin/env bash
# `make run-tls`: `make run` over HTTPS. The service itself serves https://localhost:8443 (TLS 1.3
# and 1.2, rustls) with a self-signed development certificate, created in .dev/tls/ when missing
# (`bulwark dev-cert`; git-ignored), and plain http://127.0.0.1:8080 only answers 308 redirects to
# it (TLS_REDIRECT_PORT) — the shape of a production deployment that serves HTTPS without a proxy.
#
# Nothing trusts the certificate unless told to:
#   curl --cacert .dev/tls/cert.pem https://localhost:8443/health/live
# A browser shows a warning (accept it for localhost, or import cert.pem). The certificate is
# valid for a year; `target/debug/bulwark dev-cert --force` makes a new one.
#
# The variables below override .env (the service never lets .env override the environment).
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true

cargo build --quiet --bin bulwark
dir=.dev/tls
if [ ! -f "$dir/cert.pem" ] || [ ! -f "$dir/key.pem" ]; then
  target/debug/bulwark dev-cert --out-dir "$dir" --force >/dev/null
  echo "make run-tls: wrote a self-signed development certificate to $dir/"
fi

export TLS_CERT_PATH="$dir/cert.pem" TLS_KEY_PATH="$dir/key.pem"
export PORT=8443 PUBLIC_URL=https://localhost:8443
# The redirect listener takes `make run`'s port; `TLS_REDIRECT_PORT=8081 make run-tls` moves it,
# `TLS_REDIRECT_PORT= make run-tls` leaves it out.
export TLS_REDIRECT_PORT="${TLS_REDIRECT_PORT-8080}"
exec scripts/run.sh
