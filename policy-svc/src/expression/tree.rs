//! The compiled form of an expression: what the parser builds and the evaluator walks.

use std::cmp::Ordering;
use std::sync::Arc;

use super::{AttributeValue, Group};
use crate::version::Version;

/// What the parser knows about the type of a value; `Any` for attributes, whose type only the
/// sign-in context decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Any,
    Null,
    Bool,
    Number,
    String,
    List,
    DateTime,
}

impl Ty {
    /// The type as a noun phrase for messages ("a string").
    pub(super) fn noun(self) -> &'static str {
        match self {
            Ty::Any => "a value",
            Ty::Null => "null",
            Ty::Bool => "a boolean",
            Ty::Number => "a number",
            Ty::String => "a string",
            Ty::List => "a list",
            Ty::DateTime => "a date-time",
        }
    }

    /// Whether a value of this static type may turn out to be `other` at evaluation time.
    pub(super) fn admits(self, other: Ty) -> bool {
        self == Ty::Any || other == Ty::Any || self == other
    }
}

/// One node of the tree. `&&` and `||` chains are flat lists, so a long chain costs no depth.
#[derive(Debug)]
pub(super) enum Node {
    Literal(Literal),
    /// A whole dotted attribute path, shared with the expression's path list.
    Attribute(Arc<str>),
    /// `DateTime.now()`.
    Now,
    Not(Box<Node>),
    Negate(Box<Node>),
    /// `a && b && …`
    All(Box<[Node]>),
    /// `a || b || …`
    Any(Box<[Node]>),
    Compare {
        op: Comparison,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `a + b - c …`, left to right.
    Arithmetic {
        first: Box<Node>,
        rest: Box<[(Arithmetic, Node)]>,
    },
    /// `condition ? then : otherwise`
    Choose {
        condition: Box<Node>,
        then: Box<Node>,
        otherwise: Box<Node>,
    },
    /// A method on a value; static helpers (`String.len(x)`) compile to a method on their first
    /// argument.
    Call {
        receiver: Box<Node>,
        method: Method,
        args: Box<[Node]>,
    },
    /// `receiver.versionGreaterThan(other)` or `versionLessThan`: `wanted` is the ordering that
    /// makes it true. A literal `other` is parsed once, here, rather than on every evaluation.
    CompareVersion {
        receiver: Box<Node>,
        method: Method,
        wanted: Ordering,
        other: Box<Node>,
        parsed: Option<Version>,
    },
    /// `user.isMemberOf(…)`: true when one group meets every criterion.
    IsMemberOf(Box<[GroupCriterion]>),
}

/// A constant written in the expression.
#[derive(Debug)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(Box<str>),
    List(Box<[AttributeValue]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }

    pub(super) fn is_equality(self) -> bool {
        matches!(self, Comparison::Equal | Comparison::NotEqual)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arithmetic {
    Add,
    Subtract,
    Multiply,
}

impl Arithmetic {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Arithmetic::Add => "+",
            Arithmetic::Subtract => "-",
            Arithmetic::Multiply => "*",
        }
    }
}

/// A unit of date-time arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Days,
    Hours,
    Minutes,
    Seconds,
}

impl Unit {
    pub(super) fn millis(self) -> i64 {
        match self {
            Unit::Days => 86_400_000,
            Unit::Hours => 3_600_000,
            Unit::Minutes => 60_000,
            Unit::Seconds => 1_000,
        }
    }
}

/// Every function the dialect supports, resolved at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    ToUpperCase,
    ToLowerCase,
    Substring,
    Replace,
    ReplaceFirst,
    Length,
    RemoveSpaces,
    /// `contains` on a string or a list, decided by the value.
    Contains,
    /// `String.stringContains`: strings only.
    StringContains,
    /// `Arrays.contains`: lists only.
    ListContains,
    SubstringBefore,
    SubstringAfter,
    StartsWith,
    EndsWith,
    Append,
    /// `isEmpty` on a string or a list.
    IsEmpty,
    /// `Arrays.isEmpty`: lists only.
    ListIsEmpty,
    Size,
    VersionGreaterThan,
    VersionLessThan,
    ToInteger,
    ToNumber,
    ParseUnixTime,
    ParseWindowsTime,
    ParseStringTime,
    Plus(Unit),
    Minus(Unit),
    Within(Unit),
    ToUnix,
    ToWindows,
    ToIsoString,
}

/// One `{'group.…': …}` criterion of `user.isMemberOf`.
#[derive(Debug)]
pub(super) struct GroupCriterion {
    pub(super) key: GroupKey,
    /// Any one of these matches.
    pub(super) values: Box<[Box<str>]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupKey {
    Id,
    NameExact,
    NameStartsWith,
}

impl GroupCriterion {
    pub(super) fn matches(&self, group: &Group) -> bool {
        self.values.iter().any(|value| match self.key {
            GroupKey::Id => group.id == **value,
            GroupKey::NameExact => group.name == **value,
            GroupKey::NameStartsWith => group.name.starts_with(&**value),
        })
    }
}
