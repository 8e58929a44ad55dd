#!/usr/bin/env bash
# `make bench`: what the security layers cost, measured against the real server.
#
# What it measures. Each scenario is one load generator run against a release build, on loopback:
#   (a) the ceiling: a bare actix-web + sqlx handler (crates/bench, `bench-baseline`) running the
#       very statement the service uses to read one document, with no security layer at all;
#   (b) the real `GET /api/v1/documents/{id}`, signed in (JWT check, session liveness, rate limits,
#       daily quota, object-level authorisation, security headers, request id, logging);
#   (c) the real list route, `GET /api/v1/documents?limit=20`;
#   (d) the same read as (b) through `POST /graphql` (armour checks, parse, execute);
#   (e) sign-in throughput (`POST /api/v1/auth/login`, argon2id every time) and the p99 of the
#       read of (b) while sign-ins flood the server, next to the p99 of the same read without them;
#   (f) one document change fanned out over WebSocket to 1,000 subscribers (`bench-ws`);
#   (g) one rate-limit decision, in process and in Redis (`bench-limiter`).
# It prints one table: requests/s, p50 and p99 latency, and each row's throughput as a share of
# (a). Nothing is asserted — speed is for reading, and a machine shared with other work gives noisy
# numbers — but the two targets of docs/benchmarks.md are printed as met or missed.
#
# How. It builds `bulwark` and the bench programs in release mode, creates a throwaway PostgreSQL
# database, starts the real server on it (fresh secrets from `bulwark keygen`, every rate limit and
# quota raised out of the way, 2 workers) and the baseline server on the same database, seeds
# accounts and documents through the API itself, runs wrk for each scenario, and stops everything
# and drops the database on exit, however it ends.
#
# Needs: psql, curl, jq, PostgreSQL at TEST_DATABASE_URL (default: local, trust auth), Redis at
# REDIS_URL for (g) (skipped when absent), and wrk — installed with apt-get when missing. Reads
# nothing from stdin. Knobs: BENCH_SECONDS (per wrk run, default 10), BENCH_CONNECTIONS (default
# 64), BENCH_DOCUMENTS (default 100), BENCH_SOCKETS (default 1000). Logs and the raw wrk output
# go to target/bench/ (git-ignored, replaced on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true

readonly work=target/bench
readonly seconds=${BENCH_SECONDS:-10}
readonly connections=${BENCH_CONNECTIONS:-64}
readonly documents=${BENCH_DOCUMENTS:-100}
readonly sockets=${BENCH_SOCKETS:-1000}
started_at=$SECONDS

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools --------------------------------------------------------------------------------------------
# wrk: the load generator. It keeps a fixed number of connections busy (closed loop: a new request
# as soon as the previous answer arrives), so it measures the most the server does, and with
# `--latency` it reports the latency distribution. Debian packages it; nothing else is downloaded.
if ! command -v wrk >/dev/null; then
  say "wrk is missing: installing it with apt-get"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; } \
      || die "could not install wrk with apt-get; install it (https://github.com/wg/wrk) and run again"
  else
    die "wrk is required: install it (Debian/Ubuntu: sudo apt-get install wrk) and run again"
  fi
fi
for tool in psql curl jq; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# --- build --------------------------------------------------------------------------------------------
# Release, as shipped (thin LTO). --locked: the numbers are those of the committed dependency set.
# One invocation for both packages: features are then unified as for the service alone (the bench
# crate asks for no feature the service does not already enable), so `bulwark` is the very binary
# `cargo build --release --bin bulwark` makes, and the bench adds only tokio-tungstenite to build.
say "building release binaries (the first time takes several minutes)"
cargo build --release --locked --quiet -p bulwark-app -p bulwark-bench --bins
readonly bulwark=target/release/bulwark

rm -rf "$work"
mkdir -p "$work"

# --- a throwaway database and the real server, and cleanup ---------------------------------------------------
# Both as scripts/api-fuzz.sh makes them (scripts/lib/throwaway-server.sh): the server's whole
# environment written out (`env -i`, nothing from the caller's shell or a .env changes what is
# measured), fresh secrets, 2 workers, default logging (one JSON line per request at info), and
# every rate limit and quota raised so that the benchmark measures the work of *deciding* — taken on
# every request — not the 429.
# shellcheck source=scripts/lib/throwaway-server.sh
source scripts/lib/throwaway-server.sh
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  drop_throwaway_database
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
throwaway_database bulwark_bench
load_test_environment "$bulwark" || die "no server environment"
start_server "$bulwark" "$work/server.log" || { pids+=("$server_pid"); die "no server to measure"; }
pids+=("$server_pid")
say "server ready at $base"

# --- the baseline server ------------------------------------------------------------------------------
# Same database (migrated by the server above), same number of workers, a pool configured as the
# service's own. A free port is found by asking the kernel for one.
baseline_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i PATH="$PATH" DATABASE_URL="$db_url" PORT="$baseline_port" HTTP_WORKERS=2 \
  target/release/bench-baseline >"$work/baseline.log" 2>&1 &
pids+=($!)
baseline_pid=$!
baseline="http://127.0.0.1:$baseline_port"

# --- seed data through the API --------------------------------------------------------------------------
# api POST|GET <path> <expected status> <token or ""> [json body]: prints the response body.
api() {
  local method=$1 path=$2 expected=$3 token=$4 body=${5:-}
  local args=(-sS -X "$method" -w '\n%{http_code}' "$base$path" -H 'content-type: application/json')
  [ -n "$token" ] && args+=(-H "authorization: Bearer $token")
  [ -n "$body" ] && args+=(--data-binary "$body")
  local response status
  response=$(curl "${args[@]}")
  status=${response##*$'\n'}
  [ "$status" = "$expected" ] || die "seeding: $method $path answered $status, expected $expected: ${response%$'\n'*}"
  printf '%s\n' "${response%$'\n'*}"
}
readonly password='Quartz-Harbor-Violet-73!-zephyr'
register_and_sign_in() { # <email>: prints an access token
  api POST /api/v1/auth/register 201 "" "$(jq -nc --arg e "$1" --arg p "$password" '{email:$e, password:$p, display_name:"Load Tester"}')" >/dev/null
  api POST /api/v1/auth/login 200 "" "$(jq -nc --arg e "$1" --arg p "$password" '{email:$e, password:$p}')" | jq -r .access_token
}
readonly owner_email=owner@bench.bulwark.test
token=$(register_and_sign_in "$owner_email")
say "seeding $documents documents"
ids=()
for i in $(seq 1 "$documents"); do
  ids+=("$(api POST /api/v1/documents 201 "$token" \
    "{\"title\":\"Document $i\",\"body\":\"<p>Body of document $i, a paragraph of ordinary text.</p>\",\"visibility\":\"private\",\"tags\":[\"bench\"]}" | jq -r .id)")
done
# Sanity: both servers answer the same document.
curl -fsS -o /dev/null "$baseline/documents/${ids[0]}" || die "the baseline does not answer; see $work/baseline.log"
curl -fsS -o /dev/null -H "authorization: Bearer $token" "$base/api/v1/documents/${ids[0]}" || die "the server does not answer the read"

# --- wrk scripts ------------------------------------------------------------------------------------------
# Every read picks one of the seeded documents at random (the same set for (a), (b) and (d)).
lua_ids=$(printf '"%s",' "${ids[@]}")
cat >"$work/read.lua" <<LUA
local ids = { ${lua_ids%,} }
local prefix = os.getenv("BENCH_PREFIX")
math.randomseed(42)
request = function()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end
LUA
cat >"$work/graphql.lua" <<LUA
local ids = { ${lua_ids%,} }
math.randomseed(42)
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
request = function()
  local body = '{"query":"query(\$id: ID!) { document(id: \$id) { id title body visibility tags createdAt updatedAt version } }","variables":{"id":"' .. ids[math.random(#ids)] .. '"}}'
  return wrk.format("POST", "/graphql", nil, body)
end
LUA
login_body=$(jq -nc --arg e "$owner_email" --arg p "$password" '{email:$e, password:$p}')
cat >"$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = [[$login_body]]
LUA
# A quick check that the GraphQL read really reads (a 200 with errors would measure nothing).
gql_check=$(curl -sS "$base/graphql" -H 'content-type: application/json' -H "authorization: Bearer $token" \
  --data-binary "{\"query\":\"query { document(id: \\\"${ids[0]}\\\") { id title } }\"}")
[ "$(jq -r '.data.document.id // empty' <<<"$gql_check")" = "${ids[0]}" ] || die "the GraphQL read failed: $gql_check"

# --- running and reading wrk --------------------------------------------------------------------------------
# run_wrk <name> <threads> <connections> <url> [wrk arguments...]: the raw output in $work/<name>.txt.
run_wrk() {
  local name=$1 threads=$2 conns=$3 url=$4; shift 4
  wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout 10s --latency "$@" "$url" >"$work/$name.txt" 2>&1
}
# Latency as wrk prints it (850.00us, 1.23ms, 2.01s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }
rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/$1.txt"; }
pct() { to_ms "$(awk -v p="$2%" '$1 == p { print $2; exit }' "$work/$1.txt")"; }
# Answers that were not 2xx/3xx, and socket errors: a row with either did not measure what it says.
bad() {
  local non2xx errors
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$work/$1.txt")
  errors=$(awk '/Socket errors:/ { s = 0; for (i = 4; i <= NF; i += 2) s += $i; print s }' "$work/$1.txt")
  echo $(( ${non2xx:-0} + ${errors:-0} ))
}

auth=(-H "authorization: Bearer $token")
# A short warm-up of each server (connections made, statements prepared, caches filled).
BENCH_PREFIX=/documents/ wrk -t2 -c"$connections" -d2s -s "$work/read.lua" "$baseline" >/dev/null 2>&1
BENCH_PREFIX=/api/v1/documents/ wrk -t2 -c"$connections" -d2s -s "$work/read.lua" "${auth[@]}" "$base" >/dev/null 2>&1

# PostgreSQL's count of committed transactions in the bench database: read before and after (a)
# and (b), it says how many statements each request costs (every statement outside a transaction
# is one). Backends report their counts at most once a second, hence the pause before reading.
commits() { sleep 1.5; psql -qtA "$pg_server" -c "select xact_commit from pg_stat_database where datname = '$db_name'"; }
per_request() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "-" }'; }
requests() { awk '/requests in/ { print $1; exit }' "$work/$1.txt"; }
# CPU time a process has used, in clock ticks (user + system, /proc/<pid>/stat fields 14 and 15):
# read around a run, it says how much CPU each request costs the server, whatever else runs.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_per_request() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / hz * 1e6 / n; else print "-" }'; }

say "(a) baseline: bare actix + sqlx, ${seconds}s"
before=$(commits); cpu_before=$(cpu_ticks "$baseline_pid")
BENCH_PREFIX=/documents/ run_wrk a 2 "$connections" "$baseline" -s "$work/read.lua"
after=$(commits); cpu_after=$(cpu_ticks "$baseline_pid")
a_statements=$(per_request "$before" "$after" "$(requests a)")
a_cpu=$(cpu_per_request "$cpu_before" "$cpu_after" "$(requests a)")
say "(b) GET /api/v1/documents/{id}, ${seconds}s"
before=$(commits); cpu_before=$(cpu_ticks "$server_pid")
BENCH_PREFIX=/api/v1/documents/ run_wrk b 2 "$connections" "$base" -s "$work/read.lua" "${auth[@]}"
after=$(commits); cpu_after=$(cpu_ticks "$server_pid")
b_statements=$(per_request "$before" "$after" "$(requests b)")
b_cpu=$(cpu_per_request "$cpu_before" "$cpu_after" "$(requests b)")
say "(c) GET /api/v1/documents?limit=20, ${seconds}s"
run_wrk c 2 "$connections" "$base/api/v1/documents?limit=20" "${auth[@]}"
say "(d) the read through POST /graphql, ${seconds}s"
run_wrk d 2 "$connections" "$base" -s "$work/graphql.lua" "${auth[@]}"

# (e): the read at a lighter load (16 connections, one wrk thread) alone, then the same read while
# another wrk signs in as fast as the server lets it. The two p99s are compared, not the p99 of (b):
# the same offered load, with and without the flood.
say "(e) read p99 without, then with a sign-in flood, ${seconds}s each"
BENCH_PREFIX=/api/v1/documents/ run_wrk e-idle 1 16 "$base" -s "$work/read.lua" "${auth[@]}"
run_wrk e-login 1 16 "$base/api/v1/auth/login" -s "$work/login.lua" &
flood=$!
BENCH_PREFIX=/api/v1/documents/ run_wrk e-flood 1 16 "$base" -s "$work/read.lua" "${auth[@]}"
wait "$flood"

# --- (f) WebSocket fan-out -----------------------------------------------------------------------------------
# The server allows 5 sockets per user (not configurable), so ⌈sockets / 5⌉ accounts sign in; a
# public document lets every one of them subscribe.
users=$(( (sockets + 4) / 5 ))
say "(f) registering $users accounts for $sockets sockets"
public_id=$(api POST /api/v1/documents 201 "$token" \
  '{"title":"Broadcast","body":"<p>Watched by many.</p>","visibility":"public","tags":["bench"]}' | jq -r .id)
export -f api register_and_sign_in die say
export base password
# Four at a time: each account costs two argon2id hashes (registration, sign-in), and the server
# hashes two at a time on two cores. A failure here costs row (f) only, not the whole run.
ws_line=
if seq 1 "$users" | xargs -P 4 -I{} bash -c 'register_and_sign_in "watcher{}@bench.bulwark.test"' >"$work/tokens.txt"; then
  say "(f) fan-out of one change to $sockets sockets"
  ws_line=$(BASE_URL="$base" TOKENS_FILE="$work/tokens.txt" OWNER_TOKEN="$token" DOCUMENT_ID="$public_id" \
    SOCKETS="$sockets" target/release/bench-ws 2>"$work/ws.log") || { cat "$work/ws.log" >&2; ws_line=; }
else
  echo "registering the WebSocket accounts failed" >"$work/ws.log"
fi

# --- (g) the limiter ----------------------------------------------------------------------------------------------
say "(g) rate-limit decisions, in process and in Redis"
limiter_lines=$(REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" target/release/bench-limiter 2>"$work/limiter.log") || true

# --- the table -------------------------------------------------------------------------------------------------
ceiling=$(rps a)
ratio() { awk -v x="$1" -v c="$ceiling" 'BEGIN { if (c > 0) printf "%.0f %%", 100 * x / c; else print "-" }'; }
row() { # <label> <wrk run>
  local r; r=$(rps "$2")
  local flag=""; [ "$(bad "$2")" -gt 0 ] && flag="  ($(bad "$2") failed answers: see $work/$2.txt)"
  printf '%-52s %10s %9s %9s %8s%s\n' "$1" "$r" "$(pct "$2" 50)" "$(pct "$2" 99)" "$(ratio "$r")" "$flag"
}
echo
echo "Bulwark benchmarks — $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n1)), wrk ${seconds}s per run, $connections connections unless said"
printf '%-52s %10s %9s %9s %8s\n' scenario "req/s" "p50 ms" "p99 ms" "vs (a)"
row "(a) bare actix + sqlx, same query (ceiling)" a
row "(b) GET /api/v1/documents/{id}" b
row "(c) GET /api/v1/documents?limit=20" c
row "(d) the same read via POST /graphql" d
row "(e) read alone, 16 connections" e-idle
row "(e) read during a sign-in flood, 16 connections" e-flood
row "(e) the sign-in flood: POST /api/v1/auth/login, 16 c." e-login
if [ -n "$ws_line" ]; then
  read -r _ n p50 p99 max rate <<<"$ws_line"
  printf '%-52s %10s %9s %9s %8s\n' "(f) one change to $n WebSocket subscribers" "$rate ev/s" "$p50" "$p99" "max $max"
else
  echo "(f) WebSocket fan-out failed: see $work/ws.log"
fi
while read -r _ name rate p50 p99; do
  [ -n "${name:-}" ] || continue
  printf '%-52s %10s %9s %9s %8s\n' "(g) limiter decision, $name callers (µs!)" "$rate" "$p50" "$p99" "-"
done <<<"$limiter_lines"
grep -q redis "$work/limiter.log" 2>/dev/null && cat "$work/limiter.log"

echo
b_share=$(awk -v b="$(rps b)" -v a="$ceiling" 'BEGIN { printf "%.0f", 100 * b / a }')
flood_ratio=$(awk -v f="$(pct e-flood 99)" -v i="$(pct e-idle 99)" 'BEGIN { printf "%.1f", f / i }')
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
echo "target (b) >= 80 % of (a): ${b_share} % — $(verdict "$(( b_share >= 80 ))")"
echo "target read p99 during the flood <= 3x idle: ${flood_ratio}x — $(verdict "$(awk -v r="$flood_ratio" 'BEGIN { print (r <= 3) }')")"
echo "PostgreSQL transactions per request: (a) $a_statements, (b) $b_statements"
echo "server CPU per request (user + system): (a) ${a_cpu} µs, (b) ${b_cpu} µs"
echo "(g) latencies are in microseconds; (f) latencies are from just before the PATCH to each socket's event."
echo "raw output: $work/ (server.log, one .txt per wrk run); took $((SECONDS - started_at)) s"
