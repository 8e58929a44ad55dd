//! `POST /graphql`: the HTTP adapter of the schema.
//!
//! The order of the checks is the point: the media type first (only `application/json`: a
//! `text/plain` or form body is what a cross-site form can send without a preflight — CSRF), then
//! the JSON shape (one operation; a batch only when enabled, and bounded), then the armour on the
//! query text (bytes and tokens before parsing, aliases and root fields after), and only then the
//! executor (depth and complexity). Mutations never run over GET: there is no GET route.
//!
//! Authentication is optional here: without a bearer credential the request runs anonymously and
//! every field that needs a caller answers `UNAUTHENTICATED`; with one, it must be valid (401
//! otherwise, before anything runs).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, post, web};
use async_graphql::Variables;
use bulwark_domain::context::Actor;
use bulwark_web::ProblemError;
use bulwark_web::identity::ClientOrigin;
use bulwark_web::problem::{Problem, types};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::armour::{self, Limits};
use crate::schema::{BulwarkSchema, RequestContext, codes};

/// One GraphQL operation, as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"query": "query($first: Int) { documents(first: $first) { edges { node { id title } } } }", "variables": {"first": 10}}))]
pub struct GraphqlRequest {
    /// The document (at most 16 KiB and 1,000 tokens by default).
    pub query: String,
    /// Which operation of the document to run.
    pub operation_name: Option<String>,
    /// Variables.
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
}

fn problem(
    status: StatusCode,
    type_uri: &'static str,
    title: &'static str,
    detail: impl Into<std::borrow::Cow<'static, str>>,
) -> ProblemError {
    ProblemError::new(Problem::new(status, type_uri, title, detail))
}

/// A GraphQL error response for a request refused before execution.
/// No `locations`: nothing in the query is to blame (GraphQL locations are 1-based, so the
/// executor's default position, 0:0, would point nowhere).
pub(crate) fn refused(message: &str) -> async_graphql::Response {
    let mut error = async_graphql::ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", codes::BAD_USER_INPUT);
    error.extensions = Some(extensions);
    async_graphql::Response::from_errors(vec![error])
}

/// Every error carries a code: the executor's own (parse, validation, depth, complexity, variable
/// coercion) are the client's input.
pub(crate) fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", codes::BAD_USER_INPUT);
        }
    }
    response
}

/// Parses one operation from JSON and passes it through the armour: the executable request and
/// what the armour found, or the response that refuses it. Shared with the subscription socket.
pub(crate) fn prepare(
    limits: &Limits,
    context: RequestContext,
    operation: &Value,
) -> Result<(async_graphql::Request, armour::Checked), Box<async_graphql::Response>> {
    let Ok(request) = serde_json::from_value::<GraphqlRequest>(operation.clone()) else {
        return Err(Box::new(refused(
            "A GraphQL request is an object with `query`, and optionally `operationName` and `variables`.",
        )));
    };
    let checked =
        match armour::check_operation(&request.query, request.operation_name.as_deref(), limits) {
            Ok(checked) => checked,
            Err(violation) => {
                tracing::info!(%violation, "GraphQL request refused by the armour");
                return Err(Box::new(refused(&violation.to_string())));
            }
        };
    tracing::debug!(cost = checked.cost, "GraphQL operation");
    let mut executable = async_graphql::Request::new(request.query).data(context);
    if let Some(name) = request.operation_name {
        executable = executable.operation_name(name);
    }
    match request.variables {
        None | Some(Value::Null) => {}
        Some(variables @ Value::Object(_)) => {
            executable = executable.variables(Variables::from_json(variables));
        }
        Some(_) => return Err(Box::new(refused("`variables` is an object."))),
    }
    Ok((executable, checked))
}

/// An operation parsed and through the armour, or the response that refuses it.
type Prepared = Result<(async_graphql::Request, armour::Checked), Box<async_graphql::Response>>;

/// Runs a prepared operation (or answers its refusal), with its cost in `extensions.cost`.
async fn run(schema: &BulwarkSchema, prepared: Prepared) -> async_graphql::Response {
    let (executable, checked) = match prepared {
        Ok(prepared) => prepared,
        Err(refusal) => return *refusal,
    };
    if checked.kind == armour::OperationType::Subscription {
        return refused("Subscriptions run over the WebSocket at /graphql/ws.");
    }
    let mut response = with_codes(schema.execute(executable).await);
    // The operation's cost (field selections, fragments expanded) is what the rate limits charge;
    // clients see it too, so they can budget.
    response.extensions.insert(
        "cost".to_owned(),
        async_graphql::Value::from(u64::try_from(checked.cost).unwrap_or(u64::MAX)),
    );
    response
}

/// Prepares every operation once, charges the rate limits what they cost together (a batch: the
/// sum) beyond the 1 the middleware already took — before anything runs: 100 aliased fields cost
/// 100 requests, not one; an operation the armour refuses costs nothing more, as it will not run
/// — then runs them in order.
async fn run_all(
    req: &HttpRequest,
    schema: &BulwarkSchema,
    limits: &Limits,
    context: &RequestContext,
    operations: &[Value],
) -> Result<Vec<async_graphql::Response>, ProblemError> {
    let prepared: Vec<Prepared> = operations
        .iter()
        .map(|operation| prepare(limits, context.clone(), operation))
        .collect();
    let total = prepared
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|(_, checked)| checked.cost)
        .fold(0_usize, usize::saturating_add);
    let extra = u32::try_from(total.saturating_sub(1)).unwrap_or(u32::MAX);
    bulwark_web::rate_limit::charge(req, extra)
        .await
        .map_err(|refusal| *refusal)?;
    // The daily quota counts operations: the middleware counted the request as one, a batch of n
    // counts n.
    let more = u32::try_from(operations.len().saturating_sub(1)).unwrap_or(u32::MAX);
    bulwark_web::rate_limit::count_extra(req, more)
        .await
        .map_err(|refusal| *refusal)?;
    let mut responses = Vec::with_capacity(prepared.len());
    for operation in prepared {
        responses.push(run(schema, operation).await);
    }
    Ok(responses)
}

/// Run a GraphQL operation.
///
/// The schema is at `openapi/schema.graphql`. Errors travel in `errors` with `extensions.code`
/// (`UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`, `RATE_LIMITED`, `SERVICE_UNAVAILABLE`, `INTERNAL`).
/// Only `application/json`; one operation per request (batching is off unless configured);
/// query size, tokens, aliases, root fields, depth and complexity are limited.
#[utoipa::path(
    tag = "graphql",
    operation_id = "graphql",
    security((), ("bearer" = []), ("api_key" = ["documents:read"])),
    request_body(content = GraphqlRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The GraphQL response: `data` and/or `errors`."),
        (status = 400, description = "Not a JSON object (or a batch, when batching is off, or too large a batch).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A bearer credential was sent and is not valid.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json` (text/plain and form bodies are refused: CSRF).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/graphql")]
pub async fn graphql(
    schema: web::Data<BulwarkSchema>,
    limits: web::Data<Limits>,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ProblemError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            types::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "GraphQL requests are application/json.",
        ));
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            types::MALFORMED_JSON,
            "Malformed JSON",
            "The body is not well-formed JSON.",
        ));
    };
    let context = RequestContext {
        actor: req.extensions().get::<Actor>().copied(),
        origin,
    };
    let body = match parsed {
        Value::Object(_) => {
            let responses = run_all(
                &req,
                &schema,
                &limits,
                &context,
                std::slice::from_ref(&parsed),
            )
            .await?;
            serde_json::to_vec(&responses.first())
        }
        Value::Array(operations) => {
            if !limits.batching {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    types::ABOUT_BLANK,
                    "Bad Request",
                    "Batching is off: send one operation per request.",
                ));
            }
            if operations.is_empty() || operations.len() > limits.max_batch {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    types::ABOUT_BLANK,
                    "Bad Request",
                    format!("A batch holds 1 to {} operations.", limits.max_batch),
                ));
            }
            let responses = run_all(&req, &schema, &limits, &context, &operations).await?;
            serde_json::to_vec(&responses)
        }
        _ => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                types::ABOUT_BLANK,
                "Bad Request",
                "A GraphQL request is a JSON object.",
            ));
        }
    };
    let body = body.map_err(ProblemError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body))
}

/// Registers `POST /graphql` and the subscription socket `GET /graphql/ws` (the app mounts them
/// next to the REST routes).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(graphql);
    cfg.service(crate::socket::graphql_socket);
}
