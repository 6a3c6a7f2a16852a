//! What the macros of the facade expand to, beyond the public API. The bounds sit on these
//! functions' type parameters, which the expansion names explicitly with the user's type:
//! a type that breaks a rule is then reported on that type, and the compiler's
//! "required by a bound in …" note names the rule.

use crate::var::ContextVar;

/// What a context variable's value type must be besides `Clone + 'static`: `Send + Sync`,
/// since a value moves to and is shared with other tasks and threads. Its own bound, so
/// that a type which is neither is reported with what to use instead.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a context variable, which must be `Send + Sync`",
    label = "not `Send + Sync`",
    note = "values move to and are shared with other tasks and threads: use `Arc` instead of `Rc`, \
            `Mutex` or `RwLock` instead of `RefCell`, atomics instead of `Cell`"
)]
pub trait ThreadSafeValue: Send + Sync {}

impl<T: Send + Sync + ?Sized> ThreadSafeValue for T {}

/// `ContextVar::new` for `#[context_var]`.
#[doc(hidden)]
pub const fn new_context_var<T: Clone + ThreadSafeValue + 'static>(
    name: &'static str,
    default: fn() -> T,
) -> ContextVar<T> {
    ContextVar::new(name, default)
}

/// An argument of a `#[sync_endpoint]` moves to a blocking-pool thread (checked by value, for
/// `impl Trait` arguments, whose type cannot be named).
#[doc(hidden)]
#[inline(always)]
pub fn assert_send_argument<T: Send + 'static>(_argument: &T) {}

/// [`assert_send_argument`] by type, for every argument whose type can be named.
#[doc(hidden)]
#[inline(always)]
pub fn assert_send_argument_type<T: Send + 'static>() {}
