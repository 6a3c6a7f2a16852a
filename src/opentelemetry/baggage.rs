//! The W3C Baggage codec: the `baggage` header parsed into entries and written back.
//!
//! Lenient on input, strict on output. Parsing never fails: an entry that breaks the
//! grammar (a key that is not a token, a value with a forbidden byte or a bad `%` escape,
//! text that is not UTF-8 once decoded, a bad property) is dropped with a `tracing` warning,
//! and so is every entry past the limits the specification asks to propagate
//! ([`MAX_ENTRIES`], [`MAX_BYTES`]). Writing percent-encodes every value byte outside the
//! specification's `baggage-octet`, and keys and properties are checked tokens, so an
//! output header holds visible ASCII only: no CR, no LF, whatever went in.

use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// The number of entries propagated, at least: the W3C specification's minimum.
pub const MAX_ENTRIES: usize = 64;

/// The length of a `baggage` header, in bytes, propagated at least: the W3C
/// specification's minimum.
pub const MAX_BYTES: usize = 8192;

/// The value bytes that are written as `%XX`: everything but the specification's
/// `baggage-octet` (visible ASCII except `"`, `,`, `;` and `\`), and `%` itself.
const VALUE_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b',').add(b';').add(b'\\').add(b'%');

/// One `key=value;properties` member of a `baggage` header, with its value decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    key: String,
    value: String,
    /// The properties as received (checked, trimmed, joined by `;`): forwarded untouched.
    properties: String,
}

impl Entry {
    /// The key: an HTTP token.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, percent-decoded.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The properties (`;`-separated, without the leading `;`), empty when there are none.
    pub fn properties(&self) -> &str {
        &self.properties
    }

    /// `key=value[;properties]`, as written in a header.
    fn encode(&self) -> String {
        let mut out = String::with_capacity(self.key.len() + self.value.len() + 1);
        out.push_str(&self.key);
        out.push('=');
        out.extend(utf8_percent_encode(&self.value, VALUE_ESCAPES));
        if !self.properties.is_empty() {
            out.push(';');
            out.push_str(&self.properties);
        }
        out
    }
}

/// A key that cannot travel in a `baggage` header: not an HTTP token (empty, or with a
/// space, a separator or a control character).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey(pub String);

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid baggage key: use letters, digits and `!#$%&'*+-.^_`|~` only",
            self.0.escape_debug()
        )
    }
}

impl std::error::Error for InvalidKey {}

/// The entries of W3C `baggage` headers, in order, one per key.
///
/// ```
/// use contextvars::opentelemetry::Baggage;
///
/// let baggage = Baggage::parse([&b"user.id=ada%20lovelace, tenant=acme;ttl=3"[..]]);
/// assert_eq!(baggage.get("user.id"), Some("ada lovelace"));
/// assert_eq!(baggage.to_header_string(), "user.id=ada%20lovelace,tenant=acme;ttl=3");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<Entry>,
}

impl Baggage {
    /// No entries.
    ///
    /// ```
    /// assert!(contextvars::opentelemetry::Baggage::new().is_empty());
    /// ```
    pub fn new() -> Baggage {
        Baggage::default()
    }

    /// Parses the values of every `baggage` header of a message (several headers are one
    /// comma-separated list). Never fails: invalid entries and those past [`MAX_ENTRIES`] or
    /// [`MAX_BYTES`] are dropped with a warning. A key given twice keeps its last value.
    ///
    /// ```
    /// use contextvars::opentelemetry::Baggage;
    /// // `bad key` is not a token and `%zz` not an escape: both dropped, the rest kept.
    /// let baggage = Baggage::parse([&b"bad key=1,a=%zz,b=2"[..]]);
    /// assert_eq!(baggage.len(), 1);
    /// assert_eq!(baggage.get("b"), Some("2"));
    /// ```
    pub fn parse<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Baggage {
        let mut baggage = Baggage::new();
        let mut bytes = 0;
        let mut dropped = 0usize;
        for header in headers {
            for member in header.split(|&byte| byte == b',') {
                let member = trim(member);
                if member.is_empty() {
                    continue;
                }
                let entry = match parse_member(member) {
                    Ok(entry) => entry,
                    Err(reason) => {
                        tracing::warn!(
                            target: "contextvars::baggage",
                            entry = %Shown(member),
                            "dropped a baggage entry: {reason}"
                        );
                        continue;
                    }
                };
                let replaces = baggage.entries.iter().any(|old| old.key == entry.key);
                let size = member.len() + usize::from(bytes > 0);
                if !replaces && (baggage.entries.len() >= MAX_ENTRIES || bytes + size > MAX_BYTES) {
                    dropped += 1;
                    continue;
                }
                bytes += size;
                baggage.put(entry);
            }
        }
        if dropped > 0 {
            tracing::warn!(
                target: "contextvars::baggage",
                dropped,
                "dropped baggage entries past the limits of {MAX_ENTRIES} entries and {MAX_BYTES} bytes"
            );
        }
        baggage
    }

    /// Parses every `baggage` header of `headers` (see [`parse`](Self::parse)).
    ///
    /// ```
    /// use contextvars::opentelemetry::Baggage;
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("baggage", "a=1".parse().unwrap());
    /// headers.append("baggage", "b=2".parse().unwrap());
    /// assert_eq!(Baggage::from_headers(&headers).len(), 2);
    /// ```
    pub fn from_headers(headers: &http::HeaderMap) -> Baggage {
        Baggage::parse(headers.get_all(super::BAGGAGE_HEADER).iter().map(|value| value.as_bytes()))
    }

    /// The decoded value of `key`.
    ///
    /// ```
    /// let baggage = contextvars::opentelemetry::Baggage::parse([&b"k=v"[..]]);
    /// assert_eq!((baggage.get("k"), baggage.get("x")), (Some("v"), None));
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|entry| entry.key == key).map(|entry| entry.value.as_str())
    }

    /// Sets `key` to `value` (any text: it is percent-encoded on output), replacing its old
    /// value and properties.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`] if `key` is not an HTTP token; then nothing changes.
    ///
    /// ```
    /// use contextvars::opentelemetry::Baggage;
    /// let mut baggage = Baggage::new();
    /// baggage.insert("note", "a, b; c\r\n")?;
    /// assert_eq!(baggage.to_header_string(), "note=a%2C%20b%3B%20c%0D%0A");
    /// assert!(baggage.insert("bad\nkey", "x").is_err());
    /// # Ok::<(), contextvars::opentelemetry::InvalidKey>(())
    /// ```
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), InvalidKey> {
        if !is_token(key.as_bytes()) {
            return Err(InvalidKey(key.to_owned()));
        }
        self.put(Entry { key: key.to_owned(), value: value.to_owned(), properties: String::new() });
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// ```
    /// let mut baggage = contextvars::opentelemetry::Baggage::parse([&b"k=v"[..]]);
    /// assert!(baggage.remove("k") && baggage.is_empty());
    /// ```
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.key != key);
        self.entries.len() != before
    }

    /// The entries, in order.
    ///
    /// ```
    /// let baggage = contextvars::opentelemetry::Baggage::parse([&b"a=1,b=2"[..]]);
    /// let keys: Vec<&str> = baggage.iter().map(|entry| entry.key()).collect();
    /// assert_eq!(keys, ["a", "b"]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter()
    }

    /// The number of entries.
    ///
    /// ```
    /// assert_eq!(contextvars::opentelemetry::Baggage::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    ///
    /// ```
    /// assert!(contextvars::opentelemetry::Baggage::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The header value: entries joined by `,`, values percent-encoded. Entries past
    /// [`MAX_ENTRIES`] or [`MAX_BYTES`] are left out with a warning. Visible ASCII only.
    ///
    /// ```
    /// let mut baggage = contextvars::opentelemetry::Baggage::new();
    /// baggage.insert("city", "Zürich")?;
    /// assert_eq!(baggage.to_header_string(), "city=Z%C3%BCrich");
    /// # Ok::<(), contextvars::opentelemetry::InvalidKey>(())
    /// ```
    pub fn to_header_string(&self) -> String {
        let mut out = String::new();
        let mut count = 0;
        let mut dropped = 0usize;
        for entry in &self.entries {
            let encoded = entry.encode();
            let size = encoded.len() + usize::from(!out.is_empty());
            if count >= MAX_ENTRIES || out.len() + size > MAX_BYTES {
                dropped += 1;
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&encoded);
            count += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                target: "contextvars::baggage",
                dropped,
                "left out baggage entries past the limits of {MAX_ENTRIES} entries and {MAX_BYTES} bytes"
            );
        }
        out
    }

    /// [`to_header_string`](Self::to_header_string) as a header value; `None` when there is
    /// nothing to send.
    ///
    /// ```
    /// let baggage = contextvars::opentelemetry::Baggage::parse([&b"k=v"[..]]);
    /// assert_eq!(baggage.to_header_value().unwrap(), "k=v");
    /// ```
    pub fn to_header_value(&self) -> Option<http::HeaderValue> {
        let text = self.to_header_string();
        if text.is_empty() {
            return None;
        }
        // Cannot fail: the text is visible ASCII (see the module's documentation).
        http::HeaderValue::from_str(&text).ok()
    }

    /// Sets a registered variable's entry (its key is a token: the registry checked it),
    /// taking the text of its value as it is.
    pub(crate) fn put_var(&mut self, key: &str, value: String) {
        debug_assert!(is_token(key.as_bytes()));
        self.put(Entry { key: key.to_owned(), value, properties: String::new() });
    }

    /// Keeps only the entries for which `keep` returns `true`, in order.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.entries.retain(keep);
    }

    /// Adds or replaces an entry (keeping the old one's place).
    pub(crate) fn put(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|old| old.key == entry.key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }
}

/// `key OWS "=" OWS value *( OWS ";" OWS property )`, already trimmed.
fn parse_member(member: &[u8]) -> Result<Entry, &'static str> {
    let (pair, properties) = match member.iter().position(|&byte| byte == b';') {
        Some(at) => (&member[..at], Some(&member[at + 1..])),
        None => (member, None),
    };
    let at = pair.iter().position(|&byte| byte == b'=').ok_or("no `=` between key and value")?;
    let key = trim(&pair[..at]);
    if !is_token(key) {
        return Err("the key is not a token");
    }
    let value = decode_value(trim(&pair[at + 1..]))?;
    let properties = match properties {
        Some(properties) => check_properties(properties)?,
        None => String::new(),
    };
    Ok(Entry {
        // A token is ASCII.
        key: String::from_utf8_lossy(key).into_owned(),
        value,
        properties,
    })
}

/// Percent-decodes a value made of `baggage-octet`s into UTF-8 text.
fn decode_value(value: &[u8]) -> Result<String, &'static str> {
    if !value.iter().all(|&byte| is_baggage_octet(byte)) {
        return Err(
            "the value holds a byte outside `baggage-octet` (a space, a control, `\"`, `\\` or non-ASCII)",
        );
    }
    let mut decoded = Vec::with_capacity(value.len());
    let mut bytes = value.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let high = bytes.next().and_then(|&digit| hex(digit));
        let low = bytes.next().and_then(|&digit| hex(digit));
        match (high, low) {
            (Some(high), Some(low)) => decoded.push(high << 4 | low),
            _ => return Err("a `%` not followed by two hex digits"),
        }
    }
    String::from_utf8(decoded).map_err(|_| "the decoded value is not UTF-8")
}

/// Checks `property *( OWS ";" OWS property )` with `property = key [OWS "=" OWS value]`,
/// and returns the properties trimmed and joined by `;`.
fn check_properties(properties: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(properties.len());
    for property in properties.split(|&byte| byte == b';') {
        let property = trim(property);
        let (key, value) = match property.iter().position(|&byte| byte == b'=') {
            Some(at) => (trim(&property[..at]), Some(trim(&property[at + 1..]))),
            None => (property, None),
        };
        if !is_token(key) {
            return Err("a property key is not a token");
        }
        if !value.is_none_or(|value| value.iter().all(|&byte| is_baggage_octet(byte))) {
            return Err("a property value holds a byte outside `baggage-octet`");
        }
        if !out.is_empty() {
            out.push(b';');
        }
        out.extend_from_slice(key);
        if let Some(value) = value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    // Tokens and baggage-octets are ASCII.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

/// Without the optional white space (spaces and tabs) around it.
fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// An RFC 9110 token: one or more `tchar`.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// At most 64 bytes of a dropped entry, escaped, for a warning.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(64)];
        write!(f, "{}", shown.escape_ascii())?;
        if shown.len() < self.0.len() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_properties() {
        let baggage = Baggage::parse([&b" a = 1 ;p1; p2 = x , b=%E2%9C%93"[..]]);
        assert_eq!(baggage.get("a"), Some("1"));
        assert_eq!(baggage.iter().next().unwrap().properties(), "p1;p2=x");
        assert_eq!(baggage.get("b"), Some("✓"));
        assert_eq!(baggage.to_header_string(), "a=1;p1;p2=x,b=%E2%9C%93");
    }

    #[test]
    fn invalid_entries_are_dropped_alone() {
        let header = b"ok=1,=nokey,novalue,k=\"q\",k2=%4,k3=%FF,k4=v;bad prop,\x00=1,ok2=2";
        let baggage = Baggage::parse([&header[..]]);
        let keys: Vec<&str> = baggage.iter().map(Entry::key).collect();
        assert_eq!(keys, ["ok", "ok2"]);
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_in_its_first_place() {
        let baggage = Baggage::parse([&b"a=1,b=2"[..], &b"a=3"[..]]);
        assert_eq!(baggage.to_header_string(), "a=3,b=2");
    }

    #[test]
    fn entries_past_the_count_limit_are_dropped() {
        let header: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        let baggage = Baggage::parse([header.join(",").as_bytes()]);
        assert_eq!(baggage.len(), MAX_ENTRIES);
        assert_eq!(baggage.get("k63"), Some("v"));
        assert_eq!(baggage.get("k64"), None);
    }

    #[test]
    fn entries_past_the_byte_limit_are_dropped_and_later_small_ones_kept() {
        let big = "x".repeat(5000);
        let header = format!("a={big},b={big},c=small");
        let baggage = Baggage::parse([header.as_bytes()]);
        assert_eq!(baggage.get("a").map(str::len), Some(5000));
        assert_eq!(baggage.get("b"), None);
        assert_eq!(baggage.get("c"), Some("small"));
    }

    #[test]
    fn output_respects_the_limits() {
        let mut baggage = Baggage::new();
        for i in 0..80 {
            baggage.insert(&format!("k{i}"), &"é".repeat(20)).unwrap();
        }
        let text = baggage.to_header_string();
        assert!(text.len() <= MAX_BYTES);
        assert!(text.split(',').count() <= MAX_ENTRIES);
    }
}
