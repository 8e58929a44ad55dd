//! The client's address end to end: what the session list and the audit log record, from a peer we
//! do not trust (headers ignored, whatever they say) and from one of our proxies (the right-most
//! untrusted address of the configured header, never a client's prepended lie).

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

impl TestApp {
    /// Signs in with extra headers and returns the new session's recorded IP (from the session
    /// list) and the login audit event's.
    async fn sign_in_through(&self, email: &str, headers: &[(&str, &str)]) -> (Value, Value) {
        let mut request = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let pair: Value = response.json().await.unwrap();
        let sessions: Value = self
            .authed(
                reqwest::Method::GET,
                "/api/v1/auth/sessions",
                pair["access_token"].as_str().unwrap(),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let current = sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .unwrap()
            .clone();
        let audit: Option<String> = sqlx::query_scalar(
            "select host(ip) from audit_events where event_type = 'auth.login' order by id desc limit 1",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (current["ip"].clone(), json!(audit))
    }
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address_with_a_header() {
    let app = TestApp::spawn().await;
    app.signed_up("ada@example.com").await;
    for headers in [
        vec![("x-forwarded-for", "203.0.113.7")],
        vec![("forwarded", "for=203.0.113.7")],
        vec![("x-real-ip", "203.0.113.7")],
    ] {
        let (session, audit) = app.sign_in_through("ada@example.com", &headers).await;
        assert_eq!(session, "127.0.0.1", "{headers:?}");
        assert_eq!(audit, "127.0.0.1", "{headers:?}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")]).await;
    app.signed_up("ada@example.com").await;
    for (xff, expected) in [
        ("203.0.113.7", "203.0.113.7"),
        // The client prepended someone else's address: ignored.
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
        // Our own proxies in the chain are skipped.
        ("203.0.113.7, 10.1.2.3", "203.0.113.7"),
    ] {
        let (session, audit) = app
            .sign_in_through("ada@example.com", &[("x-forwarded-for", xff)])
            .await;
        assert_eq!(session, expected, "{xff}");
        assert_eq!(audit, expected, "{xff}");
    }
    // Only the configured header is read.
    let (session, _) = app
        .sign_in_through("ada@example.com", &[("forwarded", "for=203.0.113.7")])
        .await;
    assert_eq!(session, "127.0.0.1");
}

#[tokio::test]
async fn the_forwarded_header_is_read_when_it_is_the_configured_one() {
    let app = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("CLIENT_IP_HEADER", "forwarded"),
    ])
    .await;
    app.signed_up("ada@example.com").await;
    let (session, _) = app
        .sign_in_through(
            "ada@example.com",
            &[("forwarded", "for=198.51.100.1, for=\"[2001:db8::7]:4711\"")],
        )
        .await;
    assert_eq!(session, "2001:db8::7");
    let (session, _) = app
        .sign_in_through("ada@example.com", &[("x-forwarded-for", "203.0.113.7")])
        .await;
    assert_eq!(
        session, "127.0.0.1",
        "X-Forwarded-For is not the configured header"
    );
}
