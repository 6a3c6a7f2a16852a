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
//! out unset context variables. Values are written with their `Debug` format.

use std::fmt::{self, Write as _};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::ContextVar;

/// A context variable whose current value can be written into a log event.
///
/// Implemented by every [`ContextVar<T>`] whose `T` is `Debug`; sealed. Lets one list
/// name variables of several types: `&[&USER, &REQUEST_ID]`.
///
/// ```
/// use contextvars::{ContextVar, tracing::LogVar};
///
/// static USER: ContextVar<String> = ContextVar::new("user", String::new);
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
///
/// let vars: [&'static dyn LogVar; 2] = [&USER, &REQUEST_ID];
/// REQUEST_ID.set(7);
/// assert_eq!(vars.map(|var| var.is_set_here()), [false, true]);
/// ```
pub trait LogVar: Send + Sync + sealed::Sealed + 'static {
    /// The field name: the variable's name.
    fn field_name(&self) -> &'static str;

    /// Whether the current context holds a value for the variable (see
    /// [`ContextVar::is_set`]).
    fn is_set_here(&'static self) -> bool;

    /// Writes the variable's value in the current context (or its default) with `Debug`.
    ///
    /// ```
    /// use contextvars::{ContextVar, tracing::LogVar};
    /// static USER: ContextVar<String> = ContextVar::new("user", String::new);
    ///
    /// struct Show(&'static dyn LogVar);
    /// impl std::fmt::Display for Show {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         self.0.fmt_value(f)
    ///     }
    /// }
    /// USER.set("ada".into());
    /// assert_eq!(Show(&USER).to_string(), "\"ada\"");
    /// ```
    fn fmt_value(&'static self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

mod sealed {
    pub trait Sealed {}
    impl<T: 'static> Sealed for crate::ContextVar<T> {}
}

impl<T: fmt::Debug + Clone + Send + Sync + 'static> LogVar for ContextVar<T> {
    fn field_name(&self) -> &'static str {
        self.name()
    }

    fn is_set_here(&'static self) -> bool {
        self.is_set()
    }

    fn fmt_value(&'static self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|value| fmt::Debug::fmt(value, f))
    }
}

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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
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
/// buffer, so it writes no ANSI colours. Meant for the line-oriented text formats (full,
/// compact); a JSON format would need the fields inside its object.
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
        writer.write_str(body)?;
        let fields = self.fields.to_string();
        if !fields.is_empty() {
            writer.write_char(' ')?;
            writer.write_str(&fields)?;
        }
        writer.write_str(end)
    }
}
