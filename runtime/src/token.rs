//! `Token<T>`: what `set` returns and `reset` takes.

use std::fmt;

use crate::value::{self, Value};
use crate::var::ContextVar;

/// Proof of one [`ContextVar::set`]: hand it to [`ContextVar::reset`] to restore the value
/// the variable had before.
///
/// Tokens are consumed by `reset`, so using one twice does not compile (Python raises
/// "Token has already been used once" at run time):
///
/// ```compile_fail
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::ContextVar;
/// static N: ContextVar<u8> = ContextVar::new("N", || 0);
/// let token = N.set(1);
/// N.reset(token).unwrap();
/// N.reset(token).unwrap(); // error[E0382]: use of moved value: `token`
/// ```
///
/// Dropping a token is fine (most `set` calls never reset): then the previous value can no
/// longer be restored with `reset`.
pub struct Token<T: 'static> {
    var: &'static ContextVar<T>,
    context: u64,
    prev: Prev<T>,
}

/// The value before the `set`.
pub(crate) enum Prev<T> {
    /// The variable was not set.
    Unset,
    /// A value other contexts may share: kept as it is, so that a reset restores the very
    /// same value (and a merge sees "unchanged").
    Shared(Value),
    /// A value only this context held, which `set` overwrote in place.
    Owned(T),
}

impl<T: Clone + Send + Sync + 'static> Token<T> {
    pub(crate) fn new(var: &'static ContextVar<T>, context: u64, prev: Prev<T>) -> Token<T> {
        Token { var, context, prev }
    }

    /// The variable whose `set` created this token.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let token = N.set(1);
    /// assert!(std::ptr::eq(token.var(), &N));
    /// ```
    pub fn var(&self) -> &'static ContextVar<T> {
        self.var
    }

    /// The value before the `set`, or `None` if the variable was not set.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let first = N.set(1);
    /// let second = N.set(2);
    /// assert_eq!((first.old_value(), second.old_value()), (None, Some(&1)));
    /// ```
    pub fn old_value(&self) -> Option<&T> {
        match &self.prev {
            Prev::Unset => None,
            Prev::Shared(shared) => value::typed(self.var, shared),
            Prev::Owned(old) => Some(old),
        }
    }

    pub(crate) fn context(&self) -> u64 {
        self.context
    }

    pub(crate) fn into_prev(self) -> Prev<T> {
        self.prev
    }
}

impl<T: Clone + Send + Sync + fmt::Debug + 'static> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("var", &self.var.name()).field("old_value", &self.old_value()).finish()
    }
}
