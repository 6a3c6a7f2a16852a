//! Log events that carry context variables as fields (feature `tracing`).
//!
//! Python's structlog merges its context variables into every event; [`ContextFields`] does
//! the same for `tracing-subscriber`'s text formatter: name the variables once, when the
//! subscriber is built, and every event gets their current values appended as
//! `name=value` fields, with no code at the call sites. The values are read on the thread
//! that emits the event, in its current context: an event from a `spawn_blocking` worker
//! carries the values copied from the request that started it.
//!
//! ```
//! use contextvars::{ContextVar, tracing::ContextFields};
//!
//! static USER: ContextVar<String> = ContextVar::new("user", String::new);
//! static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
//!
//! tracing_subscriber::fmt()
//!     .event_format(ContextFields::new(&[&USER, &REQUEST_ID]))
//!     .init();
//!
//! USER.set("ada".into());
//! REQUEST_ID.set(7);
//! tracing::info!(status = 200, "served");
//! // 2025-01-01T00:00:00.000000Z  INFO rust_out: served status=200 user="ada" request_id=7
//! ```
//!
//! Variables that are not set in the current context are left out, like structlog leaves
//! out unset context variables. In text, values are written with their `Debug` format.
//!
//! The same `ContextFields` around the JSON format (`format().json()`, feature `json` of
//! `tracing-subscriber`) adds the variables as members of each event's object, typed:
//! strings, integers, floats, booleans and `Option`s of them as JSON values (`None` as
//! `null`), any other type as the string of its `Debug` format:
//!
//! ```
//! use contextvars::{ContextVar, tracing::ContextFields};
//! use tracing_subscriber::fmt::format;
//!
//! static USER: ContextVar<String> = ContextVar::new("user", String::new);
//! static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
//!
//! tracing_subscriber::fmt()
//!     .event_format(ContextFields::new(&[&USER, &REQUEST_ID]).format(format().json()))
//!     .init();
//!
//! USER.set("ada".into());
//! REQUEST_ID.set(7);
//! tracing::info!(status = 200, "served");
//! // {"timestamp":"…","level":"INFO","fields":{"message":"served","status":200},"target":"rust_out","user":"ada","request_id":7}
//! ```
//!
//! For OpenTelemetry, the variables become attributes of every span the SDK starts with
//! `contextvars::opentelemetry::ContextAttributes` (feature `opentelemetry`). With the
//! features `tracing` and `opentelemetry`, every child form of this crate also carries the
//! current tracing span and the OpenTelemetry context (see [`spawn`](crate::spawn) and
//! [`untraced`](crate::untraced)).

use std::fmt::{self, Write as _};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use crate::fields::LogVar;
use crate::fields::Typed;

/// The variables of a list that are set in the current context, displayed as
/// `name=value` pairs separated by spaces: what [`ContextFields`] appends to an event.
///
/// Useful on its own wherever a log line is written by hand.
///
/// ```
/// use contextvars::{ContextVar, tracing::Fields};
///
/// static USER: ContextVar<String> = ContextVar::new("user", String::new);
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
///
/// let fields = Fields::new(&[&USER, &REQUEST_ID]);
/// assert_eq!(fields.to_string(), "");
/// USER.set("ada".into());
/// REQUEST_ID.set(7);
/// assert_eq!(fields.to_string(), "user=\"ada\" request_id=7");
/// ```
#[derive(Clone)]
pub struct Fields {
    vars: Vec<&'static dyn LogVar>,
}

impl Fields {
    /// The fields for `vars`, in this order.
    ///
    /// ```
    /// use contextvars::{ContextVar, tracing::Fields};
    /// static USER: ContextVar<String> = ContextVar::new("user", String::new);
    /// let fields = Fields::new(&[&USER]);
    /// USER.set("ada".into());
    /// assert_eq!(fields.to_string(), "user=\"ada\"");
    /// ```
    pub fn new(vars: &[&'static dyn LogVar]) -> Fields {
        Fields { vars: vars.to_vec() }
    }
}

impl fmt::Display for Fields {
    /// Writes nothing for an event logged while the values are being written (by a value's
    /// `Debug`), which would write them again without end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_pairs(f, false)
    }
}

impl Fields {
    /// The `name=value` pairs separated by spaces, and one space before the first too when
    /// `leading_space` (to follow an event's own text without an empty trailing space).
    fn write_pairs(&self, f: &mut fmt::Formatter<'_>, leading_space: bool) -> fmt::Result {
        crate::fields::write_values(|| {
            let mut first = !leading_space;
            for &var in &self.vars {
                if !var.is_set_here() {
                    continue;
                }
                if !first {
                    f.write_char(' ')?;
                }
                first = false;
                write!(f, "{}=", var.field_name())?;
                var.fmt_value(f)?;
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
    }
}

/// [`Fields`] after an event's text: each pair preceded by a space.
struct AfterText<'a>(&'a Fields);

impl fmt::Display for AfterText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_pairs(f, true)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.vars.iter().map(|var| var.field_name())).finish()
    }
}

/// An event format for `tracing_subscriber::fmt` that appends chosen context variables to
/// every event, after the event's own fields.
///
/// It wraps another format (by default `tracing_subscriber`'s default, [`Format`]): that
/// format writes the event, then the variables set in the emitting thread's current
/// context follow as `name=value` (see [`Fields`]). The wrapped format renders into a
/// buffer, so it writes no ANSI colours. When the wrapped format writes a JSON object
/// (`format().json()`, flattened or not), the variables are members of that object, after
/// its own, typed (see the [module](self) docs). A key appears once: a variable named like
/// one of the object's own members (`level`, `fields`, a field of a flattened event) or
/// like an earlier variable is left out of that event, so name them apart. An event logged
/// while the values are written (by a value's `Debug`) goes out without them.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use contextvars::{ContextVar, tracing::ContextFields};
/// use tracing_subscriber::fmt::format;
///
/// static USER: ContextVar<String> = ContextVar::new("user", String::new);
///
/// #[derive(Clone, Default)]
/// struct Buffer(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Buffer {
///     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(bytes)
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let buffer = Buffer::default();
/// let writer = buffer.clone();
/// let subscriber = tracing_subscriber::fmt()
///     .event_format(ContextFields::new(&[&USER]).format(format().without_time().with_target(false)))
///     .with_writer(move || writer.clone())
///     .finish();
///
/// tracing::subscriber::with_default(subscriber, || {
///     USER.set("ada".into());
///     tracing::info!(status = 200, "served");
/// });
/// let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
/// assert_eq!(log, " INFO served status=200 user=\"ada\"\n");
/// ```
#[derive(Clone, Debug)]
pub struct ContextFields<E = Format> {
    fields: Fields,
    inner: E,
}

impl ContextFields {
    /// Appends `vars` to the events written by `tracing_subscriber`'s default format.
    ///
    /// ```
    /// use contextvars::{ContextVar, tracing::ContextFields};
    /// static USER: ContextVar<String> = ContextVar::new("user", String::new);
    /// let subscriber = tracing_subscriber::fmt().event_format(ContextFields::new(&[&USER])).finish();
    /// USER.set("ada".into());
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("served")); // ... served user="ada"
    /// ```
    pub fn new(vars: &[&'static dyn LogVar]) -> ContextFields {
        ContextFields { fields: Fields::new(vars), inner: Format::default() }
    }
}

impl<E> ContextFields<E> {
    /// Appends the variables to the events written by `inner` instead, such as a
    /// configured `tracing_subscriber::fmt::format()` (see the type's example).
    pub fn format<F>(self, inner: F) -> ContextFields<F> {
        ContextFields { fields: self.fields, inner }
    }
}

impl<S, N, E> FormatEvent<S, N> for ContextFields<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The wrapped format ends the line itself: let it write into a buffer, then put the
        // variables in front of its line break.
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line.as_str(), ""),
        };
        if let Some(members) = json_members(body) {
            // A JSON object (`format().json()`): the variables become members of it.
            writer.write_str(members)?;
            let mut first = members.trim_end().ends_with('{');
            // A name the object already has (the format's `level`, a flattened field) keeps
            // its member: a second one would be read as the last by most parsers.
            let taken = json::top_level_keys(members);
            // The variables' own keys, for a second variable of the same field name.
            let mut written: Vec<String> = Vec::new();
            crate::fields::write_values(|| {
                for &var in self.fields.vars.iter().filter(|var| var.is_set_here()) {
                    let mut key = String::new();
                    json::write_str(&mut key, var.field_name())?;
                    if taken.contains(&key.as_str()) || written.contains(&key) {
                        continue;
                    }
                    if !first {
                        writer.write_char(',')?;
                    }
                    first = false;
                    writer.write_str(&key)?;
                    writer.write_char(':')?;
                    json::write_value(&mut writer, &Typed::of(var))?;
                    written.push(key);
                }
                Ok(())
            })
            .unwrap_or(Ok(()))?;
            writer.write_char('}')?;
        } else {
            writer.write_str(body)?;
            // Straight into the line: no string of the pairs per event.
            write!(writer, "{}", AfterText(&self.fields))?;
        }
        writer.write_str(end)
    }
}

/// The members of a line that is a JSON object: the line without its closing brace.
fn json_members(line: &str) -> Option<&str> {
    line.starts_with('{').then_some(())?;
    line.strip_suffix('}')
}

/// JSON text of the values (RFC 8259), written straight into the event's line.
mod json {
    use std::fmt::{self, Write};

    use crate::fields::Typed;

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    pub(super) fn write_str(out: &mut impl Write, text: &str) -> fmt::Result {
        out.write_char('"')?;
        for c in text.chars() {
            match c {
                '"' => out.write_str("\\\"")?,
                '\\' => out.write_str("\\\\")?,
                '\n' => out.write_str("\\n")?,
                '\r' => out.write_str("\\r")?,
                '\t' => out.write_str("\\t")?,
                c if c < ' ' => write!(out, "\\u{:04x}", u32::from(c))?,
                c => out.write_char(c)?,
            }
        }
        out.write_char('"')
    }

    /// The keys of the members of an object's text (without its closing brace), as written:
    /// quoted and escaped. Only the object's own, not those of the objects inside it.
    pub(super) fn top_level_keys(members: &str) -> Vec<&str> {
        let mut keys = Vec::new();
        let (mut depth, mut string_start, mut escaped) = (0usize, None, false);
        for (at, c) in members.char_indices() {
            if let Some(start) = string_start {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        string_start = None;
                        let rest = members[at + 1..].trim_start();
                        if depth == 1 && rest.starts_with(':') {
                            keys.push(&members[start..=at]);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => string_start = Some(at),
                '{' | '[' => depth += 1,
                '}' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        keys
    }

    /// A value as JSON: strings, numbers, booleans and `null` as themselves; a float that is
    /// not finite as `null` (JSON has no such number); any other type as its `Debug` text.
    pub(super) fn write_value(out: &mut impl Write, value: &Typed) -> fmt::Result {
        match value {
            Typed::Str(text) | Typed::Debug(text) => write_str(out, text),
            Typed::I64(n) => write!(out, "{n}"),
            Typed::U64(n) => write!(out, "{n}"),
            Typed::F64(x) if x.is_finite() => write!(out, "{x}"),
            Typed::F64(_) | Typed::Null => out.write_str("null"),
            Typed::Bool(b) => write!(out, "{b}"),
        }
    }
}
