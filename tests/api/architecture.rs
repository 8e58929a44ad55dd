//! Rules about the code itself that the compiler cannot check.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `src/` file of every crate (not their tests).
fn crate_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_sources(&src, &mut files);
        }
    }
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(repo()).unwrap().display().to_string();
            (relative, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

#[test]
fn the_domain_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(repo().join("crates/domain/Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for io in [
        "sqlx",
        "actix",
        "tokio",
        "reqwest",
        "redis",
        "hyper",
        "lettre",
        "async-graphql",
    ] {
        assert!(
            !dependencies.contains(io),
            "bulwark-domain must not depend on {io}"
        );
    }
}

#[test]
fn every_crate_forbids_unsafe_code_and_uses_the_workspace_lints() {
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(workspace.contains(r#"unsafe_code = "forbid""#));
    for krate in std::fs::read_dir(repo().join("crates")).unwrap() {
        let manifest = std::fs::read_to_string(krate.unwrap().path().join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "a crate opts out of the workspace lints"
        );
    }
}

#[test]
fn every_crate_begins_with_a_doc_paragraph() {
    for krate in std::fs::read_dir(repo().join("crates")).unwrap() {
        let dir = krate.unwrap().path();
        let root = if dir.join("src/lib.rs").exists() {
            dir.join("src/lib.rs")
        } else {
            dir.join("src/main.rs")
        };
        let text = std::fs::read_to_string(&root).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not start with a //! paragraph",
            root.display()
        );
    }
}

#[test]
fn routes_are_registered_only_through_the_documented_router() {
    // Each of these registers an actix route outside utoipa-actix-web, i.e. outside the OpenAPI
    // document. (The 405/404 fallback is actix's default service, which is not a route.)
    let raw_registrations = [
        "web::resource(",
        "web::scope(",
        "Resource::new(",
        "Scope::new(",
        ".route(",
        "web::get()",
        "web::post()",
        "web::put()",
        "web::patch()",
        "web::delete()",
    ];
    // The test kit is no part of the service: its fakes (an identity provider) are servers of
    // their own, with routes that must not appear in our OpenAPI document. Nor is the bench crate:
    // its baseline is a bare actix server *without* the service's layers, on purpose.
    // Only code that speaks actix can register an actix route (`oauth2::Scope::new` is not one).
    let service_sources = crate_sources().into_iter().filter(|(file, text)| {
        !file.starts_with("crates/testkit/")
            && !file.starts_with("crates/bench/")
            && text.contains("actix_web")
    });
    for (file, text) in service_sources {
        for needle in raw_registrations {
            assert!(
                !text.contains(needle),
                "{file} registers a route with `{needle}`; use #[utoipa::path] and bulwark_transport_rest::routes"
            );
        }
        // Actix route macros must carry their OpenAPI description.
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let is_route_macro = [
                "#[get(",
                "#[post(",
                "#[put(",
                "#[patch(",
                "#[delete(",
                "#[route(",
            ]
            .iter()
            .any(|m| trimmed.starts_with(m));
            if is_route_macro {
                let before: String = text.lines().take(index).collect::<Vec<_>>().join("\n");
                let last_item = before.rfind("\n}").unwrap_or(0);
                assert!(
                    before[last_item..].contains("#[utoipa::path"),
                    "{file}:{} has a route without #[utoipa::path]",
                    index + 1
                );
            }
        }
        // `.service(` is how routes are added. transport-rest's router registers the API (each handler
        // carries #[utoipa::path], checked above); the app adds exactly one other service, the
        // development-only Swagger UI.
        if text.contains(".service(") {
            match file.as_str() {
                "crates/transport-rest/src/lib.rs"
                | "crates/transport-graphql/src/http.rs"
                | "crates/transport-ws/src/upgrade.rs" => {}
                "crates/app/src/startup.rs" => {
                    for (index, _) in text.match_indices(".service(") {
                        let following = &text[index..(index + 120).min(text.len())];
                        assert!(
                            following.contains("SwaggerUi"),
                            "startup.rs registers a service other than the docs UI: {following}"
                        );
                    }
                }
                _ => panic!(
                    "{file} calls .service(): register routes in bulwark_transport_rest::routes"
                ),
            }
        }
    }
}

#[test]
fn no_stubs_in_the_crates() {
    for (file, text) in crate_sources() {
        for stub in ["todo!(", "unimplemented!("] {
            assert!(!text.contains(stub), "{file} contains {stub}");
        }
    }
}

#[test]
fn every_variable_the_configuration_reads_is_documented_in_env_example() {
    let config = std::fs::read_to_string(repo().join("crates/app/src/config.rs")).unwrap();
    let example = std::fs::read_to_string(repo().join(".env.example")).unwrap();
    let code = config.split("#[cfg(test)]").next().unwrap();
    let mut names: Vec<&str> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 2
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 15, "found only {names:?}");
    for name in names {
        let documented = example.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{name}="))
        });
        assert!(
            documented,
            "{name} is read by the configuration but not documented in .env.example"
        );
    }
}

#[test]
fn persistence_uses_only_compile_time_checked_queries() {
    // `query!`/`query_as!`/`query_scalar!` are checked against the schema and always bind
    // parameters; the function forms take any string, which is where SQL injection starts.
    for (file, text) in crate_sources()
        .into_iter()
        .filter(|(f, _)| f.starts_with("crates/persistence/"))
    {
        for unchecked in [
            "sqlx::query(",
            "sqlx::query_as(",
            "sqlx::query_scalar(",
            "raw_sql(",
            "AssertSqlSafe",
            "format!(",
        ] {
            assert!(!text.contains(unchecked), "{file} uses {unchecked}");
        }
    }
}

#[test]
fn the_security_map_names_files_and_tests_that_exist() {
    let map = std::fs::read_to_string(repo().join("docs/security.md")).unwrap();
    let mut checked = 0;
    for quoted in map.split('`').skip(1).step_by(2) {
        let (path, function) = match quoted.split_once("::") {
            Some((path, function)) => (path, Some(function)),
            None => (quoted, None),
        };
        let looks_like_file = [
            "crates/",
            "tests/",
            "migrations/",
            "docs/",
            "openapi/",
            ".env.example",
            "docker-compose.yml",
        ]
        .iter()
        .any(|p| path.starts_with(p));
        if !looks_like_file {
            continue;
        }
        let text = std::fs::read_to_string(repo().join(path))
            .unwrap_or_else(|_| panic!("docs/security.md names {path}, which does not exist"));
        if let Some(function) = function {
            assert!(
                text.contains(&format!("fn {function}(")),
                "docs/security.md names {path}::{function}, which does not exist"
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} references checked");
}
