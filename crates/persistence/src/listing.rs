//! What every paged listing in this crate shares: the largest page, "one row more than the page"
//! to learn whether there is a next one, and the escaping that makes a search term literal.
//!
//! Kept in one place so that documents, users and the audit trail cannot drift apart on the two
//! rules a client could probe: how many rows one request may read, and whether `%` is a wildcard.

/// The largest page a repository will return, whatever it is asked. The domain already bounds
/// `limit` to 1..=100; the clamp is a second line, so no caller can ask for the whole table.
pub(crate) const MAX_PAGE: u32 = 100;

/// The page size to return (`limit` clamped to 1..=[`MAX_PAGE`]) and the number of rows to fetch:
/// one more, whose presence is what says "there is a next page" (no `count(*)`).
pub(crate) fn page_and_fetch(limit: u32) -> (usize, i64) {
    let page = limit.clamp(1, MAX_PAGE);
    // At most 100: the conversion to usize cannot truncate on any target.
    (page as usize, i64::from(page) + 1)
}

/// Cuts the fetched rows to the page and says whether a next page exists.
pub(crate) fn split_page<T>(mut rows: Vec<T>, page: usize) -> (Vec<T>, bool) {
    let more = rows.len() > page;
    rows.truncate(page);
    (rows, more)
}

/// `q` as an `ilike` pattern that matches itself literally: `\` (the escape character named in
/// the query), `%` and `_` are prefixed with `\`. The result is bound as a parameter, never
/// spliced into SQL; escaping only decides what the *pattern* means.
pub(crate) fn like_literal(q: &str) -> String {
    let mut escaped = String::with_capacity(q.len());
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::{like_literal, page_and_fetch, split_page};

    #[test]
    fn like_wildcards_and_the_escape_character_are_escaped() {
        assert_eq!(like_literal("50%"), r"50\%");
        assert_eq!(like_literal("a_b"), r"a\_b");
        assert_eq!(like_literal(r"C:\dir"), r"C:\\dir");
        assert_eq!(like_literal(r"\%_"), r"\\\%\_");
    }

    #[test]
    fn everything_else_is_left_as_it_is() {
        assert_eq!(like_literal("' OR 1=1--"), "' OR 1=1--");
        assert_eq!(like_literal("ünïcode *?[]"), "ünïcode *?[]");
        assert_eq!(like_literal(""), "");
    }

    #[test]
    fn a_limit_is_clamped_and_one_more_row_is_fetched() {
        assert_eq!(page_and_fetch(0), (1, 2));
        assert_eq!(page_and_fetch(10), (10, 11));
        assert_eq!(page_and_fetch(u32::MAX), (100, 101));
    }

    #[test]
    fn the_extra_row_says_there_is_more_and_is_not_returned() {
        assert_eq!(split_page(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(split_page(vec![1, 2], 2), (vec![1, 2], false));
        assert_eq!(split_page(Vec::<i32>::new(), 2), (vec![], false));
    }
}
