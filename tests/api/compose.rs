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
fn the_app_sends_account_mail_to_the_mailpit_service() {
    let compose = compose();
    let app = service(&compose, "app");
    assert_eq!(
        app["environment"]["SMTP_URL"].as_str(),
        Some("smtp://mailpit:1025")
    );
    assert!(
        strings(&service(&compose, "mailpit")["ports"])
            .iter()
            .any(|p| p.ends_with(":1025")),
        "mailpit listens for SMTP on 1025"
    );
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

/// Every `environment:` entry of every service as (name, value), whether written as a map or as a
/// list of `NAME=value` strings.
fn environment(compose: &Yaml) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for (_, definition) in compose["services"].as_hash().unwrap() {
        match &definition["environment"] {
            Yaml::Hash(map) => {
                for (key, value) in map {
                    let value = strings(value).join("");
                    entries.push((key.as_str().unwrap().to_owned(), value));
                }
            }
            Yaml::Array(items) => {
                for item in items {
                    let text = item.as_str().unwrap();
                    let (key, value) = text.split_once('=').unwrap_or((text, ""));
                    entries.push((key.to_owned(), value.to_owned()));
                }
            }
            _ => {}
        }
    }
    entries
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
    let entries = environment(&compose);
    assert!(
        entries.len() >= 8,
        "environment entries were not found: {entries:?}"
    );
    for (key, value) in &entries {
        let sensitive = [
            "PASSWORD",
            "SECRET",
            "KEY",
            "TOKEN",
            "DATABASE_URL",
            "PEPPER",
        ]
        .iter()
        .any(|s| key.contains(s));
        if sensitive {
            assert!(
                key.ends_with("_FILE") && value.starts_with('/'),
                "{key} is set as a literal; pass secrets as *_FILE paths"
            );
        }
    }
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    assert!(
        !text.contains("POSTGRES_PASSWORD:") && !text.contains("POSTGRES_PASSWORD="),
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
    // No long base64 blobs (keys), wherever they hide (`NAME=<key>` included).
    for word in text.split(|c: char| c.is_whitespace() || "\"'=:,".contains(c)) {
        let base64ish = word.len() >= 40
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/".contains(c));
        assert!(!base64ish, "something that looks like a key: {word}");
    }
}

#[test]
fn the_secret_checks_catch_a_planted_key() {
    // The checks above must be able to fail: plant a key the way someone might, and look.
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let planted = text.replace(
        "      APP_ENV: development\n",
        "      APP_ENV: development\n      JWT_SIGNING_KEY: MFECAQEwBQYDK2VwBCIEIJM9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
    );
    assert_ne!(planted, text, "the planting anchor moved");
    let yaml = YamlLoader::load_from_str(&planted).unwrap().remove(0);
    let caught = environment(&yaml)
        .iter()
        .any(|(k, v)| k == "JWT_SIGNING_KEY" && !v.starts_with('/'));
    assert!(caught);
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
    let excludes_env_files = text
        .lines()
        .any(|l| l.trim() == ".env*" || l.trim() == ".env.*");
    assert!(!excludes_env_files || text.lines().any(|l| l.trim() == "!.env.example"));
}

#[test]
fn the_monitoring_profile_scrapes_the_private_metrics_listener_with_the_shipped_rules() {
    let compose = compose();
    let prometheus = service(&compose, "prometheus");
    assert_eq!(
        strings(&prometheus["profiles"]),
        ["monitoring"],
        "Prometheus is optional"
    );
    let volumes = strings(&prometheus["volumes"]);
    for (file, inside) in [
        ("prometheus.yml", "/etc/prometheus/prometheus.yml"),
        ("alerts.yml", "/etc/prometheus/alerts.yml"),
    ] {
        assert!(repo().join("deploy/prometheus").join(file).is_file());
        let mount = format!("./deploy/prometheus/{file}:{inside}:ro");
        assert!(volumes.contains(&mount), "{mount} in {volumes:?}");
    }

    // The app's metrics listener is on the compose network only: its port is never published.
    let app = service(&compose, "app");
    let address = app["environment"]["METRICS_ADDR"].as_str().unwrap();
    let port = address.rsplit(':').next().unwrap();
    assert!(
        strings(&app["ports"])
            .iter()
            .all(|published| !published.ends_with(&format!(":{port}"))),
        "the metrics port is published"
    );

    let text = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let config = YamlLoader::load_from_str(&text).unwrap().remove(0);
    assert_eq!(
        strings(&config["rule_files"]),
        ["/etc/prometheus/alerts.yml"]
    );
    let job = &config["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    assert_eq!(
        strings(&job["static_configs"][0]["targets"]),
        [format!("app:{port}")]
    );
}
