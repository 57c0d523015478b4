//! Parses expression source into the compiled tree, checking attribute paths, methods, arities
//! and whatever types are known before evaluation, and enforcing the size and depth limits.

use std::cmp::Ordering;
use std::sync::Arc;

use super::functions::{self, Signature};
use super::lexer::{self, Tok, Token};
use super::tree::{Arithmetic, Comparison, GroupCriterion, GroupKey, Literal, Method, Node, Ty};
use super::{AttributeValue, MAX_DEPTH, MAX_SOURCE_BYTES, ParseError};
use crate::version::Version;

/// What parsing produces.
pub(super) struct Parsed {
    pub(super) root: Node,
    /// Every attribute path read, each once, in order of first appearance.
    pub(super) paths: Vec<Arc<str>>,
    pub(super) reads_groups: bool,
}

/// The attribute paths policies may read, for messages.
const KNOWN_PATHS: &str = "user.id, user.status, user.profile.*, device.profile.*, device.assurance.*, \
    device.provider.wsc.*, device.provider.zta.*, device.provider.oktaVerify.version, device.id, \
    device.status, device.registered, device.managed, security.risk.level, security.behaviors";

const OKTA_VERIFY_VERSION: &str = "device.provider.oktaVerify.version";

/// Parses and checks `source`.
pub(super) fn parse(source: &str) -> Result<Parsed, ParseError> {
    parse_checked(source).map_err(|failure| {
        let (line, column) = position(source, failure.at);
        ParseError {
            line,
            column,
            reason: failure.reason,
        }
    })
}

/// A failure at a byte offset; turned into line and column once, at the end.
#[derive(Debug)]
struct Failure {
    at: usize,
    reason: String,
}

type Parse<T> = Result<T, Failure>;

fn fail<T>(at: usize, reason: impl Into<String>) -> Parse<T> {
    Err(Failure {
        at,
        reason: reason.into(),
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
fn position(source: &str, at: usize) -> (u32, u32) {
    let (mut line, mut column) = (1u32, 1u32);
    for (offset, c) in source.char_indices() {
        if offset >= at {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            column = 1;
        } else {
            column = column.saturating_add(1);
        }
    }
    (line, column)
}

fn parse_checked(source: &str) -> Parse<Parsed> {
    if source.len() > MAX_SOURCE_BYTES {
        let at = (0..=MAX_SOURCE_BYTES)
            .rev()
            .find(|&at| source.is_char_boundary(at))
            .unwrap_or(0);
        return fail(
            at,
            format!(
                "the expression is {} bytes long; the limit is {MAX_SOURCE_BYTES}",
                source.len()
            ),
        );
    }
    let tokens = lexer::tokenize(source).map_err(|error| Failure {
        at: error.at,
        reason: error.reason,
    })?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        paths: Vec::new(),
        reads_groups: false,
    };
    if *parser.peek() == Tok::End {
        return fail(parser.at(), "the expression is empty");
    }
    let root = parser.expression()?;
    if *parser.peek() != Tok::End {
        return fail(
            parser.at(),
            format!("expected an operator or the end, found {}", parser.peek()),
        );
    }
    if !root.ty.admits(Ty::Bool) {
        return fail(
            root.at,
            format!(
                "an expression must be a condition (true or false), but this is {}",
                root.ty.noun()
            ),
        );
    }
    Ok(Parsed {
        root: root.node,
        paths: parser.paths,
        reads_groups: parser.reads_groups,
    })
}

/// A parsed node, with its static type and where it starts.
struct Typed {
    node: Node,
    ty: Ty,
    at: usize,
}

/// How a call was written, for messages: `x.name(…)` or `Class.name(x, …)`.
struct Callee<'s> {
    class: Option<&'s str>,
    name: &'s str,
    at: usize,
}

impl Callee<'_> {
    fn label(&self) -> String {
        match self.class {
            Some(class) => format!("{class}.{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// The end token every token list finishes with; `advance` never moves past it.
static END: Token<'static> = Token { tok: Tok::End, at: 0 };

struct Parser<'s> {
    tokens: Vec<Token<'s>>,
    pos: usize,
    depth: usize,
    paths: Vec<Arc<str>>,
    reads_groups: bool,
}

impl<'s> Parser<'s> {
    fn token(&self) -> &Token<'s> {
        self.tokens.get(self.pos).unwrap_or(&END)
    }

    fn peek(&self) -> &Tok<'s> {
        &self.token().tok
    }

    fn peek_ahead(&self, n: usize) -> &Tok<'s> {
        self.tokens.get(self.pos + n).map_or(&Tok::End, |token| &token.tok)
    }

    fn at(&self) -> usize {
        self.token().at
    }

    fn advance(&mut self) -> Token<'s> {
        let token = self.token().clone();
        if token.tok != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, tok: &Tok<'_>) -> bool {
        let found = self.peek() == tok;
        if found {
            self.advance();
        }
        found
    }

    fn expect(&mut self, tok: &Tok<'_>, what: &str) -> Parse<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            fail(self.at(), format!("expected {what}, found {}", self.peek()))
        }
    }

    fn identifier(&mut self, what: &str) -> Parse<(&'s str, usize)> {
        let token = self.advance();
        match token.tok {
            Tok::Ident(name) => Ok((name, token.at)),
            other => fail(token.at, format!("expected {what}, found {other}")),
        }
    }

    /// The method name when the next tokens are `. name (`.
    fn peek_call(&self) -> Option<&'s str> {
        match (self.peek(), self.peek_ahead(1), self.peek_ahead(2)) {
            (Tok::Dot, Tok::Ident(name), Tok::LParen) => Some(name),
            _ => None,
        }
    }

    /// Enters one level of nesting; the recursion that parsing and evaluation do is bounded by
    /// these levels.
    fn nest(&mut self) -> Parse<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail(
                self.at(),
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            );
        }
        Ok(())
    }

    fn unnest(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expression(&mut self) -> Parse<Typed> {
        self.nest()?;
        let parsed = self.ternary()?;
        self.unnest();
        Ok(parsed)
    }

    fn ternary(&mut self) -> Parse<Typed> {
        let condition = self.logic(true)?;
        if !self.eat(&Tok::Question) {
            return Ok(condition);
        }
        require_condition(&condition, "the condition of ?:")?;
        let then = self.expression()?;
        self.expect(&Tok::Colon, "':' to go with '?'")?;
        let otherwise = self.expression()?;
        let ty = if then.ty == otherwise.ty { then.ty } else { Ty::Any };
        Ok(Typed {
            at: condition.at,
            ty,
            node: Node::Choose {
                condition: Box::new(condition.node),
                then: Box::new(then.node),
                otherwise: Box::new(otherwise.node),
            },
        })
    }

    fn at_logic(&self, or: bool) -> bool {
        match self.peek() {
            Tok::OrOr => or,
            Tok::AndAnd => !or,
            Tok::Ident(word) => word.eq_ignore_ascii_case(if or { "or" } else { "and" }),
            _ => false,
        }
    }

    /// A flat `||` chain of `&&` chains (`or`), or a flat `&&` chain of comparisons.
    fn logic(&mut self, or: bool) -> Parse<Typed> {
        let operand = |parser: &mut Self| if or { parser.logic(false) } else { parser.comparison() };
        let first = operand(self)?;
        if !self.at_logic(or) {
            return Ok(first);
        }
        let symbol = if or { "||" } else { "&&" };
        require_condition(&first, symbol)?;
        let at = first.at;
        let mut operands = vec![first.node];
        while self.at_logic(or) {
            self.advance();
            let next = operand(self)?;
            require_condition(&next, symbol)?;
            operands.push(next.node);
        }
        let operands = operands.into_boxed_slice();
        let node = if or { Node::Any(operands) } else { Node::All(operands) };
        Ok(Typed { node, ty: Ty::Bool, at })
    }

    fn comparison(&mut self) -> Parse<Typed> {
        let left = self.additive()?;
        let Some(op) = comparison_op(self.peek()) else {
            return Ok(left);
        };
        let op_at = self.at();
        self.advance();
        let right = self.additive()?;
        if comparison_op(self.peek()).is_some() {
            return fail(self.at(), "comparisons do not chain; add parentheses");
        }
        check_comparison(op, op_at, &left, &right)?;
        Ok(Typed {
            at: left.at,
            ty: Ty::Bool,
            node: Node::Compare {
                op,
                left: Box::new(left.node),
                right: Box::new(right.node),
            },
        })
    }

    fn additive(&mut self) -> Parse<Typed> {
        let first = self.multiplicative()?;
        let (at, mut ty) = (first.at, first.ty);
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::Plus => Arithmetic::Add,
                Tok::Minus => Arithmetic::Subtract,
                _ => break,
            };
            let op_at = self.at();
            self.advance();
            let operand = self.multiplicative()?;
            ty = arithmetic_type(op, op_at, ty, operand.ty)?;
            rest.push((op, operand.node));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        Ok(Typed {
            at,
            ty,
            node: Node::Arithmetic {
                first: Box::new(first.node),
                rest: rest.into_boxed_slice(),
            },
        })
    }

    fn multiplicative(&mut self) -> Parse<Typed> {
        let first = self.unary()?;
        let (at, mut ty) = (first.at, first.ty);
        let mut rest = Vec::new();
        loop {
            match self.peek() {
                Tok::Star => {}
                Tok::Slash | Tok::Percent => {
                    return fail(
                        self.at(),
                        "division is not supported: Okta divides whole numbers as integers, and numbers here \
                         are all decimal",
                    );
                }
                _ => break,
            }
            let op_at = self.at();
            self.advance();
            let operand = self.unary()?;
            ty = arithmetic_type(Arithmetic::Multiply, op_at, ty, operand.ty)?;
            rest.push((Arithmetic::Multiply, operand.node));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        Ok(Typed {
            at,
            ty,
            node: Node::Arithmetic {
                first: Box::new(first.node),
                rest: rest.into_boxed_slice(),
            },
        })
    }

    fn unary(&mut self) -> Parse<Typed> {
        let at = self.at();
        match self.peek() {
            Tok::Bang => {
                self.advance();
                self.nest()?;
                let operand = self.unary()?;
                self.unnest();
                require_condition(&operand, "!")?;
                Ok(Typed {
                    at,
                    ty: Ty::Bool,
                    node: Node::Not(Box::new(operand.node)),
                })
            }
            Tok::Minus => {
                self.advance();
                self.nest()?;
                let operand = self.unary()?;
                self.unnest();
                if !operand.ty.admits(Ty::Number) {
                    return fail(operand.at, format!("- negates a number, not {}", operand.ty.noun()));
                }
                let node = match operand.node {
                    Node::Literal(Literal::Number(value)) => Node::Literal(Literal::Number(-value)),
                    node => Node::Negate(Box::new(node)),
                };
                Ok(Typed {
                    at,
                    ty: Ty::Number,
                    node,
                })
            }
            _ => self.postfix(),
        }
    }

    /// A value followed by method calls: `x.trim().length()`.
    fn postfix(&mut self) -> Parse<Typed> {
        let mut value = self.primary()?;
        let mut calls = 0;
        loop {
            match self.peek() {
                Tok::Dot => {}
                Tok::LBracket => return fail(self.at(), "indexing with [] is not supported"),
                _ => break,
            }
            self.advance();
            let (name, at) = self.identifier("a method name after '.'")?;
            if *self.peek() != Tok::LParen {
                return fail(
                    at,
                    format!("'{name}' is a property of a computed value; only method calls follow a call or a literal"),
                );
            }
            self.nest()?;
            calls += 1;
            let args = self.arguments()?;
            value = self.method(value, Callee { class: None, name, at }, args)?;
        }
        self.depth = self.depth.saturating_sub(calls);
        Ok(value)
    }

    fn arguments(&mut self) -> Parse<Vec<Typed>> {
        self.expect(&Tok::LParen, "'('")?;
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RParen, "',' or ')' after an argument")?;
            return Ok(args);
        }
    }

    fn method(&mut self, receiver: Typed, callee: Callee<'s>, args: Vec<Typed>) -> Parse<Typed> {
        let name = callee.name;
        if matches!(name, "parseStringTime" | "toString") && !args.is_empty() {
            return fail(
                callee.at,
                format!(
                    "{name} with a format pattern needs Java date-time patterns, which are not supported; \
                     without one it uses ISO-8601"
                ),
            );
        }
        let Some(signature) = functions::method(name) else {
            return match functions::unsupported_method(name) {
                Some(why) => fail(
                    callee.at,
                    format!("{name} is not supported in policy expressions: it {why}"),
                ),
                None => fail(callee.at, format!("unknown method '{name}'")),
            };
        };
        self.call(signature, receiver, callee, args)
    }

    /// Checks a call against its signature and builds it.
    fn call(&mut self, signature: Signature, receiver: Typed, callee: Callee<'s>, args: Vec<Typed>) -> Parse<Typed> {
        let label = callee.label();
        let is_static = callee.class.is_some();
        if !signature.receiver.accepts(receiver.ty) {
            let (at, role) = if is_static {
                (receiver.at, "as its first argument")
            } else {
                (callee.at, "to work on")
            };
            return fail(
                at,
                format!(
                    "{label} needs {} {role}, not {}",
                    signature.receiver.noun(),
                    receiver.ty.noun()
                ),
            );
        }
        let most = signature.params.len();
        let least = most.saturating_sub(signature.optional);
        if args.len() < least || args.len() > most {
            let shift = usize::from(is_static);
            let wanted = if least == most {
                format!("{}", least + shift)
            } else {
                format!("{} or {}", least + shift, most + shift)
            };
            let plural = if most + shift == 1 { "" } else { "s" };
            return fail(
                callee.at,
                format!("{label} takes {wanted} argument{plural}, not {}", args.len() + shift),
            );
        }
        for (arg, expected) in args.iter().zip(signature.params) {
            if !expected.admits(arg.ty) {
                return fail(
                    arg.at,
                    format!("{label} needs {} here, not {}", expected.noun(), arg.ty.noun()),
                );
            }
        }
        check_arguments(signature.method, &label, &receiver, &args)?;
        if let (Method::VersionGreaterThan | Method::VersionLessThan, [other]) = (signature.method, args.as_slice()) {
            let parsed = match &other.node {
                Node::Literal(Literal::String(text)) => Version::parse(text),
                _ => None,
            };
            let wanted = if signature.method == Method::VersionGreaterThan {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            let other = args
                .into_iter()
                .next()
                .map_or(Node::Literal(Literal::Null), |arg| arg.node);
            return Ok(Typed {
                at: receiver.at,
                ty: Ty::Bool,
                node: Node::CompareVersion {
                    receiver: Box::new(receiver.node),
                    method: signature.method,
                    wanted,
                    other: Box::new(other),
                    parsed,
                },
            });
        }
        Ok(Typed {
            at: receiver.at,
            ty: signature.returns,
            node: Node::Call {
                receiver: Box::new(receiver.node),
                method: signature.method,
                args: args.into_iter().map(|arg| arg.node).collect(),
            },
        })
    }

    fn primary(&mut self) -> Parse<Typed> {
        let token = self.advance();
        let at = token.at;
        let literal = |literal, ty| {
            Ok(Typed {
                at,
                ty,
                node: Node::Literal(literal),
            })
        };
        match token.tok {
            Tok::Number(value) => literal(Literal::Number(value), Ty::Number),
            Tok::Str(text) => literal(Literal::String(text.into_boxed_str()), Ty::String),
            Tok::LParen => {
                let inner = self.expression()?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::LBrace => {
                self.nest()?;
                let items = self.list_items(at)?;
                self.unnest();
                literal(Literal::List(items.into_boxed_slice()), Ty::List)
            }
            Tok::Ident(word) if word.eq_ignore_ascii_case("true") => literal(Literal::Bool(true), Ty::Bool),
            Tok::Ident(word) if word.eq_ignore_ascii_case("false") => literal(Literal::Bool(false), Ty::Bool),
            Tok::Ident(word) if word.eq_ignore_ascii_case("null") => literal(Literal::Null, Ty::Null),
            Tok::Ident(word) if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") => {
                fail(at, format!("expected a value before '{word}'"))
            }
            Tok::Ident(root) => self.reference(root, at),
            Tok::End => fail(at, "expected a value, found the end of the expression"),
            other => fail(at, format!("expected a value, found {other}")),
        }
    }

    /// What a name starts: an attribute path, `user.isMemberOf`, `DateTime.now()`, or a static
    /// helper such as `String.stringContains`.
    fn reference(&mut self, root: &'s str, at: usize) -> Parse<Typed> {
        match root {
            "user" if self.peek_call() == Some("isMemberOf") => self.is_member_of(at),
            "user" | "device" | "security" => {
                if let Some(name) = self.peek_call() {
                    let why = functions::unsupported_method(name).unwrap_or("is not a method policies can call");
                    return fail(at, format!("{root}.{name} {why}"));
                }
                self.path(root, at)
            }
            "DateTime" | "Time" => {
                self.expect(&Tok::Dot, "'.now()'")?;
                let (name, name_at) = self.identifier("'now'")?;
                if name != "now" {
                    return fail(name_at, format!("{root}.{name} is not supported; {root}.now() is"));
                }
                if !self.arguments()?.is_empty() {
                    return fail(name_at, "now takes no arguments");
                }
                Ok(Typed {
                    at,
                    ty: Ty::DateTime,
                    node: Node::Now,
                })
            }
            "String" | "Arrays" | "Convert" => {
                self.expect(&Tok::Dot, "'.' and a function name")?;
                let (name, name_at) = self.identifier("a function name")?;
                let Some(signature) = functions::static_helper(root, name) else {
                    return fail(name_at, format!("{root}.{name} is not supported in policy expressions"));
                };
                self.nest()?;
                let mut args = self.arguments()?;
                self.unnest();
                if args.is_empty() {
                    return fail(name_at, format!("{root}.{name} needs arguments"));
                }
                let receiver = args.remove(0);
                self.call(
                    signature,
                    receiver,
                    Callee {
                        class: Some(root),
                        name,
                        at: name_at,
                    },
                    args,
                )
            }
            _ => fail(
                at,
                format!("unknown name '{root}'; attributes start with user., device. or security."),
            ),
        }
    }

    /// A dotted attribute path, up to (not including) a method call.
    fn path(&mut self, root: &'s str, at: usize) -> Parse<Typed> {
        let mut segments = vec![root];
        while let (Tok::Dot, Tok::Ident(segment)) = (self.peek(), self.peek_ahead(1)) {
            if *self.peek_ahead(2) == Tok::LParen {
                break;
            }
            segments.push(segment);
            self.pos += 2;
        }
        let text = segments.join(".");
        let Some(ty) = attribute_type(&segments) else {
            return fail(
                at,
                format!("'{text}' is not an attribute policies can read; they read {KNOWN_PATHS}"),
            );
        };
        let path = match self.paths.iter().find(|known| ***known == *text) {
            Some(known) => Arc::clone(known),
            None => {
                let path: Arc<str> = Arc::from(text);
                self.paths.push(Arc::clone(&path));
                path
            }
        };
        Ok(Typed {
            at,
            ty,
            node: Node::Attribute(path),
        })
    }

    fn list_items(&mut self, open_at: usize) -> Parse<Vec<AttributeValue>> {
        let mut items = Vec::new();
        if self.eat(&Tok::RBrace) {
            return Ok(items);
        }
        loop {
            items.push(self.constant()?);
            if *self.peek() == Tok::Colon {
                return fail(
                    open_at,
                    "a {key: value} map is only used as a user.isMemberOf criterion",
                );
            }
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RBrace, "',' or '}' in a list")?;
            return Ok(items);
        }
    }

    /// A list item: lists are constants, so their items are too.
    fn constant(&mut self) -> Parse<AttributeValue> {
        let token = self.advance();
        match token.tok {
            Tok::Str(text) => Ok(AttributeValue::String(text)),
            Tok::Number(value) => Ok(AttributeValue::Number(value)),
            Tok::Minus => match self.advance().tok {
                Tok::Number(value) => Ok(AttributeValue::Number(-value)),
                _ => fail(token.at, "'-' in a list must be followed by a number"),
            },
            Tok::Ident(word) if word.eq_ignore_ascii_case("true") => Ok(AttributeValue::Bool(true)),
            Tok::Ident(word) if word.eq_ignore_ascii_case("false") => Ok(AttributeValue::Bool(false)),
            Tok::LBrace => {
                self.nest()?;
                let items = self.list_items(token.at)?;
                self.unnest();
                Ok(AttributeValue::List(items))
            }
            _ => fail(token.at, "list items are literal strings, numbers, booleans or lists"),
        }
    }

    /// `user.isMemberOf({…}, {…})`: the next tokens are `. isMemberOf (`.
    fn is_member_of(&mut self, at: usize) -> Parse<Typed> {
        self.pos += 2;
        self.expect(&Tok::LParen, "'('")?;
        let mut criteria = Vec::new();
        loop {
            criteria.push(self.group_criterion()?);
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RParen, "',' or ')' after a criterion")?;
            break;
        }
        self.reads_groups = true;
        Ok(Typed {
            at,
            ty: Ty::Bool,
            node: Node::IsMemberOf(criteria.into_boxed_slice()),
        })
    }

    fn group_criterion(&mut self) -> Parse<GroupCriterion> {
        let open_at = self.at();
        if !self.eat(&Tok::LBrace) {
            return fail(open_at, "isMemberOf takes criteria such as {'group.id': '00g…'}");
        }
        let mut field: Option<(bool, Box<[Box<str>]>)> = None;
        let mut operator: Option<(bool, usize)> = None;
        loop {
            let key = self.advance();
            let Tok::Str(name) = key.tok else {
                return fail(key.at, "criterion keys are quoted, like 'group.id'");
            };
            self.expect(&Tok::Colon, "':' after a criterion key")?;
            match name.as_str() {
                "group.id" | "group.profile.name" => {
                    if field.is_some() {
                        return fail(
                            key.at,
                            "a criterion matches on one key; pass another {…} criterion for more",
                        );
                    }
                    field = Some((name == "group.profile.name", self.group_values()?));
                }
                "operator" => {
                    if operator.is_some() {
                        return fail(key.at, "operator is given twice");
                    }
                    let value = self.advance();
                    let starts_with = match value.tok {
                        Tok::Str(op) if op == "EXACT" => false,
                        Tok::Str(op) if op == "STARTS_WITH" => true,
                        _ => return fail(value.at, "operator is 'EXACT' or 'STARTS_WITH'"),
                    };
                    operator = Some((starts_with, key.at));
                }
                "group.type" => {
                    return fail(
                        key.at,
                        "group.type is not supported: the sign-in context gives groups only an id and a name",
                    );
                }
                other => {
                    return fail(
                        key.at,
                        format!(
                            "'{other}' is not a criterion key; use 'group.id' or 'group.profile.name', and 'operator'"
                        ),
                    );
                }
            }
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RBrace, "',' or '}' in a criterion")?;
            break;
        }
        let Some((by_name, values)) = field else {
            return fail(open_at, "the criterion names no 'group.id' or 'group.profile.name'");
        };
        let key = match (by_name, operator) {
            (false, Some((_, at))) => return fail(at, "operator applies only to 'group.profile.name'"),
            (false, None) => GroupKey::Id,
            (true, Some((false, _))) => GroupKey::NameExact,
            // Okta documents prefix matching as what a name criterion does without an operator.
            (true, Some((true, _)) | None) => GroupKey::NameStartsWith,
        };
        Ok(GroupCriterion { key, values })
    }

    /// `'value'` or `{'a', 'b'}`.
    fn group_values(&mut self) -> Parse<Box<[Box<str>]>> {
        let token = self.advance();
        match token.tok {
            Tok::Str(value) => Ok(vec![value.into_boxed_str()].into_boxed_slice()),
            Tok::LBrace => {
                let mut values = Vec::new();
                loop {
                    let value = self.advance();
                    let Tok::Str(text) = value.tok else {
                        return fail(value.at, "group values are quoted strings");
                    };
                    values.push(text.into_boxed_str());
                    if self.eat(&Tok::Comma) {
                        continue;
                    }
                    self.expect(&Tok::RBrace, "',' or '}' in a set of values")?;
                    return Ok(values.into_boxed_slice());
                }
            }
            _ => fail(
                token.at,
                "a group value is a quoted string or a set of them, like {'a', 'b'}",
            ),
        }
    }
}

/// The static type of a known attribute path; `None` for a path policies cannot read.
fn attribute_type(segments: &[&str]) -> Option<Ty> {
    Some(match segments {
        ["user", "id" | "status"] => Ty::Any,
        ["user", "profile", _] => Ty::Any,
        ["device", "profile" | "assurance", _] => Ty::Any,
        ["device", "provider", "wsc" | "zta", _] => Ty::Any,
        ["device", "provider", "oktaVerify", "version"] => Ty::String,
        ["device", "id" | "status" | "registered" | "managed"] => Ty::Any,
        ["security", "risk", "level"] => Ty::String,
        ["security", "behaviors"] => Ty::List,
        _ => return None,
    })
}

fn comparison_op(tok: &Tok<'_>) -> Option<Comparison> {
    Some(match tok {
        Tok::EqEq => Comparison::Equal,
        Tok::NotEq => Comparison::NotEqual,
        Tok::Less => Comparison::Less,
        Tok::LessEq => Comparison::LessOrEqual,
        Tok::Greater => Comparison::Greater,
        Tok::GreaterEq => Comparison::GreaterOrEqual,
        _ => return None,
    })
}

fn require_condition(operand: &Typed, context: &str) -> Parse<()> {
    if operand.ty.admits(Ty::Bool) {
        return Ok(());
    }
    fail(
        operand.at,
        format!("{context} needs a condition (true or false), not {}", operand.ty.noun()),
    )
}

fn check_comparison(op: Comparison, op_at: usize, left: &Typed, right: &Typed) -> Parse<()> {
    let symbol = op.symbol();
    for side in [left, right] {
        if op.is_equality() {
            if side.ty == Ty::List {
                return fail(side.at, format!("lists are not compared with {symbol}; use contains"));
            }
            continue;
        }
        if let Node::Attribute(path) = &side.node
            && &**path == OKTA_VERIFY_VERSION
        {
            return fail(
                op_at,
                format!(
                    "{symbol} would compare {path} as text ('9.23.0' > '10.3.1'); \
                     use versionGreaterThan or versionLessThan"
                ),
            );
        }
        if matches!(side.ty, Ty::Bool | Ty::Null | Ty::List) {
            return fail(
                side.at,
                format!("{symbol} orders numbers, strings or date-times, not {}", side.ty.noun()),
            );
        }
    }
    if left.ty != Ty::Null && right.ty != Ty::Null && !left.ty.admits(right.ty) {
        return fail(
            op_at,
            format!("{symbol} cannot compare {} with {}", left.ty.noun(), right.ty.noun()),
        );
    }
    Ok(())
}

fn arithmetic_type(op: Arithmetic, op_at: usize, left: Ty, right: Ty) -> Parse<Ty> {
    let symbol = op.symbol();
    if op != Arithmetic::Add {
        for side in [left, right] {
            if !side.admits(Ty::Number) {
                return fail(op_at, format!("{symbol} needs numbers, not {}", side.noun()));
            }
        }
        return Ok(Ty::Number);
    }
    for side in [left, right] {
        if !matches!(side, Ty::Any | Ty::Number | Ty::String) {
            return fail(op_at, format!("+ adds numbers or joins strings, not {}", side.noun()));
        }
    }
    if matches!((left, right), (Ty::Number, Ty::String) | (Ty::String, Ty::Number)) {
        return fail(op_at, "+ cannot join a string and a number");
    }
    Ok(if left == Ty::String || right == Ty::String {
        Ty::String
    } else if left == Ty::Number || right == Ty::Number {
        Ty::Number
    } else {
        Ty::Any
    })
}

/// Checks that need the arguments themselves: versions that are not versions, `replaceFirst`
/// patterns that Java would read as regular expressions, `contains` with the wrong needle.
fn check_arguments(method: Method, label: &str, receiver: &Typed, args: &[Typed]) -> Parse<()> {
    let literal = |index: usize| match args.get(index) {
        Some(Typed {
            node: Node::Literal(Literal::String(text)),
            at,
            ..
        }) => Some((&**text, *at)),
        _ => None,
    };
    match method {
        Method::VersionGreaterThan | Method::VersionLessThan => {
            if let Some((text, at)) = literal(0)
                && Version::parse(text).is_none()
            {
                return fail(at, format!("'{text}' is not a version (dotted numbers, like 9.43)"));
            }
        }
        Method::ReplaceFirst => {
            let (Some((pattern, _)), Some((replacement, replacement_at))) = (literal(0), literal(1)) else {
                let at = args.first().map_or(receiver.at, |arg| arg.at);
                return fail(at, format!("{label} takes a literal pattern and replacement"));
            };
            if let Some(meta) = pattern.chars().find(|c| functions::REGEX_META.contains(c)) {
                let at = args.first().map_or(receiver.at, |arg| arg.at);
                return fail(
                    at,
                    format!(
                        "{label} reads its pattern as a regular expression in Okta; '{meta}' would not match \
                         literally, so it is not supported"
                    ),
                );
            }
            if replacement.contains(['$', '\\']) {
                return fail(
                    replacement_at,
                    format!("{label} gives '$' and '\\' special meaning in a replacement; they are not supported"),
                );
            }
        }
        Method::Contains => {
            if receiver.ty == Ty::String
                && let Some(needle) = args.first()
                && !Ty::String.admits(needle.ty)
            {
                return fail(
                    needle.at,
                    format!("contains on a string needs a string, not {}", needle.ty.noun()),
                );
            }
        }
        _ => {}
    }
    Ok(())
}
