//! `make bench`'s own programs, never shipped: the bare actix + sqlx server that is the ceiling the
//! real service is measured against (`bench-baseline`), the WebSocket fan-out client
//! (`bench-ws`) and the rate-limiter timing (`bench-limiter`). `scripts/bench.sh` builds and runs
//! them; `docs/benchmarks.md` explains what each measures.
