//! SMTP delivery of the outbox, against a minimal SMTP server on a free port.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::{PASSWORD, TestApp};

/// Accepts SMTP sessions and keeps every message's DATA. Just enough of RFC 5321 for a client that
/// does not ask for TLS or authentication.
async fn fake_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            store.lock().unwrap().push(std::mem::take(body));
                            data = None;
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn with_smtp_url_set_the_outbox_is_delivered_and_marked_sent() {
    let (port, received) = fake_smtp().await;
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        ("SMTP_URL", url.as_str()),
        ("MAIL_FROM", "Bulwark <no-reply@example.com>"),
        ("PUBLIC_URL", "https://app.example.com"),
    ])
    .await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD, "Ada")
            .await
            .status(),
        201
    );

    let mut message = None;
    for _ in 0..100 {
        if let Some(m) = received.lock().unwrap().first().cloned() {
            message = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = message.expect("a mail reached the SMTP server");
    // The body is quoted-printable: undo soft line breaks and the escaped `=`.
    let message = message.replace("=\n", "").replace("=3D", "=");
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(
        message.contains("Subject: Confirm your email address"),
        "{message}"
    );
    assert!(
        message.contains("https://app.example.com/verify-email#token=bwev_"),
        "{message}"
    );
    // The row is marked sent (give the worker the moment between SMTP's reply and the update).
    let mut sent = false;
    for _ in 0..50 {
        let unsent: i64 =
            sqlx::query_scalar("select count(*) from mail_outbox where sent_at is null")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if unsent == 0 {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the outbox row is marked sent");
}
