# Sourced (never run) by scripts/api-fuzz.sh and scripts/bench.sh: a throwaway PostgreSQL database
# and a real `bulwark serve` on it, the way both need them.
#
#   throwaway_database <name prefix>   creates <prefix>_<pid>; sets pg_server, db_name, db_url
#   drop_throwaway_database            drops it (for the caller's EXIT trap; never fails)
#   load_test_environment <bulwark>    sets server_env: the server's whole environment, every rate
#                                      limit and quota raised out of the way; add to it before starting
#   start_server <bulwark> <log>       starts it with exactly server_env; sets server_pid and base
#                                      (http://127.0.0.1:<port>) once /health/ready answers 200, or
#                                      prints the log's end and returns 1
#
# The caller stops $server_pid (its EXIT trap) and reports failures with its own prefix.

# A database of its own, with a name no other run (or test) uses.
throwaway_database() {
  pg_server=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  db_name="$1_$$"
  db_url="${pg_server%/*}/$db_name"
  psql -q -v ON_ERROR_STOP=1 "$pg_server" -c "create database $db_name"
}

drop_throwaway_database() {
  [ -n "${db_name:-}" ] || return 0
  psql -q "$pg_server" -c "drop database if exists $db_name with (force)" >/dev/null 2>&1 || true
}

# The server's whole environment is written out here and nothing else is passed (`env -i`): a
# REDIS_URL or SMTP_URL exported in the caller's shell must not change what is tested or measured,
# and APP_ENV=test means `.env` is not read either. Fresh secrets every run, from `bulwark keygen`.
#
# One address and one account send thousands of requests a minute (the fuzzer) or hundreds of
# thousands (the benchmark): every rate limit and quota is raised to the most the configuration
# accepts, or the run would test nothing but the 429 (tests/api/rate_limits.rs and quotas.rs cover
# it). The limits are still *decided* on every request; they never *refuse* one. Everything else
# keeps its secure default: the sign-in throttle, the password policy, the SSRF policy for
# webhooks, the body limits, logging (one JSON line per request at info).
load_test_environment() {
  local secrets
  mapfile -t secrets < <("$1" keygen | grep -v '^#')
  if [ ${#secrets[@]} -lt 3 ]; then
    echo "bulwark keygen printed no secrets" >&2
    return 1
  fi
  server_env=(
    PATH="$PATH"
    APP_ENV=test
    DATABASE_URL="$db_url"
    "${secrets[@]}"
    MIGRATE_ON_START=true
    # Port 0: the system picks a free port (no race with another process); the log says which.
    HOST=127.0.0.1
    PORT=0
    HTTP_WORKERS=2
    LOG_FORMAT=json
    # 1,000,000 per 60 s window is a burst of a million requests and then 16,667/s per key.
    RATE_LIMIT_IP_PER_WINDOW=1000000
    RATE_LIMIT_USER_PER_WINDOW=1000000
    RATE_LIMIT_AUTH_PER_WINDOW=1000000
    RATE_LIMIT_UPGRADE_PER_WINDOW=1000000
    QUOTA_FREE_REQUESTS_PER_DAY=1000000000
    QUOTA_PRO_REQUESTS_PER_DAY=1000000000
    QUOTA_FREE_DOCUMENTS=10000000
    QUOTA_PRO_DOCUMENTS=10000000
    QUOTA_FREE_ATTACHMENT_MIB=10000000
    QUOTA_PRO_ATTACHMENT_MIB=10000000
    QUOTA_FREE_WEBHOOKS=10000
    QUOTA_PRO_WEBHOOKS=10000
    QUOTA_FREE_API_KEYS=10000
    QUOTA_PRO_API_KEYS=10000
    SHARES_PER_HOUR=100000
    WEBHOOKS_PER_HOUR=100000
  )
}

# Ready means: listening (the port is in the log) and /health/ready says the database answers.
start_server() {
  local binary=$1 log=$2 port
  env -i "${server_env[@]}" "$binary" serve >"$log" 2>&1 &
  server_pid=$!
  base=
  for _ in $(seq 1 60); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the server exited during start-up; its log ($log) ends with:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    if [ -z "$base" ]; then
      port=$(grep -o '"address":"127\.0\.0\.1:[0-9]*"' "$log" | head -n1 | grep -o '[0-9]*"$' | tr -d '"' || true)
      [ -n "$port" ] && base="http://127.0.0.1:$port"
    fi
    if [ -n "$base" ] && curl -fsS -o /dev/null "$base/health/ready" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "the server did not become ready within 30 s; see $log" >&2
  return 1
}
