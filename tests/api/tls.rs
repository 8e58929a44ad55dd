//! HTTPS served in process (`TLS_CERT_PATH`, `TLS_KEY_PATH`), the plain-HTTP redirect listener
//! (`TLS_REDIRECT_PORT`), and TLS to PostgreSQL. The attacks: plain HTTP to the HTTPS port, an old
//! protocol version, a forged `Host` header on the redirect (an open redirect), a key that is not
//! the certificate's, a database URL that asks for TLS meeting a server that will not verify.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulwark_app::config::{Config, Env};
use bulwark_app::startup::Application;
use bulwark_testkit::TestDatabase;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{SECURITY_HEADERS, TestApp, test_config};

/// The contract's HSTS value.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Where redirects must go, whatever the request says.
const PUBLIC_URL: &str = "https://api.example.test:8443";

/// A certificate for `localhost` and 127.0.0.1, made for one test, in files of its own.
struct Certificate {
    dir: PathBuf,
    pem: String,
}

impl Certificate {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("bulwark-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Self {
            dir,
            pem: cert.pem(),
        }
    }

    fn cert_path(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key_path(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }

    fn der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap()
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The app serving HTTPS (and redirecting plain HTTP), with a client that trusts its certificate
/// and nothing else: every `TestApp` method talks HTTPS to it.
struct TlsApp {
    app: TestApp,
    redirect_port: u16,
    cert: Certificate,
}

impl TlsApp {
    async fn spawn() -> Self {
        let cert = Certificate::new();
        let (cert_path, key_path) = (cert.cert_path(), cert.key_path());
        let db = TestDatabase::migrated().await;
        let mut config = test_config(&[
            ("TLS_CERT_PATH", &cert_path),
            ("TLS_KEY_PATH", &key_path),
            ("TLS_REDIRECT_PORT", "0"),
            ("PUBLIC_URL", PUBLIC_URL),
        ]);
        config.database = db.settings();
        let running = Application::build(&config, None)
            .await
            .expect("the app starts with TLS");
        let port = running.port();
        let redirect_port = running.redirect_port().expect("the redirect listener runs");
        tokio::spawn(running.run_until_stopped());

        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let app = TestApp::assemble(format!("https://localhost:{port}"), client, config, db);
        Self {
            app,
            redirect_port,
            cert,
        }
    }

    /// A TLS connection to the HTTPS port offering only `versions`, verifying the certificate.
    async fn handshake(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        // What a browser offers: the server must pick HTTP/1.1, the only protocol it speaks.
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", self.app.port()))
            .await
            .unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }
}

/// Writes `bytes` to `port` and reads until the server closes (or 10 s pass).
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    received
}

/// A ClientHello that offers only `version` (`[3, 1]` is TLS 1.0, `[3, 2]` TLS 1.1): the bytes an
/// old client sends, which no library here can still produce (rustls cannot speak below TLS 1.2
/// at all). With `signature_algorithms` it carries that TLS 1.2 extension too, which rustls wants
/// before it even looks at the version.
fn legacy_client_hello(version: [u8; 2], signature_algorithms: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    // ECDHE-ECDSA / ECDHE-RSA AES-128-GCM (suites the server has, so only the version is wrong),
    // then what a TLS 1.1 client really offers: ECDHE-RSA and RSA with AES-128-CBC-SHA.
    body.extend_from_slice(&[0, 8, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend_from_slice(&[1, 0]); // compression: null
    if signature_algorithms {
        // extensions (8 bytes): signature_algorithms (13), one scheme: ecdsa_secp256r1_sha256.
        body.extend_from_slice(&[0, 8, 0, 13, 0, 4, 0, 2, 4, 3]);
    }
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, version[0], version[1]];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn https_serves_the_api_with_hsts_and_every_security_header() {
    let tls = TlsApp::spawn().await;

    let response = tls.app.get_liveness().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["strict-transport-security"], HSTS);
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(response.headers()[name], value, "{name}");
    }
    // Errors too: HSTS is on every HTTPS response, not only the successful ones.
    let missing = tls.app.get("/no/such/route").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["strict-transport-security"], HSTS);
}

#[tokio::test]
async fn plain_http_to_the_https_port_is_never_answered() {
    let tls = TlsApp::spawn().await;

    let reply = exchange(
        tls.app.port(),
        b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;

    // At most a TLS alert (a record starting 0x15), never an HTTP response.
    let text = String::from_utf8_lossy(&reply);
    assert!(!text.contains("HTTP/1."), "{text}");
    assert!(!text.contains("\"ok\""), "{text}");
    assert!(reply.is_empty() || reply[0] == 0x15, "{reply:?}");
    // And a client library gets an error, not a page.
    let url = format!("http://127.0.0.1:{}/health/live", tls.app.port());
    assert!(reqwest::get(url).await.is_err());
}

#[tokio::test]
async fn tls_1_3_and_1_2_are_accepted_and_older_versions_are_refused() {
    let tls = TlsApp::spawn().await;

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut stream = tls.handshake(&[version]).await.expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        // Only HTTP/1.1 is chosen (no `h2` without actix's http2 support).
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap();
        let name = format!("{:?}", suite.suite());
        assert!(
            name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
            "{name}"
        );
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.ok();
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{version:?}");
    }

    // TLS 1.0 and 1.1: a fatal alert and no ServerHello. A genuine old client (no
    // signature_algorithms) gets handshake_failure (40); one that sends the extension reaches the
    // version check and gets protocol_version (70). The record: 21 = alert, then the version and
    // length, then level 2 = fatal and the description.
    for version in [[3, 1], [3, 2]] {
        for (signature_algorithms, alert) in [(false, 40), (true, 70)] {
            let hello = legacy_client_hello(version, signature_algorithms);
            let reply = exchange(tls.app.port(), &hello).await;
            assert_eq!(
                reply.len(),
                7,
                "{version:?}: one alert and nothing else: {reply:?}"
            );
            assert_eq!(reply[0], 21, "{version:?}: {reply:?}");
            assert_eq!(&reply[5..7], &[2, alert], "{version:?}: {reply:?}");
        }
    }
}

#[tokio::test]
async fn the_redirect_listener_sends_308_to_the_public_origin_whatever_the_host_header() {
    let tls = TlsApp::spawn().await;

    for (request, location) in [
        (
            "GET /api/v1/documents?limit=5&tag=a HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            "/api/v1/documents?limit=5&tag=a",
        ),
        // The absolute form names another host in the request line: only its path is kept.
        (
            "GET http://evil.example/health/live HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            "/health/live",
        ),
        // A path that looks like a scheme-relative URL stays a path on our origin.
        (
            "GET //evil.example/x HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\n\r\n",
            "//evil.example/x",
        ),
        // Any method: 308 keeps it (and its body) for the retry over HTTPS.
        (
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}",
            "/api/v1/auth/login",
        ),
    ] {
        let reply = exchange(tls.redirect_port, request.as_bytes()).await;
        let reply = String::from_utf8(reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 308 "), "{reply}");
        assert!(
            head.contains(&format!(
                "\r\nlocation: {}\r\n",
                format!("{PUBLIC_URL}{location}").to_ascii_lowercase()
            )),
            "{reply}"
        );
        assert!(head.contains("\r\ncache-control: no-store\r\n"), "{reply}");
        assert!(body.is_empty(), "{reply}");
    }

    // The redirect listener serves nothing else: not even the liveness probe.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "http://127.0.0.1:{}/health/live",
            tls.redirect_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("{PUBLIC_URL}/health/live")
    );
    assert!(response.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wss_connection_to_the_notifications_socket_works() {
    let tls = TlsApp::spawn().await;
    let ada = tls.app.signed_up("ada@example.com").await;
    let stream = tls
        .handshake(&[&rustls::version::TLS13])
        .await
        .expect("handshake");

    let url = format!("wss://localhost:{}/api/v1/ws", tls.app.port());
    let (mut socket, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the upgrade succeeds over TLS");
    assert_eq!(
        response.headers()["strict-transport-security"],
        HSTS,
        "the upgrade response too"
    );
    socket
        .send(Message::Text(
            json!({"type": "auth", "token": ada.access_token})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let ready = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = frame {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(ready["type"], "ready");
}

#[test]
fn a_key_that_is_not_the_certificates_refuses_to_start() {
    let cert = Certificate::new();
    let other = Certificate::new();
    let keys = bulwark_security::keys::generate_keys().unwrap();
    let (cert_path, other_key) = (cert.cert_path(), other.key_path());
    let env = Env::from_pairs([
        ("APP_ENV", "test"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused"),
        ("JWT_SIGNING_KEY_ID", keys.jwt_key_id.as_str()),
        ("JWT_SIGNING_KEY", keys.jwt_signing_key.expose_secret()),
        (
            "DATA_ENCRYPTION_KEYS",
            keys.data_encryption_keys.expose_secret(),
        ),
        ("TLS_CERT_PATH", cert_path.as_str()),
        ("TLS_KEY_PATH", other_key.as_str()),
    ])
    .unwrap();

    let problems = Config::load(&env).unwrap_err();

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].var, "TLS_KEY_PATH");
    assert_eq!(
        problems[0].to_string(),
        "TLS_KEY_PATH: does not belong to the first certificate in TLS_CERT_PATH"
    );
    let key_pem = std::fs::read_to_string(&other_key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!problems[0].to_string().contains(key_body));
}

/// The tests' PostgreSQL server, reached with extra URL parameters.
fn database_url(query: &str) -> String {
    let server = bulwark_testkit::server_url();
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}{query}")
}

fn is_tls_refusal(error: &sqlx::Error) -> bool {
    let message = error.to_string();
    matches!(error, sqlx::Error::Tls(_)) || message.contains("invalid peer certificate")
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    use std::str::FromStr;
    let options = bulwark_persistence::PgConnectOptions::from_str(url).unwrap();
    sqlx::PgConnection::connect_with(&options).await
}

#[tokio::test]
async fn a_database_url_demanding_a_verified_server_never_falls_back_to_plain_text() {
    // Whatever the test server offers — no TLS, or a certificate no public CA issued (Debian's
    // snake-oil one for `localhost`) — verify-full without the right root refuses to connect, with
    // a TLS error rather than a silent plain-text session.
    let error = connect(&database_url("sslmode=verify-full"))
        .await
        .expect_err("connected without a verified certificate");
    // sqlx reports "server does not support TLS" as `Error::Tls`, and a refused certificate
    // ("invalid peer certificate: UnknownIssuer") as an I/O error of the handshake.
    assert!(is_tls_refusal(&error), "{error}");

    // A root that is not the server's: the same (a certificate must chain to the given root).
    let other = Certificate::new();
    let query = format!("sslmode=verify-full&sslrootcert={}", other.cert_path());
    let error = connect(&database_url(&query))
        .await
        .expect_err("connected with a certificate of another CA");
    assert!(is_tls_refusal(&error), "{error}");

    // `require` encrypts or fails: when it connects, the session is TLS.
    if let Ok(mut connection) = connect(&database_url("sslmode=require")).await {
        let encrypted: bool =
            sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
                .fetch_one(&mut connection)
                .await
                .unwrap();
        assert!(encrypted, "sslmode=require gave a plain-text session");
    }
}

#[tokio::test]
async fn the_service_reports_not_ready_rather_than_use_an_unverified_database() {
    let db = TestDatabase::migrated().await;
    let mut config = test_config(&[]);
    config.database = db.settings();
    // The test database, but demanding a server certificate it cannot have.
    config.database.connect = config
        .database
        .connect
        .clone()
        .ssl_mode(bulwark_persistence::pool::PgSslMode::VerifyFull);
    let running = Application::build(&config, None).await.expect("starts");
    let port = running.port();
    tokio::spawn(running.run_until_stopped());

    let response = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
}

/// Debian's PostgreSQL serves its snake-oil certificate (self-signed, for `localhost`) when `ssl`
/// is on, as on this project's machines. Where the test server does, this runs the positive case
/// end to end: `verify-full` with that certificate as `sslrootcert` connects over TLS to
/// `localhost`, and refuses `127.0.0.1`, a name the certificate does not carry. Elsewhere (no TLS,
/// another certificate, another server) it says so and checks nothing more.
#[tokio::test]
async fn verify_full_connects_to_the_name_in_the_servers_certificate_and_no_other() {
    const SNAKE_OIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let server = bulwark_testkit::server_url();
    let root = format!("sslrootcert={SNAKE_OIL}");
    let serves_snake_oil = std::path::Path::new(SNAKE_OIL).exists()
        && server.contains("@127.0.0.1:")
        && connect(&database_url(&format!("sslmode=verify-ca&{root}")))
            .await
            .is_ok();
    if !serves_snake_oil {
        eprintln!("skipped: the test server does not serve Debian's snake-oil certificate");
        return;
    }

    let by_name =
        database_url(&format!("sslmode=verify-full&{root}")).replace("@127.0.0.1:", "@localhost:");
    let mut connection = connect(&by_name).await.expect("verify-full to localhost");
    let encrypted: bool =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted);

    let error = connect(&database_url(&format!("sslmode=verify-full&{root}")))
        .await
        .expect_err("verify-full accepted a certificate for another name");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}
