//! The functions the dialect supports: their signatures, checked at parse time, and what they do,
//! run at evaluation time.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use super::datetime;
use super::eval::{Evaluator, Undefined, Value, origin};
use super::tree::{Method, Node, Ty, Unit};
use crate::version::Version;

/// Which values a method can be called on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Receiver {
    String,
    List,
    DateTime,
    StringOrList,
    StringOrNumber,
}

impl Receiver {
    pub(super) fn accepts(self, ty: Ty) -> bool {
        match self {
            _ if ty == Ty::Any => true,
            Receiver::String => ty == Ty::String,
            Receiver::List => ty == Ty::List,
            Receiver::DateTime => ty == Ty::DateTime,
            Receiver::StringOrList => matches!(ty, Ty::String | Ty::List),
            Receiver::StringOrNumber => matches!(ty, Ty::String | Ty::Number),
        }
    }

    pub(super) fn noun(self) -> &'static str {
        match self {
            Receiver::String => "a string",
            Receiver::List => "a list",
            Receiver::DateTime => "a date-time",
            Receiver::StringOrList => "a string or a list",
            Receiver::StringOrNumber => "a string or a number",
        }
    }
}

/// A method's signature. Every method takes at most two arguments besides its receiver, which
/// lets evaluation keep arguments in a fixed array.
#[derive(Debug, Clone, Copy)]
pub(super) struct Signature {
    pub(super) method: Method,
    pub(super) receiver: Receiver,
    /// Types of the required arguments; `Ty::Any` takes anything.
    pub(super) params: &'static [Ty],
    /// How many trailing parameters may be left out.
    pub(super) optional: usize,
    pub(super) returns: Ty,
}

/// The most arguments any method takes besides its receiver.
pub(super) const MAX_ARGS: usize = 2;

const fn sig(method: Method, receiver: Receiver, params: &'static [Ty], returns: Ty) -> Signature {
    Signature {
        method,
        receiver,
        params,
        optional: 0,
        returns,
    }
}

const NONE: &[Ty] = &[];
const STRING: &[Ty] = &[Ty::String];
const NUMBER: &[Ty] = &[Ty::Number];
const TWO_STRINGS: &[Ty] = &[Ty::String, Ty::String];

/// The method called `name` on a value (`x.name(…)`), if the dialect has one.
pub(super) fn method(name: &str) -> Option<Signature> {
    use Receiver as R;
    let unit_method = |make: fn(Unit) -> Method, unit, returns| sig(make(unit), R::DateTime, NUMBER, returns);
    Some(match name {
        "toUpperCase" => sig(Method::ToUpperCase, R::String, NONE, Ty::String),
        "toLowerCase" => sig(Method::ToLowerCase, R::String, NONE, Ty::String),
        "substring" => Signature {
            optional: 1,
            ..sig(Method::Substring, R::String, &[Ty::Number; 2], Ty::String)
        },
        "replace" => sig(Method::Replace, R::String, TWO_STRINGS, Ty::String),
        "replaceFirst" => sig(Method::ReplaceFirst, R::String, TWO_STRINGS, Ty::String),
        "length" => sig(Method::Length, R::String, NONE, Ty::Number),
        "removeSpaces" => sig(Method::RemoveSpaces, R::String, NONE, Ty::String),
        "contains" => sig(Method::Contains, R::StringOrList, &[Ty::Any], Ty::Bool),
        "substringBefore" => sig(Method::SubstringBefore, R::String, STRING, Ty::String),
        "substringAfter" => sig(Method::SubstringAfter, R::String, STRING, Ty::String),
        "startsWith" => sig(Method::StartsWith, R::String, STRING, Ty::Bool),
        "endsWith" => sig(Method::EndsWith, R::String, STRING, Ty::Bool),
        "isEmpty" => sig(Method::IsEmpty, R::StringOrList, NONE, Ty::Bool),
        "size" => sig(Method::Size, R::List, NONE, Ty::Number),
        "versionGreaterThan" => sig(Method::VersionGreaterThan, R::String, STRING, Ty::Bool),
        "versionLessThan" => sig(Method::VersionLessThan, R::String, STRING, Ty::Bool),
        "toInteger" => sig(Method::ToInteger, R::StringOrNumber, NONE, Ty::Number),
        "toNumber" => sig(Method::ToNumber, R::String, NONE, Ty::Number),
        "parseUnixTime" => sig(Method::ParseUnixTime, R::StringOrNumber, NONE, Ty::DateTime),
        "parseWindowsTime" => sig(Method::ParseWindowsTime, R::StringOrNumber, NONE, Ty::DateTime),
        "parseStringTime" => sig(Method::ParseStringTime, R::String, NONE, Ty::DateTime),
        "plusDays" => unit_method(Method::Plus, Unit::Days, Ty::DateTime),
        "plusHours" => unit_method(Method::Plus, Unit::Hours, Ty::DateTime),
        "plusMinutes" => unit_method(Method::Plus, Unit::Minutes, Ty::DateTime),
        "plusSeconds" => unit_method(Method::Plus, Unit::Seconds, Ty::DateTime),
        "minusDays" => unit_method(Method::Minus, Unit::Days, Ty::DateTime),
        "minusHours" => unit_method(Method::Minus, Unit::Hours, Ty::DateTime),
        "minusMinutes" => unit_method(Method::Minus, Unit::Minutes, Ty::DateTime),
        "minusSeconds" => unit_method(Method::Minus, Unit::Seconds, Ty::DateTime),
        "withinDays" => unit_method(Method::Within, Unit::Days, Ty::Bool),
        "withinHours" => unit_method(Method::Within, Unit::Hours, Ty::Bool),
        "withinMinutes" => unit_method(Method::Within, Unit::Minutes, Ty::Bool),
        "withinSeconds" => unit_method(Method::Within, Unit::Seconds, Ty::Bool),
        "toUnix" => sig(Method::ToUnix, R::DateTime, NONE, Ty::String),
        "toWindows" => sig(Method::ToWindows, R::DateTime, NONE, Ty::String),
        "toString" => sig(Method::ToIsoString, R::DateTime, NONE, Ty::String),
        _ => return None,
    })
}

/// The static helper `class.name(first, …)` of Okta's classic dialect, as a method on its first
/// argument: the signature's receiver is that argument.
pub(super) fn static_helper(class: &str, name: &str) -> Option<Signature> {
    use Receiver as R;
    Some(match (class, name) {
        ("String", "stringContains") => sig(Method::StringContains, R::String, STRING, Ty::Bool),
        ("String", "len") => sig(Method::Length, R::String, NONE, Ty::Number),
        ("String", "toUpperCase") => sig(Method::ToUpperCase, R::String, NONE, Ty::String),
        ("String", "toLowerCase") => sig(Method::ToLowerCase, R::String, NONE, Ty::String),
        ("String", "substringBefore") => sig(Method::SubstringBefore, R::String, STRING, Ty::String),
        ("String", "substringAfter") => sig(Method::SubstringAfter, R::String, STRING, Ty::String),
        ("String", "substring") => sig(Method::Substring, R::String, &[Ty::Number; 2], Ty::String),
        ("String", "removeSpaces") => sig(Method::RemoveSpaces, R::String, NONE, Ty::String),
        ("String", "replace") => sig(Method::Replace, R::String, TWO_STRINGS, Ty::String),
        ("String", "replaceFirst") => sig(Method::ReplaceFirst, R::String, TWO_STRINGS, Ty::String),
        ("String", "append") => sig(Method::Append, R::String, STRING, Ty::String),
        ("Arrays", "contains") => sig(Method::ListContains, R::List, &[Ty::Any], Ty::Bool),
        ("Arrays", "size") => sig(Method::Size, R::List, NONE, Ty::Number),
        ("Arrays", "isEmpty") => sig(Method::ListIsEmpty, R::List, NONE, Ty::Bool),
        ("Convert", "toInt") => sig(Method::ToInteger, R::StringOrNumber, NONE, Ty::Number),
        ("Convert", "toNum") => sig(Method::ToNumber, R::String, NONE, Ty::Number),
        _ => return None,
    })
}

/// Why a documented Okta function is refused, so the author learns it is known but unsupported.
pub(super) fn unsupported_method(name: &str) -> Option<&'static str> {
    Some(match name {
        "add" | "remove" | "flatten" => "builds a new array, which a policy condition does not need",
        "parseCountryCode" | "toAlpha2" | "toAlpha3" | "toNumeric" | "toName" => {
            "needs the ISO 3166 country table, which policies do not carry"
        }
        "toZone" => "needs a time-zone database; date-times here are UTC",
        "isBefore" | "isAfter" | "isEqual" => "is not in Okta's dialect; compare date-times with <, >, or ==",
        "getGroups" => "returns group objects; use user.isMemberOf",
        "getLinkedObject" => "reads another user's profile, which the sign-in context does not hold",
        _ => return None,
    })
}

/// The name a method is written with, for messages.
pub(super) fn name(method: Method) -> &'static str {
    match method {
        Method::ToUpperCase => "toUpperCase",
        Method::ToLowerCase => "toLowerCase",
        Method::Substring => "substring",
        Method::Replace => "replace",
        Method::ReplaceFirst => "replaceFirst",
        Method::Length => "length",
        Method::RemoveSpaces => "removeSpaces",
        Method::Contains | Method::ListContains => "contains",
        Method::StringContains => "stringContains",
        Method::SubstringBefore => "substringBefore",
        Method::SubstringAfter => "substringAfter",
        Method::StartsWith => "startsWith",
        Method::EndsWith => "endsWith",
        Method::Append => "append",
        Method::IsEmpty | Method::ListIsEmpty => "isEmpty",
        Method::Size => "size",
        Method::VersionGreaterThan => "versionGreaterThan",
        Method::VersionLessThan => "versionLessThan",
        Method::ToInteger => "toInteger",
        Method::ToNumber => "toNumber",
        Method::ParseUnixTime => "parseUnixTime",
        Method::ParseWindowsTime => "parseWindowsTime",
        Method::ParseStringTime => "parseStringTime",
        Method::Plus(Unit::Days) => "plusDays",
        Method::Plus(Unit::Hours) => "plusHours",
        Method::Plus(Unit::Minutes) => "plusMinutes",
        Method::Plus(Unit::Seconds) => "plusSeconds",
        Method::Minus(Unit::Days) => "minusDays",
        Method::Minus(Unit::Hours) => "minusHours",
        Method::Minus(Unit::Minutes) => "minusMinutes",
        Method::Minus(Unit::Seconds) => "minusSeconds",
        Method::Within(Unit::Days) => "withinDays",
        Method::Within(Unit::Hours) => "withinHours",
        Method::Within(Unit::Minutes) => "withinMinutes",
        Method::Within(Unit::Seconds) => "withinSeconds",
        Method::ToUnix => "toUnix",
        Method::ToWindows => "toWindows",
        Method::ToIsoString => "toString",
    }
}

/// Characters that make a Java regular expression more than a literal, for `replaceFirst`.
pub(super) const REGEX_META: &[char] = &['\\', '^', '$', '.', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}'];

/// Milliseconds from 1601-01-01 (Windows FILETIME's epoch) to 1970-01-01.
const WINDOWS_EPOCH_MILLIS: i64 = 11_644_473_600_000;

/// Where a call is, for the reasons it can fail.
struct Site<'n> {
    method: Method,
    receiver: Option<&'n Arc<str>>,
}

impl Site<'_> {
    fn mismatch(&self, expected: &'static str, found: Ty) -> Undefined {
        Undefined::mismatch(self.receiver, name(self.method), expected, found)
    }

    fn invalid(&self, what: &'static str) -> Undefined {
        Undefined::invalid(self.receiver, what)
    }

    fn string<'a>(&self, value: Value<'a>) -> Result<Cow<'a, str>, Undefined> {
        match value {
            Value::Str(text) => Ok(text),
            other => Err(self.mismatch("a string", other.ty())),
        }
    }

    fn list<'a>(&self, value: &Value<'a>) -> Result<&'a [super::AttributeValue], Undefined> {
        match value {
            Value::List(items) => Ok(items),
            other => Err(self.mismatch("a list", other.ty())),
        }
    }

    fn date_time(&self, value: &Value<'_>) -> Result<i64, Undefined> {
        match value {
            Value::DateTime(millis) => Ok(*millis),
            other => Err(self.mismatch("a date-time", other.ty())),
        }
    }

    /// A whole number that fits Java's `int`, as Okta's int parameters need.
    fn int(&self, value: &Value<'_>) -> Result<i32, Undefined> {
        match value {
            Value::Number(n) if n.fract() == 0.0 && *n >= f64::from(i32::MIN) && *n <= f64::from(i32::MAX) => {
                // The guard just checked it is whole and in range, so the cast is exact.
                Ok(*n as i32)
            }
            Value::Number(_) => Err(self.invalid("is not a whole number in range")),
            other => Err(self.mismatch("a number", other.ty())),
        }
    }
}

/// Evaluates `receiver.method(args…)`.
pub(super) fn call<'a>(
    ev: &mut Evaluator<'a>,
    receiver: &'a Node,
    method: Method,
    args: &'a [Node],
) -> Result<Value<'a>, Undefined> {
    let site = Site {
        method,
        receiver: origin(receiver),
    };
    let this = ev.eval(receiver)?;
    let mut argv: [Value<'a>; MAX_ARGS] = std::array::from_fn(|_| Value::Null);
    for (slot, arg) in argv.iter_mut().zip(args) {
        *slot = ev.eval(arg)?;
    }
    let [first, second] = argv;
    let supplied = args.len();
    if let Value::Null = this {
        return Err(site.mismatch("a value", Ty::Null));
    }
    match method {
        Method::ToUpperCase | Method::ToLowerCase => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            Ok(Value::Str(change_case(text, method == Method::ToUpperCase)))
        }
        Method::Substring => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            let begin = site.int(&first)?;
            let end = if supplied > 1 { Some(site.int(&second)?) } else { None };
            substring(text, begin, end).ok_or_else(|| site.invalid("has no such substring"))
        }
        Method::Replace | Method::ReplaceFirst => {
            let text = site.string(this)?;
            let from = site.string(first)?;
            let to = site.string(second)?;
            let limit = if method == Method::Replace { usize::MAX } else { 1 };
            ev.charge_bytes(text.len())?;
            let count = text.matches(&*from).take(limit).count();
            if count == 0 {
                return Ok(Value::Str(text));
            }
            // Charged before allocating: the result can be far longer than the input.
            ev.charge_bytes(text.len().saturating_add(count.saturating_mul(to.len())))?;
            Ok(Value::Str(Cow::Owned(text.replacen(&*from, &to, limit))))
        }
        Method::Length => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            Ok(Value::Number(utf16_len(&text) as f64))
        }
        Method::RemoveSpaces => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            if text.contains(' ') {
                Ok(Value::Str(Cow::Owned(text.replace(' ', ""))))
            } else {
                Ok(Value::Str(text))
            }
        }
        Method::Contains => match this {
            Value::List(items) => Ok(Value::Bool(list_contains(ev, items, &first)?)),
            Value::Str(text) => {
                let needle = site.string(first)?;
                ev.charge_bytes(text.len())?;
                Ok(Value::Bool(text.contains(&*needle)))
            }
            other => Err(site.mismatch("a string or a list", other.ty())),
        },
        Method::StringContains => {
            let text = site.string(this)?;
            let needle = site.string(first)?;
            ev.charge_bytes(text.len())?;
            Ok(Value::Bool(text.contains(&*needle)))
        }
        Method::ListContains => {
            let items = site.list(&this)?;
            Ok(Value::Bool(list_contains(ev, items, &first)?))
        }
        Method::SubstringBefore => {
            let text = site.string(this)?;
            let separator = site.string(first)?;
            ev.charge_bytes(text.len())?;
            let end = if separator.is_empty() {
                Some(0)
            } else {
                text.find(&*separator)
            };
            let end = end.unwrap_or(text.len());
            slice(text, 0, end)
                .map(Value::Str)
                .ok_or_else(|| site.invalid("has no such substring"))
        }
        Method::SubstringAfter => {
            let text = site.string(this)?;
            let separator = site.string(first)?;
            ev.charge_bytes(text.len())?;
            let start = match text.find(&*separator) {
                Some(at) => at + separator.len(),
                None => text.len(),
            };
            let len = text.len();
            slice(text, start, len)
                .map(Value::Str)
                .ok_or_else(|| site.invalid("has no such substring"))
        }
        Method::StartsWith | Method::EndsWith => {
            let text = site.string(this)?;
            let affix = site.string(first)?;
            ev.charge_bytes(affix.len())?;
            let found = if method == Method::StartsWith {
                text.starts_with(&*affix)
            } else {
                text.ends_with(&*affix)
            };
            Ok(Value::Bool(found))
        }
        Method::Append => {
            let mut text = site.string(this)?;
            let suffix = site.string(first)?;
            ev.charge_bytes(text.len().saturating_add(suffix.len()))?;
            text.to_mut().push_str(&suffix);
            Ok(Value::Str(text))
        }
        Method::IsEmpty => match this {
            Value::List(items) => Ok(Value::Bool(items.is_empty())),
            Value::Str(text) => Ok(Value::Bool(text.is_empty())),
            other => Err(site.mismatch("a string or a list", other.ty())),
        },
        Method::ListIsEmpty => Ok(Value::Bool(site.list(&this)?.is_empty())),
        Method::Size => Ok(Value::Number(site.list(&this)?.len() as f64)),
        // The parser compiles these to `Node::CompareVersion`; this is the same comparison for a
        // tree built any other way.
        Method::VersionGreaterThan | Method::VersionLessThan => {
            let mine = parse_version(ev, &site, this)?;
            let theirs = parse_version(
                ev,
                &Site {
                    method,
                    receiver: args.first().and_then(origin),
                },
                first,
            )?;
            let wanted = if method == Method::VersionGreaterThan {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            Ok(Value::Bool(mine.cmp(&theirs) == wanted))
        }
        Method::ToInteger => {
            let number = match this {
                Value::Number(n) => n,
                Value::Str(text) => {
                    ev.charge_bytes(text.len())?;
                    parse_number(&text).ok_or_else(|| site.invalid("is not a number"))?
                }
                other => return Err(site.mismatch("a string or a number", other.ty())),
            };
            java_int(number)
                .map(|n| Value::Number(f64::from(n)))
                .ok_or_else(|| site.invalid("is not a number"))
        }
        Method::ToNumber => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            parse_number(&text)
                .map(Value::Number)
                .ok_or_else(|| site.invalid("is not a number"))
        }
        Method::ParseUnixTime | Method::ParseWindowsTime => {
            let count = match this {
                Value::Str(text) => {
                    ev.charge_bytes(text.len())?;
                    text.parse::<i64>().ok()
                }
                Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e18 => Some(n as i64),
                Value::Number(_) => None,
                other => return Err(site.mismatch("a string or a number", other.ty())),
            };
            let millis = match (method, count) {
                (Method::ParseUnixTime, Some(millis)) => Some(millis),
                (_, Some(ticks)) => ticks.div_euclid(10_000).checked_sub(WINDOWS_EPOCH_MILLIS),
                (_, None) => None,
            };
            millis
                .map(Value::DateTime)
                .ok_or_else(|| site.invalid("is not a timestamp"))
        }
        Method::ParseStringTime => {
            let text = site.string(this)?;
            ev.charge_bytes(text.len())?;
            datetime::parse_iso(&text)
                .map(Value::DateTime)
                .ok_or_else(|| site.invalid("is not an ISO-8601 date-time"))
        }
        Method::Plus(unit) | Method::Minus(unit) => {
            let at = site.date_time(&this)?;
            let amount = i64::from(site.int(&first)?);
            let amount = if matches!(method, Method::Minus(_)) {
                -amount
            } else {
                amount
            };
            amount
                .checked_mul(unit.millis())
                .and_then(|delta| at.checked_add(delta))
                .map(Value::DateTime)
                .ok_or_else(|| site.invalid("is out of range"))
        }
        Method::Within(unit) => {
            let at = site.date_time(&this)?;
            let amount = i128::from(site.int(&first)?);
            let distance = (i128::from(ev.now()) - i128::from(at)).abs();
            Ok(Value::Bool(distance <= amount * i128::from(unit.millis())))
        }
        Method::ToUnix => Ok(Value::Str(Cow::Owned(site.date_time(&this)?.to_string()))),
        Method::ToWindows => {
            let at = site.date_time(&this)?;
            at.checked_add(WINDOWS_EPOCH_MILLIS)
                .and_then(|millis| millis.checked_mul(10_000))
                .map(|ticks| Value::Str(Cow::Owned(ticks.to_string())))
                .ok_or_else(|| site.invalid("is out of range"))
        }
        Method::ToIsoString => datetime::format_iso(site.date_time(&this)?)
            .map(|text| Value::Str(Cow::Owned(text)))
            .ok_or_else(|| site.invalid("is out of range")),
    }
}

/// How `receiver` orders against `other` as versions (`versionGreaterThan`, `versionLessThan`),
/// using `parsed` for `other` when the parser already parsed it from a literal.
pub(super) fn compare_version<'a>(
    ev: &mut Evaluator<'a>,
    receiver: &'a Node,
    method: Method,
    other: &'a Node,
    parsed: Option<&Version>,
) -> Result<Ordering, Undefined> {
    let this = ev.eval(receiver)?;
    // The common case, an attribute against a literal, compares without building a version.
    if let (Some(theirs), Value::Str(text)) = (parsed, &this)
        && let Some(order) = theirs.compare_text(text)
    {
        ev.charge_bytes(text.len())?;
        return Ok(order);
    }
    let mine = parse_version(
        ev,
        &Site {
            method,
            receiver: origin(receiver),
        },
        this,
    )?;
    Ok(match parsed {
        Some(theirs) => mine.cmp(theirs),
        None => {
            let that = ev.eval(other)?;
            mine.cmp(&parse_version(
                ev,
                &Site {
                    method,
                    receiver: origin(other),
                },
                that,
            )?)
        }
    })
}

/// A value as a version, read the same way as everywhere else in the service.
fn parse_version(ev: &mut Evaluator<'_>, site: &Site<'_>, value: Value<'_>) -> Result<Version, Undefined> {
    let text = site.string(value)?;
    ev.charge_bytes(text.len())?;
    Version::parse(&text).ok_or_else(|| site.invalid("is not a version"))
}

/// Whether `items` holds a value equal to `needle`; values of another type are simply unequal,
/// as Okta documents `{1, 2, 3}.contains('one')` to be false.
fn list_contains(
    ev: &mut Evaluator<'_>,
    items: &[super::AttributeValue],
    needle: &Value<'_>,
) -> Result<bool, Undefined> {
    use super::AttributeValue as A;
    ev.charge_items(items.len())?;
    Ok(items.iter().any(|item| match (item, needle) {
        (A::Bool(a), Value::Bool(b)) => a == b,
        (A::Number(a), Value::Number(b)) => a == b,
        (A::String(a), Value::Str(b)) => a.as_str() == &**b,
        _ => false,
    }))
}

/// Changes case, borrowing when nothing changes (the common case for ASCII identifiers).
fn change_case(text: Cow<'_, str>, upper: bool) -> Cow<'_, str> {
    if text.is_ascii() {
        let needs_change = if upper {
            text.bytes().any(|b| b.is_ascii_lowercase())
        } else {
            text.bytes().any(|b| b.is_ascii_uppercase())
        };
        if !needs_change {
            return text;
        }
    }
    Cow::Owned(if upper {
        text.to_uppercase()
    } else {
        text.to_lowercase()
    })
}

/// Java's `String.length()`: UTF-16 code units, so lengths match what Okta computes.
pub(super) fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// The byte offset of UTF-16 offset `index`, or `None` when it falls inside a character or past
/// the end.
fn byte_offset(text: &str, index: usize) -> Option<usize> {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        if units == index {
            return Some(at);
        }
        if units > index {
            return None;
        }
        units += c.len_utf16();
    }
    (units == index).then_some(text.len())
}

/// Java's `substring(begin[, end])` in UTF-16 offsets; `None` where Java would throw.
fn substring(text: Cow<'_, str>, begin: i32, end: Option<i32>) -> Option<Value<'_>> {
    let begin = usize::try_from(begin).ok()?;
    let start = byte_offset(&text, begin)?;
    let stop = match end {
        Some(end) => byte_offset(&text, usize::try_from(end).ok()?)?,
        None => text.len(),
    };
    if start > stop {
        return None;
    }
    slice(text, start, stop).map(Value::Str)
}

/// `text[start..end]`, borrowed when `text` is.
fn slice(text: Cow<'_, str>, start: usize, end: usize) -> Option<Cow<'_, str>> {
    match text {
        Cow::Borrowed(borrowed) => borrowed.get(start..end).map(Cow::Borrowed),
        Cow::Owned(owned) => owned.get(start..end).map(|part| Cow::Owned(part.to_owned())),
    }
}

/// A decimal number as Java's `Double.parseDouble` reads it (surrounding spaces allowed);
/// infinities and NaN are refused.
fn parse_number(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    let plain = trimmed
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    let value: f64 = if plain { trimmed.parse().ok()? } else { return None };
    value.is_finite().then_some(value)
}

/// Okta's `toInteger`: Java's `(int) Math.round(x)`, which rounds half up and then wraps to 32
/// bits, as Okta documents (`2147483647.7` becomes `-2147483648`).
fn java_int(value: f64) -> Option<i32> {
    if !value.is_finite() {
        return None;
    }
    let floor = value.floor();
    let rounded = if value - floor >= 0.5 { floor + 1.0 } else { floor };
    // `as i64` saturates like Math.round's long result; `as i32` then wraps like Java's cast.
    Some(rounded as i64 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_integer_rounds_and_wraps_as_okta_documents() {
        assert_eq!(java_int(1.1), Some(1));
        assert_eq!(java_int(-1.6), Some(-2));
        assert_eq!(java_int(-1.5), Some(-1));
        assert_eq!(java_int(2.5), Some(3));
        assert_eq!(java_int(0.499_999_999_999_999_94), Some(0));
        assert_eq!(java_int(2_147_483_647.7), Some(-2_147_483_648));
        assert_eq!(java_int(-2_147_483_649.0), Some(2_147_483_647));
        assert_eq!(java_int(f64::NAN), None);
    }

    #[test]
    fn utf16_offsets_never_split_a_character() {
        let text = "a😀b";
        assert_eq!(utf16_len(text), 4);
        assert_eq!(byte_offset(text, 1), Some(1));
        assert_eq!(byte_offset(text, 2), None);
        assert_eq!(byte_offset(text, 3), Some(5));
        assert_eq!(byte_offset(text, 4), Some(6));
        assert_eq!(byte_offset(text, 5), None);
    }

    #[test]
    fn every_signature_fits_the_fixed_argument_array() {
        let names = [
            "toUpperCase",
            "toLowerCase",
            "substring",
            "replace",
            "replaceFirst",
            "length",
            "removeSpaces",
            "contains",
            "substringBefore",
            "substringAfter",
            "startsWith",
            "endsWith",
            "isEmpty",
            "size",
            "versionGreaterThan",
            "versionLessThan",
            "toInteger",
            "toNumber",
            "parseUnixTime",
            "parseWindowsTime",
            "parseStringTime",
            "plusDays",
            "plusHours",
            "plusMinutes",
            "plusSeconds",
            "minusDays",
            "minusHours",
            "minusMinutes",
            "minusSeconds",
            "withinDays",
            "withinHours",
            "withinMinutes",
            "withinSeconds",
            "toUnix",
            "toWindows",
            "toString",
        ];
        for name in names {
            let signature = method(name).unwrap();
            assert!(signature.params.len() <= MAX_ARGS, "{name}");
            assert_eq!(super::name(signature.method), name);
        }
        let statics = [
            ("String", "stringContains"),
            ("String", "len"),
            ("String", "toUpperCase"),
            ("String", "toLowerCase"),
            ("String", "substringBefore"),
            ("String", "substringAfter"),
            ("String", "substring"),
            ("String", "removeSpaces"),
            ("String", "replace"),
            ("String", "replaceFirst"),
            ("String", "append"),
            ("Arrays", "contains"),
            ("Arrays", "size"),
            ("Arrays", "isEmpty"),
            ("Convert", "toInt"),
            ("Convert", "toNum"),
        ];
        for (class, name) in statics {
            assert!(
                static_helper(class, name).unwrap().params.len() <= MAX_ARGS,
                "{class}.{name}"
            );
        }
    }
}
