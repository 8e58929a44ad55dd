//! The `bulwark` binary as an operator meets it: refusals at start-up, the CLI commands, and a
//! clean stop on SIGTERM. Each test runs the real binary with a clean environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn keys() -> (String, String, String) {
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("keygen printed no {name}"))
            .to_owned()
    };
    (
        get("JWT_SIGNING_KEY_ID"),
        get("JWT_SIGNING_KEY"),
        get("DATA_ENCRYPTION_KEYS"),
    )
}

/// A valid development environment (the database need not exist for the refusal tests).
fn valid_env() -> Vec<(String, String)> {
    let (kid, jwt, dek) = keys();
    [
        ("APP_ENV", "test".to_owned()),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/unused".to_owned(),
        ),
        ("JWT_SIGNING_KEY_ID", kid),
        ("JWT_SIGNING_KEY", jwt),
        ("DATA_ENCRYPTION_KEYS", dek),
        ("PORT", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn with(mut env: Vec<(String, String)>, changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
    }
    env
}

/// Runs the binary to completion; a process still running after 20 s is killed and fails the test
/// (a refusal that did not happen would otherwise hang the suite in `serve`).
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        // Not a development run: no .env from the working directory may leak in.
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`bulwark {}` did not exit: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts a configuration refusal: exit 78, one line per expected variable, no panic, no secret.
fn assert_refused(env: &[(String, String)], expected_vars: &[&str]) {
    let out = run(&["serve"], env);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(78), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    for var in expected_vars {
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{var}: "))),
            "no line for {var}:\n{stderr}"
        );
    }
    let problem_lines = stderr.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(
        problem_lines,
        expected_vars.len(),
        "one line per problem:\n{stderr}"
    );
    for forbidden in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "thread 'main'",
    ] {
        assert!(!stderr.contains(forbidden), "{forbidden} in:\n{stderr}");
    }
    for (key, value) in env {
        if ["JWT_SIGNING_KEY", "DATA_ENCRYPTION_KEYS", "DATABASE_URL"].contains(&key.as_str())
            && value.len() > 8
        {
            assert!(
                !stderr.contains(value.as_str()),
                "{key}'s value is printed:\n{stderr}"
            );
        }
    }
}

#[test]
fn refuses_to_start_without_any_configuration() {
    assert_refused(
        &[],
        &[
            "DATABASE_URL",
            "JWT_SIGNING_KEY",
            "JWT_SIGNING_KEY_ID",
            "DATA_ENCRYPTION_KEYS",
            "BEHIND_TLS_PROXY",
        ],
    );
}

#[test]
fn refuses_each_missing_secret() {
    for var in [
        "DATABASE_URL",
        "JWT_SIGNING_KEY",
        "JWT_SIGNING_KEY_ID",
        "DATA_ENCRYPTION_KEYS",
    ] {
        assert_refused(&with(valid_env(), &[(var, None)]), &[var]);
    }
}

#[test]
fn refuses_malformed_and_weak_keys() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let same_byte = format!("k1:{}", b64(&[0x41; 32]));
    let short = format!("k1:{}", b64(b"0123456789abcdef"));
    let cases: Vec<(&str, String)> = vec![
        ("JWT_SIGNING_KEY", "not-base64!".to_owned()),
        ("JWT_SIGNING_KEY", b64(&[7; 48])),
        ("JWT_SIGNING_KEY", b64(b"-----BEGIN PRIVATE KEY-----")),
        ("JWT_SIGNING_KEY_ID", "has spaces".to_owned()),
        ("DATA_ENCRYPTION_KEYS", same_byte),
        ("DATA_ENCRYPTION_KEYS", short),
        ("DATA_ENCRYPTION_KEYS", b64(&[1; 32])),
        ("DATABASE_URL", "mysql://root:hunter2@db/app".to_owned()),
    ];
    for (var, value) in cases {
        assert_refused(&with(valid_env(), &[(var, Some(value.as_str()))]), &[var]);
    }
}

#[test]
fn refuses_the_placeholders_of_env_example() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
            .unwrap();
    let placeholder = |name: &str| {
        example
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    for var in ["DATABASE_URL", "JWT_SIGNING_KEY", "DATA_ENCRYPTION_KEYS"] {
        let value = placeholder(var);
        assert_refused(&with(valid_env(), &[(var, Some(value.as_str()))]), &[var]);
    }
}

#[test]
fn refuses_unsafe_production_settings() {
    let production = with(
        valid_env(),
        &[
            ("APP_ENV", Some("production")),
            ("BEHIND_TLS_PROXY", Some("true")),
        ],
    );
    assert_refused(
        &with(production.clone(), &[("CORS_ALLOWED_ORIGINS", Some("*"))]),
        &["CORS_ALLOWED_ORIGINS"],
    );
    assert_refused(
        &with(production.clone(), &[("DOCS_UI", Some("true"))]),
        &["DOCS_UI"],
    );
    assert_refused(
        &with(production.clone(), &[("BEHIND_TLS_PROXY", None)]),
        &["BEHIND_TLS_PROXY"],
    );
    // A certificate without its key, and a certificate file that is not there: both said at once.
    assert_refused(
        &with(production, &[("TLS_CERT_PATH", Some("/etc/tls/cert.pem"))]),
        &["TLS_CERT_PATH", "TLS_KEY_PATH"],
    );
}

#[test]
fn migrate_reports_an_unreachable_database_without_a_panic() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:pw-not-shown@127.0.0.1:{port}/bulwark");
    let out = run(
        &["migrate"],
        &with(valid_env(), &[("DATABASE_URL", Some(url.as_str()))]),
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("migration failed"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("pw-not-shown"),
        "{stderr}"
    );
}

#[test]
fn keygen_prints_fresh_keys_that_the_configuration_accepts() {
    let first = keys();
    let second = keys();
    assert_ne!(first.1, second.1);
    assert_ne!(first.2, second.2);
    // valid_env() is built from keygen output; `serve` only fails later, on binding, if at all.
    let out = run(
        &["serve"],
        &with(valid_env(), &[("PORT", Some("not-a-port"))]),
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains("JWT_SIGNING_KEY") && !stderr.contains("DATA_ENCRYPTION_KEYS"),
        "{stderr}"
    );
}

#[test]
fn keygen_out_dir_writes_private_files_and_keeps_existing_ones() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("bulwark-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = || {
        assert!(
            Command::new(BIN)
                .args(["keygen", "--out-dir"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        )
    };

    write();
    let key = std::fs::read_to_string(dir.join("jwt_signing_key")).unwrap();
    for file in [
        "jwt_signing_key",
        "jwt_signing_key_id",
        "data_encryption_keys",
    ] {
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    write();
    assert_eq!(
        std::fs::read_to_string(dir.join("jwt_signing_key")).unwrap(),
        key,
        "an existing key was replaced"
    );

    let env = with(
        valid_env(),
        &[
            ("JWT_SIGNING_KEY", None),
            ("JWT_SIGNING_KEY_ID", None),
            ("DATA_ENCRYPTION_KEYS", None),
        ],
    );
    let mut env = env;
    for (var, file) in [
        ("JWT_SIGNING_KEY_FILE", "jwt_signing_key"),
        ("JWT_SIGNING_KEY_ID_FILE", "jwt_signing_key_id"),
        ("DATA_ENCRYPTION_KEYS_FILE", "data_encryption_keys"),
    ] {
        env.push((var.to_owned(), dir.join(file).display().to_string()));
    }
    // Only the (deliberately broken) port is wrong: the key files were accepted.
    assert_refused(&with(env, &[("PORT", Some("99999"))]), &["PORT"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn openapi_prints_the_checked_in_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let checked_in = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/openapi.json"
    ))
    .unwrap();
    assert!(
        out.stdout == checked_in,
        "openapi/openapi.json is out of date: run `make openapi`"
    );
}

#[tokio::test]
async fn serve_answers_then_stops_cleanly_on_sigterm() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let url = format!(
        "{}/{}",
        bulwark_testkit::server_url().rsplit_once('/').unwrap().0,
        db.name()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let env = with(
        valid_env(),
        &[
            ("DATABASE_URL", Some(url.as_str())),
            ("PORT", Some(port.as_str())),
            ("SHUTDOWN_GRACE_SECS", Some("5")),
        ],
    );
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = format!("http://127.0.0.1:{port}/health/ready");
    let started = Instant::now();
    let mut status = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(response) = reqwest::get(&ready).await {
            status = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(200), "the server did not become ready");

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs the binary with `input` on standard input.
fn run_with_stdin(args: &[&str], env: &[(String, String)], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin_and_applies_the_policy() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let url = format!(
        "{}/{}",
        bulwark_testkit::server_url().rsplit_once('/').unwrap().0,
        db.name()
    );
    let env = with(valid_env(), &[("DATABASE_URL", Some(&url))]);
    let args = ["create-admin", "--email", "root@example.com"];

    let weak = run_with_stdin(&args, &env, "password\n");
    let empty = run_with_stdin(&args, &env, "");
    let created = run_with_stdin(&args, &env, "Correct-Horse-Battery-9-Staple\n");
    let again = run_with_stdin(&args, &env, "Correct-Horse-Battery-9-Staple\n");

    let weak_err = String::from_utf8_lossy(&weak.stderr);
    assert!(!weak.status.success());
    assert!(weak_err.contains("password"), "{weak_err}");
    assert!(!weak_err.contains("panicked"));
    assert!(!empty.status.success());
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("created administrator"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let (role, hash): (String, String) =
        sqlx::query_as("select role, password_hash from users where email = 'root@example.com'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(role, "admin");
    assert!(hash.starts_with("$argon2id$"));
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where event_type = 'account.admin_created'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn rotate_data_key_reports_what_it_resealed_and_can_run_again() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let url = format!(
        "{}/{}",
        bulwark_testkit::server_url().rsplit_once('/').unwrap().0,
        db.name()
    );
    let env = with(valid_env(), &[("DATABASE_URL", Some(&url))]);

    let first = run(&["rotate-data-key"], &env);
    let again = run(&["rotate-data-key"], &env);

    for out in [&first, &again] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(
                "re-sealed under the active key: 0 mail payloads, 0 webhook secrets, 0 TOTP secrets"
            ),
            "{stdout}"
        );
    }
    // An unreachable database is an error message, not a panic.
    let down = with(
        valid_env(),
        &[("DATABASE_URL", Some("postgres://postgres@127.0.0.1:1/none"))],
    );
    let failed = run(&["rotate-data-key"], &down);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("rotation stopped"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
