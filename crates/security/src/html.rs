//! Sanitising document bodies: [`AmmoniaSanitizer`], the domain's [`HtmlSanitizer`] on `ammonia`.
//!
//! A body is stored and later served to other users' browsers, so this is the stored-XSS
//! boundary. Two choices make it hold:
//! - **Parse, then allowlist.** ammonia parses with html5ever, the same HTML5 algorithm a browser
//!   uses, so the sanitiser sees the tree the browser will see (unclosed tags, entity-encoded
//!   schemes, `<scr<script>ipt>` tricks are resolved by the parser, not by regexes), and then keeps
//!   only what is listed here. Anything new in HTML is refused until someone adds it on purpose.
//! - **Strict list.** Text formatting, lists, headings, code, quotes and links; one attribute in
//!   all (`href`, on `a`), with the schemes `http`, `https` and `mailto`. No `style` (CSS can run
//!   requests and, in old engines, script), no `class`/`id` (they let content restyle or hijack
//!   the page around it), no images (tracking pixels, `onerror`), no frames, forms, SVG or MathML.
//!
//! Sanitising happens once, on the way in (`DocumentBody::parse`); what is stored is the clean
//! HTML. Clients still render it inside a strict CSP — this is one layer, not the only one.

use std::collections::{HashMap, HashSet};

use ammonia::{Builder, UrlRelative};
use bulwark_domain::document::HtmlSanitizer;

/// The elements a body may contain.
const TAGS: &[&str] = &[
    "p",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "u",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "hr",
];

/// Elements removed *with* their content: what is inside them is code, a document of its own or
/// foreign markup, never text the author meant to show.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "noscript", "noembed",
    "noframes", "template", "svg", "math", "textarea", "select", "title", "xmp",
];

/// The only URL schemes a link may use (`javascript:`, `data:`, `vbscript:` … are dropped with
/// the `href`).
const URL_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// Added to every link: no `window.opener` for the target (`noopener`), no `Referer` leaking the
/// document's URL (`noreferrer`), and no search-ranking credit for spam links (`nofollow`).
const LINK_REL: &str = "noopener noreferrer nofollow";

/// [`HtmlSanitizer`] backed by ammonia with a strict allowlist (see the module docs). The
/// configuration is built once, in [`AmmoniaSanitizer::new`], and shared by every call.
#[derive(Debug)]
pub struct AmmoniaSanitizer {
    builder: Builder<'static>,
}

impl AmmoniaSanitizer {
    /// A sanitiser with the service's allowlist.
    #[must_use]
    pub fn new() -> Self {
        let mut builder = Builder::empty();
        builder
            .tags(TAGS.iter().copied().collect())
            .clean_content_tags(DROPPED_WITH_CONTENT.iter().copied().collect())
            .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
            .generic_attributes(HashSet::new())
            .generic_attribute_prefixes(HashSet::new())
            .allowed_classes(HashMap::new())
            .url_schemes(URL_SCHEMES.iter().copied().collect())
            // Relative links are refused too: a body is served by an API and shown by clients on
            // other origins, where `/admin` or `../x` would resolve somewhere nobody chose.
            .url_relative(UrlRelative::Deny)
            .link_rel(Some(LINK_REL))
            .strip_comments(true)
            .id_prefix(None);
        Self { builder }
    }
}

impl Default for AmmoniaSanitizer {
    fn default() -> Self {
        Self::new()
    }
}

impl HtmlSanitizer for AmmoniaSanitizer {
    fn sanitize(&self, html: &str) -> String {
        self.builder.clean(html).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fragments that must never reach a stored body, in any letter case.
    const FORBIDDEN: &[&str] = &[
        "<script",
        "onerror",
        "onload",
        "onclick",
        "javascript:",
        "vbscript:",
        "data:",
        "<iframe",
        "<svg",
        "<math",
        "<img",
        "<object",
        "<embed",
        "<form",
        "<input",
        "<style",
        "style=",
        "class=",
        "id=",
        "<!--",
    ];

    fn clean(html: &str) -> String {
        AmmoniaSanitizer::new().sanitize(html)
    }

    fn assert_harmless(payload: &str) {
        let out = clean(payload);
        let lower = out.to_ascii_lowercase();
        for forbidden in FORBIDDEN {
            assert!(
                !lower.contains(forbidden),
                "{forbidden:?} survived sanitising {payload:?}: {out:?}"
            );
        }
    }

    #[test]
    fn classic_stored_xss_payloads_come_out_harmless() {
        let payloads = [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
            "<img src=x onerror=alert(1)>",
            "<IMG SRC=\"javascript:alert(1)\">",
            r#"<a href="javascript:alert(1)">x</a>"#,
            r#"<a href="JaVaScRiPt:alert(1)">x</a>"#,
            r#"<a href=" javascript:alert(1)">x</a>"#,
            "<a href=\"java\tscript:alert(1)\">x</a>",
            r#"<a href="&#106;avascript:alert(1)">x</a>"#,
            r#"<a href="&#x6A;&#x61;vascript&#58;alert(1)">x</a>"#,
            r#"<a href="vbscript:msgbox(1)">x</a>"#,
            r#"<a href="data:text/html,<script>alert(1)</script>">x</a>"#,
            r#"<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>"#,
            "<svg onload=alert(1)>",
            "<svg><script>alert(1)</script></svg>",
            r#"<iframe src="https://evil.example"></iframe>"#,
            r#"<iframe srcdoc="<script>alert(1)</script>"></iframe>"#,
            r#"<p style="background:url(javascript:alert(1))">x</p>"#,
            "<style>body{background:url(javascript:alert(1))}</style>",
            r#"<math><mi xlink:href="javascript:alert(1)">x</mi></math>"#,
            r#"<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>"#,
            "<body onload=alert(1)>",
            r#"<p onclick="alert(1)" class="evil" id="login">x</p>"#,
            r#"<a href="https://ok.example" onclick="alert(1)">x</a>"#,
            "<scr<script>ipt>alert(1)</scr</script>ipt>",
            "<<script>script>alert(1)<</script>/script>",
            "<p><strong><em>unclosed <script>alert(1)",
            "<img src=x onerror=alert(1)",
            "<div><p><a href=javascript:alert(1)>x",
            r#"<noscript><p title="</noscript><img src=x onerror=alert(1)>">"#,
            r#"<form action="https://evil.example"><input name="password"></form>"#,
            r#"<object data="https://evil.example/x.swf"></object><embed src="x.swf">"#,
            "<!-- <script>alert(1)</script> --><p>x</p>",
            "<template><script>alert(1)</script></template>",
            r#"<details open ontoggle=alert(1)>"#,
            r#"<video><source onerror="alert(1)"></video>"#,
        ];
        for payload in payloads {
            assert_harmless(payload);
        }
    }

    #[test]
    fn allowed_formatting_and_links_keep_their_meaning() {
        let out = clean(r#"<p><strong>hi</strong> <a href="https://x.example">x</a></p>"#);

        assert_eq!(
            out,
            r#"<p><strong>hi</strong> <a href="https://x.example" rel="noopener noreferrer nofollow">x</a></p>"#
        );
    }

    #[test]
    fn every_allowed_element_survives() {
        let html = "<h1>a</h1><h2>b</h2><h3>c</h3><h4>d</h4><h5>e</h5><h6>f</h6>\
                    <p><b>b</b><i>i</i><u>u</u><s>s</s><em>e</em><code>c</code><br></p>\
                    <pre>p</pre><blockquote>q</blockquote><ul><li>1</li></ul><ol><li>2</li></ol><hr>";

        assert_eq!(clean(html), html);
    }

    #[test]
    fn mailto_links_are_kept_and_relative_links_lose_their_href() {
        assert_eq!(
            clean(r#"<a href="mailto:a@example.com">m</a>"#),
            r#"<a href="mailto:a@example.com" rel="noopener noreferrer nofollow">m</a>"#
        );
        for relative in ["/admin", "../x", "#top", "//evil.example/x"] {
            let out = clean(&format!(r#"<a href="{relative}">r</a>"#));
            assert!(!out.contains("href"), "{relative}: {out}");
        }
    }

    #[test]
    fn an_author_supplied_rel_or_target_is_replaced_by_ours() {
        let out = clean(r#"<a href="https://x.example" rel="opener" target="_blank">x</a>"#);

        assert_eq!(
            out,
            r#"<a href="https://x.example" rel="noopener noreferrer nofollow">x</a>"#
        );
    }

    #[test]
    fn script_content_is_removed_not_turned_into_text() {
        assert_eq!(
            clean("<p>a</p><script>alert(1)</script><p>b</p>"),
            "<p>a</p><p>b</p>"
        );
    }

    #[test]
    fn text_that_looks_like_markup_is_escaped() {
        let out = clean("1 < 2 & 3 > 2");

        assert_eq!(out, "1 &lt; 2 &amp; 3 &gt; 2");
    }
}
