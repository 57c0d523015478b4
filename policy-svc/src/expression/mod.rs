//! Okta Expression Language, authentication-policy dialect: custom conditions such as
//! `device.profile.managed == true && user.isMemberOf({'group.profile.name': 'Eng'})`, parsed and
//! checked once, then evaluated for each sign-in.
//!
//! # The language
//!
//! - Literals: strings in single or double quotes (backslash escapes `\' \" \\ \n \t \r \uXXXX`,
//!   and SpEL's doubled quote `'it''s'`), numbers (`42`, `3.14`, `1e3`), `true`, `false`, `null`,
//!   and constant lists `{'a', 'b'}`.
//! - Attributes: `user.id`, `user.status`, `user.profile.*`, `device.profile.*`,
//!   `device.assurance.*`, `device.provider.wsc.*`, `device.provider.zta.*`,
//!   `device.provider.oktaVerify.version`, `device.id`, `device.status`, `device.registered`,
//!   `device.managed`, `security.risk.level` and `security.behaviors`. Any other path is refused
//!   when the expression is parsed.
//! - Operators, loosest first: `?:`; `||` (or the word `OR`, in any case); `&&` (or `AND`); one
//!   comparison (`== != < <= > >=`; comparisons do not chain); `+ -`; `*`; prefix `!` and `-`;
//!   method calls.
//!   `<` and `>` order numbers, strings (by UTF-16 code unit, as Java does) and date-times.
//! - Methods on strings: `toUpperCase() toLowerCase() substring(b[, e]) replace(a, b)
//!   replaceFirst(a, b) length() removeSpaces() contains(s) substringBefore(s) substringAfter(s)
//!   startsWith(s) endsWith(s) isEmpty() versionGreaterThan(v) versionLessThan(v) toInteger()
//!   toNumber() parseUnixTime() parseWindowsTime() parseStringTime()`. Lengths and offsets count
//!   UTF-16 code units, as Okta's do.
//! - Methods on lists: `contains(v) size() isEmpty()`; on numbers: `toInteger()`.
//! - Date-times: `DateTime.now()` (also `Time.now()`), then `plusDays plusHours plusMinutes
//!   plusSeconds minusDays minusHours minusMinutes minusSeconds` (whole numbers),
//!   `withinDays withinHours withinMinutes withinSeconds` (true when the date-time is at most
//!   that far from now, either way), `toUnix() toWindows() toString()`, and comparisons.
//! - Groups: `user.isMemberOf({'group.id': 'id'})`, `{'group.id': {'id1', 'id2'}}`,
//!   `{'group.profile.name': 'Eng', 'operator': 'EXACT'}`; a name criterion without an operator
//!   matches by prefix (`STARTS_WITH`), as Okta documents. Several criteria must all hold for one
//!   group.
//! - Static helpers from Okta's classic dialect, for expressions written against it:
//!   `String.stringContains len toUpperCase toLowerCase substringBefore substringAfter substring
//!   removeSpaces replace replaceFirst append`, `Arrays.contains size isEmpty`,
//!   `Convert.toInt toNum`.
//!
//! # Missing data fails closed
//!
//! A comparison or method call that touches a missing attribute, or values of the wrong type, is
//! *undefined*. `!` keeps it undefined; `&&` and `||` follow Kleene's three-valued logic (an
//! undefined operand matters unless another operand settles the answer: `false && x` is false,
//! `true || x` true); a `?:` whose condition is undefined is undefined. The caller treats
//! anything but [`Verdict::True`] as not matching, so a missing attribute never makes a condition
//! pass, through `!=` and `!` included.
//!
//! # Limits
//!
//! Evaluation cannot panic and its cost is bounded:
//! - source is at most [`MAX_SOURCE_BYTES`] bytes, else a parse error;
//! - nesting (parentheses, `!` and `-`, method calls and their arguments, `?:` branches, lists) is
//!   at most [`MAX_DEPTH`] levels, else a parse error at the level that goes too deep; `&&`, `||`
//!   and arithmetic chains are flat and cost no depth;
//! - evaluation takes at most [`MAX_STEPS`] steps, else the verdict is undefined with reason
//!   "step limit". Each node evaluated is a step, and string work costs a further step per 256
//!   bytes, list and group scans a step per 64 items, so large attribute values cannot make an
//!   expression expensive.
//!
//! Comparing attributes with literals, `isMemberOf`, and comparing an attribute's version with a
//! literal one (read in place against the literal, parsed once when the expression is) allocate
//! nothing during evaluation. Methods that build strings (`toLowerCase` of mixed case, `+`)
//! allocate.

mod datetime;
mod eval;
mod functions;
mod lexer;
mod parser;
mod tree;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use eval::{Undefined, UndefinedKind};

/// The longest expression source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// The deepest nesting accepted (see the module documentation for what nests).
pub const MAX_DEPTH: usize = 32;
/// The most evaluation steps one evaluation may take before it is undefined.
pub const MAX_STEPS: u32 = 10_000;

/// A parsed, validated expression; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Expression {
    compiled: Arc<Compiled>,
}

struct Compiled {
    source: Box<str>,
    root: tree::Node,
    paths: Box<[Arc<str>]>,
    reads_groups: bool,
}

impl Expression {
    /// Parses and checks `source`: syntax, attribute paths, method names and arities, and the
    /// types that can be known before evaluation.
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        let parsed = parser::parse(source)?;
        Ok(Expression {
            compiled: Arc::new(Compiled {
                source: source.into(),
                root: parsed.root,
                paths: parsed.paths.into_boxed_slice(),
                reads_groups: parsed.reads_groups,
            }),
        })
    }

    /// The source the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.compiled.source
    }

    /// Evaluates against one sign-in's attributes. `now_unix_millis` is what `DateTime.now()`
    /// returns.
    pub fn evaluate(&self, attributes: &dyn Attributes, now_unix_millis: i64) -> Verdict {
        let mut evaluator = eval::Evaluator::new(attributes, now_unix_millis);
        match evaluator.verdict(&self.compiled.root) {
            Ok(true) => Verdict::True,
            Ok(false) => Verdict::False,
            Err(undefined) => Verdict::Undefined(undefined),
        }
    }

    /// Every attribute path the expression reads, each once, as written.
    pub fn attribute_paths(&self) -> impl Iterator<Item = &str> {
        self.compiled.paths.iter().map(|path| &**path)
    }

    /// Whether the expression reads the user's groups (`user.isMemberOf`).
    pub fn reads_groups(&self) -> bool {
        self.compiled.reads_groups
    }
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source()).finish()
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())
    }
}

/// Two expressions are equal when their sources are: the same source always compiles the same.
impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl Eq for Expression {}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        Expression::parse(source)
    }
}

/// Serialized as its source, so policies store the text operators wrote.
impl serde::Serialize for Expression {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.source())
    }
}

/// Deserializing parses, so a stored policy with a bad expression fails to load.
impl<'de> serde::Deserialize<'de> for Expression {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Expression::parse(&source).map_err(serde::de::Error::custom)
    }
}

/// Where and why parsing failed; 1-based line and column (column counts chars).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong there.
    pub reason: String,
}

/// An expression's answer for one sign-in.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The condition has no answer (see [`Undefined`]); treat it as not matching.
    Undefined(Undefined),
}

impl Verdict {
    /// Whether the condition holds; false for [`Verdict::Undefined`].
    pub fn is_true(&self) -> bool {
        matches!(self, Verdict::True)
    }
}

/// What an expression can read. The policy engine implements this over its sign-in context.
pub trait Attributes {
    /// The value at a dotted attribute path exactly as written in the expression, e.g.
    /// "user.profile.department", "device.provider.wsc.fireWall", "security.risk.level",
    /// "device.provider.oktaVerify.version". None when absent.
    fn attribute(&self, path: &str) -> Option<AttributeRef<'_>>;

    /// The user's groups, for user.isMemberOf.
    fn groups(&self) -> &[Group];
}

/// A group the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// The group's id, matched by `'group.id'`.
    pub id: String,
    /// The group's name, matched by `'group.profile.name'`.
    pub name: String,
}

/// Owned attribute values (profile maps hold these); untagged, so JSON `true`, `1.5`, `"x"` and
/// `["a", "b"]` map naturally.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A boolean.
    Bool(bool),
    /// A number; integers too.
    Number(f64),
    /// A string.
    String(String),
    /// A list, such as `security.behaviors`.
    List(Vec<AttributeValue>),
}

/// A borrowed attribute value, as [`Attributes::attribute`] returns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeRef<'a> {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(&'a str),
    /// A list.
    List(&'a [AttributeValue]),
}

impl AttributeValue {
    /// Borrows the value.
    pub fn as_ref(&self) -> AttributeRef<'_> {
        match self {
            AttributeValue::Bool(value) => AttributeRef::Bool(*value),
            AttributeValue::Number(value) => AttributeRef::Number(*value),
            AttributeValue::String(text) => AttributeRef::String(text),
            AttributeValue::List(items) => AttributeRef::List(items),
        }
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        AttributeValue::Bool(value)
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        AttributeValue::Number(value)
    }
}

impl From<&str> for AttributeValue {
    fn from(text: &str) -> Self {
        AttributeValue::String(text.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(text: String) -> Self {
        AttributeValue::String(text)
    }
}

#[cfg(test)]
mod tests;
