//! Attachments of documents: what may be uploaded, decided from the bytes.
//!
//! The declared content type and the file name are the client's claims and are not trusted: the
//! type is sniffed from the content against an allowlist (PNG, JPEG, PDF, plain UTF-8 text that does
//! not look like markup), and the stored name is reduced to a safe subset. Downloads are always
//! served as attachments with `nosniff` and a sandboxing CSP, so even a file that fooled the sniffer
//! is never rendered as a page of this origin.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::quota::PlanLimits;
use crate::user::FieldViolation;

/// Largest attachment (5 MiB).
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;
/// Longest stored file name.
pub const MAX_FILENAME_CHARS: usize = 100;

/// The allowed kinds of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentType {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `application/pdf`.
    Pdf,
    /// `text/plain; charset=utf-8`.
    Text,
}

impl AttachmentType {
    /// The stored spelling (`attachments.content_type`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Pdf => "application/pdf",
            Self::Text => "text/plain",
        }
    }

    /// The `Content-Type` to serve.
    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; charset=utf-8",
            other => other.as_str(),
        }
    }

    /// Parses the stored spelling.
    #[must_use]
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Pdf, Self::Text]
            .into_iter()
            .find(|t| t.as_str() == raw)
    }

    /// The type of `content`, from its bytes alone; `None` when it is none of the allowed ones.
    /// Text must be valid UTF-8 without control characters other than tab and line breaks, and
    /// must not begin like markup (HTML, SVG, XML), which a browser could be talked into rendering.
    #[must_use]
    pub fn sniff(content: &[u8]) -> Option<Self> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        const JPEG: &[u8] = b"\xff\xd8\xff";
        const PDF: &[u8] = b"%PDF-";
        if content.starts_with(PNG) {
            return Some(Self::Png);
        }
        if content.starts_with(JPEG) {
            return Some(Self::Jpeg);
        }
        if content.starts_with(PDF) {
            return Some(Self::Pdf);
        }
        let text = std::str::from_utf8(content).ok()?;
        let clean = text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'));
        // Byte-order marks and whitespace, in any order and number: a browser skips them all
        // before it decides that a document is markup.
        let head = text
            .trim_start_matches(|c: char| c == '\u{feff}' || c.is_whitespace())
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        let markup = head.starts_with('<');
        (!content.is_empty() && clean && !markup).then_some(Self::Text)
    }
}

/// A file name reduced to letters, digits, `.`, `-`, `_` and spaces, without a path, at most
/// [`MAX_FILENAME_CHARS`]; `attachment` when nothing usable is left.
#[must_use]
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(MAX_FILENAME_CHARS)
        .collect();
    // No leading dot (a hidden file, `.`, `..`) and no surrounding spaces, however they are
    // interleaved (`. .htaccess`): what is left starts with a letter, a digit, `-` or `_`.
    let cleaned = cleaned.trim_start_matches(['.', ' ']).trim_end().to_owned();
    if cleaned.is_empty() {
        "attachment".to_owned()
    } else {
        cleaned
    }
}

/// Checks an upload: not empty, not too large, of an allowed type.
///
/// # Errors
/// A violation on `file`.
pub fn check_upload(content: &[u8]) -> Result<AttachmentType, FieldViolation> {
    if content.is_empty() {
        return Err(FieldViolation::new(
            "file",
            "required",
            "The file is empty.",
        ));
    }
    if content.len() > MAX_ATTACHMENT_BYTES {
        return Err(FieldViolation::new(
            "file",
            "too_large",
            format!(
                "A file has at most {} MiB.",
                MAX_ATTACHMENT_BYTES / 1024 / 1024
            ),
        ));
    }
    AttachmentType::sniff(content).ok_or_else(|| {
        FieldViolation::new(
            "file",
            "unsupported_type",
            "Only PNG, JPEG, PDF and plain text files are accepted.",
        )
    })
}

/// A stored attachment (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Id.
    pub id: Uuid,
    /// The document it belongs to.
    pub document_id: Uuid,
    /// The sanitised file name.
    pub filename: String,
    /// The sniffed type.
    pub content_type: AttachmentType,
    /// Size in bytes.
    pub size: u64,
    /// Uploaded.
    pub created_at: OffsetDateTime,
}

/// A new attachment.
pub struct NewAttachment {
    /// The document.
    pub document_id: Uuid,
    /// Whose quota it counts against (the document's owner).
    pub owner_id: Uuid,
    /// The sanitised file name.
    pub filename: String,
    /// The sniffed type.
    pub content_type: AttachmentType,
    /// The bytes.
    pub content: Vec<u8>,
}

impl fmt::Debug for NewAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAttachment")
            .field("document_id", &self.document_id)
            .field("filename", &self.filename)
            .field("size", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// Why an attachment was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateAttachmentError {
    /// The owner's attachments would exceed its plan's bytes.
    #[error("attachment quota exceeded")]
    QuotaExceeded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AttachmentStoreError),
}

/// The attachment store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the attachment store is unavailable")]
pub struct AttachmentStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of attachments.
#[async_trait]
pub trait AttachmentRepository: Send + Sync + fmt::Debug {
    /// Stores an attachment unless the owner's total would exceed its plan's attachment bytes —
    /// summed and inserted in one transaction under the owner's row lock.
    ///
    /// # Errors
    /// [`CreateAttachmentError`].
    async fn create(
        &self,
        new: NewAttachment,
        limits: &PlanLimits,
    ) -> Result<Attachment, CreateAttachmentError>;

    /// An attachment of a document, with its bytes.
    ///
    /// # Errors
    /// [`AttachmentStoreError`] when the store fails.
    async fn find(
        &self,
        document_id: Uuid,
        attachment_id: Uuid,
    ) -> Result<Option<(Attachment, Vec<u8>)>, AttachmentStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(
            AttachmentType::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(AttachmentType::Png)
        );
        assert_eq!(
            AttachmentType::sniff(b"\xff\xd8\xff\xe0rest"),
            Some(AttachmentType::Jpeg)
        );
        assert_eq!(
            AttachmentType::sniff(b"%PDF-1.7"),
            Some(AttachmentType::Pdf)
        );
        assert_eq!(
            AttachmentType::sniff("Grüße\r\n\tok".as_bytes()),
            Some(AttachmentType::Text)
        );
    }

    #[test]
    fn markup_binaries_and_empty_files_are_refused() {
        for bad in [
            &b"<html><script>alert(1)</script>"[..],
            b"  <!DOCTYPE html>",
            b"<svg onload=alert(1)>",
            b"\xef\xbb\xbf<?xml version='1.0'?>",
            b"MZ\x90\x00binary",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00",
            b"text with a \x00 NUL",
            b"\xff\xfe not utf-8",
            b"",
        ] {
            assert_eq!(AttachmentType::sniff(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_names_lose_paths_and_dangerous_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_filename("a\"b;c\r\n.png"), "abc.png");
        assert_eq!(sanitize_filename(".htaccess"), "htaccess");
        assert_eq!(sanitize_filename("ü<>"), "attachment");
        assert_eq!(
            sanitize_filename(&"x".repeat(500)).len(),
            MAX_FILENAME_CHARS
        );
    }
}
