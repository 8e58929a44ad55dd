//! Logging: tracing to stdout, JSON lines in production, text on a laptop.
//!
//! What is never logged — `Authorization`, cookies, bodies, query strings, key material — is decided
//! where events are created (see `bulwark_web::middleware::request_context`), not filtered here:
//! a filter that forgets one field is a leak.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber and the panic hook ([`install_panic_hook`]). Call once, first
/// thing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` fails only when a subscriber is already installed (tests start several apps in one
    // process); the first one keeps working, which is what we want.
    let _ = match settings.format {
        LogFormat::Json => {
            tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stdout))
                .map_err(|_| ())
        }
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(true)
            .compact()
            .try_init()
            .map_err(|_| ()),
    };
    install_panic_hook();
}

/// The production log format: one JSON object per line, the event's fields at the top level, and
/// `spans`, every span the event happened in, outermost first — so a line logged deep inside a
/// service (a sign-in's `security.alert`, a query's warning) still carries the request's
/// `request_id`, path and client address from the outermost `http.request` span. (With only the
/// *current* span, such a line would show the innermost span alone and could not be traced back
/// to its request.)
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .finish()
}

/// Panics become log events instead of raw text on stderr. A panic inside a request handler is
/// logged by the problem middleware (once, with the request id), so the hook only hands it the
/// location; any other panic is logged here.
pub fn install_panic_hook() {
    use bulwark_web::middleware::problems;
    std::panic::set_hook(Box::new(|info| {
        if problems::panic_is_caught_here() {
            problems::note_panic_location(
                info.location().map(ToString::to_string).unwrap_or_default(),
            );
        } else {
            tracing::error!(panic = %info, "panic");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_logged_deep_inside_a_request_carries_the_request_span() {
        let captured = bulwark_testkit::CapturedLogs::default();
        let sink = captured.clone();
        let subscriber = json_subscriber(EnvFilter::new("info"), move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("http.request", request_id = "req-7", path = "/x");
            let _request = request.enter();
            let service = tracing::info_span!("auth.login");
            let _service = service.enter();
            tracing::warn!(rule = "login_failures_per_account", "security alert");
        });
        let text = captured.text();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["message"], "security alert", "{line}");
        assert_eq!(line["rule"], "login_failures_per_account", "{line}");
        assert_eq!(line["spans"][0]["name"], "http.request", "{line}");
        assert_eq!(line["spans"][0]["request_id"], "req-7", "{line}");
        assert_eq!(line["spans"][1]["name"], "auth.login", "{line}");
    }
}
