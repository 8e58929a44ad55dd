//! The fallback for requests no route matched: 405 (with `Allow`) when the path exists under other
//! methods, else 404.
//!
//! actix-web routes declared with `#[get("/x")]` match on method *and* path, so a `POST /x` falls
//! through to the default service, which by default answers 404. RFC 9110 wants 405 and an `Allow`
//! header there, and a client debugging its integration deserves to hear "wrong method" rather than
//! "no such thing". The table of paths and methods comes from the OpenAPI document, which lists every
//! registered route by construction (see `bulwark-transport-rest`).
//!
//! Also [`route_pattern`]: the matched route's template, found once per request for the middleware
//! that decide by route (metrics, rate limits, access).

use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::ResourceDef;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, web};

use crate::problem::ProblemError;

/// Every route's path pattern and the methods it answers.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Arc<Vec<(ResourceDef, Vec<Method>)>>,
}

impl RouteTable {
    /// A table from `(pattern, methods)` pairs; patterns use actix/OpenAPI `{name}` syntax.
    #[must_use]
    /// HEAD is added wherever GET is: the request context middleware answers HEAD as GET.
    pub fn new(routes: impl IntoIterator<Item = (String, Vec<Method>)>) -> Self {
        let routes = routes
            .into_iter()
            .map(|(pattern, mut methods)| {
                if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                    methods.push(Method::HEAD);
                }
                (ResourceDef::new(pattern), methods)
            })
            .collect();
        Self {
            routes: Arc::new(routes),
        }
    }

    /// The methods allowed on `path`, or `None` when no route has that path.
    #[must_use]
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let methods: Vec<Method> = self
            .routes
            .iter()
            .filter(|(pattern, _)| pattern.is_match(path))
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect();
        (!methods.is_empty()).then_some(methods)
    }
}

/// The template of the route `req` matches (`/api/v1/documents/{id}`), or `None` when none does.
///
/// The middleware run *before* actix routes the request, so `HttpRequest::match_pattern` cannot
/// read the router's choice there: it walks the whole resource map again, running each dynamic
/// pattern's regex, and four middleware asked for it on every request. This finds it once and keeps
/// it in the request's extensions; the request's path never changes on its way in (no middleware
/// rewrites it), so the answer cannot go stale.
#[must_use]
pub fn route_pattern(req: &HttpRequest) -> Option<Rc<str>> {
    if let Some(MatchedRoute(pattern)) = req.extensions().get::<MatchedRoute>() {
        return pattern.clone();
    }
    let pattern: Option<Rc<str>> = req.match_pattern().map(Rc::from);
    req.extensions_mut().insert(MatchedRoute(pattern.clone()));
    pattern
}

/// [`route_pattern`]'s answer, kept for the rest of the request.
#[derive(Clone)]
struct MatchedRoute(Option<Rc<str>>);

/// The default service: 405 + `Allow`, or 404.
///
/// # Errors
/// Always: that is its job. The problem middleware renders the body.
pub async fn fallback(
    req: HttpRequest,
    table: web::Data<RouteTable>,
) -> Result<&'static str, ProblemError> {
    match table.allowed(req.path()) {
        Some(methods) => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let error = ProblemError::status(StatusCode::METHOD_NOT_ALLOWED);
            Err(match HeaderValue::from_str(&allow) {
                Ok(value) => error.with_header(ALLOW, value),
                Err(_) => error,
            })
        }
        None => Err(ProblemError::status(StatusCode::NOT_FOUND)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_list_their_methods_and_unknown_ones_none() {
        let table = RouteTable::new([
            ("/health/live".to_owned(), vec![Method::GET]),
            (
                "/api/v1/documents/{id}".to_owned(),
                vec![Method::GET, Method::PATCH],
            ),
        ]);
        assert_eq!(
            table.allowed("/health/live"),
            Some(vec![Method::GET, Method::HEAD])
        );
        assert_eq!(
            table.allowed("/api/v1/documents/123"),
            Some(vec![Method::GET, Method::PATCH, Method::HEAD])
        );
        assert_eq!(table.allowed("/api/v1/documents/123/x"), None);
        assert_eq!(table.allowed("/nope"), None);
    }
}
