//! A `redis-server` of a test's own, on a free port, for the tests that must stop Redis (the
//! shared one on 6379 is never touched). Test-only.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::time::sleep;

/// A `redis-server` of the test's own, killed when dropped.
pub(crate) struct OwnRedis {
    port: u16,
    child: Child,
}

/// A self-signed certificate for 127.0.0.1 and its key, in files of their own (removed when
/// dropped): what a TLS `redis-server` serves, and the CA a client must be given to trust it.
pub(crate) struct TlsFiles {
    dir: std::path::PathBuf,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl TlsFiles {
    pub(crate) fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir()
            .join(String::from("bulwark-redis-tls-") + &uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let files = Self {
            dir,
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        };
        std::fs::write(files.cert_path(), &files.cert_pem).unwrap();
        std::fs::write(files.key_path(), &files.key_pem).unwrap();
        files
    }

    fn cert_path(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key_path(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl OwnRedis {
    pub(crate) async fn start(port: u16) -> Self {
        Self::spawn(port, &["--port", &port.to_string()], None).await
    }

    /// A server that speaks TLS only (its plain port is off), with `tls`'s certificate; clients
    /// need no certificate of their own.
    pub(crate) async fn start_tls(port: u16, tls: &TlsFiles) -> Self {
        let (cert, key) = (tls.cert_path(), tls.key_path());
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &cert,
            "--tls-auth-clients",
            "no",
        ];
        Self::spawn(port, &args, Some(&tls.cert_pem)).await
    }

    async fn spawn(port: u16, listen: &[&str], ca: Option<&[u8]>) -> Self {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed to run this test");
        let server = Self { port, child };
        let client = crate::redis_fanout::client(
            &if ca.is_some() {
                server.tls_url()
            } else {
                server.url()
            },
            ca,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").exec_async(&mut connection).await.is_ok()
            {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn url(&self) -> String {
        String::from("redis://127.0.0.1:") + &self.port.to_string()
    }

    pub(crate) fn tls_url(&self) -> String {
        String::from("rediss://127.0.0.1:") + &self.port.to_string()
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server: a paused server accepts connections
    /// but answers nothing.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
