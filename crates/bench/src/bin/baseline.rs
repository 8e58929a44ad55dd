//! `bench-baseline`: scenario (a) of `make bench`, the ceiling.
//!
//! One route, `GET /documents/{id}`, that runs exactly the statement the service's
//! `PgDocumentRepository::find` runs (crates/persistence/src/document.rs) and answers the row as
//! JSON. Nothing else: no authentication, no rate limit, no request id, no security headers, no
//! logging, no object-level authorisation. Whatever the real `GET /api/v1/documents/{id}` costs
//! above this is the price of its security layers.
//!
//! To be fair to the service, the pool is built as the service builds its own
//! (crates/persistence/src/pool.rs: one pool for the whole process, made before the server,
//! `DATABASE_MAX_CONNECTIONS` default 10, the same statement timeout), and the server runs the
//! same number of workers. Configuration comes from the environment: `DATABASE_URL`, `PORT`
//! (default 8090), `HTTP_WORKERS` (default 2), `DATABASE_MAX_CONNECTIONS` (default 10).

#![allow(clippy::print_stdout)]

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Row, types::Json};
use uuid::Uuid;

/// The statement of `PgDocumentRepository::find`, character for character in what it asks.
const FIND: &str = r"
    select d.id, d.owner_id, d.title, d.body, d.visibility, d.tags,
           d.created_at, d.updated_at, d.version,
           coalesce(
               (select jsonb_agg(jsonb_build_object('user_id', s.user_id, 'permission', s.permission)
                                 order by s.created_at, s.user_id)
                from document_shares s where s.document_id = d.id),
               '[]'::jsonb
           ) as shares
    from documents d
    where d.id = $1
";

#[derive(serde::Serialize, serde::Deserialize)]
struct Share {
    user_id: Uuid,
    permission: String,
}

#[derive(serde::Serialize)]
struct Document {
    id: Uuid,
    owner_id: Uuid,
    title: String,
    body: String,
    visibility: String,
    tags: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
    version: i32,
    shares: Vec<Share>,
}

async fn get_document(pool: web::Data<PgPool>, id: web::Path<Uuid>) -> HttpResponse {
    let row = sqlx::query(FIND)
        .bind(id.into_inner())
        .fetch_optional(pool.get_ref())
        .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return HttpResponse::NotFound().finish(),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    let decoded = (|| -> Result<Document, sqlx::Error> {
        let shares: Json<Vec<Share>> = row.try_get("shares")?;
        Ok(Document {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            visibility: row.try_get("visibility")?,
            tags: row.try_get("tags")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            version: row.try_get("version")?,
            shares: shares.0,
        })
    })();
    match decoded {
        Ok(document) => HttpResponse::Ok().json(document),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("bench-baseline: DATABASE_URL is required"))?;
    let port = env_number("PORT", 8090);
    let workers = env_number("HTTP_WORKERS", 2);
    let max_connections = env_number("DATABASE_MAX_CONNECTIONS", 10);

    // As crates/persistence/src/pool.rs does it (statement timeout 5 s, acquire timeout 3 s).
    let connect: PgConnectOptions = url.parse()?;
    let connect = connect
        .application_name("bench-baseline")
        .options([("statement_timeout", "5000")]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(connect);
    let data = web::Data::new(pool);

    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/documents/{id}", web::get().to(get_document))
    })
    .workers(workers as usize)
    .bind(("127.0.0.1", u16::try_from(port)?))?;
    println!("bench-baseline listening on 127.0.0.1:{port}");
    server.run().await?;
    Ok(())
}
