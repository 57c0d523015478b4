//! Splits expression source into tokens, each with the byte offset it starts at.

use std::fmt;

/// A token; identifiers borrow from the source, string literals are decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'s> {
    Ident(&'s str),
    Str(String),
    Number(f64),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Dot,
    Question,
    Bang,
    AndAnd,
    OrOr,
    EqEq,
    NotEq,
    Less,
    LessEq,
    Greater,
    GreaterEq,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    End,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Tok::Ident(name) => return write!(f, "'{name}'"),
            Tok::Str(_) => "a string",
            Tok::Number(_) => "a number",
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBrace => "'{'",
            Tok::RBrace => "'}'",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::Comma => "','",
            Tok::Colon => "':'",
            Tok::Dot => "'.'",
            Tok::Question => "'?'",
            Tok::Bang => "'!'",
            Tok::AndAnd => "'&&'",
            Tok::OrOr => "'||'",
            Tok::EqEq => "'=='",
            Tok::NotEq => "'!='",
            Tok::Less => "'<'",
            Tok::LessEq => "'<='",
            Tok::Greater => "'>'",
            Tok::GreaterEq => "'>='",
            Tok::Plus => "'+'",
            Tok::Minus => "'-'",
            Tok::Star => "'*'",
            Tok::Slash => "'/'",
            Tok::Percent => "'%'",
            Tok::End => "the end of the expression",
        };
        f.write_str(text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'s> {
    pub(super) tok: Tok<'s>,
    /// Byte offset of the token's first character.
    pub(super) at: usize,
}

/// Why tokenizing stopped, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LexError {
    pub(super) at: usize,
    pub(super) reason: String,
}

/// Tokenizes the whole source; the last token is always [`Tok::End`].
pub(super) fn tokenize(source: &str) -> Result<Vec<Token<'_>>, LexError> {
    let mut lexer = Lexer {
        source,
        at: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'s> {
    source: &'s str,
    at: usize,
    tokens: Vec<Token<'s>>,
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        self.source.get(self.at..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn push(&mut self, tok: Tok<'s>, at: usize, len: usize) {
        self.tokens.push(Token { tok, at });
        self.at = at + len;
    }

    fn fail<T>(&self, at: usize, reason: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            at,
            reason: reason.into(),
        })
    }

    fn run(&mut self) -> Result<(), LexError> {
        while let Some(c) = self.peek() {
            let at = self.at;
            let next = self.peek_second();
            match c {
                ' ' | '\t' | '\r' | '\n' => self.at += 1,
                '(' => self.push(Tok::LParen, at, 1),
                ')' => self.push(Tok::RParen, at, 1),
                '{' => self.push(Tok::LBrace, at, 1),
                '}' => self.push(Tok::RBrace, at, 1),
                '[' => self.push(Tok::LBracket, at, 1),
                ']' => self.push(Tok::RBracket, at, 1),
                ',' => self.push(Tok::Comma, at, 1),
                ':' => self.push(Tok::Colon, at, 1),
                '.' => self.push(Tok::Dot, at, 1),
                '?' => self.push(Tok::Question, at, 1),
                '+' => self.push(Tok::Plus, at, 1),
                '-' => self.push(Tok::Minus, at, 1),
                '*' => self.push(Tok::Star, at, 1),
                '/' => self.push(Tok::Slash, at, 1),
                '%' => self.push(Tok::Percent, at, 1),
                '&' if next == Some('&') => self.push(Tok::AndAnd, at, 2),
                '&' => return self.fail(at, "'&' on its own is not an operator; use && for and"),
                '|' if next == Some('|') => self.push(Tok::OrOr, at, 2),
                '|' => return self.fail(at, "'|' on its own is not an operator; use || for or"),
                '=' if next == Some('=') => self.push(Tok::EqEq, at, 2),
                '=' => return self.fail(at, "'=' assigns, which expressions cannot do; use == to compare"),
                '!' if next == Some('=') => self.push(Tok::NotEq, at, 2),
                '!' => self.push(Tok::Bang, at, 1),
                '<' if next == Some('=') => self.push(Tok::LessEq, at, 2),
                '<' => self.push(Tok::Less, at, 1),
                '>' if next == Some('=') => self.push(Tok::GreaterEq, at, 2),
                '>' => self.push(Tok::Greater, at, 1),
                '\'' | '"' => self.string(c)?,
                '0'..='9' => self.number()?,
                c if c.is_ascii_alphabetic() || c == '_' || c == '$' => self.identifier(),
                '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}' => {
                    return self.fail(at, format!("'{c}' is a typographic quote; quote strings with ' or \""));
                }
                c => return self.fail(at, format!("unexpected character '{}'", c.escape_debug())),
            }
        }
        self.tokens.push(Token {
            tok: Tok::End,
            at: self.source.len(),
        });
        Ok(())
    }

    fn identifier(&mut self) {
        let at = self.at;
        let len = self
            .rest()
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
            .count();
        let name = self.source.get(at..at + len).unwrap_or("");
        self.push(Tok::Ident(name), at, len);
    }

    /// Digits, an optional fraction and exponent. A dot not followed by a digit ends the number,
    /// so `1.5.toInteger()` reads as a method call on 1.5.
    fn number(&mut self) -> Result<(), LexError> {
        let at = self.at;
        let bytes = self.rest().as_bytes();
        let digits = |from: usize| bytes.iter().skip(from).take_while(|b| b.is_ascii_digit()).count();
        let mut len = digits(0);
        if bytes.get(len) == Some(&b'.') && bytes.get(len + 1).is_some_and(u8::is_ascii_digit) {
            len += 1 + digits(len + 1);
        }
        if matches!(bytes.get(len), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(len + 1), Some(b'+' | b'-')));
            let exponent = digits(len + 1 + sign);
            if exponent == 0 {
                return self.fail(at + len, "an exponent needs digits");
            }
            len += 1 + sign + exponent;
        }
        if bytes.get(len).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
            return self.fail(at + len, "a number runs straight into a name; separate them");
        }
        let text = self.source.get(at..at + len).unwrap_or("");
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => {
                self.push(Tok::Number(value), at, len);
                Ok(())
            }
            _ => self.fail(at, format!("{text} is out of range")),
        }
    }

    /// A string in single or double quotes. Backslash escapes (`\'`, `\"`, `\\`, `\n`, `\t`,
    /// `\r`, `\uXXXX`) and SpEL's doubled quote (`'it''s'`) both work.
    fn string(&mut self, quote: char) -> Result<(), LexError> {
        let start = self.at;
        let mut value = String::new();
        let mut chars = self.rest().char_indices().skip(1).peekable();
        while let Some((offset, c)) = chars.next() {
            if c == quote {
                if chars.peek().map(|(_, next)| *next) == Some(quote) {
                    chars.next();
                    value.push(quote);
                    continue;
                }
                self.push(Tok::Str(value), start, offset + c.len_utf8());
                return Ok(());
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            let escape_at = start + offset;
            let Some((_, escaped)) = chars.next() else { break };
            match escaped {
                '\\' | '\'' | '"' => value.push(escaped),
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'u' => {
                    let mut code = 0u32;
                    for _ in 0..4 {
                        let digit = chars.next().and_then(|(_, d)| d.to_digit(16));
                        let Some(digit) = digit else {
                            return self.fail(escape_at, "\\u needs four hex digits");
                        };
                        code = code * 16 + digit;
                    }
                    let Some(decoded) = char::from_u32(code) else {
                        return self.fail(escape_at, format!("\\u{code:04x} is not a character"));
                    };
                    value.push(decoded);
                }
                other => {
                    return self.fail(escape_at, format!("unknown escape '\\{}'", other.escape_debug()));
                }
            }
        }
        self.fail(start, "this string is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(source: &str) -> Vec<Tok<'_>> {
        tokenize(source).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_are_read_greedily() {
        assert_eq!(
            toks("a&&b||!c!=d<=e>=f==g<h>i"),
            vec![
                Tok::Ident("a"),
                Tok::AndAnd,
                Tok::Ident("b"),
                Tok::OrOr,
                Tok::Bang,
                Tok::Ident("c"),
                Tok::NotEq,
                Tok::Ident("d"),
                Tok::LessEq,
                Tok::Ident("e"),
                Tok::GreaterEq,
                Tok::Ident("f"),
                Tok::EqEq,
                Tok::Ident("g"),
                Tok::Less,
                Tok::Ident("h"),
                Tok::Greater,
                Tok::Ident("i"),
                Tok::End,
            ]
        );
    }

    #[test]
    fn strings_take_either_quote_and_decode_escapes() {
        assert_eq!(toks(r#"'a"b'"#), vec![Tok::Str("a\"b".into()), Tok::End]);
        assert_eq!(toks(r#""a'b""#), vec![Tok::Str("a'b".into()), Tok::End]);
        assert_eq!(toks(r"'it\'s'"), vec![Tok::Str("it's".into()), Tok::End]);
        assert_eq!(toks("'it''s'"), vec![Tok::Str("it's".into()), Tok::End]);
        assert_eq!(
            toks(r"'a\\b\n\t\u00e9'"),
            vec![Tok::Str("a\\b\n\t\u{e9}".into()), Tok::End]
        );
        assert_eq!(toks("'日本'"), vec![Tok::Str("日本".into()), Tok::End]);
    }

    #[test]
    fn a_dot_after_a_number_starts_a_method_call_unless_digits_follow() {
        assert_eq!(
            toks("1.5.toInteger()"),
            vec![
                Tok::Number(1.5),
                Tok::Dot,
                Tok::Ident("toInteger"),
                Tok::LParen,
                Tok::RParen,
                Tok::End
            ]
        );
        assert_eq!(toks("2e3"), vec![Tok::Number(2000.0), Tok::End]);
    }

    #[test]
    fn bad_input_is_reported_where_it_starts() {
        let cases = [
            ("a = b", 2, "'=' assigns"),
            ("a & b", 2, "use &&"),
            ("'open", 0, "never closed"),
            (r"'a\qb'", 2, "unknown escape"),
            (r"'\u12'", 1, "four hex digits"),
            ("x # y", 2, "unexpected character '#'"),
            ("\u{201c}a\u{201d}", 0, "typographic quote"),
            ("12abc", 2, "runs straight into a name"),
            ("1e", 1, "exponent needs digits"),
            ("1e999", 0, "out of range"),
        ];
        for (source, at, reason) in cases {
            let error = tokenize(source).unwrap_err();
            assert_eq!(error.at, at, "{source}");
            assert!(error.reason.contains(reason), "{source}: {}", error.reason);
        }
    }
}
