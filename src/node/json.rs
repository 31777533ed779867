//! A small JSON writer for the management answers (`ez.services`, `ez.stats`): objects, arrays,
//! numbers, booleans and strings. Names on the wire are bytes; they are written as
//! strings with invalid UTF-8 replaced and control characters escaped, so the output is always
//! valid JSON. And a small parser (`parse`, `Value`) the command line reads those answers with.

use std::fmt::Write;

/// Writes one JSON value; `Object` and `Array` close themselves when done.
#[derive(Debug, Default)]
pub struct Json {
    out: String,
    /// Whether the current object or array already has a member (a comma goes before the next).
    has_member: Vec<bool>,
}

impl Json {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The JSON written.
    pub fn finish(self) -> String {
        self.out
    }

    fn separator(&mut self) {
        if let Some(has) = self.has_member.last_mut() {
            if *has {
                self.out.push(',');
            }
            *has = true;
        }
    }

    fn key(&mut self, key: &str) {
        self.separator();
        write_string(&mut self.out, key.as_bytes());
        self.out.push(':');
    }

    /// Starts the top-level object (members use `object`, array elements `element`).
    pub fn begin_object(&mut self) -> &mut Self {
        self.out.push('{');
        self.has_member.push(false);
        self
    }

    /// Starts an object as the value of `key` in the current object.
    pub fn object(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.begin_object()
    }

    /// Closes the current object.
    pub fn end_object(&mut self) -> &mut Self {
        self.has_member.pop();
        self.out.push('}');
        self
    }

    /// Starts an array as the value of `key`.
    pub fn array(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.push('[');
        self.has_member.push(false);
        self
    }

    /// Closes the current array.
    pub fn end_array(&mut self) -> &mut Self {
        self.has_member.pop();
        self.out.push(']');
        self
    }

    /// Starts an object as the next element of the current array.
    pub fn element(&mut self) -> &mut Self {
        self.separator();
        self.begin_object()
    }

    /// A whole number, as the value of `key`.
    pub fn number(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// A float, finite or written as 0.
    pub fn float(&mut self, key: &str, value: f64) -> &mut Self {
        self.key(key);
        let value = if value.is_finite() { value } else { 0.0 };
        let _ = write!(self.out, "{value}");
        self
    }

    /// A boolean, as the value of `key`.
    pub fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Bytes as a string (see `write_string`), as the value of `key`.
    pub fn string(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.key(key);
        write_string(&mut self.out, value);
        self
    }
}

/// `bytes` as a JSON string: UTF-8 (invalid sequences replaced), `"` `\` and controls escaped.
pub fn write_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_and_arrays_get_their_commas() {
        let mut json = Json::new();
        json.begin_object().number("a", 1).array("list");
        json.element().string("name", b"x\"y\n\x01\xff").end_object();
        json.element().boolean("ok", true).end_object();
        json.end_array().object("inner").float("f", 0.5).end_object().end_object();
        assert_eq!(
            json.finish(),
            r#"{"a":1,"list":[{"name":"x\"y\n\u0001\u{fffd}"},{"ok":true}],"inner":{"f":0.5}}"#
                .replace("\\u{fffd}", "\u{fffd}")
        );
    }
}

/// A parsed JSON value, for the command line's tables (`ezarch services`, `ezarch stats`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number; every one is read as a float.
    Number(f64),
    /// A string, its escapes resolved.
    String(String),
    /// Elements in the order written.
    Array(Vec<Value>),
    /// Members in the order written.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as a table cell: numbers without a needless `.0`, strings as they are.
    pub fn cell(&self) -> String {
        match self {
            Value::Null => "-".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Value::Number(n) => format!("{n:.3}"),
            Value::String(s) => s.clone(),
            Value::Array(items) => format!("[{} items]", items.len()),
            Value::Object(members) => format!("{{{} fields}}", members.len()),
        }
    }
}

/// Nesting deeper than this is refused (the node writes three levels).
const MAX_DEPTH: usize = 32;

/// Parses one JSON document; `None` when it is not valid JSON (or nests too deep).
pub fn parse(text: &str) -> Option<Value> {
    let mut parser = Parser { bytes: text.as_bytes(), at: 0 };
    let value = parser.value(0)?;
    parser.space();
    (parser.at == parser.bytes.len()).then_some(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        self.bytes[self.at..].starts_with(word.as_bytes()).then(|| {
            self.at += word.len();
            value
        })
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        match *self.bytes.get(self.at)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.at += 1;
        let mut members = Vec::new();
        if self.eat(b'}') {
            return Some(Value::Object(members));
        }
        loop {
            self.space();
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            members.push((key, self.value(depth + 1)?));
            if self.eat(b'}') {
                return Some(Value::Object(members));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.at += 1;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            if self.eat(b']') {
                return Some(Value::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok().map(Value::Number)
    }

    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while !matches!(self.bytes.get(self.at), Some(b'"' | b'\\') | None) {
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(&self.bytes[start..self.at]).ok()?);
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                _ => {
                    let escaped = *self.bytes.get(self.at + 1)?;
                    self.at += 2;
                    out.push(match escaped {
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
                            self.at += 4;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?).unwrap_or('\u{fffd}')
                        }
                        other => char::from(other),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn what_the_writer_writes_the_parser_reads() {
        let mut json = Json::new();
        json.begin_object().number("n", 3).string("s", b"a\"\n\x01").array("a");
        json.element().boolean("b", false).end_object();
        json.end_array().float("f", 1.5).end_object();
        let value = parse(&json.finish()).unwrap();
        assert_eq!(value.get("n"), Some(&Value::Number(3.0)));
        assert_eq!(value.get("s"), Some(&Value::String("a\"\n\u{1}".into())));
        assert_eq!(value.get("f").map(Value::cell).as_deref(), Some("1.500"));
        let Some(Value::Array(items)) = value.get("a") else { panic!("{value:?}") };
        assert_eq!(items[0].get("b"), Some(&Value::Bool(false)));
    }

    #[test]
    fn bad_or_too_deep_json_is_refused() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "tru", "\"\\u12\"", "{} x"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(parse(&"[".repeat(40)).is_none());
        assert!(parse(&format!("{}{}", "[".repeat(10), "]".repeat(10))).is_some());
    }
}
