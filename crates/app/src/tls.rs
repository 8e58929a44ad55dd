//! HTTPS served in process, the plain-HTTP listener that only redirects to it, and the development
//! certificate of `bulwark dev-cert`.
//!
//! With `TLS_CERT_PATH` and `TLS_KEY_PATH` set, the main listener speaks TLS and nothing else: a
//! plain-HTTP request to it fails the handshake and is never answered. Behind a TLS-terminating
//! proxy (`BEHIND_TLS_PROXY=true`) none of this is needed; both may also be combined (a proxy that
//! re-encrypts to the service).
//!
//! What the server accepts, and why:
//! - **TLS 1.3 and 1.2 only.** rustls cannot speak SSLv3, TLS 1.0 or 1.1 at all; listing the two
//!   versions says so in code rather than by a crate's default.
//! - **The aws-lc-rs provider's default cipher suites**: TLS 1.3's AES-256-GCM, AES-128-GCM and
//!   ChaCha20-Poly1305, and for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305.
//!   Every suite is an AEAD and forward secret: no CBC, no RC4, no static-RSA key exchange, no
//!   export or null suites exist in rustls to be switched on by mistake. The key exchange groups
//!   are the provider's too (X25519MLKEM768, X25519, P-256, P-384).
//! - **ALPN `http/1.1` only**, which actix adds itself: the service is built without actix's
//!   `http2` feature, so offering `h2` would be a lie.
//! - **No 0-RTT** (rustls's default): early data can be replayed, and nothing here is worth the
//!   round trip it saves.
//! - **One certificate** (its chain in `TLS_CERT_PATH`, leaf first) for every SNI name; the key
//!   must be the leaf's (checked at start-up: a mismatched pair refuses to start rather than fail
//!   every handshake later).
//!
//! Changing the certificate means restarting the service (a rolling restart with several
//! instances); there is no reload on `SIGHUP`.

use std::fmt;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Installs aws-lc-rs as the process's rustls crypto provider, before anything uses TLS.
///
/// Our own server configuration names its provider explicitly, and so does sqlx; the Redis client
/// (and any other library that calls `ClientConfig::builder()`) takes the process default, which
/// rustls can only guess while exactly one provider is compiled in. Installing it here keeps that
/// true even if a dependency one day brings `ring` along (see `shared/DEPENDENCIES.md`).
pub fn install_crypto_provider() {
    // An error only means a provider is installed already (a second call, or a test harness).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The HTTPS settings, loaded and checked at start-up.
#[derive(Clone)]
pub struct TlsSettings {
    /// `TLS_CERT_PATH`: the certificate chain (PEM, leaf first).
    pub cert_path: PathBuf,
    /// `TLS_KEY_PATH`: the leaf's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_path: PathBuf,
    /// `TLS_REDIRECT_PORT` and where it redirects to, when set.
    pub redirect: Option<Redirect>,
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    // The paths only: the server configuration holds the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// The rustls configuration the HTTPS listener serves with.
    #[must_use]
    pub fn server_config(&self) -> ServerConfig {
        (*self.server).clone()
    }
}

/// The plain-HTTP listener that sends every request to the HTTPS origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The port (on `HOST`); 0 picks a free one (tests).
    pub port: u16,
    /// `https://host[:port]`, from `PUBLIC_URL`: never from the request's `Host` header, which
    /// the client chooses (trusting it would make this an open redirect).
    pub origin: String,
}

/// Why a certificate or key file cannot be used: what is wrong, never what the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    /// The file cannot be read (missing, a directory, no permission).
    #[error("names a file that cannot be read")]
    Unreadable,
    /// No `-----BEGIN CERTIFICATE-----` block.
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// A PEM block that does not decode.
    #[error("holds malformed PEM")]
    MalformedPem,
    /// No private-key block of a known kind.
    #[error(
        "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey,
    /// A key rustls cannot sign with (an unsupported algorithm or curve, or garbage in the block).
    #[error("holds a private key this server cannot use (RSA, ECDSA P-256/P-384 or Ed25519 are)")]
    UnusableKey,
    /// The key is not the one of the chain's first certificate.
    #[error("does not belong to the first certificate in TLS_CERT_PATH")]
    KeyMismatch,
    /// The chain's first certificate does not parse as X.509.
    #[error("holds a certificate that is not valid X.509")]
    BadCertificate,
}

/// Reads the certificate chain from a PEM file.
///
/// # Errors
/// [`TlsFileError::Unreadable`], [`TlsFileError::NoCertificate`] or [`TlsFileError::MalformedPem`].
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = std::fs::read(path).map_err(|_| TlsFileError::Unreadable)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsFileError::MalformedPem)?;
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate);
    }
    Ok(chain)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
///
/// # Errors
/// [`TlsFileError::Unreadable`], [`TlsFileError::NoKey`] or [`TlsFileError::MalformedPem`].
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = std::fs::read(path).map_err(|_| TlsFileError::Unreadable)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsFileError::NoKey,
        _ => TlsFileError::MalformedPem,
    })
}

/// The server configuration: TLS 1.3 and 1.2, the provider's AEAD suites, this chain and key.
///
/// # Errors
/// [`TlsFileError::KeyMismatch`] when the key is not the leaf's, [`TlsFileError::UnusableKey`] when
/// rustls cannot sign with it, [`TlsFileError::BadCertificate`] when the leaf does not parse.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsFileError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // The provider's defaults are consistent with these two versions; this cannot fail.
        .map_err(|_| TlsFileError::UnusableKey)?
        .with_no_client_auth();
    // `with_single_cert` checks that the key's public half is the leaf's (`CertifiedKey::from_der`).
    builder
        .with_single_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => TlsFileError::KeyMismatch,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsFileError::BadCertificate
            }
            _ => TlsFileError::UnusableKey,
        })
}

/// Loads and checks both files; each problem names its variable.
///
/// # Errors
/// Every problem found, as `(variable, problem)`: both files are read even when one is bad, so an
/// operator fixes both at once.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
    redirect: Option<Redirect>,
) -> Result<TlsSettings, Vec<(&'static str, TlsFileError)>> {
    let chain = read_chain(cert_path).map_err(|e| ("TLS_CERT_PATH", e));
    let key = read_key(key_path).map_err(|e| ("TLS_KEY_PATH", e));
    let (chain, key) = match (chain, key) {
        (Ok(chain), Ok(key)) => (chain, key),
        (chain, key) => return Err([chain.err(), key.err()].into_iter().flatten().collect()),
    };
    let server = server_config(chain, key).map_err(|error| {
        let var = match error {
            TlsFileError::BadCertificate => "TLS_CERT_PATH",
            _ => "TLS_KEY_PATH",
        };
        vec![(var, error)]
    })?;
    Ok(TlsSettings {
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        redirect,
        server: Arc::new(server),
    })
}

/// The origin (`https://host[:port]`) of an `https://` URL, or `None` for anything else (another
/// scheme, credentials in it, no host).
#[must_use]
pub fn https_origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let plain = parsed.username().is_empty() && parsed.password().is_none();
    (parsed.scheme() == "https" && parsed.host().is_some() && plain)
        .then(|| parsed.origin().ascii_serialization())
}

/// The plain-HTTP listener of `TLS_REDIRECT_PORT`: one worker; every request, whatever its method
/// or path, is answered `308 Permanent Redirect` to the same path and query on `origin`, with no
/// body. 308 (not 301) keeps the method and body, so a POST sent to the wrong port is not silently
/// turned into a GET. It stops with the service (its task is aborted), not on its own signal.
///
/// # Errors
/// The bind error, with the address.
pub fn redirect_listener(
    host: std::net::IpAddr,
    redirect: &Redirect,
    client_header_timeout: std::time::Duration,
) -> Result<(u16, Server), crate::startup::StartupError> {
    let address = std::net::SocketAddr::new(host, redirect.port);
    let bind_error = |source| crate::startup::StartupError::Bind {
        address: address.to_string(),
        source,
    };
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let origin = web::Data::new(RedirectOrigin(redirect.origin.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(origin.clone())
            .default_service(web::to(redirect_to_https))
    })
    .workers(1)
    .client_request_timeout(client_header_timeout)
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    Ok((port, server))
}

/// The redirect's target origin, shared by the listener's worker.
#[derive(Debug)]
struct RedirectOrigin(String);

/// `308` to `origin` + the request's path and query. Only the request *target* is copied: for an
/// absolute-form target (`GET http://evil.example/x`) that is `/x`; a path like `//evil.example`
/// stays a path under our origin. Neither `Host` nor `X-Forwarded-Host` is ever read.
async fn redirect_to_https(req: HttpRequest, origin: web::Data<RedirectOrigin>) -> HttpResponse {
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.starts_with('/') { target } else { "/" };
    // The request line was parsed as a URI, so it is visible ASCII and fits in a header; should it
    // not, the origin's root is still a safe answer.
    let location = HeaderValue::from_str(&format!("{}{target}", origin.0))
        .or_else(|_| HeaderValue::from_str(&format!("{}/", origin.0)))
        .unwrap_or_else(|_| HeaderValue::from_static("/"));
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // One answer per connection: nothing here is worth keeping a socket open for.
        .force_close()
        .finish()
}

/// The file names `bulwark dev-cert` writes.
pub const DEV_CERT_FILE: &str = "cert.pem";
/// See [`DEV_CERT_FILE`].
pub const DEV_KEY_FILE: &str = "key.pem";

/// How long a development certificate is valid.
const DEV_CERT_DAYS: i64 = 365;

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1` (ECDSA P-256, valid a
/// year) and its key into `dir` (created if missing; the key file mode 0600), for local HTTPS only:
/// no browser or client trusts it unless told to (`curl --cacert <dir>/cert.pem`).
///
/// # Errors
/// When either file exists and `force` is false (nothing is written then), or on I/O and
/// generation failures.
pub fn write_dev_cert(dir: &Path, force: bool) -> anyhow::Result<(PathBuf, PathBuf)> {
    use anyhow::Context;
    let cert_path = dir.join(DEV_CERT_FILE);
    let key_path = dir.join(DEV_KEY_FILE);
    if !force {
        for path in [&cert_path, &key_path] {
            if path.exists() {
                anyhow::bail!(
                    "{} exists; pass --force to replace it (and the other file)",
                    path.display()
                );
            }
        }
    }
    let (cert_pem, key_pem) = dev_cert()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(&key_path, key_pem.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    Ok((cert_path, key_path))
}

/// A fresh self-signed development certificate and its key, both PEM.
///
/// # Errors
/// When key generation or signing fails.
pub fn dev_cert() -> anyhow::Result<(String, String)> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Bulwark development certificate");
    params.distinguished_name = name;
    // A minute in the past: a clock a little behind on the client must not reject it at once.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(DEV_CERT_DAYS);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // `mode` applies only when the file is created: a replaced (--force) file gets it here.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bulwark-tls-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_dev_certificate_loads_as_a_server_configuration() {
        let dir = temp_dir("load");
        let (cert, key) = write_dev_cert(&dir, false).unwrap();
        let settings = load(&cert, &key, None).unwrap();
        let config = settings.server_config();
        assert!(config.alpn_protocols.is_empty(), "actix adds http/1.1");
        assert_eq!(config.max_early_data_size, 0, "no 0-RTT");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_aead_forward_secret_suites_are_offered() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        for suite in provider.cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }

    #[test]
    fn dev_cert_refuses_to_overwrite_without_force_and_keeps_the_key_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("force");
        let (cert, key) = write_dev_cert(&dir, false).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let error = write_dev_cert(&dir, false).unwrap_err().to_string();
        assert!(error.contains("--force"), "{error}");
        assert_eq!(std::fs::read(&cert).unwrap(), first, "nothing was written");

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_dev_cert(&dir, true).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first, "replaced");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_bad_files_are_named() {
        let dir = temp_dir("mismatch");
        let (cert, _) = write_dev_cert(&dir.join("a"), false).unwrap();
        let (other_cert, other_key) = write_dev_cert(&dir.join("b"), false).unwrap();
        let problems = load(&cert, &other_key, None).unwrap_err();
        assert_eq!(problems, [("TLS_KEY_PATH", TlsFileError::KeyMismatch)]);

        // Swapped files, a missing file: both variables are reported at once.
        let problems = load(&other_key, &other_cert, None).unwrap_err();
        assert_eq!(
            problems,
            [
                ("TLS_CERT_PATH", TlsFileError::NoCertificate),
                ("TLS_KEY_PATH", TlsFileError::NoKey)
            ]
        );
        let missing = dir.join("nope.pem");
        let problems = load(&missing, &missing, None).unwrap_err();
        assert_eq!(
            problems,
            [
                ("TLS_CERT_PATH", TlsFileError::Unreadable),
                ("TLS_KEY_PATH", TlsFileError::Unreadable)
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_redirect_origin_is_https_only_and_drops_the_path() {
        assert_eq!(
            https_origin("https://api.example.com/app/").as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            https_origin("https://localhost:8443").as_deref(),
            Some("https://localhost:8443")
        );
        assert_eq!(
            https_origin("https://api.example.com:443").as_deref(),
            Some("https://api.example.com")
        );
        for bad in [
            "http://api.example.com",
            "https://user:pw@api.example.com",
            "api.example.com",
            "https://",
        ] {
            assert_eq!(https_origin(bad), None, "{bad}");
        }
    }
}
