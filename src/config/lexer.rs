//! The config file's syntax, a small subset of Puma's Ruby DSL: a line
//! is split into a directive name and its literal values (strings, words,
//! hashes), with no knowledge of what any directive means. Errors are the
//! message after `FILE:LINE: `.

/// One literal argument of a directive.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// A quoted string, escapes resolved.
    Str(String),
    /// Anything else: a number, `true`, a stray word.
    Word(String),
    /// `{ key: value, ... }`, or the same pairs without braces as the
    /// last argument (Ruby's trailing hash); `:key => value` also works.
    /// Values are literals, not hashes.
    Hash(Pairs),
}

/// A hash's `key: value` pairs, in order.
pub(super) type Pairs = Vec<(String, Arg)>;

/// One non-blank, non-comment line: `name arg, arg  # comment`.
#[derive(Debug)]
pub(super) struct Directive<'a> {
    pub(super) name: &'a str,
    /// The arguments as written, without the comment, for messages.
    pub(super) raw: &'a str,
    pub(super) args: Vec<Arg>,
}

/// A line split at the end of its directive name: `(name, rest)`.
pub(super) type NameAndRest<'a> = (&'a str, &'a str);

impl<'a> Directive<'a> {
    /// The directive name at the start of `line`, and the text after it;
    /// `Ok(None)` for a blank or comment line.
    pub(super) fn split(line: &'a str) -> Result<Option<NameAndRest<'a>>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let mut name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        if line[name_end..].starts_with(['!', '?']) {
            name_end += 1;
        }
        let (name, rest) = line.split_at(name_end);
        let separated = rest.is_empty()
            || rest.starts_with(|c: char| c.is_whitespace() || c == '(' || c == '#');
        if name.is_empty() || !separated {
            let word = line.split_whitespace().next().unwrap_or(line);
            return Err(format!(
                "{word:?}; expected a directive followed by its values, as in threads 0, 16"
            ));
        }
        Ok(Some((name, rest)))
    }

    /// The values in `rest`, the text after directive `name`. When
    /// `secret`, the values may hold a token, and no error shows them,
    /// not even in part (the message says [`NOT_SHOWN`] instead).
    pub(super) fn parse(
        name: &'a str,
        rest: &'a str,
        secret: bool,
    ) -> Result<Directive<'a>, String> {
        let (tokens, code_len) = lex(rest).map_err(|e| {
            if secret {
                format!(
                    "{name} {NOT_SHOWN}; expected strings closed on the same line, with no \
                     escape but \\\" and \\\\ and no #{{...}}"
                )
            } else {
                e
            }
        })?;
        let raw = rest[..code_len].trim();
        let args = arguments(&tokens).ok_or_else(|| {
            let shown = if secret { NOT_SHOWN } else { raw };
            format!(
                "{name} {shown}; expected literal values separated by commas, as in threads 0, 16"
            )
        })?;
        Ok(Directive { name, raw, args })
    }

    /// "NAME VALUES; expected `expect`", the message for a value of the
    /// wrong shape.
    pub(super) fn bad(&self, expect: &str) -> String {
        if self.raw.is_empty() {
            format!("{} without a value; expected {expect}", self.name)
        } else {
            format!("{} {}; expected {expect}", self.name, self.raw)
        }
    }
}

/// Stands for a value left out of a message because it may be a token.
pub(super) const NOT_SHOWN: &str = "(value not shown, as it may be a token)";

/// A directive's tokens, before commas are checked.
#[derive(Debug)]
pub(super) enum Token {
    /// A string or a word, never a hash.
    Arg(Arg),
    Comma,
    Open,
    Close,
    OpenBrace,
    CloseBrace,
}

/// Splits the text after a directive name into tokens, and returns how
/// many bytes of it are code (the rest is a `#` comment). The error is
/// the message after `FILE:LINE: `.
pub(super) fn lex(text: &str) -> Result<(Vec<Token>, usize), String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            '#' => return Ok((tokens, start)),
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '{' | '}' => {
                chars.next();
                tokens.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '{' => Token::OpenBrace,
                    _ => Token::CloseBrace,
                });
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    if c == quote {
                        closed = true;
                        break;
                    }
                    match c {
                        '\\' => match chars.next() {
                            Some((_, e)) if e == '\\' || e == quote => value.push(e),
                            // Ruby keeps other escapes literally in '...'.
                            Some((_, e)) if quote == '\'' => {
                                value.push('\\');
                                value.push(e);
                            }
                            Some((_, e)) => {
                                return Err(format!(
                                    "escape \\{e} in string {}; expected only \\\" or \\\\ \
                                     (write other characters as they are)",
                                    literal(&text[start..])
                                ))
                            }
                            None => break,
                        },
                        '#' if quote == '"' && matches!(chars.peek(), Some((_, '{'))) => {
                            return Err(format!(
                                "interpolation #{{...}} in string {}; expected a literal string \
                                 (use single quotes for a literal #{{)",
                                literal(&text[start..])
                            ));
                        }
                        _ => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!(
                        "unterminated string {}; expected a closing {quote} on the same line",
                        text[start..].trim_end(),
                    ));
                }
                tokens.push(Token::Arg(Arg::Str(value)));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace()
                        || matches!(c, ',' | '(' | ')' | '{' | '}' | '#' | '"' | '\'')
                    {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Arg(Arg::Word(text[start..end].to_string())));
            }
        }
    }
    Ok((tokens, text.len()))
}

/// The string literal at the start of `text` (which begins with its
/// quote), for messages: up to the closing quote, else the whole rest.
fn literal(text: &str) -> &str {
    let mut chars = text.char_indices();
    let quote = chars.next().map_or('"', |(_, c)| c);
    let mut escaped = false;
    for (i, c) in chars {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if c == quote => return &text[..i + c.len_utf8()],
            _ => {}
        }
    }
    text.trim_end()
}

/// `a, b, c` or `(a, b, c)` → the values; `None` for any other shape.
/// A value may be a hash (see [`Arg::Hash`]).
pub(super) fn arguments(tokens: &[Token]) -> Option<Vec<Arg>> {
    let inner = match tokens {
        [Token::Open, inner @ .., Token::Close] => inner,
        _ => tokens,
    };
    let mut args = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let braced = matches!(rest.first(), Some(Token::OpenBrace));
        let (arg, after) = argument(rest)?;
        let trailing_hash = matches!(arg, Arg::Hash(_)) && !braced;
        args.push(arg);
        rest = match after {
            [] => after,
            // Ruby allows nothing after a hash without braces.
            [Token::Comma, more @ ..] if !more.is_empty() && !trailing_hash => more,
            _ => return None,
        };
    }
    Some(args)
}

/// The value at the start of `tokens`, and what follows it.
fn argument(tokens: &[Token]) -> Option<(Arg, &[Token])> {
    match tokens {
        [Token::OpenBrace, Token::CloseBrace, rest @ ..] => Some((Arg::Hash(Vec::new()), rest)),
        [Token::OpenBrace, rest @ ..] => match pairs(rest)? {
            (pairs, [Token::CloseBrace, rest @ ..]) => Some((Arg::Hash(pairs), rest)),
            _ => None,
        },
        _ if key(tokens).is_some() => {
            let (pairs, rest) = pairs(tokens)?;
            Some((Arg::Hash(pairs), rest))
        }
        [Token::Arg(arg), rest @ ..] => Some((arg.clone(), rest)),
        _ => None,
    }
}

/// `key: value, ...` at the start of `tokens`, and what follows.
fn pairs(mut tokens: &[Token]) -> Option<(Pairs, &[Token])> {
    let mut pairs = Vec::new();
    loop {
        let (name, rest) = key(tokens)?;
        let [Token::Arg(value), rest @ ..] = rest else {
            return None;
        };
        pairs.push((name.to_string(), value.clone()));
        match rest {
            [Token::Comma, more @ ..] if key(more).is_some() => tokens = more,
            _ => return Some((pairs, rest)),
        }
    }
}

/// A hash key at the start of `tokens` (`key:`, `:key =>` or
/// `:key=>`), and what follows it.
fn key(tokens: &[Token]) -> Option<(&str, &[Token])> {
    let identifier =
        |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match tokens {
        [Token::Arg(Arg::Word(w)), Token::Arg(Arg::Word(arrow)), rest @ ..] if arrow == "=>" => w
            .strip_prefix(':')
            .filter(|k| identifier(k))
            .map(|k| (k, rest)),
        [Token::Arg(Arg::Word(w)), rest @ ..] => w
            .strip_suffix(':')
            .or_else(|| w.strip_prefix(':')?.strip_suffix("=>"))
            .filter(|k| identifier(k))
            .map(|k| (k, rest)),
        _ => None,
    }
}

pub(super) fn string(args: &[Arg]) -> Option<&str> {
    match args {
        [Arg::Str(s)] => Some(s),
        _ => None,
    }
}

pub(super) fn non_empty_string(args: &[Arg]) -> Option<&str> {
    string(args).filter(|s| !s.is_empty())
}

pub(super) fn word(args: &[Arg]) -> Option<&str> {
    match args {
        [Arg::Word(w)] => Some(w),
        _ => None,
    }
}

/// `true`, `false`, or nothing (Puma's `quiet` alone means true).
pub(super) fn boolean(args: &[Arg]) -> Option<bool> {
    match args {
        [] => Some(true),
        [Arg::Word(w)] if w == "true" => Some(true),
        [Arg::Word(w)] if w == "false" => Some(false),
        _ => None,
    }
}

/// One numeric word (`_` separators allowed), read by `parse`.
pub(super) fn number<T>(args: &[Arg], parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    word(args).and_then(ruby_number).and_then(|w| parse(&w))
}

/// A Ruby numeric literal with its `_` digit separators removed
/// (`10_485_760`); `None` when an underscore is not between two digits.
pub(super) fn ruby_number(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let separators_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    separators_ok.then(|| word.replace('_', ""))
}
