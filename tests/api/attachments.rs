//! Attachments: the type comes from the bytes, the name is sanitised, the size is capped while
//! streaming, and only readers of the document get the file — always as a download.

use reqwest::{Method, Response};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRnot-really-an-image";

/// A `multipart/form-data` body with the given parts `(field, filename, content type, bytes)`.
pub(crate) fn multipart(parts: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "bulwark-test-boundary-7d3c1a2b";
    let mut body = Vec::new();
    for (field, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl TestApp {
    pub async fn upload(
        &self,
        token: &str,
        document_id: &str,
        parts: &[(&str, &str, &str, &[u8])],
    ) -> Response {
        let (content_type, body) = multipart(parts);
        self.client
            .post(self.url(&format!("/api/v1/documents/{document_id}/attachments")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn download(&self, token: &str, document_id: &str, attachment_id: &str) -> Response {
        self.authed(
            Method::GET,
            &format!("/api/v1/documents/{document_id}/attachments/{attachment_id}"),
            token,
            None,
        )
        .await
    }
}

async fn stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from attachments")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_png_is_stored_under_a_sanitised_name_and_served_only_as_a_download() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();

    let response = app
        .upload(
            &ada.access_token,
            doc_id,
            &[("file", "../../e;v<i>l.png", "text/html", PNG)],
        )
        .await;

    assert_eq!(response.status(), 201);
    let attachment: Value = response.json().await.unwrap();
    assert_eq!(attachment["filename"], "evil.png");
    assert_eq!(
        attachment["content_type"], "image/png",
        "from the bytes, not the claim"
    );
    assert_eq!(attachment["size"], PNG.len());
    let download = app
        .download(
            &ada.access_token,
            doc_id,
            attachment["id"].as_str().unwrap(),
        )
        .await;
    assert_eq!(download.status(), 200);
    let headers = download.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"evil.png\""
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), PNG);
}

#[tokio::test]
async fn html_dressed_as_a_png_and_other_types_are_refused() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();

    for (name, content) in [
        (
            "cat.png",
            &b"<html><script>alert(document.cookie)</script></html>"[..],
        ),
        (
            "logo.png",
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        ),
        ("x.exe", b"MZ\x90\x00\x03\x00\x00\x00"),
        ("empty.txt", b""),
    ] {
        let response = app
            .upload(
                &ada.access_token,
                doc_id,
                &[("file", name, "image/png", content)],
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors[0].field, "file", "{name}");
    }
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn an_oversized_upload_is_413_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(6 * 1024 * 1024, b'a');

    let response = app
        .upload(
            &ada.access_token,
            doc_id,
            &[("file", "big.pdf", "application/pdf", &big)],
        )
        .await;

    assert_problem(response, 413).await;
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn malformed_uploads_are_400_or_415_never_5xx() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();

    let two = app
        .upload(
            &ada.access_token,
            doc_id,
            &[
                ("file", "a.txt", "text/plain", b"one"),
                ("file", "b.txt", "text/plain", b"two"),
            ],
        )
        .await;
    assert_eq!(two.status(), 400);
    let other_field = app
        .upload(
            &ada.access_token,
            doc_id,
            &[("avatar", "a.txt", "text/plain", b"x")],
        )
        .await;
    assert_eq!(other_field.status(), 400);
    let json = app
        .client
        .post(app.url(&format!("/api/v1/documents/{doc_id}/attachments")))
        .bearer_auth(&ada.access_token)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(json, 415).await;
    let broken = app
        .client
        .post(app.url(&format!("/api/v1/documents/{doc_id}/attachments")))
        .bearer_auth(&ada.access_token)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nnot a part")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn only_writers_upload_and_only_readers_download() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let reader = app.signed_up("reader@example.com").await;
    let private = app.document(&ada, "private").await;
    let shared = app.document(&ada, "shared").await;
    let (private_id, shared_id) = (
        private["id"].as_str().unwrap(),
        shared["id"].as_str().unwrap(),
    );
    app.share_document(&ada.access_token, shared_id, &reader.user_id, "read")
        .await;
    let secret: Value = app
        .upload(
            &ada.access_token,
            private_id,
            &[("file", "s.txt", "text/plain", b"secret")],
        )
        .await
        .json()
        .await
        .unwrap();
    let secret_id = secret["id"].as_str().unwrap();

    // A stranger: 404 on the private document, for upload and download alike.
    let upload = app
        .upload(
            &bob.access_token,
            private_id,
            &[("file", "x.txt", "text/plain", b"x")],
        )
        .await;
    assert_problem(upload, 404).await;
    let download = app.download(&bob.access_token, private_id, secret_id).await;
    assert_problem(download, 404).await;
    // The attachment id under another document is not found either.
    let crossed = app.download(&ada.access_token, shared_id, secret_id).await;
    assert_problem(crossed, 404).await;
    // A reader may download but not upload.
    let shared_file: Value = app
        .upload(
            &ada.access_token,
            shared_id,
            &[("file", "r.txt", "text/plain", b"hello")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.download(
            &reader.access_token,
            shared_id,
            shared_file["id"].as_str().unwrap()
        )
        .await
        .status(),
        200
    );
    let reader_upload = app
        .upload(
            &reader.access_token,
            shared_id,
            &[("file", "y.txt", "text/plain", b"y")],
        )
        .await;
    assert_problem(reader_upload, 403).await;
    assert_eq!(stored(&app).await, 2);
}

#[tokio::test]
async fn attachment_bytes_count_against_the_owners_quota() {
    let app = TestApp::spawn_with(&[("QUOTA_FREE_ATTACHMENT_MIB", "1")]).await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();
    let mut file = b"%PDF-1.7\n".to_vec();
    file.resize(700 * 1024, b'a');

    let first = app
        .upload(
            &ada.access_token,
            doc_id,
            &[("file", "a.pdf", "application/pdf", &file)],
        )
        .await;
    let second = app
        .upload(
            &ada.access_token,
            doc_id,
            &[("file", "b.pdf", "application/pdf", &file)],
        )
        .await;

    assert_eq!(first.status(), 201);
    let problem = assert_problem(second, 403).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:quota-exceeded");
    assert_eq!(stored(&app).await, 1);
}
