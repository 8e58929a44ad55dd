//! The `bulwark` command line: `serve`, `migrate`, `keygen`, `dev-cert`, `openapi`, `create-admin`.
//!
//! Every failure ends in a short message on stderr and a non-zero exit code — never a panic or a
//! stack trace, and never a secret:
//! - `78` (`EX_CONFIG`): the configuration is incomplete or unsafe; one line per problem;
//! - `1`: anything else (the database is unreachable, the port is taken).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::{AppEnv, Config, Env};
use crate::startup::Application;
use crate::telemetry;

/// Exit code for configuration problems (sysexits.h `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Bulwark: a security-first reference backend.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (configuration from the environment; see .env.example).
    Serve,
    /// Apply pending database migrations, creating the database first in development.
    Migrate,
    /// Print fresh secrets as environment lines, or write them as files for Docker secrets.
    Keygen {
        /// Write `jwt_signing_key`, `jwt_signing_key_id` and `data_encryption_keys` into this
        /// directory (mode 0600), keeping any that already exist.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Write a self-signed certificate for local HTTPS (`localhost`, 127.0.0.1, ::1; valid a
    /// year): `cert.pem` and `key.pem` (mode 0600). For development only: set TLS_CERT_PATH and
    /// TLS_KEY_PATH to them, and tell the client to trust cert.pem (`curl --cacert`).
    DevCert {
        /// Where to write the two files (created if missing).
        #[arg(long, default_value = ".dev/tls")]
        out_dir: PathBuf,
        /// Replace existing files (otherwise an existing file is an error and nothing is written).
        #[arg(long)]
        force: bool,
    },
    /// Print the OpenAPI document (what `make openapi` writes to openapi/openapi.json).
    Openapi,
    /// Print the GraphQL schema as SDL (what `make openapi` writes to openapi/schema.graphql).
    GraphqlSchema,
    /// Create an administrator. The password is read from standard input (one line), never from
    /// an argument, where it would be visible in `ps` and shell history:
    /// `bulwark create-admin --email admin@example.com < password-file`.
    CreateAdmin {
        /// The administrator's email.
        #[arg(long)]
        email: String,
        /// The display name.
        #[arg(long, default_value = "Administrator")]
        display_name: String,
    },
    /// Re-encrypt every sealed value (mail payloads, webhook secrets, TOTP secrets) under the
    /// first key of DATA_ENCRYPTION_KEYS. Put the new key first, restart the service, run this
    /// (safe while the service serves; run it again if it stops), then remove the old key.
    RotateDataKey,
}

/// Runs a parsed command line.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    crate::tls::install_crypto_provider();
    match cli.command {
        Command::Keygen { out_dir } => report(keygen(out_dir.as_deref())),
        Command::DevCert { out_dir, force } => report(dev_cert(&out_dir, force)),
        Command::Openapi => report(print_openapi()),
        Command::GraphqlSchema => report(
            std::io::stdout()
                .lock()
                .write_all(bulwark_transport_graphql::sdl().as_bytes())
                .map_err(anyhow::Error::from),
        ),
        Command::Serve => with_config(|config| block_on(serve(config))),
        Command::Migrate => with_config(|config| block_on(migrate(config))),
        Command::CreateAdmin {
            email,
            display_name,
        } => with_config(|config| block_on(create_admin(config, email, display_name))),
        Command::RotateDataKey => with_config(|config| block_on(rotate_data_key(config))),
    }
}

fn with_config(f: impl FnOnce(Config) -> anyhow::Result<()>) -> ExitCode {
    match Env::from_process().and_then(|env| Config::load(&env)) {
        Ok(config) => report(f(config)),
        Err(problems) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "bulwark: refusing to start; fix the configuration (see .env.example):"
            );
            for problem in problems {
                let _ = writeln!(stderr, "  {problem}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "bulwark failed");
            let _ = writeln!(std::io::stderr(), "bulwark: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(future: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    telemetry::init(&config.log);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let app = Application::build(&config, None).await?;
    tracing::info!(
        env = ?config.env,
        address = %format!("{}:{}", config.http.host, app.port()),
        scheme = if config.http.tls.is_some() { "https" } else { "http" },
        redirect_port = app.redirect_port(),
        docs_ui = config.http.docs_ui,
        behind_tls_proxy = config.http.behind_tls_proxy,
        "bulwark is listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("bulwark stopped");
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    telemetry::init(&config.log);
    if config.env == AppEnv::Development
        && bulwark_persistence::create_database_if_missing(config.database_url.expose_secret())
            .await
            .context("cannot reach PostgreSQL at DATABASE_URL")?
    {
        tracing::info!("created the database");
    }
    let pool = bulwark_persistence::connect(&config.database);
    bulwark_persistence::migrate(&pool)
        .await
        .context("migration failed")?;
    pool.close().await;
    tracing::info!("migrations are up to date");
    Ok(())
}

async fn create_admin(config: Config, email: String, display_name: String) -> anyhow::Result<()> {
    use anyhow::Context;
    use bulwark_domain::account::{AccountError, Registration};
    use std::io::BufRead;

    telemetry::init(&config.log);
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    // Only the line ending goes: spaces are part of a password.
    let password = secrecy::SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    drop(line);
    if password.expose_secret().is_empty() {
        anyhow::bail!(
            "no password on standard input (pipe it in: `bulwark create-admin --email … < file`)"
        );
    }

    let pool = bulwark_persistence::connect(&config.database);
    let state = crate::startup::AppState::new(&config, pool.clone(), None)?;
    let origin = bulwark_domain::context::Origin::default();
    let registration = Registration {
        email,
        password,
        display_name,
    };
    let result = state.accounts().create_admin(&origin, registration).await;
    pool.close().await;
    match result {
        Ok(user) => {
            writeln!(std::io::stdout(), "created administrator {}", user.id)?;
            Ok(())
        }
        Err(AccountError::Invalid(violations)) => {
            let rules: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.message))
                .collect();
            anyhow::bail!("refused:\n  {}", rules.join("\n  "))
        }
        Err(AccountError::EmailTaken) => anyhow::bail!("an account with this email exists"),
        Err(error) => Err(anyhow::Error::new(error).context("cannot create the administrator")),
    }
}

async fn rotate_data_key(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    telemetry::init(&config.log);
    let sealer = bulwark_security::sealing::KeyringSealer::new(&config.keys.data_encryption)
        .context("cannot use DATA_ENCRYPTION_KEYS")?;
    let pool = bulwark_persistence::connect(&config.database);
    let result = bulwark_persistence::rotation::reseal_all(&pool, &sealer).await;
    pool.close().await;
    let done = result.context("rotation stopped (run it again once the cause is fixed)")?;
    writeln!(
        std::io::stdout(),
        "re-sealed under the active key: {} mail payloads, {} webhook secrets, {} TOTP secrets",
        done.mail,
        done.webhooks,
        done.totp
    )?;
    Ok(())
}

fn print_openapi() -> anyhow::Result<()> {
    let json = bulwark_transport_rest::openapi_json(&crate::api::openapi())?;
    std::io::stdout().lock().write_all(json.as_bytes())?;
    Ok(())
}

fn keygen(out_dir: Option<&Path>) -> anyhow::Result<()> {
    let keys = bulwark_security::keys::generate_keys()?;
    let Some(dir) = out_dir else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "# Fresh secrets from `bulwark keygen`. Keep them out of version control and logs."
        )?;
        writeln!(out, "JWT_SIGNING_KEY_ID={}", keys.jwt_key_id)?;
        writeln!(
            out,
            "JWT_SIGNING_KEY={}",
            keys.jwt_signing_key.expose_secret()
        )?;
        writeln!(
            out,
            "DATA_ENCRYPTION_KEYS={}",
            keys.data_encryption_keys.expose_secret()
        )?;
        // For the next rotation: when this key is replaced, its public part goes here.
        if let Ok(kid) = bulwark_security::keys::KeyId::parse(&keys.jwt_key_id)
            && let Ok(signing) =
                bulwark_security::keys::JwtSigningKey::parse(kid, &keys.jwt_signing_key)
        {
            let entry = bulwark_security::tokens::VerificationKey::of(&signing).to_env_entry();
            writeln!(
                out,
                "# When this signing key is rotated out, keep accepting its tokens with: JWT_VERIFICATION_KEYS={entry}"
            )?;
        }
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    // The key and its id belong together: write both or neither.
    if !dir.join("jwt_signing_key").exists() {
        write_secret_file(&dir.join("jwt_signing_key_id"), &keys.jwt_key_id)?;
        write_secret_file(
            &dir.join("jwt_signing_key"),
            keys.jwt_signing_key.expose_secret(),
        )?;
    }
    if !dir.join("data_encryption_keys").exists() {
        write_secret_file(
            &dir.join("data_encryption_keys"),
            keys.data_encryption_keys.expose_secret(),
        )?;
    }
    Ok(())
}

fn dev_cert(out_dir: &Path, force: bool) -> anyhow::Result<()> {
    let (cert, key) = crate::tls::write_dev_cert(out_dir, force)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# A self-signed certificate for local HTTPS only (localhost, 127.0.0.1, ::1; valid a year)."
    )?;
    writeln!(out, "TLS_CERT_PATH={}", cert.display())?;
    writeln!(out, "TLS_KEY_PATH={}", key.display())?;
    writeln!(
        out,
        "# Trust it in a client explicitly, e.g. curl --cacert {} https://localhost:8443/health/live",
        cert.display()
    )?;
    Ok(())
}

fn write_secret_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    Ok(())
}
