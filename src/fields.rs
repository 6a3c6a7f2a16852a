//! The chosen variables of the structured outputs (log fields, JSON members, span
//! attributes): each one's name and its current value, typed where its type is one a
//! structured format has (strings, integers, floats, booleans, and `Option`s of them), else
//! its `Debug` text.

use std::any::Any;
use std::cell::Cell;
use std::fmt;

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

    /// Calls `f` with the variable's value in the current context (or its default), as
    /// `Any` and as `Debug`: how the structured outputs find its type.
    #[doc(hidden)]
    fn visit_value(&'static self, f: &mut dyn FnMut(&dyn Any, &dyn fmt::Debug));
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

    fn visit_value(&'static self, f: &mut dyn FnMut(&dyn Any, &dyn fmt::Debug)) {
        self.with(|value| f(value, value));
    }
}

thread_local! {
    /// Whether this thread is writing variables' values into an event or a span.
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which writes the variables' values, unless this thread is already writing
/// them: a value whose `Debug` logs an event (or starts a span) would have that event
/// write the values again, and so on until the stack overflows. The inner event goes out
/// without the variables (`None`).
pub(crate) fn write_values<R>(f: impl FnOnce() -> R) -> Option<R> {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            WRITING.with(|writing| writing.set(false));
        }
    }
    if WRITING.with(|writing| writing.replace(true)) {
        return None;
    }
    let _done = Done;
    Some(f())
}

/// A variable's value as the structured outputs write it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Typed {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// An `Option` that holds `None`.
    Null,
    /// Any other type: its `Debug` text.
    Debug(String),
}

impl Typed {
    /// The current value of `var`.
    pub(crate) fn of(var: &'static dyn LogVar) -> Typed {
        let mut typed = Typed::Null;
        var.visit_value(&mut |any, debug| {
            typed = Typed::from_any(any).unwrap_or_else(|| Typed::Debug(format!("{debug:?}")))
        });
        typed
    }

    /// The value, if its type is one of the structured formats' (or an `Option` of one).
    fn from_any(any: &dyn Any) -> Option<Typed> {
        macro_rules! typed {
            ($($type:ty => $make:expr),* $(,)?) => {
                $(
                    if let Some(value) = any.downcast_ref::<$type>() {
                        #[allow(clippy::redundant_closure_call)]
                        return Some($make(value));
                    }
                    if let Some(value) = any.downcast_ref::<Option<$type>>() {
                        #[allow(clippy::redundant_closure_call)]
                        return Some(value.as_ref().map_or(Typed::Null, |value| $make(value)));
                    }
                )*
            };
        }
        typed! {
            String => |value: &String| Typed::Str(value.clone()),
            &'static str => |value: &&str| Typed::Str(value.to_string()),
            std::sync::Arc<str> => |value: &std::sync::Arc<str>| Typed::Str(value.to_string()),
            bool => |value: &bool| Typed::Bool(*value),
            i8 => |value: &i8| Typed::I64((*value).into()),
            i16 => |value: &i16| Typed::I64((*value).into()),
            i32 => |value: &i32| Typed::I64((*value).into()),
            i64 => |value: &i64| Typed::I64(*value),
            isize => |value: &isize| Typed::I64(*value as i64),
            u8 => |value: &u8| Typed::U64((*value).into()),
            u16 => |value: &u16| Typed::U64((*value).into()),
            u32 => |value: &u32| Typed::U64((*value).into()),
            u64 => |value: &u64| Typed::U64(*value),
            usize => |value: &usize| Typed::U64(*value as u64),
            f32 => |value: &f32| Typed::F64((*value).into()),
            f64 => |value: &f64| Typed::F64(*value),
        }
        None
    }
}
