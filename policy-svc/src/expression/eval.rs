//! Evaluation: walks the compiled tree against a sign-in's attributes with three-valued logic, so
//! a missing attribute or a type mismatch leaves a condition undefined instead of passing it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use super::functions;
use super::tree::{Arithmetic, Comparison, Literal, Node, Ty};
use super::{AttributeRef, AttributeValue, Attributes, MAX_STEPS};

/// Bytes of string work that cost one evaluation step beyond the node's own.
const BYTES_PER_STEP: usize = 256;
/// List items or groups examined that cost one evaluation step beyond the node's own.
const ITEMS_PER_STEP: usize = 64;

/// A value during evaluation; strings borrow from the tree or the attributes where they can.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
    List(&'a [AttributeValue]),
    /// Unix milliseconds, UTC.
    DateTime(i64),
}

impl Value<'_> {
    pub(super) fn ty(&self) -> Ty {
        match self {
            Value::Null => Ty::Null,
            Value::Bool(_) => Ty::Bool,
            Value::Number(_) => Ty::Number,
            Value::Str(_) => Ty::String,
            Value::List(_) => Ty::List,
            Value::DateTime(_) => Ty::DateTime,
        }
    }
}

/// Why an expression had no answer: a missing attribute, a type mismatch, a value a function
/// cannot use, or the step limit. `Display` names the attribute path where there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Undefined {
    reason: Reason,
    path: Option<Arc<str>>,
}

/// The broad class of an [`Undefined`], for callers that count or explain them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UndefinedKind {
    /// An attribute the expression reads is absent from the sign-in context.
    Missing,
    /// A value had the wrong type for what was done with it (`'a' < true`, a string used as a
    /// condition).
    TypeMismatch,
    /// A value had the right type but a function could not use it (not a version, not a
    /// number, an index out of range).
    InvalidValue,
    /// The whole expression produced something other than true or false.
    NotBoolean,
    /// Evaluation took more than [`MAX_STEPS`] steps.
    StepLimit,
}

/// Kept small and free of formatting so failures cost nothing until displayed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reason {
    Missing,
    Mismatch {
        context: &'static str,
        expected: &'static str,
        found: Ty,
    },
    Invalid(&'static str),
    NotBoolean(Ty),
    StepLimit,
}

impl Undefined {
    /// What kind of failure this is.
    pub fn kind(&self) -> UndefinedKind {
        match self.reason {
            Reason::Missing => UndefinedKind::Missing,
            Reason::Mismatch { .. } => UndefinedKind::TypeMismatch,
            Reason::Invalid(_) => UndefinedKind::InvalidValue,
            Reason::NotBoolean(_) => UndefinedKind::NotBoolean,
            Reason::StepLimit => UndefinedKind::StepLimit,
        }
    }

    /// The attribute path the failure concerns, where there is one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub(super) fn missing(path: &Arc<str>) -> Self {
        Self {
            reason: Reason::Missing,
            path: Some(Arc::clone(path)),
        }
    }

    pub(super) fn mismatch(path: Option<&Arc<str>>, context: &'static str, expected: &'static str, found: Ty) -> Self {
        Self {
            reason: Reason::Mismatch {
                context,
                expected,
                found,
            },
            path: path.cloned(),
        }
    }

    pub(super) fn invalid(path: Option<&Arc<str>>, what: &'static str) -> Self {
        Self {
            reason: Reason::Invalid(what),
            path: path.cloned(),
        }
    }

    pub(super) fn not_boolean(found: Ty) -> Self {
        Self {
            reason: Reason::NotBoolean(found),
            path: None,
        }
    }

    pub(super) fn step_limit() -> Self {
        Self {
            reason: Reason::StepLimit,
            path: None,
        }
    }

    fn is_step_limit(&self) -> bool {
        self.reason == Reason::StepLimit
    }
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref();
        match (self.reason, path) {
            (Reason::Missing, Some(path)) => write!(f, "{path} is missing"),
            (Reason::Missing, None) => f.write_str("an attribute is missing"),
            (
                Reason::Mismatch {
                    context,
                    expected,
                    found,
                },
                Some(path),
            ) => {
                write!(f, "{path}: {context} needs {expected}, found {}", found.noun())
            }
            (
                Reason::Mismatch {
                    context,
                    expected,
                    found,
                },
                None,
            ) => {
                write!(f, "{context} needs {expected}, found {}", found.noun())
            }
            (Reason::Invalid(what), Some(path)) => write!(f, "{path} {what}"),
            (Reason::Invalid(what), None) => write!(f, "a value {what}"),
            (Reason::NotBoolean(found), _) => {
                write!(f, "the expression produced {}, not true or false", found.noun())
            }
            (Reason::StepLimit, _) => write!(f, "step limit: evaluation took more than {MAX_STEPS} steps"),
        }
    }
}

impl std::error::Error for Undefined {}

/// The attribute a node's value comes from, for naming it in failures: the path itself, or the
/// path a method chain starts from.
pub(super) fn origin(node: &Node) -> Option<&Arc<str>> {
    match node {
        Node::Attribute(path) => Some(path),
        Node::Call { receiver, .. } | Node::CompareVersion { receiver, .. } => origin(receiver),
        _ => None,
    }
}

/// One evaluation: the attributes it reads, the clock, and the steps spent so far.
pub(super) struct Evaluator<'a> {
    attributes: &'a dyn Attributes,
    now: i64,
    steps: u32,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(attributes: &'a dyn Attributes, now_unix_millis: i64) -> Self {
        Self {
            attributes,
            now: now_unix_millis,
            steps: 0,
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.now
    }

    fn charge(&mut self, steps: usize) -> Result<(), Undefined> {
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        self.steps = self.steps.saturating_add(steps);
        if self.steps > MAX_STEPS {
            Err(Undefined::step_limit())
        } else {
            Ok(())
        }
    }

    /// Charges for string work proportional to `bytes`, so long attribute values cannot make an
    /// expression expensive.
    pub(super) fn charge_bytes(&mut self, bytes: usize) -> Result<(), Undefined> {
        self.charge(bytes / BYTES_PER_STEP)
    }

    /// Charges for examining `items` list items or groups.
    pub(super) fn charge_items(&mut self, items: usize) -> Result<(), Undefined> {
        self.charge(items / ITEMS_PER_STEP)
    }

    /// The whole expression's verdict: true, false, or why neither.
    pub(super) fn verdict(&mut self, root: &'a Node) -> Result<bool, Undefined> {
        match self.eval(root)? {
            Value::Bool(value) => Ok(value),
            other => Err(Undefined::not_boolean(other.ty())),
        }
    }

    pub(super) fn eval(&mut self, node: &'a Node) -> Result<Value<'a>, Undefined> {
        self.charge(1)?;
        match node {
            Node::Literal(literal) => Ok(match literal {
                Literal::Null => Value::Null,
                Literal::Bool(value) => Value::Bool(*value),
                Literal::Number(value) => Value::Number(*value),
                Literal::String(text) => Value::Str(Cow::Borrowed(text)),
                Literal::List(items) => Value::List(items),
            }),
            Node::Attribute(path) => match self.attributes.attribute(path) {
                None => Err(Undefined::missing(path)),
                Some(AttributeRef::Bool(value)) => Ok(Value::Bool(value)),
                Some(AttributeRef::Number(value)) => Ok(Value::Number(value)),
                Some(AttributeRef::String(text)) => Ok(Value::Str(Cow::Borrowed(text))),
                Some(AttributeRef::List(items)) => Ok(Value::List(items)),
            },
            Node::Now => Ok(Value::DateTime(self.now)),
            Node::Not(operand) => Ok(Value::Bool(!self.boolean(operand, "!")?)),
            Node::Negate(operand) => match self.eval(operand)? {
                Value::Number(value) => Ok(Value::Number(-value)),
                other => Err(Undefined::mismatch(origin(operand), "-", "a number", other.ty())),
            },
            Node::All(operands) => self.logic(operands, false).map(Value::Bool),
            Node::Any(operands) => self.logic(operands, true).map(Value::Bool),
            Node::Compare { op, left, right } => self.compare(*op, left, right).map(Value::Bool),
            Node::Arithmetic { first, rest } => self.arithmetic(first, rest),
            Node::Choose {
                condition,
                then,
                otherwise,
            } => {
                if self.boolean(condition, "?:")? {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            Node::Call { receiver, method, args } => functions::call(self, receiver, *method, args),
            Node::CompareVersion {
                receiver,
                method,
                wanted,
                other,
                parsed,
            } => functions::compare_version(self, receiver, *method, other, parsed.as_ref())
                .map(|ordering| Value::Bool(ordering == *wanted)),
            Node::IsMemberOf(criteria) => {
                let groups = self.attributes.groups();
                let values: usize = criteria.iter().map(|criterion| criterion.values.len()).sum();
                self.charge_items(groups.len().saturating_mul(values))?;
                Ok(Value::Bool(
                    groups.iter().any(|group| criteria.iter().all(|c| c.matches(group))),
                ))
            }
        }
    }

    fn boolean(&mut self, node: &'a Node, context: &'static str) -> Result<bool, Undefined> {
        match self.eval(node)? {
            Value::Bool(value) => Ok(value),
            other => Err(Undefined::mismatch(origin(node), context, "a boolean", other.ty())),
        }
    }

    /// Kleene's three-valued `&&` (`decisive` false) or `||` (`decisive` true): the first
    /// decisive operand settles it, even after an undefined one, because no value of the
    /// undefined operand could change the answer. Otherwise an undefined operand leaves the whole
    /// undefined. The step limit is never absorbed.
    fn logic(&mut self, operands: &'a [Node], decisive: bool) -> Result<bool, Undefined> {
        let context = if decisive { "||" } else { "&&" };
        let mut undefined = None;
        for operand in operands {
            match self.boolean(operand, context) {
                Ok(value) if value == decisive => return Ok(decisive),
                Ok(_) => {}
                Err(failure) if failure.is_step_limit() => return Err(failure),
                Err(failure) => {
                    undefined.get_or_insert(failure);
                }
            }
        }
        match undefined {
            Some(failure) => Err(failure),
            None => Ok(!decisive),
        }
    }

    fn compare(&mut self, op: Comparison, left: &'a Node, right: &'a Node) -> Result<bool, Undefined> {
        let a = self.eval(left)?;
        let b = self.eval(right)?;
        let path = origin(left).or_else(|| origin(right));
        let mismatch = || Undefined::mismatch(path, op.symbol(), a.ty().noun(), b.ty());
        if op.is_equality() {
            let equal = match (&a, &b) {
                (Value::Null, Value::Null) => true,
                // Only a present value reaches here: a missing attribute already failed above.
                (Value::Null, _) | (_, Value::Null) => false,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Number(x), Value::Number(y)) => {
                    if x.is_nan() || y.is_nan() {
                        return Err(Undefined::invalid(path, "is not a number"));
                    }
                    x == y
                }
                (Value::Str(x), Value::Str(y)) => {
                    self.charge_bytes(x.len().min(y.len()))?;
                    x == y
                }
                (Value::DateTime(x), Value::DateTime(y)) => x == y,
                _ => return Err(mismatch()),
            };
            return Ok(equal == (op == Comparison::Equal));
        }
        let ordering = match (&a, &b) {
            (Value::Number(x), Value::Number(y)) => x
                .partial_cmp(y)
                .ok_or_else(|| Undefined::invalid(path, "is not a number"))?,
            (Value::Str(x), Value::Str(y)) => {
                self.charge_bytes(x.len().min(y.len()))?;
                // Java compares strings by UTF-16 code unit; so does Okta.
                x.encode_utf16().cmp(y.encode_utf16())
            }
            (Value::DateTime(x), Value::DateTime(y)) => x.cmp(y),
            _ => return Err(mismatch()),
        };
        Ok(match op {
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
            Comparison::Equal | Comparison::NotEqual => false,
        })
    }

    fn arithmetic(&mut self, first: &'a Node, rest: &'a [(Arithmetic, Node)]) -> Result<Value<'a>, Undefined> {
        let mut total = self.eval(first)?;
        for (op, node) in rest {
            let operand = self.eval(node)?;
            let path = origin(node).or_else(|| origin(first));
            total = match (*op, total, operand) {
                (Arithmetic::Add, Value::Str(mut text), Value::Str(suffix)) => {
                    self.charge_bytes(text.len().saturating_add(suffix.len()))?;
                    text.to_mut().push_str(&suffix);
                    Value::Str(text)
                }
                (op, Value::Number(x), Value::Number(y)) => {
                    let result = match op {
                        Arithmetic::Add => x + y,
                        Arithmetic::Subtract => x - y,
                        Arithmetic::Multiply => x * y,
                    };
                    if !result.is_finite() {
                        return Err(Undefined::invalid(path, "is out of range"));
                    }
                    Value::Number(result)
                }
                (Arithmetic::Add, total, operand) => {
                    return Err(match total.ty() {
                        Ty::String => Undefined::mismatch(path, "+", "a string", operand.ty()),
                        Ty::Number => Undefined::mismatch(path, "+", "a number", operand.ty()),
                        other => Undefined::mismatch(path, "+", "a number or a string", other),
                    });
                }
                (op, Value::Number(_), operand) => {
                    return Err(Undefined::mismatch(path, op.symbol(), "a number", operand.ty()));
                }
                (op, total, _) => return Err(Undefined::mismatch(path, op.symbol(), "a number", total.ty())),
            };
        }
        Ok(total)
    }
}
