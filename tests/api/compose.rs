//! `docker-compose.yml`, the `Dockerfile` and `.dockerignore`: no Docker engine runs on the CI
//! machines, so these are checked by reading them.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let service = &compose["services"][name];
    assert!(
        !service.is_badvalue(),
        "docker-compose.yml has no `{name}` service"
    );
    service
}

fn strings(yaml: &Yaml) -> Vec<String> {
    match yaml {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(items) => items.iter().flat_map(strings).collect(),
        Yaml::Hash(map) => map
            .iter()
            .flat_map(|(k, v)| strings(k).into_iter().chain(strings(v)))
            .collect(),
        Yaml::Integer(i) => vec![i.to_string()],
        _ => vec![],
    }
}

#[test]
fn compose_runs_postgres_16_redis_7_mailpit_and_the_app() {
    let compose = compose();
    assert!(
        service(&compose, "db")["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres:16")
    );
    assert!(
        service(&compose, "redis")["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:7")
    );
    assert!(
        service(&compose, "mailpit")["image"]
            .as_str()
            .unwrap()
            .starts_with("axllent/mailpit")
    );
    let app = service(&compose, "app");
    assert!(
        !app["build"].is_badvalue(),
        "the app is built from the Dockerfile"
    );
}

#[test]
fn every_service_has_a_health_check_and_the_app_waits_for_healthy_dependencies() {
    let compose = compose();
    for name in ["db", "redis", "mailpit", "app"] {
        let test = &service(&compose, name)["healthcheck"]["test"];
        assert!(!strings(test).is_empty(), "`{name}` has no health check");
    }
    let depends = &service(&compose, "app")["depends_on"];
    for dependency in ["db", "redis"] {
        assert_eq!(
            depends[dependency]["condition"].as_str(),
            Some("service_healthy"),
            "app → {dependency}"
        );
    }
}

#[test]
fn published_ports_bind_to_localhost_only() {
    let compose = compose();
    for (_, definition) in compose["services"].as_hash().unwrap() {
        for port in strings(&definition["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "port {port} is published on every interface"
            );
        }
    }
}

#[test]
fn compose_holds_no_secret_literals() {
    let compose = compose();
    let app = service(&compose, "app");
    // Secrets reach the app as files generated inside the stack, never as literals in this file.
    for name in ["JWT_SIGNING_KEY_FILE", "DATA_ENCRYPTION_KEYS_FILE"] {
        assert!(
            app["environment"][name]
                .as_str()
                .is_some_and(|p| p.starts_with("/secrets/")),
            "{name}"
        );
    }
    for (_, definition) in compose["services"].as_hash().unwrap() {
        let environment = &definition["environment"];
        if let Some(map) = environment.as_hash() {
            for (key, value) in map {
                let key = key.as_str().unwrap();
                let sensitive = ["PASSWORD", "SECRET", "KEY", "TOKEN", "DATABASE_URL"]
                    .iter()
                    .any(|s| key.contains(s));
                if sensitive {
                    assert!(
                        key.ends_with("_FILE"),
                        "{key} is set as a literal; pass secrets as *_FILE"
                    );
                    let _ = value;
                }
            }
        }
    }
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    assert!(
        !text.contains("POSTGRES_PASSWORD:"),
        "a literal database password"
    );
    assert!(
        !text.contains("POSTGRES_HOST_AUTH_METHOD"),
        "trust authentication"
    );
    // No URL with literal credentials: the only one is assembled from the generated password file.
    for line in text
        .lines()
        .filter(|l| l.contains("://") && l.contains('@'))
    {
        assert!(
            line.contains("$$(cat /secrets/"),
            "a URL with literal credentials: {line}"
        );
    }
    // No long base64 blobs (keys).
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let base64ish = word.len() >= 40
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
        assert!(!base64ish, "something that looks like a key: {word}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_offline_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stages = text
        .lines()
        .filter(|l| l.trim_start().to_uppercase().starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage build expected");
    assert!(
        text.contains("SQLX_OFFLINE=true"),
        "builds must not need a database"
    );
    assert!(text.contains("--locked"), "builds must use Cargo.lock");
    let user = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("USER "))
        .expect("a USER line");
    let user = user.trim_start().trim_start_matches("USER ").trim();
    assert!(
        !user.is_empty() && !user.starts_with("root") && !user.starts_with("0"),
        "runs as {user}"
    );
    // The runtime image defaults to production: it fails closed without configuration.
    assert!(text.contains("APP_ENV=production"));
}

#[test]
fn the_docker_context_excludes_build_output_and_local_secrets() {
    let text = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for entry in ["target", ".env", ".git"] {
        assert!(
            text.lines()
                .any(|l| l.trim().trim_start_matches('/') == entry),
            ".dockerignore lacks {entry}"
        );
    }
    // .env.example is needed by the build (the placeholders are compiled in).
    assert!(!text.lines().any(|l| l.trim() == ".env*"));
}
