//! The one error every use case shares: something went wrong that the caller did not cause.
//!
//! Use-case errors are enums of what the *client* can be told (`InvalidCredentials`, `NotFound`);
//! everything else — a store that is down, a random number generator that failed — becomes
//! [`Unexpected`], which every transport turns into a generic 5xx while the server log gets the
//! whole chain under the request id.

/// A failure the client did not cause. `what` names the step for the log; the source says why.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Unexpected {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Unexpected {
    /// Wraps a cause with the step that failed.
    pub fn new(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what,
            source: source.into(),
        }
    }

    /// Whether the cause is that a bounded resource is saturated (the hashing queue): the client
    /// may retry soon, so transports answer 503 with `Retry-After` instead of 500.
    #[must_use]
    pub fn is_saturation(&self) -> bool {
        self.caused_by::<crate::password::Saturated>()
    }

    /// Whether the cause is that a dependency could not be reached or did not answer in time
    /// ([`Unavailable`]): not a bug, and over when it is back, so transports answer 503 with
    /// `Retry-After` instead of 500.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        self.caused_by::<Unavailable>()
    }

    fn caused_by<T: std::error::Error + 'static>(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self.source.as_ref());
        while let Some(error) = cause {
            if error.is::<T>() {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

/// A dependency (the database) could not be reached, refused the connection, dropped it, or did
/// not answer in time. The adapters wrap such failures in this marker — only they know what their
/// driver's errors mean — and the domain passes it on inside [`Unexpected`], so that a transport can
/// tell an outage (503, retry later) from a bug (500).
#[derive(Debug, thiserror::Error)]
#[error("a dependency is unavailable")]
pub struct Unavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// `result.or_unexpected("step")`: the shorthand services use for every port call whose failure is
/// not the client's business.
pub trait OrUnexpected<T> {
    /// Maps the error to [`Unexpected`] with this step name.
    ///
    /// # Errors
    /// The mapped error.
    fn or_unexpected(self, what: &'static str) -> Result<T, Unexpected>;
}

impl<T, E> OrUnexpected<T> for Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn or_unexpected(self, what: &'static str) -> Result<T, Unexpected> {
        self.map_err(|e| Unexpected::new(what, e))
    }
}
