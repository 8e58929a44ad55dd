# Bulwark. `make run` serves the API on http://127.0.0.1:8080; `make test` is what CI runs.
SHELL := /bin/bash
# Builds never need a database: `query!` macros read the committed .sqlx/ cache.
export SQLX_OFFLINE := true
CARGO ?= cargo

.PHONY: help run run-tls env test fuzz fmt lint openapi openapi-check migrate db-up prepare build bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Serve on http://127.0.0.1:8080 (creates .env with fresh secrets when missing, migrates)
	@scripts/run.sh

run-tls: ## Like run, over HTTPS on https://localhost:8443 (dev certificate in .dev/tls; :8080 redirects)
	@scripts/run-tls.sh

env: ## Create .env with fresh random secrets for development (never overwrites one)
	@scripts/dev-env.sh

test: ## Everything CI checks: fmt, clippy -D warnings, OpenAPI drift, all tests, API fuzzing
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(MAKE) --no-print-directory openapi-check
	$(CARGO) test --workspace --locked
	$(MAKE) --no-print-directory fuzz

fuzz: ## API fuzzing with schemathesis against a running server (≤ 5 min)
	@scripts/api-fuzz.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Clippy with warnings as errors
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

build: ## Debug build of the bulwark binary
	$(CARGO) build --locked --bin bulwark

openapi: build ## Regenerate openapi/openapi.json and openapi/schema.graphql from the code
	target/debug/bulwark openapi > openapi/openapi.json.tmp && mv openapi/openapi.json.tmp openapi/openapi.json
	target/debug/bulwark graphql-schema > openapi/schema.graphql.tmp && mv openapi/schema.graphql.tmp openapi/schema.graphql

openapi-check: build ## Fail when openapi/openapi.json or openapi/schema.graphql differs from what the code generates
	@target/debug/bulwark openapi | diff -u openapi/openapi.json - \
	  || { echo "openapi/openapi.json is out of date: run 'make openapi' and commit it" >&2; exit 1; }
	@target/debug/bulwark graphql-schema | diff -u openapi/schema.graphql - \
	  || { echo "openapi/schema.graphql is out of date: run 'make openapi' and commit it" >&2; exit 1; }

migrate: build ## Apply migrations to DATABASE_URL (from .env in development)
	APP_ENV=$${APP_ENV:-development} target/debug/bulwark migrate

db-up: ## Start PostgreSQL, Redis and Mailpit with docker compose
	docker compose up -d --wait db redis mailpit

bench: ## Benchmarks against the release server (wrk; see docs/benchmarks.md), then the session check
	@scripts/bench.sh
	$(CARGO) bench --locked -p bulwark-persistence --bench liveness

prepare: ## Regenerate the sqlx offline cache (.sqlx/) after changing queries or migrations
	SQLX_OFFLINE=false scripts/sqlx-prepare.sh
