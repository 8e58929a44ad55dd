//! Logging: tracing to stdout, JSON lines in production, text on a laptop.
//!
//! What is never logged — `Authorization`, cookies, bodies, query strings, key material — is decided
//! where events are created (see `bulwark_web::middleware::request_context`), not filtered here:
//! a filter that forgets one field is a leak.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber and the panic hook ([`install_panic_hook`]). Call once, first
/// thing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    // `try_init` fails only when a subscriber is already installed (tests start several apps in one
    // process); the first one keeps working, which is what we want.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
    install_panic_hook();
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
