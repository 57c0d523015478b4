//! AIP-160 filter subset for List/Count RPCs, compiled to a SQL `WHERE` fragment with `$n` placeholders.
//! Precedence, tightest first: `NOT`/`-`, then `OR`, then `AND` (explicit or by juxtaposition), so `a AND b OR c` is `a AND (b OR c)`.

/// Longest filter text accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;

/// Deepest nesting accepted, counting each `(` and each `NOT`/`-`.
pub const MAX_DEPTH: usize = 32;

/// Where a filter went wrong: byte offset into the filter text and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at {position}")]
pub struct FilterError {
    /// Byte offset (0-based) of the offending token.
    pub position: usize,
    /// Short human-readable reason.
    pub reason: String,
}

impl FilterError {
    fn new(position: usize, reason: impl Into<String>) -> Self {
        Self {
            position,
            reason: reason.into(),
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// Bound as TEXT.
    Text(String),
    /// Bound as a 64-bit INTEGER.
    Int(i64),
}

/// A compiled condition: SQL text using `$first..` placeholders, and the values bound to them in order.
///
/// The text never needs extra parentheses to be `AND`ed with other conditions: every `AND`/`OR`
/// group is parenthesised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqlCondition {
    /// The SQL fragment; empty when there is no condition.
    pub sql: String,
    /// Values for the placeholders, in placeholder order.
    pub values: Vec<SqlValue>,
}

/// How a filter field maps to storage.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    /// A TEXT column holding one of these upper-case names; the filter value must be one of them (case-insensitive input, stored upper-case). Only = and !=.
    Enum {
        /// Column name.
        column: &'static str,
        /// The allowed stored values, upper-case.
        values: &'static [&'static str],
    },
    /// An INTEGER column holding 0/1; value true/false. Only = and !=.
    Bool {
        /// Column name.
        column: &'static str,
    },
    /// An INTEGER column of microseconds since the Unix epoch (may be NULL); the value is an RFC 3339 timestamp. All six operators.
    ///
    /// A NULL column matches no comparison, and `NOT` keeps it that way through SQL three-valued logic.
    Timestamp {
        /// Column name.
        column: &'static str,
    },
    /// A TEXT column compared for equality only (=, !=).
    Text {
        /// Column name.
        column: &'static str,
    },
    /// Membership through another table: `sql_template` contains exactly one `{}` that is replaced by the placeholder,
    /// e.g. "id IN (SELECT device_id FROM device_users WHERE user_id = {})". `=` uses it as is, `!=` wraps it in NOT (...). Only = and !=.
    Membership {
        /// SQL with exactly one `{}`.
        sql_template: &'static str,
    },
}

/// A filter field: the name users type and its storage.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The name used in filter text (case-sensitive).
    pub name: &'static str,
    /// How the field is stored.
    pub kind: FieldKind,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Operator {
    /// The operator as written in filter text.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Ne => "<>",
            other => other.symbol(),
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, Self::Eq | Self::Ne)
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A single- or double-quoted string, escapes resolved.
    Quoted(String),
    /// An unquoted word such as `WINDOWS`, `true` or `2024-05-01T00:00:00Z`.
    Bare(String),
    /// An unquoted integer written canonically (`007` or `+7` stay [`Value::Bare`] so their spelling survives).
    Int(i64),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Self::Quoted(text) | Self::Bare(text) => text.clone(),
            Self::Int(n) => n.to_string(),
        }
    }
}

/// `field OP value`, with the byte positions of its three tokens for error reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Field name as written.
    pub field: String,
    /// Byte offset of the field name.
    pub field_position: usize,
    /// The operator.
    pub operator: Operator,
    /// Byte offset of the operator.
    pub operator_position: usize,
    /// The value.
    pub value: Value,
    /// Byte offset of the value (its opening quote if quoted).
    pub value_position: usize,
}

/// The parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A single comparison.
    Compare(Comparison),
    /// `NOT x` or `-x`.
    Not(Box<Expr>),
    /// All must hold; the parser produces at least two operands, flattened so long chains stay shallow.
    And(Vec<Expr>),
    /// Any must hold; the parser produces at least two operands.
    Or(Vec<Expr>),
}

/// Parses filter text. Empty text gives Ok(None).
pub fn parse(text: &str) -> Result<Option<Expr>, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError::new(
            MAX_FILTER_LEN,
            format!("filter is longer than {MAX_FILTER_LEN} bytes"),
        ));
    }
    if text.chars().all(is_space) {
        return Ok(None);
    }
    let mut parser = Parser {
        src: text,
        pos: 0,
        depth: 0,
    };
    let expr = parser.expression()?;
    parser.skip_space();
    match parser.peek() {
        None => Ok(Some(expr)),
        Some(c) => Err(unexpected(c, parser.pos)),
    }
}

/// Compiles a parsed filter against `fields`, numbering placeholders from `first_placeholder` (1-based; 0 is taken as 1).
/// Unknown fields, operators a field does not allow and bad values are errors with the position of the offending token.
pub fn compile(expr: &Expr, fields: &[Field], first_placeholder: usize) -> Result<SqlCondition, FilterError> {
    let mut compiler = Compiler {
        fields,
        next: first_placeholder.max(1),
        out: SqlCondition::default(),
    };
    compiler.expr(expr)?;
    Ok(compiler.out)
}

/// parse + compile; empty text gives an empty SqlCondition (sql == "").
pub fn compile_filter(text: &str, fields: &[Field], first_placeholder: usize) -> Result<SqlCondition, FilterError> {
    match parse(text)? {
        Some(expr) => compile(&expr, fields, first_placeholder),
        None => Ok(SqlCondition::default()),
    }
}

/// Parses an RFC 3339 timestamp into microseconds since the Unix epoch.
///
/// Accepts `T`/`t`, `Z`/`z` or a `±HH:MM` offset, and any number of fraction digits (truncated to
/// microseconds). Leap seconds (`:60`) are rejected.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let year = digits(b, 0, 4)?;
    literal(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    literal(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    literal(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    literal(b, 16, b':')?;
    let second = digits(b, 17, 2)?;

    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i)
            && d.is_ascii_digit()
        {
            if i - start < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        let count = i - start;
        if count == 0 {
            return None;
        }
        for _ in count..6 {
            micros *= 10;
        }
    }

    let offset_seconds = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let offset_hour = digits(b, i + 1, 2)?;
            literal(b, i + 3, b':')?;
            let offset_minute = digits(b, i + 4, 2)?;
            if offset_hour > 23 || offset_minute > 59 {
                return None;
            }
            i += 6;
            let seconds = offset_hour * 3600 + offset_minute * 60;
            if sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }

    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

fn digits(b: &[u8], start: usize, count: usize) -> Option<i64> {
    b.get(start..start + count)?.iter().try_fold(0i64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn literal(b: &[u8], at: usize, expected: u8) -> Option<()> {
    (b.get(at) == Some(&expected)).then_some(())
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.')
}

// Wide enough for unquoted timestamps like 2024-05-01T00:00:00+02:00.
fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '+')
}

fn unexpected(c: char, position: usize) -> FilterError {
    FilterError::new(position, format!("unexpected {c:?}"))
}

/// Recursive descent over the text; `pos` only ever advances by whole chars, so slicing at it is safe.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek()
            && is_space(c)
        {
            self.pos += c.len_utf8();
        }
    }

    fn take_while(&mut self, keep: fn(char) -> bool) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek()
            && keep(c)
        {
            self.pos += c.len_utf8();
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// Whether a whole-word keyword starts here, so `ORDER` is not read as `OR`.
    fn at_keyword(&self, keyword: &str) -> bool {
        self.rest()
            .strip_prefix(keyword)
            .is_some_and(|after| !after.chars().next().is_some_and(is_ident_char))
    }

    fn enter(&mut self, position: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                position,
                format!("filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// expression: sequence {AND sequence}
    fn expression(&mut self) -> Result<Expr, FilterError> {
        let mut operands = Vec::new();
        self.sequence(&mut operands)?;
        loop {
            self.skip_space();
            if !self.at_keyword("AND") {
                break;
            }
            self.pos += "AND".len();
            self.sequence(&mut operands)?;
        }
        Ok(group(operands, Expr::And))
    }

    /// sequence: factor {factor} — juxtaposition means AND, so operands join the caller's AND.
    fn sequence(&mut self, operands: &mut Vec<Expr>) -> Result<(), FilterError> {
        operands.push(self.factor()?);
        loop {
            self.skip_space();
            if self.peek().is_none_or(|c| c == ')') || self.at_keyword("AND") {
                return Ok(());
            }
            operands.push(self.factor()?);
        }
    }

    /// factor: term {OR term}
    fn factor(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.term()?];
        loop {
            self.skip_space();
            if !self.at_keyword("OR") {
                break;
            }
            self.pos += "OR".len();
            operands.push(self.term()?);
        }
        Ok(group(operands, Expr::Or))
    }

    /// term: [NOT | -] term | ( expression ) | comparison
    fn term(&mut self) -> Result<Expr, FilterError> {
        self.skip_space();
        let start = self.pos;
        let negation_len = if self.at_keyword("NOT") {
            Some("NOT".len())
        } else if self.peek() == Some('-') {
            Some(1)
        } else {
            None
        };
        if let Some(len) = negation_len {
            self.enter(start)?;
            self.pos += len;
            let inner = self.term()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        match self.peek() {
            Some('(') => {
                self.enter(start)?;
                self.pos += 1;
                let inner = self.expression()?;
                self.skip_space();
                if self.peek() != Some(')') {
                    return Err(FilterError::new(start, "unclosed '('"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(c) if is_ident_start(c) => self.comparison(),
            Some(c) => Err(unexpected(c, start)),
            None => Err(FilterError::new(start, "expected a comparison")),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let field_position = self.pos;
        let field = self.take_while(is_ident_char).to_owned();
        if field == "AND" || field == "OR" {
            return Err(FilterError::new(field_position, format!("unexpected '{field}'")));
        }
        self.skip_space();
        let operator_position = self.pos;
        let operator = self
            .operator()
            .ok_or_else(|| FilterError::new(operator_position, format!("expected an operator after '{field}'")))?;
        self.skip_space();
        let value_position = self.pos;
        let value = self.value(operator, value_position)?;
        // Without this, `a = "x"b = 1` would silently read as two comparisons.
        if let Some(c) = self.peek()
            && !is_space(c)
            && c != ')'
        {
            return Err(unexpected(c, self.pos));
        }
        Ok(Expr::Compare(Comparison {
            field,
            field_position,
            operator,
            operator_position,
            value,
            value_position,
        }))
    }

    fn operator(&mut self) -> Option<Operator> {
        // Two-character operators first so `<=` is not read as `<` followed by `=`.
        const OPERATORS: [(&str, Operator); 6] = [
            ("<=", Operator::Le),
            (">=", Operator::Ge),
            ("!=", Operator::Ne),
            ("=", Operator::Eq),
            ("<", Operator::Lt),
            (">", Operator::Gt),
        ];
        let (symbol, operator) = OPERATORS
            .into_iter()
            .find(|(symbol, _)| self.rest().starts_with(symbol))?;
        self.pos += symbol.len();
        Some(operator)
    }

    fn value(&mut self, operator: Operator, position: usize) -> Result<Value, FilterError> {
        let missing = || FilterError::new(position, format!("expected a value after '{}'", operator.symbol()));
        match self.peek() {
            Some(quote @ ('"' | '\'')) => self.quoted(quote).map(Value::Quoted),
            Some(c) if is_bare_char(c) => {
                let word = self.take_while(is_bare_char);
                if matches!(word, "AND" | "OR" | "NOT") {
                    return Err(missing());
                }
                Ok(match word.parse::<i64>() {
                    Ok(n) if n.to_string() == word => Value::Int(n),
                    _ => Value::Bare(word.to_owned()),
                })
            }
            _ => Err(missing()),
        }
    }

    fn quoted(&mut self, quote: char) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += quote.len_utf8();
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(FilterError::new(open, "unterminated string")),
                Some(c) if c == quote => {
                    self.pos += c.len_utf8();
                    return Ok(text);
                }
                Some('\\') => {
                    let escape = self.pos;
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(FilterError::new(open, "unterminated string")),
                        Some(c @ ('"' | '\'' | '\\')) => {
                            text.push(c);
                            self.pos += 1;
                        }
                        Some(c) => {
                            return Err(FilterError::new(
                                escape,
                                format!("unknown escape '\\{}'", c.escape_default()),
                            ));
                        }
                    }
                }
                // Control characters match nothing stored (enrollment refuses them) and PostgreSQL
                // rejects NUL in text outright; refuse them here so both databases agree.
                Some(c) if c.is_control() => {
                    return Err(FilterError::new(self.pos, "control character in string"));
                }
                Some(c) => {
                    text.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

fn group(mut operands: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if operands.len() == 1
        && let Some(only) = operands.pop()
    {
        return only;
    }
    make(operands)
}

struct Compiler<'f> {
    fields: &'f [Field],
    next: usize,
    out: SqlCondition,
}

impl Compiler<'_> {
    fn expr(&mut self, expr: &Expr) -> Result<(), FilterError> {
        match expr {
            Expr::Compare(comparison) => self.comparison(comparison),
            Expr::Not(inner) => {
                // A multi-operand group already brings its own parentheses.
                let grouped = matches!(&**inner, Expr::And(v) | Expr::Or(v) if v.len() > 1);
                self.out.sql.push_str(if grouped { "NOT " } else { "NOT (" });
                self.expr(inner)?;
                if !grouped {
                    self.out.sql.push(')');
                }
                Ok(())
            }
            Expr::And(operands) => self.group(operands, " AND ", "1 = 1"),
            Expr::Or(operands) => self.group(operands, " OR ", "1 = 0"),
        }
    }

    fn group(&mut self, operands: &[Expr], joiner: &str, empty: &str) -> Result<(), FilterError> {
        match operands {
            [] => self.out.sql.push_str(empty),
            [only] => self.expr(only)?,
            _ => {
                self.out.sql.push('(');
                for (i, operand) in operands.iter().enumerate() {
                    if i > 0 {
                        self.out.sql.push_str(joiner);
                    }
                    self.expr(operand)?;
                }
                self.out.sql.push(')');
            }
        }
        Ok(())
    }

    fn placeholder(&mut self, value: SqlValue) -> String {
        let placeholder = format!("${}", self.next);
        self.next += 1;
        self.out.values.push(value);
        placeholder
    }

    fn column(&mut self, column: &str, operator: Operator, value: SqlValue) {
        let placeholder = self.placeholder(value);
        self.out.sql.push_str(column);
        self.out.sql.push(' ');
        self.out.sql.push_str(operator.sql());
        self.out.sql.push(' ');
        self.out.sql.push_str(&placeholder);
    }

    fn comparison(&mut self, c: &Comparison) -> Result<(), FilterError> {
        let field = self
            .fields
            .iter()
            .find(|f| f.name == c.field)
            .ok_or_else(|| FilterError::new(c.field_position, format!("unknown field '{}'", c.field)))?;
        let ordered = matches!(field.kind, FieldKind::Timestamp { .. });
        if !ordered && !c.operator.is_equality() {
            return Err(FilterError::new(
                c.operator_position,
                format!("'{}' is not allowed on field '{}'", c.operator.symbol(), field.name),
            ));
        }
        let text = c.value.text();
        let shown = text.escape_debug();
        match field.kind {
            FieldKind::Enum { column, values } => {
                let stored = values.iter().find(|v| v.eq_ignore_ascii_case(&text)).ok_or_else(|| {
                    FilterError::new(
                        c.value_position,
                        format!(
                            "invalid value '{shown}' for field '{}' (expected one of {})",
                            field.name,
                            values.join(", ")
                        ),
                    )
                })?;
                self.column(column, c.operator, SqlValue::Text((*stored).to_owned()));
            }
            FieldKind::Bool { column } => {
                let flag = if text.eq_ignore_ascii_case("true") {
                    1
                } else if text.eq_ignore_ascii_case("false") {
                    0
                } else {
                    return Err(FilterError::new(
                        c.value_position,
                        format!(
                            "invalid value '{shown}' for field '{}' (expected true or false)",
                            field.name
                        ),
                    ));
                };
                self.column(column, c.operator, SqlValue::Int(flag));
            }
            FieldKind::Timestamp { column } => {
                let micros = match c.value {
                    Value::Int(_) => None,
                    _ => parse_rfc3339_micros(&text),
                }
                .ok_or_else(|| FilterError::new(c.value_position, format!("invalid timestamp '{shown}'")))?;
                self.column(column, c.operator, SqlValue::Int(micros));
            }
            FieldKind::Text { column } => self.column(column, c.operator, SqlValue::Text(text)),
            FieldKind::Membership { sql_template } => {
                if sql_template.matches("{}").count() != 1 {
                    return Err(FilterError::new(
                        c.field_position,
                        format!("field '{}' has a malformed SQL template", field.name),
                    ));
                }
                let placeholder = self.placeholder(SqlValue::Text(text));
                let sql = sql_template.replacen("{}", &placeholder, 1);
                if c.operator == Operator::Ne {
                    self.out.sql.push_str("NOT (");
                    self.out.sql.push_str(&sql);
                    self.out.sql.push(')');
                } else {
                    self.out.sql.push_str(&sql);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEVICE_FIELDS: &[Field] = &[
        Field {
            name: "platform",
            kind: FieldKind::Enum {
                column: "platform",
                values: &["WINDOWS", "MACOS", "LINUX"],
            },
        },
        Field {
            name: "status",
            kind: FieldKind::Enum {
                column: "status",
                values: &["ACTIVE", "SUSPENDED"],
            },
        },
        Field {
            name: "managed",
            kind: FieldKind::Bool { column: "managed" },
        },
        Field {
            name: "user_id",
            kind: FieldKind::Membership {
                sql_template: "id IN (SELECT device_id FROM device_users WHERE user_id = {})",
            },
        },
        Field {
            name: "create_time",
            kind: FieldKind::Timestamp {
                column: "create_time_us",
            },
        },
        Field {
            name: "last_seen_time",
            kind: FieldKind::Timestamp { column: "last_seen_us" },
        },
    ];

    const EVENT_FIELDS: &[Field] = &[
        Field {
            name: "device_id",
            kind: FieldKind::Text { column: "device_id" },
        },
        Field {
            name: "user_id",
            kind: FieldKind::Text { column: "user_id" },
        },
    ];

    const MAY_1_2024: i64 = 1_714_521_600_000_000;

    fn compiled(text: &str) -> SqlCondition {
        compile_filter(text, DEVICE_FIELDS, 1).unwrap()
    }

    fn sql(text: &str) -> String {
        compiled(text).sql
    }

    fn error(text: &str) -> String {
        compile_filter(text, DEVICE_FIELDS, 1).unwrap_err().to_string()
    }

    fn text(value: &str) -> SqlValue {
        SqlValue::Text(value.to_owned())
    }

    #[test]
    fn empty_and_whitespace_filters_give_no_condition() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse(" \t\r\n ").unwrap(), None);
        assert_eq!(compiled("  "), SqlCondition::default());
    }

    #[test]
    fn enum_field_supports_equals_and_not_equals_case_insensitively() {
        assert_eq!(
            compiled("platform = windows"),
            SqlCondition {
                sql: "platform = $1".into(),
                values: vec![text("WINDOWS")],
            }
        );
        assert_eq!(
            compiled("platform != \"MacOS\""),
            SqlCondition {
                sql: "platform <> $1".into(),
                values: vec![text("MACOS")],
            }
        );
    }

    #[test]
    fn enum_field_rejects_ordering_operators_at_the_operator() {
        assert_eq!(
            error("platform > WINDOWS"),
            "'>' is not allowed on field 'platform' at 9"
        );
        assert_eq!(error("platform>=LINUX"), "'>=' is not allowed on field 'platform' at 8");
        assert_eq!(error("status < ACTIVE"), "'<' is not allowed on field 'status' at 7");
        assert_eq!(error("status <= ACTIVE"), "'<=' is not allowed on field 'status' at 7");
    }

    #[test]
    fn enum_value_outside_the_list_is_rejected_at_the_value() {
        assert_eq!(
            error("platform = BEOS"),
            "invalid value 'BEOS' for field 'platform' (expected one of WINDOWS, MACOS, LINUX) at 11"
        );
        assert_eq!(
            error("platform = 7"),
            "invalid value '7' for field 'platform' (expected one of WINDOWS, MACOS, LINUX) at 11"
        );
    }

    #[test]
    fn bool_field_binds_one_and_zero() {
        assert_eq!(
            compiled("managed = true"),
            SqlCondition {
                sql: "managed = $1".into(),
                values: vec![SqlValue::Int(1)],
            }
        );
        assert_eq!(
            compiled("managed != false"),
            SqlCondition {
                sql: "managed <> $1".into(),
                values: vec![SqlValue::Int(0)],
            }
        );
        assert_eq!(compiled("managed = \"TRUE\"").values, [SqlValue::Int(1)]);
    }

    #[test]
    fn bool_field_rejects_other_values_and_ordering() {
        assert_eq!(
            error("managed = yes"),
            "invalid value 'yes' for field 'managed' (expected true or false) at 10"
        );
        assert_eq!(
            error("managed = 1"),
            "invalid value '1' for field 'managed' (expected true or false) at 10"
        );
        assert_eq!(error("managed < true"), "'<' is not allowed on field 'managed' at 8");
    }

    #[test]
    fn timestamp_field_supports_all_six_operators() {
        for (op, sql_op) in [
            ("=", "="),
            ("!=", "<>"),
            ("<", "<"),
            ("<=", "<="),
            (">", ">"),
            (">=", ">="),
        ] {
            assert_eq!(
                compiled(&format!("create_time {op} \"2024-05-01T00:00:00Z\"")),
                SqlCondition {
                    sql: format!("create_time_us {sql_op} $1"),
                    values: vec![SqlValue::Int(MAY_1_2024)],
                }
            );
        }
    }

    #[test]
    fn timestamp_may_be_unquoted_or_single_quoted() {
        assert_eq!(
            compiled("last_seen_time < 2024-05-01T02:00:00+02:00").values,
            [SqlValue::Int(MAY_1_2024)]
        );
        assert_eq!(
            compiled("last_seen_time < '2024-05-01T00:00:00.25Z'").values,
            [SqlValue::Int(MAY_1_2024 + 250_000)]
        );
    }

    #[test]
    fn invalid_timestamp_is_rejected_at_the_value() {
        assert_eq!(
            error("create_time >= \"2024-13-01\""),
            "invalid timestamp '2024-13-01' at 15"
        );
        assert_eq!(
            error("create_time > 1714521600"),
            "invalid timestamp '1714521600' at 14"
        );
    }

    #[test]
    fn text_field_supports_equality_only() {
        let condition = compile_filter("device_id = \"d-1\"", EVENT_FIELDS, 1).unwrap();
        assert_eq!(
            condition,
            SqlCondition {
                sql: "device_id = $1".into(),
                values: vec![text("d-1")],
            }
        );
        let condition = compile_filter("device_id != d-2", EVENT_FIELDS, 1).unwrap();
        assert_eq!(condition.sql, "device_id <> $1");
        assert_eq!(condition.values, [text("d-2")]);
        let err = compile_filter("device_id > d", EVENT_FIELDS, 1).unwrap_err();
        assert_eq!(err.to_string(), "'>' is not allowed on field 'device_id' at 10");
    }

    #[test]
    fn text_field_binds_numbers_with_their_spelling() {
        let condition = compile_filter("user_id = 42 device_id = 007", EVENT_FIELDS, 1).unwrap();
        assert_eq!(condition.values, [text("42"), text("007")]);
        let condition = compile_filter("user_id = 99999999999999999999", EVENT_FIELDS, 1).unwrap();
        assert_eq!(condition.values, [text("99999999999999999999")]);
    }

    #[test]
    fn membership_field_substitutes_the_placeholder_and_negates_with_not() {
        assert_eq!(
            compiled("user_id = \"u1\""),
            SqlCondition {
                sql: "id IN (SELECT device_id FROM device_users WHERE user_id = $1)".into(),
                values: vec![text("u1")],
            }
        );
        assert_eq!(
            sql("user_id != u1"),
            "NOT (id IN (SELECT device_id FROM device_users WHERE user_id = $1))"
        );
        assert_eq!(error("user_id >= u1"), "'>=' is not allowed on field 'user_id' at 8");
    }

    #[test]
    fn membership_template_without_one_placeholder_is_an_error_not_a_panic() {
        let fields = [Field {
            name: "group",
            kind: FieldKind::Membership {
                sql_template: "id IN (SELECT 1)",
            },
        }];
        let err = compile_filter("group = g", &fields, 1).unwrap_err();
        assert_eq!(err.to_string(), "field 'group' has a malformed SQL template at 0");
    }

    #[test]
    fn and_joins_comparisons_in_one_group() {
        assert_eq!(
            compiled("platform = LINUX AND managed = true AND status = ACTIVE"),
            SqlCondition {
                sql: "(platform = $1 AND managed = $2 AND status = $3)".into(),
                values: vec![text("LINUX"), SqlValue::Int(1), text("ACTIVE")],
            }
        );
    }

    #[test]
    fn or_joins_comparisons_in_one_group() {
        assert_eq!(
            sql("platform = LINUX OR platform = MACOS"),
            "(platform = $1 OR platform = $2)"
        );
    }

    #[test]
    fn or_binds_tighter_than_and() {
        assert_eq!(
            sql("managed = true AND platform = LINUX OR platform = MACOS"),
            "(managed = $1 AND (platform = $2 OR platform = $3))"
        );
        assert_eq!(
            sql("platform = LINUX OR platform = MACOS AND managed = true"),
            "((platform = $1 OR platform = $2) AND managed = $3)"
        );
    }

    #[test]
    fn juxtaposition_is_an_implicit_and_looser_than_or() {
        assert_eq!(
            sql("platform = LINUX managed = true"),
            "(platform = $1 AND managed = $2)"
        );
        assert_eq!(
            sql("managed = true platform = LINUX OR platform = MACOS"),
            "(managed = $1 AND (platform = $2 OR platform = $3))"
        );
        assert_eq!(
            sql("managed = true status = ACTIVE AND platform = LINUX"),
            "(managed = $1 AND status = $2 AND platform = $3)"
        );
    }

    #[test]
    fn not_and_minus_negate_and_bind_tightest() {
        assert_eq!(sql("NOT managed = true"), "NOT (managed = $1)");
        assert_eq!(sql("-managed = true"), "NOT (managed = $1)");
        assert_eq!(
            sql("NOT platform = LINUX OR managed = true"),
            "(NOT (platform = $1) OR managed = $2)"
        );
        assert_eq!(
            sql("managed = true -platform = LINUX"),
            "(managed = $1 AND NOT (platform = $2))"
        );
        assert_eq!(sql("NOT NOT managed = true"), "NOT (NOT (managed = $1))");
    }

    #[test]
    fn not_on_a_nullable_timestamp_wraps_the_comparison() {
        assert_eq!(
            compiled("NOT last_seen_time < \"2024-05-01T00:00:00Z\""),
            SqlCondition {
                sql: "NOT (last_seen_us < $1)".into(),
                values: vec![SqlValue::Int(MAY_1_2024)],
            }
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(
            sql("(managed = true AND platform = LINUX) OR platform = MACOS"),
            "((managed = $1 AND platform = $2) OR platform = $3)"
        );
        assert_eq!(
            sql("NOT (platform = LINUX OR platform = MACOS)"),
            "NOT (platform = $1 OR platform = $2)"
        );
        assert_eq!(sql("((managed = true))"), "managed = $1");
        assert_eq!(
            sql("NOT(managed = true)AND(platform = LINUX)"),
            "(NOT (managed = $1) AND platform = $2)"
        );
    }

    #[test]
    fn keywords_are_case_sensitive_whole_words() {
        assert_eq!(
            error("managed = true and platform = LINUX"),
            "expected an operator after 'and' at 19"
        );
        assert_eq!(error("ORDER = 1"), "unknown field 'ORDER' at 0");
        assert_eq!(error("NOTE = 1"), "unknown field 'NOTE' at 0");
    }

    #[test]
    fn placeholders_are_numbered_from_the_given_offset() {
        let condition = compile_filter("platform = LINUX OR user_id != u1", DEVICE_FIELDS, 4).unwrap();
        assert_eq!(
            condition.sql,
            "(platform = $4 OR NOT (id IN (SELECT device_id FROM device_users WHERE user_id = $5)))"
        );
        assert_eq!(condition.values, [text("LINUX"), text("u1")]);
        assert_eq!(
            compile_filter("managed = true", DEVICE_FIELDS, 0).unwrap().sql,
            "managed = $1"
        );
    }

    #[test]
    fn quoted_strings_resolve_escapes() {
        let condition = compile_filter(r#"device_id = "a \"b\" \\ c" user_id = 'it\'s "x"'"#, EVENT_FIELDS, 1).unwrap();
        assert_eq!(condition.values, [text(r#"a "b" \ c"#), text(r#"it's "x""#)]);
        let condition = compile_filter("device_id = \"AND ü (\"", EVENT_FIELDS, 1).unwrap();
        assert_eq!(condition.values, [text("AND ü (")]);
    }

    #[test]
    fn parse_builds_a_tree_with_token_positions() {
        let expr = parse("a = 1 OR NOT b != \"x\"").unwrap().unwrap();
        assert_eq!(
            expr,
            Expr::Or(vec![
                Expr::Compare(Comparison {
                    field: "a".into(),
                    field_position: 0,
                    operator: Operator::Eq,
                    operator_position: 2,
                    value: Value::Int(1),
                    value_position: 4,
                }),
                Expr::Not(Box::new(Expr::Compare(Comparison {
                    field: "b".into(),
                    field_position: 13,
                    operator: Operator::Ne,
                    operator_position: 15,
                    value: Value::Quoted("x".into()),
                    value_position: 18,
                }))),
            ])
        );
        let expr = parse("n = -5 m = +5 w = WINDOWS").unwrap().unwrap();
        let Expr::And(operands) = expr else {
            panic!("expected AND, got {expr:?}")
        };
        let values: Vec<_> = operands
            .iter()
            .map(|e| match e {
                Expr::Compare(c) => c.value.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            values,
            [Value::Int(-5), Value::Bare("+5".into()), Value::Bare("WINDOWS".into())]
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_its_position() {
        assert_eq!(error("colour = RED"), "unknown field 'colour' at 0");
        assert_eq!(
            error("managed = true AND (colour = RED)"),
            "unknown field 'colour' at 20"
        );
    }

    #[test]
    fn missing_value_is_rejected_where_the_value_should_be() {
        assert_eq!(error("status = "), "expected a value after '=' at 9");
        assert_eq!(error("status = AND managed = true"), "expected a value after '=' at 9");
        assert_eq!(error("(status !=)"), "expected a value after '!=' at 10");
        assert_eq!(error("status == ACTIVE"), "expected a value after '=' at 8");
    }

    #[test]
    fn missing_operator_is_rejected_after_the_field() {
        assert_eq!(error("platform WINDOWS"), "expected an operator after 'platform' at 9");
        assert_eq!(error("platform"), "expected an operator after 'platform' at 8");
        assert_eq!(error("platform : X"), "expected an operator after 'platform' at 9");
    }

    #[test]
    fn unterminated_string_points_at_its_opening_quote() {
        assert_eq!(error("user_id = \"abc"), "unterminated string at 10");
        assert_eq!(error("user_id = 'abc\\'"), "unterminated string at 10");
        assert_eq!(error("user_id = \"abc\\"), "unterminated string at 10");
    }

    #[test]
    fn unknown_escape_points_at_the_backslash() {
        assert_eq!(error("user_id = \"a\\nb\""), "unknown escape '\\n' at 12");
    }

    #[test]
    fn unbalanced_parentheses_are_rejected() {
        assert_eq!(error("(managed = true"), "unclosed '(' at 0");
        assert_eq!(error("managed = true)"), "unexpected ')' at 14");
        assert_eq!(error("()"), "unexpected ')' at 1");
    }

    #[test]
    fn dangling_or_misplaced_keywords_are_rejected() {
        assert_eq!(error("managed = true AND"), "expected a comparison at 18");
        assert_eq!(error("managed = true OR "), "expected a comparison at 18");
        assert_eq!(error("NOT"), "expected a comparison at 3");
        assert_eq!(error("-"), "expected a comparison at 1");
        assert_eq!(error("AND managed = true"), "unexpected 'AND' at 0");
        assert_eq!(error("managed = true OR OR platform = LINUX"), "unexpected 'OR' at 18");
    }

    #[test]
    fn stray_characters_are_rejected_at_their_position() {
        assert_eq!(error("platform = WINDOWS, status = ACTIVE"), "unexpected ',' at 18");
        assert_eq!(error("user_id = \"a\"b = 1"), "unexpected 'b' at 13");
        assert_eq!(error("= 1"), "unexpected '=' at 0");
        assert_eq!(error("é = 1"), "unexpected 'é' at 0");
        assert_eq!(error("managed = tr\u{e9}"), "unexpected 'é' at 12");
    }

    #[test]
    fn filter_longer_than_the_limit_is_rejected() {
        let at_limit = format!("managed = true{}", " ".repeat(MAX_FILTER_LEN - 14));
        assert_eq!(at_limit.len(), MAX_FILTER_LEN);
        assert_eq!(sql(&at_limit), "managed = $1");
        assert_eq!(
            error(&" ".repeat(MAX_FILTER_LEN + 1)),
            "filter is longer than 2048 bytes at 2048"
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_rejected() {
        let nested = |n: usize| format!("{}managed = true{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(sql(&nested(MAX_DEPTH)), "managed = $1");
        assert_eq!(
            error(&nested(MAX_DEPTH + 1)),
            "filter nests deeper than 32 levels at 32"
        );
        assert_eq!(
            error(&format!("{}managed = true", "NOT ".repeat(MAX_DEPTH + 1))),
            "filter nests deeper than 32 levels at 128"
        );
        assert_eq!(
            error(&format!("{}managed = true", "-".repeat(MAX_DEPTH + 1))),
            "filter nests deeper than 32 levels at 32"
        );
        // Siblings do not add up: depth is released when a group closes.
        let siblings = vec![nested(MAX_DEPTH / 2); 20].join(" OR ");
        assert!(compile_filter(&siblings, DEVICE_FIELDS, 1).is_ok());
    }

    #[test]
    fn long_flat_chains_compile_without_deep_recursion() {
        let chain = vec!["managed = true"; 100].join(" AND ");
        assert!(chain.len() <= MAX_FILTER_LEN);
        let condition = compiled(&chain);
        assert_eq!(condition.values.len(), 100);
        assert!(condition.sql.ends_with("managed = $100)"));
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let corpus = [
            "platform = \"ü\" é = 1",
            "((((NOT -(a = 'x\\",
            "create_time >= \"2024-02-30T00:00:00Z\" OR last_seen_time < 2024-01-01T00:00:00.123456789+05:30",
            "\u{0}\u{7f}\"'\\()-=!<>",
            "a=\"日本\" b='\u{1F600}' NOT(c!=d)",
            "user_id = '",
        ];
        for input in corpus {
            for (end, _) in input.char_indices().chain([(input.len(), ' ')]) {
                let prefix = &input[..end];
                let _ = compile_filter(prefix, DEVICE_FIELDS, 1);
                let _ = compile_filter(prefix, EVENT_FIELDS, 3);
                let _ = parse_rfc3339_micros(prefix);
            }
        }
    }

    #[test]
    fn compile_handles_hand_built_degenerate_groups() {
        assert_eq!(compile(&Expr::And(vec![]), DEVICE_FIELDS, 1).unwrap().sql, "1 = 1");
        assert_eq!(compile(&Expr::Or(vec![]), DEVICE_FIELDS, 1).unwrap().sql, "1 = 0");
        let single = parse("managed = true").unwrap().unwrap();
        assert_eq!(
            compile(&Expr::Not(Box::new(Expr::Or(vec![single]))), DEVICE_FIELDS, 1)
                .unwrap()
                .sql,
            "NOT (managed = $1)"
        );
    }

    #[test]
    fn rfc3339_parses_utc_and_the_epoch() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_micros("2024-05-01T00:00:00Z"), Some(MAY_1_2024));
        assert_eq!(parse_rfc3339_micros("2024-05-01t00:00:00z"), Some(MAY_1_2024));
        assert_eq!(parse_rfc3339_micros("1969-12-31T23:59:59Z"), Some(-1_000_000));
        assert_eq!(
            parse_rfc3339_micros("9999-12-31T23:59:59.999999Z"),
            Some(253_402_300_799_999_999)
        );
        assert_eq!(
            parse_rfc3339_micros("0000-01-01T00:00:00Z"),
            Some(-62_167_219_200_000_000)
        );
    }

    #[test]
    fn rfc3339_fractions_are_truncated_to_microseconds() {
        assert_eq!(
            parse_rfc3339_micros("2024-05-01T00:00:00.5Z"),
            Some(MAY_1_2024 + 500_000)
        );
        assert_eq!(
            parse_rfc3339_micros("2024-05-01T00:00:00.000001Z"),
            Some(MAY_1_2024 + 1)
        );
        assert_eq!(
            parse_rfc3339_micros("2024-05-01T00:00:00.123456789Z"),
            Some(MAY_1_2024 + 123_456)
        );
        assert_eq!(parse_rfc3339_micros("1969-12-31T23:59:59.5Z"), Some(-500_000));
    }

    #[test]
    fn rfc3339_offsets_shift_to_utc() {
        assert_eq!(parse_rfc3339_micros("2024-05-01T02:00:00+02:00"), Some(MAY_1_2024));
        assert_eq!(parse_rfc3339_micros("2024-04-30T19:30:00-04:30"), Some(MAY_1_2024));
        assert_eq!(parse_rfc3339_micros("2024-05-01T00:00:00-00:00"), Some(MAY_1_2024));
        assert_eq!(
            parse_rfc3339_micros("2024-05-01T05:30:00.25+05:30"),
            Some(MAY_1_2024 + 250_000)
        );
    }

    #[test]
    fn rfc3339_validates_leap_years() {
        assert!(parse_rfc3339_micros("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339_micros("2000-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339_micros("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_micros("2100-02-29T00:00:00Z"), None);
    }

    #[test]
    fn rfc3339_rejects_invalid_dates_times_and_shapes() {
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+02:60",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00ZZ",
            "2024-01-01 00:00:00Z",
            "2024-01-01",
            "24-01-01T00:00:00Z",
            "2024-1-01T00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00\u{dc}",
            "2024-01-01T00:00:0\u{e9}Z",
            "",
        ] {
            assert_eq!(parse_rfc3339_micros(bad), None, "{bad}");
        }
    }
}
