#!/usr/bin/env bash
# `make fuzz`: property-based fuzzing of the REST contract with schemathesis, against a real server.
#
# What it proves. The hand-written tests in tests/api check the cases someone thought of; this
# script lets a fuzzer generate thousands more from openapi/openapi.json — valid requests, invalid
# ones, boundary values, missing bodies, wrong media types, chains of calls that reuse the ids the
# server hands back — and fails when the server
#   - answers 5xx (a crash, an unhandled error),
#   - answers a status, a media type, a header or a body that the document does not describe
#     (the document is the contract clients are generated from: it must not lie),
#   - accepts what the document says is invalid, or
#   - answers 2xx to a protected operation once the credentials are taken away (ignored auth).
#
# How. It builds the `bulwark` binary (a no-op when it is fresh), creates a throwaway PostgreSQL
# database, starts `bulwark serve` on a free port with fresh secrets, registers accounts through the
# API itself, and runs schemathesis several times, each with the credentials that run needs (see
# "The runs" below). Everything it starts is stopped, and the database dropped, on exit. It needs
# psql, curl, python3 (3.11 or newer, with venv; PyPI reachable the first time) and PostgreSQL at
# TEST_DATABASE_URL (default: local, the same server the tests use); Redis is not used (the in-process rate limiter and PostgreSQL
# notifications are the defaults). It reads nothing from stdin and finishes in about a minute on
# two cores; hard time limits stop it well within five.
#
# What it leaves behind, in target/api-fuzz/ (git-ignored, replaced on every run): the server's log
# (server.log, JSON lines), one JUnit report per run for CI, and the schemathesis configuration.
# A failing case is printed with a `curl` command that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true

# --- schemathesis, pinned, in its own virtual environment ------------------------------------------
# Pinned exactly so that a new release (new checks, new generators) cannot turn CI red overnight:
# upgrading is a deliberate change to this line. 4.32.5 is the newest release at the time of writing
# (it needs Python 3.11 or newer); the 4.x line is the current one, and it has what this script
# relies on: `ignored_auth` (credentials removed or replaced must be refused),
# `response_headers_conformance`, the coverage phase (boundary and negative values for every field)
# and per-operation settings in a configuration file. Its own dependencies are resolved by pip (not
# hash-locked): the fuzzer is a test tool, never shipped.
readonly SCHEMATHESIS_VERSION=4.32.5
# Under target/: git-ignored already, and `cargo clean` removes it with everything else built here.
readonly venv=target/schemathesis-venv
readonly work=target/api-fuzz

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || { echo "api-fuzz: python3 3.11 or newer is required (schemathesis $SCHEMATHESIS_VERSION needs it)" >&2; exit 1; }
command -v psql >/dev/null || { echo "api-fuzz: psql is required" >&2; exit 1; }

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true
}
if [ "$(installed_version)" != "$SCHEMATHESIS_VERSION" ]; then
  echo "api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  # --clear: a venv left by another version (or a Python that moved) is rebuilt, not patched.
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
readonly st="$venv/bin/schemathesis"
# The accounts are created with JSON read and written by this Python: no jq needed.
readonly py="$venv/bin/python"

# --- the server --------------------------------------------------------------------------------------
cargo build --quiet --locked --bin bulwark

rm -rf "$work"
mkdir -p "$work"
readonly log="$work/server.log"

# A throwaway database and the server on it (scripts/lib/throwaway-server.sh, shared with
# scripts/bench.sh), both gone however the script ends.
# shellcheck source=scripts/lib/throwaway-server.sh
source scripts/lib/throwaway-server.sh
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  drop_throwaway_database
}
trap cleanup EXIT
# Ctrl-C reaches the schemathesis in the foreground (which stops and prints what it found so far);
# the script then stops too, instead of going on to the next run, and cleans up on its way out.
trap 'echo "api-fuzz: interrupted" >&2; exit 130' INT TERM
throwaway_database bulwark_api_fuzz
load_test_environment target/debug/bulwark || { echo "api-fuzz: no server environment" >&2; exit 1; }
start_server target/debug/bulwark "$log" || { echo "api-fuzz: no server to fuzz" >&2; exit 1; }
echo "api-fuzz: server ready at $base (log: $log)"

# --- credentials --------------------------------------------------------------------------------------
# Accounts are made the way a client makes them — register, sign in — so that the fuzzer works with
# real sessions. All of them are made now, before any fuzzing: fuzzing the sign-in route makes
# failed sign-ins from this address, and the sign-in throttle (kept at its default) would then slow
# down or refuse a later sign-in.
#
# The passwords are random, and unknown to the fuzzer: schema examples hold a well-known password
# (Correct-Horse-Battery-9-Staple), and an account using it would be signed in, have its password
# changed or be deleted by the examples phase depending on the order operations happen to run in.

# A password the default policy accepts (upper, lower, digit, symbol, 12+ characters, strong).
new_password() { "$py" -c 'import secrets; print("Fz-" + secrets.token_hex(16) + "-Q9!")'; }
# Reads one field of a JSON object on stdin.
json_field() { "$py" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# POSTs JSON (built from name=value pairs by Python, so no value needs escaping) and prints the
# response body; fails loudly on any status but the expected one.
post_json() { # <path> <expected status> [bearer credential or ""] <name=value>...
  local path=$1 expected=$2 credential=$3; shift 3
  local body response status
  body=$("$py" -c '
import json, sys
fields = dict(arg.split("=", 1) for arg in sys.argv[1:])
if "scopes" in fields:
    fields["scopes"] = fields["scopes"].split(",")
print(json.dumps(fields))' "$@")
  local auth=()
  [ -n "$credential" ] && auth=(-H "authorization: Bearer $credential")
  response=$(curl -sS -w '\n%{http_code}' "$base$path" -H 'content-type: application/json' "${auth[@]}" --data-binary "$body")
  status=${response##*$'\n'}
  if [ "$status" != "$expected" ]; then
    echo "api-fuzz: seeding failed: POST $path answered $status, expected $expected: ${response%$'\n'*}" >&2
    exit 1
  fi
  printf '%s\n' "${response%$'\n'*}"
}
sign_in() { # <email> <password>: a fresh session's access token
  post_json /api/v1/auth/login 200 "" email="$1" password="$2" | json_field access_token
}

# The owner: the account most runs act as. Its documents, webhooks, keys and sessions are what the
# stateful phase creates, reads, changes and deletes.
owner_email=owner@fuzz.bulwark.test
owner_password=$(new_password)
post_json /api/v1/auth/register 201 "" email="$owner_email" password="$owner_password" display_name=Owner >/dev/null
owner_token=$(sign_in "$owner_email" "$owner_password")
# An API key with every scope, to fuzz the operations that accept one (documents, webhooks, GraphQL)
# through the API-key path of authentication too.
owner_api_key=$(post_json /api/v1/auth/api-keys 201 "$owner_token" name=schemathesis \
  scopes=documents:read,documents:write,webhooks:read,webhooks:write | json_field key)

# A second account whose sessions the destructive operations may end: one fresh session per
# destructive run, since each run may legitimately end it (logout-all ends all of them, so it runs
# last).
leaver_email=leaver@fuzz.bulwark.test
leaver_password=$(new_password)
post_json /api/v1/auth/register 201 "" email="$leaver_email" password="$leaver_password" display_name=Leaver >/dev/null
leaver_revoke_token=$(sign_in "$leaver_email" "$leaver_password")
leaver_delete_token=$(sign_in "$leaver_email" "$leaver_password")
leaver_logout_all_token=$(sign_in "$leaver_email" "$leaver_password")

# An administrator, made the only way there is (`bulwark create-admin`, password on stdin), to fuzz
# the admin API as someone allowed to use it; everyone else's 403 is fuzzed in the main run.
admin_email=admin@fuzz.bulwark.test
admin_password=$(new_password)
printf '%s\n' "$admin_password" \
  | env -i "${server_env[@]}" target/debug/bulwark create-admin --email "$admin_email" >/dev/null 2>>"$log" \
  || { echo "api-fuzz: bulwark create-admin failed; see the end of $log" >&2; exit 1; }
admin_token=$(sign_in "$admin_email" "$admin_password")

# --- schemathesis' configuration ---------------------------------------------------------------------
# The command line below carries what is tuned per run; this file carries what the command line
# cannot say: the credential (read from the environment, so it never shows in `ps` or in a log),
# and settings for particular operations.
cat >"$work/schemathesis.toml" <<'TOML'
# Written by scripts/api-fuzz.sh for one run; edits are lost on the next run.

# The credential of the run (BULWARK_FUZZ_CREDENTIAL is set per run by the script). It is sent on
# every request; the `ignored_auth` check removes it, and replaces it with a wrong one, to see the
# server refuse.
headers = { Authorization = "Bearer ${BULWARK_FUZZ_CREDENTIAL}" }

# Runs must not depend on earlier runs: no example database, no cache of what worked before (both
# would otherwise be written into the current directory and replayed next time).
[generation]
database = "none"
[cache]
enabled = false

# A PATCH without its required If-Match is refused with 428 Precondition Required: the status
# RFC 6585 made for exactly that, documented on the operation. Schemathesis' default list of
# acceptable refusals lacks it; otherwise the list is schemathesis' own.
[checks.missing_required_header]
expected-statuses = ["400", "401", "403", "406", "415", "422", "428"]

# POST /graphql answers a request that is a JSON object but not a valid GraphQL request
# (`variables` not an object, `operationName` not a string...) with 200 and a GraphQL error in
# `errors` (`extensions.code` BAD_USER_INPUT): that is how GraphQL reports request errors over
# application/json, and what crates/transport-graphql/src/http.rs does on purpose. So for it, 200
# counts as refusing schema-violating input too; every other check applies unchanged.
[[operations]]
include-operation-id = "graphql"
checks.negative_data_rejection.expected-statuses = ["200", "400", "401", "413", "415", "429"]
TOML

# --- the runs -----------------------------------------------------------------------------------------
# The checks: every response is checked against the document (status, media type, headers, body),
# 5xx fails, schema-violating input must be refused (4xx), declared authentication must be enforced,
# a missing required header (If-Match) must be refused, an undocumented method must get 405 with an
# honest Allow header, and a deleted resource must be gone (and a created one be there).
#
# Left out: `positive_data_acceptance`, which expects every schema-valid request to succeed. Many
# operations refuse schema-valid input on purpose for reasons no schema can express — a wrong
# password, an unknown or expired token, an id that is not a user, a host that does not resolve,
# a stale If-Match — and the answer to those is a documented 4xx, which the other checks verify.
# And `object_level_authorization`, which needs schemathesis to hold two users' objects side by
# side: tests/api/bola.rs covers that, request by request.
readonly checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header,unsupported_method,allow_header_conformance,use_after_free,ensure_resource_availability

# Generated test cases per operation and phase, and the seed: the same seed and the same code give
# the same requests (up to the order two workers interleave them in), so a failure in CI can be
# replayed locally. Change FUZZ_SEED (or FUZZ_EXAMPLES) to explore further; CI uses the defaults.
readonly examples=${FUZZ_EXAMPLES:-50}
readonly seed=${FUZZ_SEED:-20261128}
# Wall time for all the runs together. They take about a minute on two cores with the debug build;
# the budget leaves room for a slow CI machine and still ends the whole script within five minutes.
# Each run also has a cap of its own, so that one run that hangs cannot starve the others.
readonly budget=${FUZZ_TIME_BUDGET:-240}
deadline=$((SECONDS + budget))

failed=()
fuzz() { # <run name> <time cap in s> <credential> <operation filters...>
  local name=$1 limit=$2 credential=$3 status=0; shift 3
  local remaining=$((deadline - SECONDS))
  echo
  echo "api-fuzz: ===== run '$name' ====="
  if [ "$remaining" -lt 5 ]; then
    echo "api-fuzz: no time left for run '$name' (FUZZ_TIME_BUDGET=$budget s)" >&2
    failed+=("$name (not run: time budget spent)")
    return
  fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  # `timeout` is the hard stop: schemathesis has no bound on wall time that does not also keep it
  # busy until the time is up (its --max-time repeats fuzzing until then). SIGINT first, so that it
  # prints what it found so far; SIGKILL 15 s later if it does not stop. --foreground keeps it in
  # the terminal's process group, so that Ctrl-C reaches it.
  # Hypothesis (the generator inside schemathesis) keeps caches in ./.hypothesis unless told
  # otherwise: they go under target/ with the rest.
  BULWARK_FUZZ_CREDENTIAL=$credential HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis" \
    timeout --foreground --signal=INT --kill-after=15 "$limit" \
      "$st" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
        --checks "$checks" \
        --max-examples "$examples" --seed "$seed" --workers 2 \
        --request-timeout 10 --max-redirects 0 \
        --report junit --report-junit-path "$work/$name.junit.xml" \
        "$@" || status=$?
  case $status in
    0) ;;
    124 | 137) echo "api-fuzz: run '$name' was stopped at its time limit of $limit s" >&2; failed+=("$name (time limit)") ;;
    *) failed+=("$name") ;;
  esac
}

# Not fuzzed anywhere: the two WebSocket upgrades, GET /api/v1/ws and GET /graphql/ws. Over HTTP
# they are one GET that must carry the upgrade handshake; schemathesis cannot speak the socket
# protocol behind it (tests/api/websocket.rs and graphql_ws.rs do).
no_sockets=(--exclude-operation-id notifications_socket --exclude-operation-id graphql_socket)
# The operations that end the session they are called with (all of the account's sessions, for
# logout-all; one chosen by id for revoke_session, and the stateful phase can take the caller's own
# session id from GET /api/v1/auth/sessions; the account itself, for delete_me). In the main run they
# would end the credential halfway and leave every later request a 401. They get runs of their own.
destructive=(revoke_session delete_me logout_all)
not_destructive=()
for operation in "${destructive[@]}"; do not_destructive+=(--exclude-operation-id "$operation"); done

started=$SECONDS

# 1. The API-key path: every operation that accepts an API key, called with one. First, because the
#    main run may revoke this very key (DELETE /api/v1/auth/api-keys/{id}, with ids it lists).
fuzz api-key 50 "$owner_api_key" --include-path-regex '^/api/v1/(documents|webhooks)|^/graphql$'

# 2. Everything else that keeps the session alive, as the owner with an access token — the admin
#    API included, where a plain user must get 403.
fuzz main 120 "$owner_token" "${no_sockets[@]}" "${not_destructive[@]}"

# 3. Each destructive operation alone, with a session of its own (logout-all last: it ends them all).
fuzz revoke-session 20 "$leaver_revoke_token" --include-operation-id revoke_session
fuzz delete-me 20 "$leaver_delete_token" --include-operation-id delete_me
fuzz logout-all 20 "$leaver_logout_all_token" --include-operation-id logout_all

# 4. The admin API as an administrator. Last: it may lock or demote the other accounts (never
#    itself: the service refuses an administrator's change to its own role or lock).
fuzz admin 40 "$admin_token" --include-tag admin

echo
echo "api-fuzz: fuzzing took $((SECONDS - started)) s; server log: $log; JUnit reports: $work/*.junit.xml"

# A panic inside a handler is answered 500 (which the runs report); one anywhere else — a
# background task, a listener — answers nothing, so the log is searched for them too.
if grep -q '"panic":' "$log"; then
  echo "api-fuzz: the server panicked; from $log:" >&2
  grep '"panic":' "$log" | tail -n 5 >&2
  failed+=("server panic")
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "api-fuzz: the server is no longer running; see $log" >&2
  failed+=("server exited")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "api-fuzz: FAILED: ${failed[*]}" >&2
  echo "api-fuzz: each failure above comes with a curl command that reproduces it (against a server" >&2
  echo "api-fuzz: started as this script does); the server's side is in $log (ERROR lines: 5xx)." >&2
  exit 1
fi
echo "api-fuzz: no failures"
