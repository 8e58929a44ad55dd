//! `POST /graphql`: the same services and rules as REST, reached through another door. The
//! attacks: anonymous and forged callers, another user's objects (BOLA) and private fields (BOPLA),
//! API keys beyond their scopes, administration by non-administrators, and queries built to
//! exhaust the server — aliases, depth, complexity, size, batches — plus CSRF-style bodies.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, assert_problem};

impl TestApp {
    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Response {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// A GraphQL call that must answer 200; returns the body.
    pub async fn graphql(&self, account: &Account, query: &str, variables: Value) -> Value {
        self.graphql_with(&account.access_token, query, variables)
            .await
    }

    pub async fn graphql_with(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self.graphql_as(Some(token), query, variables).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

const DOCUMENT: &str = "query($id: ID!) { document(id: $id) { id title version shares { userId permission } owner { displayName email role } } }";

#[tokio::test]
async fn anonymous_callers_get_unauthenticated_and_forged_tokens_a_401() {
    let app = TestApp::spawn().await;
    let anonymous = app.graphql_as(None, "{ me { id } }", json!({})).await;
    assert_eq!(anonymous.status(), 200);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert!(body["data"].is_null());

    let forged = app
        .graphql_as(Some("not-a-token"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(
        forged.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_problem(forged, 401).await;
}

#[tokio::test]
async fn another_users_private_document_is_not_found_on_every_operation() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "private").await;
    let id = doc["id"].as_str().unwrap();

    let read = app.graphql(&bob, DOCUMENT, json!({"id": id})).await;
    assert_eq!(code(&read), "NOT_FOUND");
    assert!(
        read["data"].is_null() || read["data"]["document"].is_null(),
        "{read}"
    );
    for (mutation, variables) in [
        (
            "mutation($id: ID!) { updateDocument(id: $id, version: 1, input: {title: \"pwned\"}) { id } }",
            json!({"id": id}),
        ),
        (
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({"id": id}),
        ),
        (
            "mutation($id: ID!, $u: ID!) { shareDocument(id: $id, userId: $u, permission: WRITE) }",
            json!({"id": id, "u": bob.user_id}),
        ),
    ] {
        let body = app.graphql(&bob, mutation, variables).await;
        assert_eq!(code(&body), "NOT_FOUND", "{mutation}");
    }
    // A malformed id names nothing either.
    let malformed = app.graphql(&bob, DOCUMENT, json!({"id": "1 OR 1=1"})).await;
    assert_eq!(code(&malformed), "NOT_FOUND");

    let own = app.graphql(&ada, DOCUMENT, json!({"id": id})).await;
    assert!(own["errors"].is_null(), "{own}");
    assert_eq!(own["data"]["document"]["title"], doc["title"]);
    assert_eq!(own["data"]["document"]["version"], 1);
    assert_eq!(own["data"]["document"]["shares"], json!([]));
    assert_eq!(own["data"]["document"]["owner"]["email"], "ada@example.com");
}

#[tokio::test]
async fn private_fields_resolve_to_null_with_forbidden_for_others() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "public").await;

    let body = app.graphql(&bob, DOCUMENT, json!({"id": doc["id"]})).await;
    let document = &body["data"]["document"];
    assert_eq!(document["title"], doc["title"]);
    assert!(document["shares"].is_null());
    assert_eq!(document["owner"]["displayName"], "Test Person");
    assert!(document["owner"]["email"].is_null());
    assert!(document["owner"]["role"].is_null());
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{body}");
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "FORBIDDEN")
    );
    assert!(!body.to_string().contains("ada@example.com"));
}

#[tokio::test]
async fn an_owners_documents_list_only_what_the_caller_may_read() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let public = app.document(&ada, "public").await;
    app.document(&ada, "private").await;

    let body = app
        .graphql(
            &bob,
            "query($id: ID!) { document(id: $id) { owner { documents(first: 10) { edges { node { id } } pageInfo { hasNextPage } } } } }",
            json!({"id": public["id"]}),
        )
        .await;
    let edges = body["data"]["document"]["owner"]["documents"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 1, "{body}");
    assert_eq!(edges[0]["node"]["id"], public["id"]);
}

#[tokio::test]
async fn mutations_follow_the_domain_rules() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let created = app
        .graphql(
            &ada,
            "mutation { createDocument(input: {title: \"Plan\", body: \"<p>ok</p><script>alert(1)</script>\", tags: [\"x\"]}) { id version body visibility } }",
            json!({}),
        )
        .await;
    let document = &created["data"]["createDocument"];
    // The cost the rate limits will charge: one per field selection.
    assert_eq!(created["extensions"]["cost"], 5);
    assert_eq!(document["visibility"], "PRIVATE");
    assert!(!document["body"].as_str().unwrap().contains("script"));
    let id = document["id"].as_str().unwrap();

    let stale = app
        .graphql(
            &ada,
            "mutation($id: ID!) { updateDocument(id: $id, version: 7, input: {title: \"New\"}) { version } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code(&stale), "BAD_USER_INPUT");
    let invalid = app
        .graphql(
            &ada,
            "mutation { createDocument(input: {title: \"\", body: \"\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&invalid), "BAD_USER_INPUT");
    assert_eq!(
        invalid["errors"][0]["extensions"]["errors"][0]["field"],
        "title"
    );
    let updated = app
        .graphql(
            &ada,
            "mutation($id: ID!) { updateDocument(id: $id, version: 1, input: {title: \"New\"}) { version title } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(updated["data"]["updateDocument"]["version"], 2);
    let deleted = app
        .graphql(
            &ada,
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["data"]["deleteDocument"], true);
}

#[tokio::test]
async fn administration_is_for_administrators_sessions_only() {
    let app = TestApp::spawn().await;
    let user = app.signed_up("user@example.com").await;
    let root = app.admin("root@example.com").await;
    let query = "{ users(first: 5) { nodes { email role } } auditEvents(first: 5) { nodes { eventType } } }";

    let refused = app.graphql(&user, query, json!({})).await;
    assert_eq!(code(&refused), "FORBIDDEN");
    assert!(refused["data"].is_null());

    let allowed = app.graphql(&root, query, json!({})).await;
    assert!(allowed["errors"].is_null(), "{allowed}");
    assert!(
        !allowed["data"]["users"]["nodes"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // An administrator's API key never administers, whatever the transport.
    let key = app.api_key(&root, &["documents:read"]).await;
    let by_key = app
        .graphql_with(key["key"].as_str().unwrap(), query, json!({}))
        .await;
    assert_eq!(code(&by_key), "FORBIDDEN");
}

#[tokio::test]
async fn an_api_key_reads_within_its_scope_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    app.document(&ada, "private").await;
    let reader = app.api_key(&ada, &["documents:read"]).await;
    let reader = reader["key"].as_str().unwrap();

    let listed = app
        .graphql_with(
            reader,
            "{ documents { edges { node { title } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["documents"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let write = app
        .graphql_with(
            reader,
            "mutation { createDocument(input: {title: \"t\", body: \"b\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&write), "FORBIDDEN");
    let me = app.graphql_with(reader, "{ me { id } }", json!({})).await;
    assert_eq!(code(&me), "FORBIDDEN");

    // A key without the documents scope does not get through the door at all.
    let hooks = app.api_key(&ada, &["webhooks:read"]).await;
    let refused = app
        .graphql_as(
            Some(hooks["key"].as_str().unwrap()),
            "{ documents { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_problem(refused, 403).await;
}

#[tokio::test]
async fn queries_built_to_exhaust_the_server_are_refused_before_they_run() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;

    let aliases = format!(
        "{{ {} }}",
        (0..16)
            .map(|i| format!("a{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let too_deep = "{ documents { edges { node { owner { documents { edges { node { owner { documents { edges { node { id } } } } } } } } } } } }";
    let too_costly = "{ documents(first: 100) { edges { node { owner { documents(first: 100) { edges { node { id title } } } } } } } }";
    let too_big = format!("{{ me {{ id }} }} # {}", "x".repeat(20_000));
    let root_fields = format!(
        "{{ {} }}",
        (0..11)
            .map(|i| format!("m{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // A fragment that doubles at every level: 300 tokens that would expand to 2^30 selections.
    let mut bomb = String::from("fragment F0 on QueryRoot { __typename }\n");
    for i in 1..30 {
        bomb.push_str(&format!(
            "fragment F{i} on QueryRoot {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    bomb.push_str("query { ...F29 }");
    // Brackets nested in an argument, inside the token budget: a stack overflow if parsed.
    let nested = format!(
        "{{ documents(q: {}\"x\"{}) {{ pageInfo {{ hasNextPage }} }} }}",
        "[".repeat(400),
        "]".repeat(400)
    );
    let started = std::time::Instant::now();
    for query in [
        aliases.as_str(),
        too_deep,
        too_costly,
        too_big.as_str(),
        root_fields.as_str(),
        bomb.as_str(),
        nested.as_str(),
        "fragment A on QueryRoot { ...B } fragment B on QueryRoot { ...A } query { ...A }",
    ] {
        let body = app.graphql(&ada, query, json!({})).await;
        assert_eq!(
            code(&body),
            "BAD_USER_INPUT",
            "{}",
            &query[..query.len().min(80)]
        );
        assert!(body["data"].is_null(), "{body}");
    }

    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Introspection and suggestions are off outside development.
    let introspection = app
        .graphql(&ada, "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        !introspection.to_string().contains("\"name\":\"Document\""),
        "{introspection}"
    );
    let typo = app.graphql(&ada, "{ mee { id } }", json!({})).await;
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
}

#[tokio::test]
async fn only_single_json_operations_are_accepted() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let post = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&ada.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    // CSRF-style bodies: what a cross-site form can send without a preflight.
    let text = post(
        "text/plain",
        r#"{"query":"mutation { deleteDocument(id: \"x\") }"}"#.to_owned(),
    )
    .await
    .unwrap();
    assert_problem(text, 415).await;
    let form = post(
        "application/x-www-form-urlencoded",
        "query=%7Bme%7Bid%7D%7D".to_owned(),
    )
    .await
    .unwrap();
    assert_problem(form, 415).await;
    // Batching is off.
    let batch = post(
        "application/json",
        r#"[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]"#.to_owned(),
    )
    .await
    .unwrap();
    assert_problem(batch, 400).await;
    let fifty = format!("[{}]", vec![r#"{"query":"{ me { id } }"}"#; 50].join(","));
    assert_problem(post("application/json", fifty).await.unwrap(), 400).await;
    // A 1 MiB query never reaches the parser: the body limit answers first.
    let huge = serde_json::to_string(
        &json!({"query": format!("{{ me {{ id }} }} #{}", "x".repeat(1024 * 1024))}),
    )
    .unwrap();
    assert_problem(post("application/json", huge).await.unwrap(), 413).await;
    let malformed = post("application/json", "{".to_owned()).await.unwrap();
    assert_problem(malformed, 400).await;
    // Never over GET (so never a mutation from a link or an image).
    let get = app
        .authed(
            Method::GET,
            "/graphql?query=%7Bme%7Bid%7D%7D",
            &ada.access_token,
            None,
        )
        .await;
    assert_eq!(get.status(), 405);
}

/// Every root field and mutation, with an operation that reaches it. The schema's root fields are
/// compared with this table, so a new one fails until it is listed — and, listed, is attacked
/// anonymously below (deny by default, field by field).
const ROOT_FIELDS: [(&str, &str); 9] = [
    ("me", "{ me { id } }"),
    (
        "document",
        "{ document(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
    ),
    ("documents", "{ documents { edges { node { id } } } }"),
    ("users", "{ users { nodes { id } } }"),
    ("auditEvents", "{ auditEvents { nodes { id } } }"),
    (
        "createDocument",
        "mutation { createDocument(input: {title: \"t\", body: \"b\"}) { id } }",
    ),
    (
        "updateDocument",
        "mutation { updateDocument(id: \"00000000-0000-4000-8000-000000000000\", version: 1, input: {title: \"t\"}) { id } }",
    ),
    (
        "deleteDocument",
        "mutation { deleteDocument(id: \"00000000-0000-4000-8000-000000000000\") }",
    ),
    (
        "shareDocument",
        "mutation { shareDocument(id: \"00000000-0000-4000-8000-000000000000\", userId: \"00000000-0000-4000-8000-000000000001\", permission: READ) }",
    ),
];

#[test]
fn the_inventory_lists_every_root_field_of_the_schema() {
    let sdl = bulwark_transport_graphql::sdl();
    let mut fields = Vec::new();
    for root in [
        "type QueryRoot {",
        "type MutationRoot {",
        "type SubscriptionRoot {",
    ] {
        let body = &sdl[sdl.find(root).unwrap() + root.len()..];
        let body = &body[..body.find("\n}").unwrap()];
        // Descriptions ("""…""" blocks, "…" lines) are prose that may hold colons: skipped.
        let mut in_description = false;
        for line in body.lines() {
            let line = line.trim();
            if line.matches("\"\"\"").count() % 2 == 1 {
                in_description = !in_description;
                continue;
            }
            if in_description || line.is_empty() || line.starts_with('"') || !line.contains(':') {
                continue;
            }
            let name = line.split(['(', ':']).next().unwrap().trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                fields.push(name.to_owned());
            }
        }
    }
    fields.sort();
    // Subscriptions are listed (and attacked) in `graphql_ws.rs`: they run over the socket only.
    let mut listed: Vec<String> = ROOT_FIELDS
        .iter()
        .chain(crate::graphql_ws::SUBSCRIPTION_FIELDS.iter())
        .map(|(n, _)| (*n).to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        fields, listed,
        "every root field must be in ROOT_FIELDS or SUBSCRIPTION_FIELDS"
    );
}

#[tokio::test]
async fn every_root_field_refuses_an_anonymous_caller() {
    let app = TestApp::spawn().await;
    for (name, query) in ROOT_FIELDS {
        let body: Value = app
            .graphql_as(None, query, json!({}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
    }
    let documents: i64 = sqlx::query_scalar("select count(*) from documents")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(documents, 0);
}
