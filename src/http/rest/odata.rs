//! The OData `$filter` language, as far as the Graph face speaks it: a
//! hand-written lexer and recursive-descent parser that turn the text into an
//! [`Expr`] tree. What the tree means is decided in `filter.rs`.
//!
//! Hostile input is bounded before it can cost much: the text is at most
//! [`MAX_FILTER_CHARS`] characters and [`MAX_TOKENS`] tokens, and every
//! recursion (parentheses, `not`, lambdas) counts against [`MAX_NESTING`], so
//! no input can overflow the stack. Chains of `and` / `or` are read in a loop,
//! not by recursion.
//!
//! Grammar (operators case-insensitive, `not` binding to the comparison or
//! group after it, `and` before `or`):
//!
//! ```text
//! or        = and ( "or" and )*
//! and       = unary ( "and" unary )*
//! unary     = "not" unary | primary
//! primary   = "(" or ")" [ ("eq" | "ne") bool ]
//!           | "startswith" "(" path "," literal ")" [ ("eq" | "ne") bool ]
//!           | path "/" "any" "(" name ":" or ")" [ ("eq" | "ne") bool ]
//!           | path ("eq" | "ne" | "gt" | "ge" | "lt" | "le") literal
//!           | path "in" "(" literal ( "," literal )* ")"
//! path      = name ( "/" name )*
//! literal   = 'text' | qualified.Enum'Member' | number | date-time | date
//!           | guid | true | false | null
//! ```

use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};

/// Longest `$filter` accepted, in characters.
pub(super) const MAX_FILTER_CHARS: usize = 4096;
/// Most tokens in one `$filter`.
pub(super) const MAX_TOKENS: usize = 1000;
/// Deepest nesting of parentheses, `not` and lambdas.
pub(super) const MAX_NESTING: usize = 32;

/// A parsed filter expression. Every node keeps the span of its source text,
/// so an error can quote the expression it is about.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `path op literal`
    Compare {
        path: Path,
        op: CompareOp,
        value: Literal,
        span: Range<usize>,
    },
    /// `path in (literal, …)`
    In {
        path: Path,
        values: Vec<Literal>,
        span: Range<usize>,
    },
    /// `startswith(path, literal)`
    StartsWith {
        path: Path,
        prefix: Literal,
        span: Range<usize>,
    },
    /// `path/any(variable: body)`
    Any {
        collection: Path,
        variable: String,
        body: Box<Expr>,
        span: Range<usize>,
    },
}

/// A property path: `status`, `vendorInformation/provider`, `p/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Path(pub Vec<String>);

impl Path {
    /// The path as written, segments joined by `/`.
    pub(super) fn text(&self) -> String {
        self.0.join("/")
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_keyword(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    /// `'text'`, with `''` read as one quote.
    Text(String),
    /// `microsoft.graph.operationStatus'Running'`: the member's name.
    Enum(String),
    /// An unquoted number, kept as written.
    Number(String),
    /// An unquoted date-time, or a date (midnight UTC).
    DateTime(DateTime<Utc>),
    /// An unquoted GUID.
    Guid(uuid::Uuid),
    Bool(bool),
    Null,
}

impl Literal {
    /// How the literal reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Literal::Text(t) => format!("'{t}'"),
            Literal::Enum(m) => format!("'{m}'"),
            Literal::Number(n) => n.clone(),
            Literal::DateTime(at) => at.to_rfc3339(),
            Literal::Guid(g) => g.to_string(),
            Literal::Bool(b) => b.to_string(),
            Literal::Null => "null".into(),
        }
    }
}

/// Why a `$filter` does not parse: a message that quotes the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A name: a property, an operator, a function, a lambda variable.
    Name(String),
    Text(String),
    Enum(String),
    /// A run of digits, letters, `-`, `:`, `.` and `+` starting with a digit:
    /// a number, a date, a date-time or a GUID, told apart when used.
    Bare(String),
    Open,
    Close,
    Comma,
    Slash,
    Colon,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name(n) | Token::Bare(n) => format!("'{n}'"),
            Token::Text(t) => format!("the string '{t}'"),
            Token::Enum(m) => format!("the enumeration member '{m}'"),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::Slash => "'/'".into(),
            Token::Colon => "':'".into(),
        }
    }
}

/// Parses a `$filter` expression.
pub(super) fn parse(source: &str) -> Result<Expr, SyntaxError> {
    if source.chars().nth(MAX_FILTER_CHARS).is_some() {
        return Err(SyntaxError(format!(
            "$filter is at most {MAX_FILTER_CHARS} characters"
        )));
    }
    let tokens = lex(source)?;
    if tokens.is_empty() {
        return Err(SyntaxError("$filter is empty".into()));
    }
    let mut parser = Parser {
        source,
        tokens,
        at: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(SyntaxError(format!(
            "unexpected {} at position {} of $filter",
            token.describe(),
            parser.position() + 1
        ))),
    }
}

/// Splits the text into tokens with their byte ranges.
fn lex(source: &str) -> Result<Vec<(Token, Range<usize>)>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if tokens.len() >= MAX_TOKENS {
            return Err(SyntaxError(format!(
                "$filter holds at most {MAX_TOKENS} tokens"
            )));
        }
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = match c {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            ',' => Some(Token::Comma),
            '/' => Some(Token::Slash),
            ':' => Some(Token::Colon),
            _ => None,
        };
        if let Some(token) = single {
            chars.next();
            tokens.push((token, start..start + 1));
            continue;
        }
        if c == '\'' {
            chars.next();
            let text = quoted(&mut chars, source, start)?;
            let end = chars.peek().map_or(source.len(), |&(i, _)| i);
            tokens.push((Token::Text(text), start..end));
            continue;
        }
        if c.is_ascii_digit() {
            let mut end = start;
            while let Some(&(i, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || matches!(d, '-' | ':' | '.' | '+') {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push((Token::Bare(source[start..end].to_owned()), start..end));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' || c == '@' {
            let mut end = start;
            while let Some(&(i, d)) = chars.peek() {
                if d.is_alphanumeric() || matches!(d, '_' | '.' | '$' | '@' | '-') {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let name = &source[start..end];
            // A qualified name followed at once by a quote is an enumeration
            // literal: microsoft.graph.operationStatus'Running'.
            if name.contains('.') && chars.peek().is_some_and(|&(_, q)| q == '\'') {
                chars.next();
                let member = quoted(&mut chars, source, start)?;
                let end = chars.peek().map_or(source.len(), |&(i, _)| i);
                tokens.push((Token::Enum(member), start..end));
            } else {
                tokens.push((Token::Name(name.to_owned()), start..end));
            }
            continue;
        }
        return Err(SyntaxError(format!(
            "unexpected character '{c}' at position {} of $filter",
            source[..start].chars().count() + 1
        )));
    }
    Ok(tokens)
}

/// The rest of a quoted string whose opening quote is read; `''` is a quote.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    source: &str,
    start: usize,
) -> Result<String, SyntaxError> {
    let mut text = String::new();
    loop {
        match chars.next() {
            Some((_, '\'')) => {
                if chars.peek().is_some_and(|&(_, c)| c == '\'') {
                    chars.next();
                    text.push('\'');
                } else {
                    return Ok(text);
                }
            }
            Some((_, c)) => text.push(c),
            None => {
                return Err(SyntaxError(format!(
                    "the string starting at position {} of $filter is not closed",
                    source[..start].chars().count() + 1
                )));
            }
        }
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<(Token, Range<usize>)>,
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    /// Where the next token starts (or the end), in characters.
    fn position(&self) -> usize {
        let byte = self
            .tokens
            .get(self.at)
            .map_or(self.source.len(), |(_, span)| span.start);
        self.source[..byte].chars().count()
    }

    /// Where the token read last ends, in bytes.
    fn end_of_last(&self) -> usize {
        self.at
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |(_, span)| span.end)
    }

    fn start_of_next(&self) -> usize {
        self.tokens
            .get(self.at)
            .map_or(self.source.len(), |(_, span)| span.start)
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        match self.peek() {
            Some(token) => SyntaxError(format!(
                "expected {expected} at position {} of $filter, found {}",
                self.position() + 1,
                token.describe()
            )),
            None => SyntaxError(format!("$filter ends where {expected} was expected")),
        }
    }

    fn expect(&mut self, token: Token, expected: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(&token) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Whether the next token is the keyword `word`, any casing.
    fn at_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n.eq_ignore_ascii_case(word))
    }

    fn nest(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SyntaxError(format!(
                "$filter nests parentheses, not and any at most {MAX_NESTING} deep"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut terms = vec![self.and()?];
        while self.at_keyword("or") {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut terms = vec![self.unary()?];
        while self.at_keyword("and") {
            self.at += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        // `not` is a keyword unless it is a property path (`not/x`), which
        // no property of the resource is.
        if self.at_keyword("not") {
            self.at += 1;
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.start_of_next();
        match self.peek() {
            Some(Token::Open) => {
                self.at += 1;
                self.nest()?;
                let inner = self.or()?;
                self.expect(Token::Close, "')'")?;
                self.depth -= 1;
                self.compared_with_bool(inner)
            }
            Some(Token::Name(name)) if name.eq_ignore_ascii_case("startswith") => {
                self.at += 1;
                self.expect(Token::Open, "'(' after startswith")?;
                let path = self.path()?;
                self.expect(Token::Comma, "',' between the arguments of startswith")?;
                let prefix = self.literal()?;
                self.expect(Token::Close, "')' after the arguments of startswith")?;
                let span = start..self.end_of_last();
                self.compared_with_bool(Expr::StartsWith { path, prefix, span })
            }
            Some(Token::Name(name)) if is_function(name) && self.followed_by_open() => {
                Err(SyntaxError(format!(
                    "the function '{name}' is not supported in $filter; startswith and any are"
                )))
            }
            Some(Token::Name(_)) => {
                let path = self.path()?;
                if self.peek() == Some(&Token::Open) {
                    return self.lambda(path, start);
                }
                let Some(Token::Name(word)) = self.peek().cloned() else {
                    return Err(self.unexpected(&format!("an operator after '{}'", path.text())));
                };
                if let Some(op) = CompareOp::from_keyword(&word) {
                    self.at += 1;
                    let value = self.literal()?;
                    let span = start..self.end_of_last();
                    return Ok(Expr::Compare {
                        path,
                        op,
                        value,
                        span,
                    });
                }
                if word.eq_ignore_ascii_case("in") {
                    self.at += 1;
                    self.expect(Token::Open, "'(' after in")?;
                    let mut values = vec![self.literal()?];
                    while self.peek() == Some(&Token::Comma) {
                        self.at += 1;
                        values.push(self.literal()?);
                    }
                    self.expect(Token::Close, "')' closing the list of in")?;
                    let span = start..self.end_of_last();
                    return Ok(Expr::In { path, values, span });
                }
                Err(SyntaxError(format!(
                    "the operator '{word}' is not supported in $filter; eq, ne, gt, ge, lt, le, in, and, or and not are"
                )))
            }
            _ => Err(self.unexpected("a property, '(' , not or startswith")),
        }
    }

    /// `path/any(variable: body)`; the path's last segment is `any`.
    fn lambda(&mut self, mut path: Path, start: usize) -> Result<Expr, SyntaxError> {
        let operator = path.0.pop().unwrap_or_default();
        if !operator.eq_ignore_ascii_case("any") || path.0.is_empty() {
            return Err(SyntaxError(format!(
                "'{}' is not supported in $filter; of the lambda operators, any is",
                if path.0.is_empty() {
                    operator
                } else {
                    format!("{}/{operator}", path.text())
                }
            )));
        }
        self.expect(Token::Open, "'('")?;
        let Some(Token::Name(variable)) = self.peek().cloned() else {
            return Err(self.unexpected("a lambda variable such as p"));
        };
        self.at += 1;
        self.expect(Token::Colon, "':' after the lambda variable")?;
        self.nest()?;
        let body = self.or()?;
        self.depth -= 1;
        self.expect(Token::Close, "')' closing any")?;
        let span = start..self.end_of_last();
        self.compared_with_bool(Expr::Any {
            collection: path,
            variable,
            body: Box::new(body),
            span,
        })
    }

    /// A boolean expression optionally compared with `true` or `false`.
    fn compared_with_bool(&mut self, expr: Expr) -> Result<Expr, SyntaxError> {
        let op = match self.peek() {
            Some(Token::Name(w)) if w.eq_ignore_ascii_case("eq") => CompareOp::Eq,
            Some(Token::Name(w)) if w.eq_ignore_ascii_case("ne") => CompareOp::Ne,
            _ => return Ok(expr),
        };
        self.at += 1;
        let value = match self.literal()? {
            Literal::Bool(b) => b,
            other => {
                return Err(SyntaxError(format!(
                    "a condition can be compared only with true or false, not {}",
                    other.describe()
                )));
            }
        };
        let keep = (op == CompareOp::Eq) == value;
        Ok(if keep {
            expr
        } else {
            Expr::Not(Box::new(expr))
        })
    }

    fn followed_by_open(&self) -> bool {
        matches!(self.tokens.get(self.at + 1), Some((Token::Open, _)))
    }

    fn path(&mut self) -> Result<Path, SyntaxError> {
        let mut segments = Vec::new();
        loop {
            let Some(Token::Name(name)) = self.peek().cloned() else {
                return Err(self.unexpected("a property name"));
            };
            self.at += 1;
            segments.push(name);
            if self.peek() == Some(&Token::Slash) {
                self.at += 1;
            } else {
                return Ok(Path(segments));
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, SyntaxError> {
        let literal = match self.peek().cloned() {
            Some(Token::Text(t)) => Literal::Text(t),
            Some(Token::Enum(m)) => Literal::Enum(m),
            Some(Token::Bare(b)) => bare(&b)?,
            Some(Token::Name(n)) if n.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Name(n)) if n.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Name(n)) if n.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Token::Name(n)) => match uuid::Uuid::parse_str(&n) {
                // A GUID may start with a letter.
                Ok(guid) if n.len() == 36 => Literal::Guid(guid),
                _ => {
                    return Err(SyntaxError(format!(
                        "'{n}' is not a value; quote text as in name eq 'blockIp'"
                    )));
                }
            },
            _ => return Err(self.unexpected("a value")),
        };
        self.at += 1;
        Ok(literal)
    }
}

/// Function names of OData that are not supported, to name them in errors.
fn is_function(name: &str) -> bool {
    const FUNCTIONS: &[&str] = &[
        "endswith",
        "contains",
        "substringof",
        "tolower",
        "toupper",
        "trim",
        "length",
        "indexof",
        "substring",
        "concat",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "date",
        "time",
        "now",
        "round",
        "floor",
        "ceiling",
        "cast",
        "isof",
        "matchespattern",
        "hassubset",
        "hassubsequence",
    ];
    FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// An unquoted value: a date-time, a date, a GUID or a number.
fn bare(text: &str) -> Result<Literal, SyntaxError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Literal::DateTime(at.with_timezone(&Utc)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(Literal::DateTime(midnight.and_utc()));
    }
    if text.len() == 36
        && let Ok(guid) = uuid::Uuid::parse_str(text)
    {
        return Ok(Literal::Guid(guid));
    }
    let number = text.strip_prefix('-').unwrap_or(text);
    if !number.is_empty()
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Ok(Literal::Number(text.to_owned()));
    }
    Err(SyntaxError(format!(
        "'{text}' is not a value: a date-time is written as 2026-12-01T10:00:00Z (with + as %2B in a URL)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(path: &str, op: CompareOp, value: Literal) -> impl Fn(&Expr) -> bool {
        let path: Vec<String> = path.split('/').map(String::from).collect();
        move |e: &Expr| matches!(e, Expr::Compare { path: p, op: o, value: v, .. } if p.0 == path && *o == op && *v == value)
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_takes_the_comparison_after_it() {
        let e = parse("status eq 'Running' or not name eq 'blockIp' and user eq 'a'").unwrap();
        let Expr::Or(terms) = e else { panic!("{e:?}") };
        assert_eq!(terms.len(), 2);
        assert!(compare(
            "status",
            CompareOp::Eq,
            Literal::Text("Running".into())
        )(&terms[0]));
        let Expr::And(right) = &terms[1] else {
            panic!("{:?}", terms[1])
        };
        assert!(
            matches!(&right[0], Expr::Not(inner) if compare("name", CompareOp::Eq, Literal::Text("blockIp".into()))(inner))
        );
    }

    #[test]
    fn literals_of_every_kind_parse() {
        let cases = [
            ("x eq 'it''s'", Literal::Text("it's".into())),
            (
                "x eq microsoft.graph.operationStatus'Running'",
                Literal::Enum("Running".into()),
            ),
            (
                "x ge 2026-12-01T10:00:00Z",
                Literal::DateTime("2026-12-01T10:00:00Z".parse().unwrap()),
            ),
            (
                "x ge 2026-12-01T10:00:00.5+01:00",
                Literal::DateTime("2026-12-01T09:00:00.5Z".parse().unwrap()),
            ),
            (
                "x ge 2026-12-01",
                Literal::DateTime("2026-12-01T00:00:00Z".parse().unwrap()),
            ),
            (
                "x eq 0191c0de-0000-7000-8000-000000000001",
                Literal::Guid("0191c0de-0000-7000-8000-000000000001".parse().unwrap()),
            ),
            (
                "x eq ab91c0de-0000-7000-8000-000000000001",
                Literal::Guid("ab91c0de-0000-7000-8000-000000000001".parse().unwrap()),
            ),
            ("x eq 42", Literal::Number("42".into())),
            ("x eq true", Literal::Bool(true)),
            ("x eq null", Literal::Null),
        ];
        for (text, literal) in cases {
            let e = parse(text).unwrap_or_else(|err| panic!("{text}: {err:?}"));
            assert!(
                compare("x", CompareOp::Eq, literal.clone())(&e)
                    || compare("x", CompareOp::Ge, literal.clone())(&e),
                "{text}: {e:?}"
            );
        }
    }

    #[test]
    fn in_lists_startswith_and_any_parse_with_their_spans() {
        let source = "status in ('Running', 'Failed') and startswith(user, 'al') and parameters/any(p: p/name eq 'ip' and p/value eq '10.0.0.1')";
        let Expr::And(terms) = parse(source).unwrap() else {
            panic!()
        };
        let Expr::In { values, span, .. } = &terms[0] else {
            panic!("{:?}", terms[0])
        };
        assert_eq!(values.len(), 2);
        assert_eq!(&source[span.clone()], "status in ('Running', 'Failed')");
        let Expr::StartsWith { span, .. } = &terms[1] else {
            panic!()
        };
        assert_eq!(&source[span.clone()], "startswith(user, 'al')");
        let Expr::Any {
            collection,
            variable,
            body,
            span,
        } = &terms[2]
        else {
            panic!()
        };
        assert_eq!(collection.text(), "parameters");
        assert_eq!(variable, "p");
        assert!(matches!(**body, Expr::And(_)));
        assert!(source[span.clone()].starts_with("parameters/any(p:"));
    }

    #[test]
    fn comparisons_with_true_and_false_fold() {
        assert!(matches!(
            parse("startswith(user, 'a') eq false").unwrap(),
            Expr::Not(_)
        ));
        assert!(matches!(
            parse("startswith(user, 'a') eq true").unwrap(),
            Expr::StartsWith { .. }
        ));
        assert!(matches!(
            parse("(user eq 'a') ne true").unwrap(),
            Expr::Not(_)
        ));
        assert!(parse("startswith(user, 'a') eq 'x'").is_err());
    }

    #[test]
    fn operators_are_read_in_any_casing() {
        assert!(matches!(
            parse("a EQ 'x' AND NOT b Eq 'y' Or c eq 'z'").unwrap(),
            Expr::Or(_)
        ));
    }

    #[test]
    fn unsupported_functions_and_operators_are_named() {
        for (source, named) in [
            ("contains(name, 'x')", "contains"),
            ("name has 'x'", "has"),
            ("parameters/all(p: p/name eq 'ip')", "parameters/all"),
            ("length(name) eq 3", "length"),
            ("x add 3", "add"),
        ] {
            let SyntaxError(message) = parse(source).unwrap_err();
            assert!(message.contains(named), "{source}: {message}");
        }
    }

    #[test]
    fn garbage_is_a_syntax_error_never_a_panic() {
        for source in [
            "",
            " ",
            "(",
            ")",
            "((",
            "a eq",
            "eq 'x'",
            "a eq 'x' and",
            "a eq 'unclosed",
            "a in ()",
            "a in ('x'",
            "startswith(",
            "startswith(a 'x')",
            "p/any(",
            "p/any(x",
            "p/any(x:",
            "p/any(x: x eq 'a'",
            "a eq 'x' 'y'",
            "a eq 'x')",
            "'x' eq a",
            "a eq b",
            "a eq 12:30",
            "a eq --1",
            "a eq #",
            "a eq 'x' or or b eq 'y'",
            "not",
            "not not",
            "a/ eq 'x'",
            "/a eq 'x'",
            "a eq microsoft.graph.x'unclosed",
            "\u{0}",
            "a eq 'x'\u{7f}",
            "a eq 2026-13-45T99:00:00Z",
            "a eq 1e",
            "ä eq 'ö'",
            "a eq 'x' and (b eq 'y'",
        ] {
            let _ = parse(source);
        }
        assert!(parse("a eq 2026-13-45T99:00:00Z").is_err());
        assert!(parse("").is_err());
        assert!(parse("a eq 'x')").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_before_the_stack_is_at_risk() {
        let deep = format!("{}a eq 'x'{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).is_err());
        let nots = "not ".repeat(2000) + "a eq 'x'";
        assert!(parse(&nots).is_err());
        let lambdas = "p/any(x: ".repeat(500) + "x eq 'a'" + &")".repeat(500);
        assert!(parse(&lambdas).is_err());
        let fine = format!(
            "{}a eq 'x'{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(parse(&fine).is_ok());
        let too_deep = format!(
            "{}a eq 'x'{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        let SyntaxError(message) = parse(&too_deep).unwrap_err();
        assert!(message.contains("deep"), "{message}");
    }

    #[test]
    fn long_and_wide_input_is_refused() {
        let long = format!("a eq '{}'", "x".repeat(MAX_FILTER_CHARS));
        assert!(parse(&long).is_err());
        let wide = vec!["a eq 'x'"; 300].join(" or ");
        assert!(parse(&wide).unwrap_err().0.contains("tokens"));
        let chain = vec!["a eq 'x'"; 200].join(" and ");
        assert!(matches!(parse(&chain).unwrap(), Expr::And(t) if t.len() == 200));
    }
}
