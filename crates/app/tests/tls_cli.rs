//! The `bulwark` binary and TLS: `bulwark dev-cert` writes a usable pair once (and only replaces it
//! when told to), and `bulwark serve` refuses to start on a key that is not the certificate's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bulwark(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("bulwark-dev-cert-{}", uuid::Uuid::new_v4()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dev_cert_writes_a_pair_once_and_prints_the_variables_to_set() {
    let dir = temp_dir();
    let out = dir.display().to_string();

    let first = bulwark(&["dev-cert", "--out-dir", &out], &[]);

    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains(&format!("TLS_CERT_PATH={out}/cert.pem\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("TLS_KEY_PATH={out}/key.pem\n")),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"), "the key is never printed");
    let key_mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let cert = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));

    // Again: refused, nothing replaced.
    let again = bulwark(&["dev-cert", "--out-dir", &out], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(dir.join("cert.pem")).unwrap(), cert);

    // With --force: a new pair.
    let forced = bulwark(&["dev-cert", "--out-dir", &out, "--force"], &[]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_ne!(std::fs::read_to_string(dir.join("cert.pem")).unwrap(), cert);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_refuses_a_key_of_another_certificate_with_exit_code_78() {
    let dir = temp_dir();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        let made = bulwark(&["dev-cert", "--out-dir", &d.display().to_string()], &[]);
        assert!(made.status.success());
    }
    let keys = bulwark(&["keygen"], &[]);
    let keys = text(&keys.stdout);
    let mut env: Vec<(&str, &str)> = keys
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let cert = path(&a.join("cert.pem"));
    let other_key = path(&b.join("key.pem"));
    env.extend([
        ("APP_ENV", "test"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused"),
        ("TLS_CERT_PATH", cert.as_str()),
        ("TLS_KEY_PATH", other_key.as_str()),
    ]);

    let served = bulwark(&["serve"], &env);

    assert_eq!(served.status.code(), Some(78));
    let stderr = text(&served.stderr);
    assert!(
        stderr.contains("TLS_KEY_PATH: does not belong to the first certificate in TLS_CERT_PATH"),
        "{stderr}"
    );
    let key = std::fs::read_to_string(b.join("key.pem")).unwrap();
    assert!(!stderr.contains(key.lines().nth(1).unwrap()));
    std::fs::remove_dir_all(dir).unwrap();
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
