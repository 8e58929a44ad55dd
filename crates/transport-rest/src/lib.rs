//! # bulwark-transport-rest
//!
//! The REST adapter: actix-web handlers that extract, parse into domain types, call a domain
//! service and map the answer back — nothing more. No SQL, no hashing, no business rule and no
//! authorisation decision is made in this crate.
//!
//! Routes are registered **only** through [`routes`], with `utoipa-actix-web`: a handler without a
//! `#[utoipa::path]` annotation cannot be registered there, so every route the service answers is in
//! the OpenAPI document by construction. Two tests in `tests/api/openapi.rs` hold the rest of the
//! line: the checked-in `openapi/openapi.json` must equal what the code generates, and every
//! documented operation must be answered (not 404/405) by the running app.
//!
//! **Never imports** a database crate, the security adapters or another transport.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod docs;
pub mod documents;
pub mod health;
pub mod jwks;
pub mod metrics;
pub mod mfa;
pub mod oauth;
pub mod users;
pub mod webhooks;

use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;

pub use docs::OpenApiDocument;
pub use health::Readiness;
pub use jwks::{Jwk, JwkSet};

/// The document's fixed parts: info, tags, shared schemas. Paths are added by [`routes`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Bulwark API",
        description = "A security-first reference backend. Every error is RFC 9457 `application/problem+json`; \
                       every response carries `X-Request-Id` and the security headers listed in docs/security.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness and readiness for orchestrators."),
        (name = "meta", description = "This document."),
        (name = "auth", description = "Authentication: keys, tokens, sessions."),
        (name = "users", description = "Accounts: registration and the caller's own account."),
        (name = "admin", description = "Administration: users, roles, locks, plans, the audit trail. Administrators only (403 for anyone else)."),
        (name = "documents", description = "The example resource: documents with visibility, tags and sharing; object-level authorisation on every verb."),
        (name = "graphql", description = "The GraphQL endpoint (schema in openapi/schema.graphql): the same services and rules as REST."),
        (name = "webhooks", description = "Signed notifications of the caller's document events to a URL it registers. Targets pass an SSRF policy at registration and on the address dialled at every delivery; redirects are never followed."),
    ),
    components(schemas(bulwark_web::Problem, bulwark_web::FieldError)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme that protected operations name.
#[derive(Debug)]
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `/api/v1/auth/login` or `/api/v1/auth/refresh`. \
                         Missing or invalid → 401 with `WWW-Authenticate: Bearer error=\"invalid_token\"`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bwk_<prefix>_<secret>")
                    .description(Some(
                        "An API key from `POST /api/v1/auth/api-keys`, sent as a bearer token. It acts \
                         as its owner within its scopes, and only on operations that list this scheme \
                         (others answer 403 `session-required`). Unknown, revoked or expired → 401.",
                    ))
                    .build(),
            ),
        );
    }
}

/// A JSON response that must not be stored by any cache: it carries tokens or personal data.
#[must_use]
pub fn private_json(
    status: actix_web::http::StatusCode,
    body: &impl serde::Serialize,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status)
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        ))
        .json(body)
}

/// Registers every REST route (and, with it, its OpenAPI operation).
pub fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(health::live)
        .service(health::ready)
        .service(metrics::metrics)
        .service(docs::openapi_json)
        .service(jwks::jwks)
        .service(users::register)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(auth::logout_all)
        .service(auth::list_sessions)
        .service(auth::revoke_session)
        .service(auth::forgot_password)
        .service(auth::reset_password)
        .service(auth::verify_email)
        .service(oauth::oauth_authorize)
        .service(oauth::oauth_callback)
        .service(oauth::oauth_link)
        .service(mfa::verify_mfa)
        .service(mfa::setup_totp)
        .service(mfa::enable_totp)
        .service(mfa::disable_totp)
        .service(api_keys::create_api_key)
        .service(api_keys::list_api_keys)
        .service(api_keys::revoke_api_key)
        .service(users::get_me)
        .service(users::update_me)
        .service(users::change_password)
        .service(users::delete_me)
        .service(admin::list_users)
        .service(admin::update_user)
        .service(admin::list_audit_events)
        .service(webhooks::create_webhook)
        .service(webhooks::list_webhooks)
        .service(webhooks::delete_webhook)
        .service(webhooks::list_deliveries)
        .service(
            // A document body may be up to 100 KiB of HTML, which JSON-escaped and with the other fields
            // needs more than the service-wide JSON limit: `DOCUMENT_JSON_LIMIT` (256 KiB).
            utoipa_actix_web::scope::scope("/api/v1/documents")
                .app_data(bulwark_web::extract::json_config(
                    documents::DOCUMENT_JSON_LIMIT,
                ))
                .service(documents::create_document)
                .service(documents::list_documents)
                .service(documents::get_document)
                .service(documents::update_document)
                .service(documents::delete_document)
                .service(documents::share_document)
                .service(documents::unshare_document)
                .service(documents::upload_attachment)
                .service(documents::download_attachment),
        );
}

/// The OpenAPI document of the routes in [`routes`]; `bulwark openapi` prints it and `make openapi`
/// writes it to `openapi/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_app, doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    doc
}

/// Documents the rate limits on every operation they apply to (all but the health probes): the
/// 429 problem with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` headers, whichever
/// of `rate-limited` (a GCRA policy) or `quota-exceeded` (the caller's daily request quota) it is.
/// An operation that documents its own 429 (a capped flow) keeps its text, and gains the headers.
pub fn document_rate_limits(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let integer = || {
        HeaderBuilder::new()
            .schema(Some(utoipa::openapi::schema::Object::with_type(
                utoipa::openapi::schema::Type::Integer,
            )))
            .description(Some(
                "Seconds to wait, rounded up: a client that waits exactly this long is let in.",
            ))
            .build()
            .into()
    };
    let text = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(utoipa::openapi::schema::Object::with_type(
                utoipa::openapi::schema::Type::String,
            )))
            .description(Some(description))
            .build()
            .into()
    };
    let generic = ResponseBuilder::new()
        .description(
            "Too many requests: a rate limit (`urn:bulwark:problem:rate-limited`: per client \
             address, per user or API key, stricter on sign-in routes; GraphQL is charged its \
             cost) or the caller's daily request quota (`urn:bulwark:problem:quota-exceeded`, by \
             plan, renewed at midnight UTC) is used up.",
        )
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                .build(),
        )
        .build();
    for (path, item) in &mut doc.paths.paths {
        if path.starts_with("/health/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let response = operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| RefOr::T(generic.clone()));
            if let RefOr::T(response) = response {
                response.headers.insert("Retry-After".to_owned(), integer());
                response.headers.insert(
                    "RateLimit-Policy".to_owned(),
                    text("Each policy that applied, e.g. `\"ip\";q=600;w=60`."),
                );
                response.headers.insert(
                    "RateLimit".to_owned(),
                    text("What is left of each, e.g. `\"ip\";r=0;t=12` (allowed responses carry both headers too)."),
                );
            }
        }
    }
}

/// Every documented path with its methods, for the 405 fallback (`bulwark_web::routing`).
#[must_use]
pub fn route_table(doc: &utoipa::openapi::OpenApi) -> bulwark_web::routing::RouteTable {
    use actix_web::http::Method;
    bulwark_web::routing::RouteTable::new(doc.paths.paths.iter().map(|(path, item)| {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::HEAD, item.head.is_some()),
            (Method::OPTIONS, item.options.is_some()),
        ]
        .into_iter()
        .filter_map(|(method, present)| present.then_some(method))
        .collect();
        (path.clone(), methods)
    }))
}

/// An operation whose `security` declaration the access table cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {problem}")]
pub struct AccessDeclarationError {
    /// The method.
    pub method: String,
    /// The path pattern.
    pub path: String,
    /// What is wrong.
    pub problem: &'static str,
}

/// The access class of every documented operation, read from its `security` requirement (see
/// `bulwark_web::access`). Operations without a declaration are left out, which makes them
/// "authenticated" at run time; `tests/api/access.rs` fails the build for them.
///
/// # Errors
/// [`AccessDeclarationError`] for a requirement that names another scheme, several requirements, or
/// a scope that is not a known permission — a bug in an annotation, refused at start-up.
pub fn access_table(
    doc: &utoipa::openapi::OpenApi,
) -> Result<bulwark_web::access::AccessTable, AccessDeclarationError> {
    use actix_web::http::Method;
    use bulwark_domain::api_key::Scope;
    use bulwark_domain::policy::Permission;
    use bulwark_web::access::Access;

    let mut entries = Vec::new();
    let mut api_keys = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let Some(security) = &operation.security else {
                continue;
            };
            let error = |problem| AccessDeclarationError {
                method: method.to_string(),
                path: path.clone(),
                problem,
            };
            // A requirement serialises as `{}` (public), `{"bearer": [permission?]}` or
            // `{"api_key": [scope]}`; several requirements are alternatives (OpenAPI's "or").
            let requirements = serde_json::to_value(security)
                .map_err(|_| error("the security requirement does not serialise"))?;
            let mut access = None;
            let mut api_key = None;
            for requirement in requirements
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let requirement = requirement
                    .as_object()
                    .ok_or_else(|| error("a security requirement is an object"))?;
                let declared = match requirement.iter().collect::<Vec<_>>().as_slice() {
                    [] => Some(Access::Public),
                    [(scheme, scopes)] if scheme.as_str() == "bearer" => Some(
                        match scopes.as_array().map(Vec::as_slice).unwrap_or_default() {
                            [] => Access::Authenticated,
                            [scope] => Access::Permission(
                                scope
                                    .as_str()
                                    .and_then(Permission::parse)
                                    .ok_or_else(|| error("the scope is not a known permission"))?,
                            ),
                            _ => return Err(error("declare at most one permission")),
                        },
                    ),
                    [(scheme, scopes)] if scheme.as_str() == "api_key" => {
                        let [scope] = scopes.as_array().map(Vec::as_slice).unwrap_or_default()
                        else {
                            return Err(error("an `api_key` requirement names exactly one scope"));
                        };
                        let scope = scope
                            .as_str()
                            .and_then(Scope::parse)
                            .ok_or_else(|| error("the scope is not a known API-key scope"))?;
                        if api_key.replace(scope).is_some() {
                            return Err(error("declare at most one `api_key` requirement"));
                        }
                        None
                    }
                    _ => {
                        return Err(error(
                            "only the `bearer` and `api_key` schemes are known, one per requirement",
                        ));
                    }
                };
                if let Some(declared) = declared {
                    access = match (access, declared) {
                        (None, declared) => Some(declared),
                        // `security((), ("bearer" = []))`: anonymous, or authenticated.
                        (Some(Access::Public), Access::Authenticated)
                        | (Some(Access::Authenticated), Access::Public) => Some(Access::Optional),
                        _ => {
                            return Err(error(
                                "declare one `bearer` requirement, public, or both (optional)",
                            ));
                        }
                    };
                }
            }
            let access = access
                .ok_or_else(|| error("declare exactly one `bearer` (or public) requirement"))?;
            if let Some(scope) = api_key {
                if !matches!(access, Access::Authenticated | Access::Optional) {
                    return Err(error(
                        "an `api_key` alternative is only for routes any signed-in user may call",
                    ));
                }
                api_keys.push((path.clone(), method.clone(), scope));
            }
            entries.push((path.clone(), method, access));
        }
    }
    Ok(bulwark_web::access::AccessTable::new(entries).with_api_key_scopes(api_keys))
}

/// The document rendered exactly as `openapi/openapi.json` holds it: pretty JSON, a final newline.
///
/// # Errors
/// A serialisation error, which would be a bug in a schema definition.
pub fn openapi_json(doc: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    doc.to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}
