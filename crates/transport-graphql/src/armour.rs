//! Armour that runs before the GraphQL executor (OWASP API4:2023, ASVS 4.3.1).
//!
//! A GraphQL request is one text that can ask for almost anything, so the cost of serving it is
//! decided by the client. Everything here is about refusing an expensive request *before* it costs
//! us more than reading it, in increasing order of price:
//!
//! 1. [`check_source`] looks only at the text: its length in bytes ([`Limits::max_bytes`]), then
//!    its lexical tokens ([`Limits::max_tokens`]), counted by a small scanner that stops as soon as
//!    the limit is passed. A 16 KiB "token bomb" (`{{{{…`, `a a a …`) is refused without being
//!    parsed at all, and nothing that reaches the parser can be nested deeply enough to exhaust
//!    its stack (see [`MAX_NESTING`]).
//! 2. [`check_document`] parses the text (async-graphql's own parser, so what we measure is what
//!    the executor will run) and walks the operation that would run: aliased fields
//!    ([`Limits::max_aliases`]) and root fields ([`Limits::max_root_fields`]), with fragments
//!    expanded at every use — aliasing is how one request becomes a hundred resolver calls (a
//!    hundred password guesses, say). It returns the operation's *cost* (field selections it would
//!    resolve) so that rate limiting can charge a request by what it asks for, not by one.
//!
//! Depth ([`Limits::max_depth`]) and complexity ([`Limits::max_complexity`]) are enforced by the
//! schema builder instead (`SchemaBuilder::limit_depth` / `limit_complexity`), because only the
//! schema knows each field's declared complexity; they live in [`Limits`] so that every limit is
//! configured in one place. Batching ([`Limits::batching`], [`Limits::max_batch`]) is enforced by
//! the HTTP adapter, which is where a JSON array of operations is seen.
//!
//! One exception, and why: async-graphql computes complexity by visiting *every* operation of the
//! document (not only the one that runs), expanding each fragment spread at each use, before it
//! compares the total with its limit. Each line of `fragment F2 on Query { ...F1 ...F1 }` (ten
//! tokens) doubles that work, so sixty such lines — 600 tokens, under 3 KiB — would keep a core
//! busy for thousands of years inside validation (twenty-four lines took two seconds when I
//! measured it on 7.2.1). Worse, `__typename` adds nothing to its complexity, so a bomb built on
//! `__typename` is never refused by the limit at all. [`check_document`] therefore also counts
//! the field selections of the whole document, `__typename` included and fragments expanded, in
//! linear time (each fragment is walked once and its tally remembered), and refuses it above
//! [`Limits::max_complexity`] with [`Violation::TooComplex`]. With default field complexity (1
//! plus the children's) async-graphql reaches at least that number for every other field, so this
//! refuses little the schema would have let through: only documents whose count is pushed over
//! the limit by `__typename` or by fields that declare a complexity below 1.
//!
//! The scanner is written by hand — against the habit of taking parsing from a well-kept crate —
//! because the crate we parse with (pest-based `async-graphql-parser`) exposes no separate lexer:
//! its only way to count tokens is to parse, which is exactly the cost we want to avoid paying
//! first. The scanner does not validate anything; it only counts, and the parser has the last word.

use std::collections::HashMap;

use async_graphql::Positioned;
use async_graphql::parser::parse_query;
pub use async_graphql::parser::types::OperationType;
use async_graphql::parser::types::{
    DocumentOperations, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
};

/// How deeply anything may nest before the text is refused as [`Violation::Malformed`]: brackets
/// (`{`, `(`, `[`) in the text, and selection sets once fragments are expanded.
///
/// Why a fixed ceiling on top of [`Limits::max_tokens`]: the parser recurses once per nested
/// list or input object, and in a debug build about 400 levels of `[[[…]]]` inside an argument —
/// 800 tokens, within the default budget — overflow a 2 MiB thread stack, which aborts the whole
/// process. async-graphql's parser already refuses selection sets nested deeper than 64, and
/// [`Limits::max_depth`] defaults to 10, so 64 refuses nothing a client can use.
pub const MAX_NESTING: usize = 64;

/// Limits on a GraphQL request, configurable by the application; the defaults are safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of query text, checked before anything else. Default 16 KiB.
    pub max_bytes: usize,
    /// Lexical tokens of the query text, counted by a cheap scanner before parsing. Default 1 000.
    pub max_tokens: usize,
    /// Aliased fields anywhere in the operation that runs, a fragment counted once per use.
    /// Default 15.
    pub max_aliases: usize,
    /// Fields at the root of the operation that runs, with fragments and inline fragments at the
    /// root expanded. Default 10.
    pub max_root_fields: usize,
    /// Nesting of fields, enforced by the schema builder (`limit_depth`). Default 10.
    pub max_depth: usize,
    /// Complexity, enforced by the schema builder (`limit_complexity`); also the ceiling on the
    /// expanded field selections of the whole document here (see the module docs). Default 500.
    pub max_complexity: usize,
    /// Whether a JSON array of operations is accepted (enforced by the HTTP adapter). Default off.
    pub batching: bool,
    /// Most operations in one batch, when batching is on (enforced by the HTTP adapter). Default 5.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            max_tokens: 1_000,
            max_aliases: 15,
            max_root_fields: 10,
            max_depth: 10,
            max_complexity: 500,
            batching: false,
            max_batch: 5,
        }
    }
}

/// Why a request was refused before execution.
///
/// `Display` is a short message that is safe to show a client: it names the limit that was passed
/// and never repeats the parser's diagnostics or any part of the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The query text is longer than [`Limits::max_bytes`].
    #[error("The query is larger than {max} bytes.")]
    TooLarge {
        /// The limit that was passed.
        max: usize,
    },
    /// The query text has more lexical tokens than [`Limits::max_tokens`].
    #[error("The query has more than {max} tokens.")]
    TooManyTokens {
        /// The limit that was passed.
        max: usize,
    },
    /// The operation uses more aliases than [`Limits::max_aliases`].
    #[error("The operation uses more than {max} aliases.")]
    TooManyAliases {
        /// The limit that was passed.
        max: usize,
    },
    /// The operation selects more root fields than [`Limits::max_root_fields`].
    #[error("The operation selects more than {max} root fields.")]
    TooManyRootFields {
        /// The limit that was passed.
        max: usize,
    },
    /// The document, fragments expanded, selects more fields than [`Limits::max_complexity`].
    #[error("The query selects more than {max} fields.")]
    TooComplex {
        /// The limit that was passed.
        max: usize,
    },
    /// The text is not a GraphQL document we will run: a syntax error, nesting deeper than
    /// [`MAX_NESTING`], a fragment that is unknown or spreads itself (directly or not), or no single
    /// operation to run (several without an `operationName`, or an unknown name).
    #[error("The query is malformed, nested too deeply, or does not name one operation to run.")]
    Malformed,
}

/// Checks the size of the query text and its number of tokens, without parsing it.
///
/// Cost is linear in the text, which is bounded by [`Limits::max_bytes`] before a single byte is
/// scanned; the token count stops at [`Limits::max_tokens`] + 1.
///
/// # Errors
///
/// [`Violation::TooLarge`] above `max_bytes`, [`Violation::TooManyTokens`] above `max_tokens`,
/// and [`Violation::Malformed`] when brackets nest deeper than [`MAX_NESTING`] (the parser would
/// recurse that deep). Exactly the limit passes.
pub fn check_source(query: &str, limits: &Limits) -> Result<(), Violation> {
    if query.len() > limits.max_bytes {
        return Err(Violation::TooLarge {
            max: limits.max_bytes,
        });
    }
    let scan = scan(query.as_bytes(), limits.max_tokens)?;
    // Nesting is judged after the whole (bounded) scan, so that a text which is both too long
    // and too deep reports the limit a client can act on.
    if scan.deepest > MAX_NESTING {
        return Err(Violation::Malformed);
    }
    Ok(())
}

/// Parses the query and checks the operation that would run; returns that operation's cost.
///
/// Runs [`check_source`] first, so it is safe to call on any text. `operation_name` selects the
/// operation when the document has several; with `None`, the document must hold exactly one.
///
/// The cost is the number of field selections the operation would resolve, fragment spreads
/// expanded at each use: `{ a1: me { id } … a100: me { id } }` costs 200. Aliases and root fields
/// are counted the same way, in the operation that runs. Each fragment is walked once however
/// often it is spread (its tally is remembered), so the check is linear in the document however
/// the fragments multiply.
///
/// # Errors
///
/// Any error of [`check_source`]; [`Violation::Malformed`] when the parser refuses the text, when
/// no single operation is selected, when a fragment is unknown or part of a cycle, or when
/// selection sets nest deeper than [`MAX_NESTING`] once fragments are expanded;
/// [`Violation::TooManyAliases`] and [`Violation::TooManyRootFields`] for the operation that
/// runs; [`Violation::TooComplex`] when all the operations of the document together select more
/// than [`Limits::max_complexity`] fields (see the module docs for why every operation counts).
pub fn check_document(
    query: &str,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<usize, Violation> {
    check_operation(query, operation_name, limits).map(|checked| checked.cost)
}

/// What [`check_operation`] found out about the operation that would run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Its cost (see [`check_document`]).
    pub cost: usize,
    /// Query, mutation or subscription.
    pub kind: OperationType,
}

/// [`check_document`], also telling which kind of operation would run (the subscription socket
/// runs subscriptions only).
///
/// # Errors
/// As [`check_document`].
pub fn check_operation(
    query: &str,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<Checked, Violation> {
    check_source(query, limits)?;
    // The parser's diagnostics stay here: they quote the query back, and a client that needs them
    // can run the query through any GraphQL tool.
    let document = parse_query(query).map_err(|_| Violation::Malformed)?;
    let operation = select_operation(&document.operations, operation_name)?;

    let mut walker = Walker {
        fragments: &document.fragments,
        memo: HashMap::new(),
    };
    // async-graphql validates every operation of the document, not only the one that runs.
    let mut document_fields = 0_usize;
    for (_, each) in document.operations.iter() {
        document_fields = document_fields.saturating_add(walker.operation(&each.node)?.fields);
    }
    let tally = walker.operation(operation)?;

    if tally.aliases > limits.max_aliases {
        return Err(Violation::TooManyAliases {
            max: limits.max_aliases,
        });
    }
    if tally.root_fields > limits.max_root_fields {
        return Err(Violation::TooManyRootFields {
            max: limits.max_root_fields,
        });
    }
    if document_fields > limits.max_complexity {
        return Err(Violation::TooComplex {
            max: limits.max_complexity,
        });
    }
    Ok(Checked {
        cost: tally.fields,
        kind: operation.ty,
    })
}

/// The operation async-graphql would run, chosen by the same rules it applies.
fn select_operation<'a>(
    operations: &'a DocumentOperations,
    operation_name: Option<&str>,
) -> Result<&'a OperationDefinition, Violation> {
    match (operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Ok(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get(name)
            .map(|operation| &operation.node)
            .ok_or(Violation::Malformed),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| &operation.node)
            .ok_or(Violation::Malformed),
        // An anonymous operation asked for by name, or several operations and no name.
        _ => Err(Violation::Malformed),
    }
}

/// What a selection set asks for once its fragments are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Field selections, at every depth.
    fields: usize,
    /// Aliased field selections, at every depth.
    aliases: usize,
    /// Fields at this set's own level (spreads and inline fragments at this level expanded).
    root_fields: usize,
    /// Selection sets nested in this one, itself included (a spread or inline fragment counts as
    /// a level too: each is a recursion of the walker).
    depth: usize,
}

impl Tally {
    /// Adds what a nested selection set asks for, one level below this one. Sums saturate: a
    /// fragment bomb's count does not fit in a `usize`, and "more than any limit" is all we need.
    fn nest(&mut self, inner: Self) {
        self.fields = self.fields.saturating_add(inner.fields);
        self.aliases = self.aliases.saturating_add(inner.aliases);
        self.depth = self.depth.max(inner.depth.saturating_add(1));
    }
}

/// A fragment's tally while it is being walked (seeing it again then means a cycle), and after.
#[derive(Debug)]
enum Memo {
    Walking,
    Done(Tally),
}

/// Walks selection sets with fragments expanded, remembering each fragment's tally.
///
/// Remembering makes the walk linear in the document while the counts still charge every use
/// of a fragment; `Walking` entries are exactly the fragments on the current path, which is what
/// finds cycles. Recursion is bounded by [`MAX_NESTING`]: a fragment first tallied shallow and
/// reused deep is caught by the final depth check instead, so the verdict does not depend on the
/// order of the walk.
#[derive(Debug)]
struct Walker<'a> {
    fragments: &'a HashMap<async_graphql::Name, Positioned<FragmentDefinition>>,
    memo: HashMap<&'a str, Memo>,
}

impl<'a> Walker<'a> {
    fn operation(&mut self, operation: &'a OperationDefinition) -> Result<Tally, Violation> {
        let tally = self.selection_set(&operation.selection_set.node, 1)?;
        if tally.depth > MAX_NESTING {
            return Err(Violation::Malformed);
        }
        Ok(tally)
    }

    /// `level` is the number of selection sets open on the current path, this one included.
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Tally, Violation> {
        if level > MAX_NESTING {
            return Err(Violation::Malformed);
        }
        let mut tally = Tally {
            depth: 1,
            ..Tally::default()
        };
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    tally.fields = tally.fields.saturating_add(1);
                    tally.root_fields = tally.root_fields.saturating_add(1);
                    if field.alias.is_some() {
                        tally.aliases = tally.aliases.saturating_add(1);
                    }
                    if !field.selection_set.node.items.is_empty() {
                        let inner = self.selection_set(&field.selection_set.node, level + 1)?;
                        tally.nest(inner);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inner = self.selection_set(&inline.node.selection_set.node, level + 1)?;
                    tally.nest(inner);
                    tally.root_fields = tally.root_fields.saturating_add(inner.root_fields);
                }
                Selection::FragmentSpread(spread) => {
                    let inner = self.fragment(&spread.node.fragment_name.node, level + 1)?;
                    tally.nest(inner);
                    tally.root_fields = tally.root_fields.saturating_add(inner.root_fields);
                }
            }
        }
        Ok(tally)
    }

    fn fragment(&mut self, name: &'a str, level: usize) -> Result<Tally, Violation> {
        match self.memo.get(name) {
            Some(Memo::Done(tally)) => return Ok(*tally),
            Some(Memo::Walking) => return Err(Violation::Malformed),
            None => {}
        }
        let definition = self.fragments.get(name).ok_or(Violation::Malformed)?;
        self.memo.insert(name, Memo::Walking);
        let tally = self.selection_set(&definition.node.selection_set.node, level)?;
        self.memo.insert(name, Memo::Done(tally));
        Ok(tally)
    }
}

/// What the scanner saw: tokens, and the deepest bracket nesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    tokens: usize,
    deepest: usize,
}

/// Counts GraphQL lexical tokens, stopping as soon as there are more than `max_tokens`.
///
/// Names, numbers, strings (block strings included), `...` and each other punctuator are one
/// token; whitespace, commas, a byte-order mark and `#` comments are none. An unterminated string
/// is one token to the end of the text. Anything else (a stray byte) is one token per byte: the
/// parser will refuse it, and counting it can only bring the limit closer.
fn scan(source: &[u8], max_tokens: usize) -> Result<Scan, Violation> {
    const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();
    let mut position = 0;
    let mut tokens = 0_usize;
    let mut depth = 0_usize;
    let mut deepest = 0_usize;

    while let Some(&byte) = source.get(position) {
        position = match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                position += 1;
                continue;
            }
            b'#' => {
                position = skip_while(source, position, |b| b != b'\n' && b != b'\r');
                continue;
            }
            _ if starts_with(source, position, BYTE_ORDER_MARK) => {
                position += BYTE_ORDER_MARK.len();
                continue;
            }
            b'"' if starts_with(source, position, b"\"\"\"") => {
                end_of_block_string(source, position)
            }
            b'"' => end_of_string(source, position),
            b'.' if starts_with(source, position, b"...") => position + 3,
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                skip_while(source, position, |b| b == b'_' || b.is_ascii_alphanumeric())
            }
            b'-' | b'0'..=b'9' => end_of_number(source, position),
            b'{' | b'(' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                position + 1
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                position + 1
            }
            // `! $ & : = @ |`, a lone `.`, and anything the parser will refuse.
            _ => position + 1,
        };
        tokens += 1;
        if tokens > max_tokens {
            return Err(Violation::TooManyTokens { max: max_tokens });
        }
    }
    Ok(Scan { tokens, deepest })
}

fn starts_with(source: &[u8], position: usize, prefix: &[u8]) -> bool {
    source
        .get(position..)
        .is_some_and(|rest| rest.starts_with(prefix))
}

/// The first position at or after `position` whose byte does not satisfy `keep` (or the end).
fn skip_while(source: &[u8], position: usize, keep: impl Fn(u8) -> bool) -> usize {
    let rest = source.get(position..).unwrap_or_default();
    position + rest.iter().take_while(|&&b| keep(b)).count()
}

/// `position` is on the opening `"`; returns the position after the closing one, or the end.
fn end_of_string(source: &[u8], mut position: usize) -> usize {
    position += 1;
    while let Some(&byte) = source.get(position) {
        match byte {
            b'\\' => position += 2,
            b'"' => return position + 1,
            _ => position += 1,
        }
    }
    source.len()
}

/// `position` is on the opening `"""`; returns the position after the closing one, or the end.
/// Inside, `\"""` is an escaped delimiter and nothing else is an escape.
fn end_of_block_string(source: &[u8], mut position: usize) -> usize {
    position += 3;
    while position < source.len() {
        if starts_with(source, position, b"\\\"\"\"") {
            position += 4;
        } else if starts_with(source, position, b"\"\"\"") {
            return position + 3;
        } else {
            position += 1;
        }
    }
    source.len()
}

/// `position` is on a digit or `-`; a number runs over digits, letters, `_` and `.`, and a sign
/// right after an exponent marker (`-1.5e+10`). Letters are taken so that `1abc` is one (bad)
/// token rather than two; the parser refuses it either way.
fn end_of_number(source: &[u8], mut position: usize) -> usize {
    position += 1;
    while let Some(&byte) = source.get(position) {
        let after_exponent = matches!(source.get(position - 1), Some(b'e' | b'E'));
        let in_number = byte == b'_'
            || byte == b'.'
            || byte.is_ascii_alphanumeric()
            || (after_exponent && (byte == b'+' || byte == b'-'));
        if !in_number {
            break;
        }
        position += 1;
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<usize, Violation> {
        check_document(query, None, &Limits::default())
    }

    fn tokens(query: &str) -> usize {
        scan(query.as_bytes(), usize::MAX)
            .map(|scan| scan.tokens)
            .unwrap_or(usize::MAX)
    }

    /// `x1: id x2: id … xN: id`.
    fn aliased_ids(count: usize) -> String {
        (1..=count).map(|i| format!("x{i}: id ")).collect()
    }

    /// Fields `f1 … fN`.
    fn fields(count: usize) -> String {
        (1..=count).map(|i| format!("f{i} ")).collect()
    }

    #[test]
    fn default_limits_are_the_documented_ones() {
        let limits = Limits::default();
        assert_eq!(limits.max_bytes, 16 * 1024);
        assert_eq!(limits.max_tokens, 1_000);
        assert_eq!(limits.max_aliases, 15);
        assert_eq!(limits.max_root_fields, 10);
        assert_eq!(limits.max_depth, 10);
        assert_eq!(limits.max_complexity, 500);
        assert!(!limits.batching);
        assert_eq!(limits.max_batch, 5);
    }

    #[test]
    fn an_ordinary_query_passes_and_costs_one_per_field_selection() {
        let query = "query { me { id displayName } documents(first: 10) { edges { node { id title \
                     owner { displayName } } } } }";

        let cost = check(query);

        // me, id, displayName, documents, edges, node, id, title, owner, displayName
        assert_eq!(cost, Ok(10));
    }

    #[test]
    fn a_query_over_max_bytes_is_refused_and_exactly_max_bytes_passes() {
        let limits = Limits::default();
        let at_limit = format!("{{ a }}{}", " ".repeat(limits.max_bytes - "{ a }".len()));
        let over_limit = format!("{at_limit} ");
        assert_eq!(at_limit.len(), limits.max_bytes);

        assert_eq!(check(&at_limit), Ok(1));
        assert_eq!(
            check_source(&over_limit, &limits),
            Err(Violation::TooLarge { max: 16 * 1024 })
        );
        assert_eq!(
            check(&over_limit),
            Err(Violation::TooLarge { max: 16 * 1024 })
        );
    }

    #[test]
    fn a_query_over_max_tokens_is_refused_and_exactly_max_tokens_passes() {
        let over_limit = format!("{{ {} }}", "a ".repeat(2_000));
        // `{ a ( x : [` + 991 strings + `] ) }`: 1 000 tokens but a single field.
        let at_limit = format!("{{ a(x: [{}]) }}", "\"s\" ".repeat(991));
        assert_eq!(tokens(&at_limit), 1_000);

        assert_eq!(
            check(&over_limit),
            Err(Violation::TooManyTokens { max: 1_000 })
        );
        assert_eq!(check(&at_limit), Ok(1));
    }

    #[test]
    fn the_scanner_stops_counting_as_soon_as_the_limit_is_passed() {
        let bomb = "{".repeat(16 * 1024);

        let scanned = scan(bomb.as_bytes(), 1_000);

        assert_eq!(scanned, Err(Violation::TooManyTokens { max: 1_000 }));
        assert_eq!(
            scan(b"{ a b c d e f", 3),
            Err(Violation::TooManyTokens { max: 3 })
        );
    }

    #[test]
    fn commas_comments_and_whitespace_are_not_tokens() {
        assert_eq!(tokens("query { a, b,,, # c d e { { {\n }"), 5);
        assert_eq!(tokens("\u{feff}{\ta\r\n}"), 3);
        assert_eq!(tokens("# only a comment"), 0);
    }

    #[test]
    fn strings_block_strings_numbers_and_spreads_are_one_token_each() {
        assert_eq!(tokens(r#"{ a(x: "with \" { [ ( inside") }"#), 8);
        assert_eq!(tokens(r#"{ a(x: """ { " "" \""" still inside """) }"#), 8);
        assert_eq!(tokens("{ a(x: -1.5e+10, y: 42) }"), 11);
        assert_eq!(tokens("{ ...F ... on Q { a } }"), 10);
        assert_eq!(tokens("query($v: [Int!]! = [1]) @d { a }"), 20);
    }

    #[test]
    fn an_unterminated_string_is_one_token_to_the_end_and_then_malformed() {
        let query = r#"{ a(x: "abc { { { "#;
        let block = r#"{ a(x: """abc " "" { "#;

        assert_eq!(tokens(query), 6);
        assert_eq!(tokens(block), 6);
        assert_eq!(check(query), Err(Violation::Malformed));
        assert_eq!(check(block), Err(Violation::Malformed));
    }

    #[test]
    fn sixteen_aliases_are_refused_and_fifteen_pass() {
        let fifteen = format!("{{ me {{ {} }} }}", aliased_ids(15));
        let sixteen = format!("{{ me {{ {} }} }}", aliased_ids(16));

        assert_eq!(check(&fifteen), Ok(16));
        assert_eq!(check(&sixteen), Err(Violation::TooManyAliases { max: 15 }));
    }

    #[test]
    fn aliases_inside_a_fragment_count_at_every_use() {
        // 8 aliases in the fragment, used twice, plus `other`: 17, although only 9 are written.
        let query = format!(
            "fragment F on User {{ {} }} query {{ me {{ ...F }} other: me {{ ...F }} }}",
            aliased_ids(8)
        );
        let used_once = format!(
            "fragment F on User {{ {} }} query {{ me {{ ...F }} }}",
            aliased_ids(8)
        );

        assert_eq!(check(&query), Err(Violation::TooManyAliases { max: 15 }));
        assert_eq!(check(&used_once), Ok(9));
    }

    #[test]
    fn eleven_root_fields_are_refused_and_ten_pass() {
        let ten = format!("{{ {} }}", fields(10));
        let eleven = format!("{{ {} }}", fields(11));

        assert_eq!(check(&ten), Ok(10));
        assert_eq!(
            check(&eleven),
            Err(Violation::TooManyRootFields { max: 10 })
        );
    }

    #[test]
    fn root_fields_from_a_fragment_spread_and_an_inline_fragment_are_counted() {
        // 3 written at the root, 4 from the spread, 4 from the inline fragment: 11.
        let eleven = "fragment R on Query { d e f g } \
                      query { a b c ...R ... on Query { h i j k } }";
        // Fields nested below a root field are not root fields.
        let ten = "fragment R on Query { d e f g } \
                   query { a b c ...R ... on Query { h i j { k } } }";

        assert_eq!(check(eleven), Err(Violation::TooManyRootFields { max: 10 }));
        assert_eq!(check(ten), Ok(11));
    }

    #[test]
    fn a_hundred_aliases_cost_at_least_a_hundred() {
        let query = format!(
            "{{ {} }}",
            (1..=100)
                .map(|i| format!("a{i}: me {{ id }} "))
                .collect::<String>()
        );
        // The aliases are also root fields: both limits are raised for this to run at all.
        let limits = Limits {
            max_aliases: 200,
            max_root_fields: 200,
            ..Limits::default()
        };

        let cost = check_document(&query, None, &limits);

        assert_eq!(cost, Ok(200));
        assert_eq!(check(&query), Err(Violation::TooManyAliases { max: 15 }));
    }

    #[test]
    fn operation_name_selects_which_operation_is_checked() {
        let query = format!("query Small {{ a }} query Big {{ {} }}", fields(11));
        let limits = Limits::default();

        assert_eq!(
            check_document(&query, Some("Big"), &limits),
            Err(Violation::TooManyRootFields { max: 10 })
        );
        assert_eq!(check_document(&query, Some("Small"), &limits), Ok(1));
        assert_eq!(
            check_document(&query, None, &limits),
            Err(Violation::Malformed)
        );
        assert_eq!(
            check_document(&query, Some("Unknown"), &limits),
            Err(Violation::Malformed)
        );
    }

    #[test]
    fn one_named_operation_runs_without_a_name_and_an_anonymous_one_cannot_be_named() {
        assert_eq!(check("query Only { a b }"), Ok(2));
        assert_eq!(
            check_document("{ a }", Some("Named"), &Limits::default()),
            Err(Violation::Malformed)
        );
    }

    #[test]
    fn a_fragment_cycle_is_malformed_not_a_stack_overflow() {
        let cycle = "fragment A on Q { ...B } fragment B on Q { ...A } query { ...A }";
        let self_spread = "fragment A on Q { a { ...A } } query { ...A }";

        assert_eq!(check(cycle), Err(Violation::Malformed));
        assert_eq!(check(self_spread), Err(Violation::Malformed));
    }

    #[test]
    fn a_cycle_or_unknown_fragment_in_an_operation_that_does_not_run_is_still_malformed() {
        let cycle = "fragment A on Q { ...A } query Small { a } query Other { ...A }";
        let unknown = "query { a ...Nowhere }";

        assert_eq!(
            check_document(cycle, Some("Small"), &Limits::default()),
            Err(Violation::Malformed)
        );
        assert_eq!(check(unknown), Err(Violation::Malformed));
    }

    /// `fragment F0 on Query { a }` and each `Fn` spreading `F(n-1)` twice: 2^n fields.
    fn fragment_bomb(levels: usize) -> String {
        let mut query = String::from("fragment F0 on Query { a } ");
        for level in 1..=levels {
            let previous = level - 1;
            query += &format!("fragment F{level} on Query {{ ...F{previous} ...F{previous} }} ");
        }
        query
    }

    #[test]
    fn a_fragment_bomb_is_refused_quickly_even_in_an_operation_that_does_not_run() {
        // 2^50 field selections in a 2 KiB, 500-token document.
        let bomb = format!("{} query Big {{ me {{ ...F50 }} }}", fragment_bomb(50));
        let hidden = format!("{bomb} query Small {{ a }}");
        let started = std::time::Instant::now();

        let direct = check_document(&bomb, None, &Limits::default());
        let indirect = check_document(&hidden, Some("Small"), &Limits::default());

        assert_eq!(direct, Err(Violation::TooComplex { max: 500 }));
        assert_eq!(indirect, Err(Violation::TooComplex { max: 500 }));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_fragment_bomb_of_typename_is_refused_although_it_adds_no_schema_complexity() {
        let bomb = fragment_bomb(40).replace("{ a }", "{ __typename }") + "query { me { ...F40 } }";

        assert_eq!(check(&bomb), Err(Violation::TooComplex { max: 500 }));
    }

    #[test]
    fn a_small_fragment_fan_out_still_charges_every_use() {
        // F3 expands to 8 `a`, under `me`: 9 field selections.
        let query = format!("{} query {{ me {{ ...F3 }} }}", fragment_bomb(3));

        assert_eq!(check(&query), Ok(9));
    }

    #[test]
    fn ten_thousand_nested_braces_are_refused_by_size_or_tokens_never_overflowing() {
        let braces = "{".repeat(10_000);
        let fields = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));

        assert_eq!(check(&braces), Err(Violation::TooManyTokens { max: 1_000 }));
        assert_eq!(check(&fields), Err(Violation::TooLarge { max: 16 * 1024 }));
    }

    #[test]
    fn deep_nesting_is_malformed_even_when_the_limits_are_raised() {
        let generous = Limits {
            max_bytes: 1 << 20,
            max_tokens: 1 << 20,
            ..Limits::default()
        };
        let fields = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
        let lists = format!("{{ a(x: {}1{}) }}", "[".repeat(10_000), "]".repeat(10_000));

        assert_eq!(
            check_document(&fields, None, &generous),
            Err(Violation::Malformed)
        );
        assert_eq!(
            check_document(&lists, None, &generous),
            Err(Violation::Malformed)
        );
    }

    #[test]
    fn nested_lists_within_the_default_token_budget_do_not_reach_the_parser() {
        // 400 levels of `[` are 800 tokens: within the default budget, and deep enough to
        // overflow the parser's stack in a debug build.
        let lists = format!("{{ a(x: {}1{}) }}", "[".repeat(400), "]".repeat(400));
        assert!(tokens(&lists) <= 1_000);

        assert_eq!(
            check_source(&lists, &Limits::default()),
            Err(Violation::Malformed)
        );
        assert_eq!(check(&lists), Err(Violation::Malformed));
    }

    #[test]
    fn nesting_built_from_shallow_fragments_is_malformed_past_the_ceiling() {
        // Each fragment adds two levels (its own set and `x`'s), none of them deep on its own.
        let chain = |length: usize| {
            let mut query = String::from("query { ...F1 } ");
            for i in 1..length {
                query += &format!("fragment F{i} on Query {{ x {{ ...F{} }} }} ", i + 1);
            }
            query + &format!("fragment F{length} on Query {{ a }}")
        };

        assert_eq!(check(&chain(20)), Ok(20));
        assert_eq!(check(&chain(70)), Err(Violation::Malformed));
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in [
            "",
            "this is not graphql",
            "{",
            "}}}",
            "query { a(: ) }",
            "\u{0}\u{1}",
            "{ a } { b }",
        ] {
            assert_eq!(check(garbage), Err(Violation::Malformed), "{garbage:?}");
        }
    }

    #[test]
    fn messages_name_the_limit_and_never_echo_the_query() {
        let secret = "{ a(password: \"hunter2\") ";

        let violation = check(secret).err();

        assert_eq!(violation, Some(Violation::Malformed));
        let message = violation.map(|v| v.to_string()).unwrap_or_default();
        assert!(!message.contains("hunter2"));
        assert_eq!(
            Violation::TooLarge { max: 16 }.to_string(),
            "The query is larger than 16 bytes."
        );
    }
}
