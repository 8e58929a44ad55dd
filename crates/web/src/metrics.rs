//! Prometheus metrics: what the service counts, and the text format `GET /metrics` serves.
//!
//! Every label is bounded, so an attacker cannot grow the metrics without bound (one new series
//! per request is a memory leak with a URL): the route is the matched *template*
//! (`/api/v1/documents/{id}`, or `unmatched`), never the raw path; the method is one of the
//! standard ones or `OTHER`; the status is a number; the rate-limit policy is one of ours.
//! Gauges (database pool, open sockets, limiter fallbacks) are read when scraped.
//!
//! The endpoint is guarded by `METRICS_TOKEN` (see `crates/transport-rest/src/metrics.rs`):
//! metrics describe traffic and capacity, which is reconnaissance for an attacker.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

/// The latency buckets, in seconds.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One label (name and value, both fixed text of ours), or none.
pub type Label = Option<(&'static str, &'static str)>;

/// A family's samples, read when scraped.
type Samples = Box<dyn Fn() -> Vec<(Label, f64)> + Send + Sync>;

/// What a family read at scrape time is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (Prometheus takes its `rate`/`increase`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// The service's metrics. Cheap to clone: clones share the counts.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    websocket_messages: Mutex<BTreeMap<&'static str, u64>>,
    families: Mutex<Vec<(&'static str, &'static str, Kind, Samples)>>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The method as a bounded label.
fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        *lock(&self.inner.requests)
            .entry((route.to_owned(), method, status))
            .or_default() += 1;
        let mut latency = lock(&self.inner.latency);
        let histogram = latency.entry((route.to_owned(), method)).or_default();
        for (bucket, le) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= le {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts one request refused by a rate limit.
    pub fn rate_limited(&self, policy: &'static str) {
        *lock(&self.inner.rate_limited).entry(policy).or_default() += 1;
    }

    /// Counts one message a client sent over a socket (`endpoint`: one of ours).
    pub fn websocket_message(&self, endpoint: &'static str) {
        *lock(&self.inner.websocket_messages)
            .entry(endpoint)
            .or_default() += 1;
    }

    /// A gauge read at every scrape (`name` and `help` are fixed text of ours).
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.family(name, help, Kind::Gauge, move || vec![(None, read())]);
    }

    /// A family of samples read at every scrape, each with at most one label — counters kept
    /// elsewhere (the abuse watch's) are exposed this way.
    pub fn family(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        read: impl Fn() -> Vec<(Label, f64)> + Send + Sync + 'static,
    ) {
        lock(&self.inner.families).push((name, help, kind, Box::new(read)));
    }

    /// Requests counted so far for a route template and status (for tests).
    #[must_use]
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        lock(&self.inner.requests)
            .iter()
            .filter(|((r, _, s), _)| r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP bulwark_http_requests_total HTTP requests by route template, method and status.\n");
        out.push_str("# TYPE bulwark_http_requests_total counter\n");
        for ((route, method, status), n) in lock(&self.inner.requests).iter() {
            let _ = writeln!(
                out,
                "bulwark_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP bulwark_http_request_duration_seconds HTTP request latency by route template and method.\n");
        out.push_str("# TYPE bulwark_http_request_duration_seconds histogram\n");
        for ((route, method), h) in lock(&self.inner.latency).iter() {
            let route = escape(route);
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "bulwark_http_request_duration_seconds_bucket{{route=\"{route}\",method=\"{method}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_bucket{{route=\"{route}\",method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_sum{{route=\"{route}\",method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "bulwark_http_request_duration_seconds_count{{route=\"{route}\",method=\"{method}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP bulwark_rate_limited_total Requests refused by a rate limit, by policy.\n",
        );
        out.push_str("# TYPE bulwark_rate_limited_total counter\n");
        for (policy, n) in lock(&self.inner.rate_limited).iter() {
            let _ = writeln!(out, "bulwark_rate_limited_total{{policy=\"{policy}\"}} {n}");
        }
        out.push_str("# HELP bulwark_websocket_messages_total Messages clients sent over the WebSockets, by endpoint.\n");
        out.push_str("# TYPE bulwark_websocket_messages_total counter\n");
        for (endpoint, n) in lock(&self.inner.websocket_messages).iter() {
            let _ = writeln!(
                out,
                "bulwark_websocket_messages_total{{endpoint=\"{endpoint}\"}} {n}"
            );
        }
        for (name, help, kind, read) in lock(&self.inner.families).iter() {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
            for (label, value) in read() {
                match label {
                    Some((key, v)) => {
                        let _ = writeln!(out, "{name}{{{key}=\"{}\"}} {value}", escape(v));
                    }
                    None => {
                        let _ = writeln!(out, "{name} {value}");
                    }
                }
            }
        }
        out
    }
}

/// The middleware that counts every request (registered just inside the request context, so it
/// sees every final status: 401s, 404s and 429s included).
///
/// # Errors
/// Only what the inner service returns.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let route = crate::routing::route_pattern(req.request());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &res {
            Ok(res) => res.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        metrics.observe_request(
            route.as_deref().unwrap_or("unmatched"),
            &method,
            status,
            started.elapsed().as_secs_f64(),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_holds_every_series_with_bounded_labels() {
        let metrics = Metrics::default();
        metrics.observe_request("/api/v1/documents/{id}", "GET", 200, 0.003);
        metrics.observe_request("/api/v1/documents/{id}", "GET", 200, 0.2);
        metrics.observe_request("unmatched", "BREW", 404, 0.001);
        metrics.rate_limited("ip");
        metrics.gauge("bulwark_test_gauge", "A test gauge.", || 7.0);
        metrics.family(
            "bulwark_test_total",
            "A test counter.",
            Kind::Counter,
            || vec![(Some(("rule", "a\"b")), 2.0), (None, 3.0)],
        );
        metrics.websocket_message("/graphql/ws");
        let text = metrics.render();
        assert!(text.contains(
            "bulwark_http_requests_total{route=\"/api/v1/documents/{id}\",method=\"GET\",status=\"200\"} 2\n"
        ), "{text}");
        assert!(
            text.contains("method=\"OTHER\",status=\"404\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.25\"} 2\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains("bulwark_rate_limited_total{policy=\"ip\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE bulwark_test_gauge gauge\nbulwark_test_gauge 7\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE bulwark_test_total counter\nbulwark_test_total{rule=\"a\\\"b\"} 2\nbulwark_test_total 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("bulwark_websocket_messages_total{endpoint=\"/graphql/ws\"} 1\n"),
            "{text}"
        );
        assert_eq!(metrics.requests("/api/v1/documents/{id}", 200), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
