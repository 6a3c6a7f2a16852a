use std::fmt;

/// What can go wrong at run time. Everything else is a compile error.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, Error};
/// static A: ContextVar<u32> = ContextVar::new("A", || 0);
/// static B: ContextVar<u32> = ContextVar::new("B", || 0);
///
/// let token = A.set(1);
/// let err = B.reset(token).unwrap_err();
/// assert!(matches!(err, Error::TokenFromOtherVar { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The token was created by `set` in another context (another task, thread,
    /// [`Context::run`](crate::Context::run), or a `#[propagate(back)]` /
    /// `#[propagate(none)]` function, which runs in a copy of its caller's context) than the
    /// current one.
    TokenFromOtherContext {
        /// The variable the token belongs to.
        var: &'static str,
    },
    /// The token was created by `set` on another variable than the one `reset` was called on.
    TokenFromOtherVar {
        /// The variable the token belongs to.
        token_var: &'static str,
        /// The variable `reset` was called on.
        var: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TokenFromOtherContext { var } => write!(
                f,
                "the token of `{var}` was created in a different context: reset a variable in \
                 the task, thread, `Context::run` or `#[propagate]` function that called `set` \
                 (such a function runs in a copy of its caller's context)"
            ),
            Error::TokenFromOtherVar { token_var, var } => write!(
                f,
                "the token was created by `{token_var}.set()`, not by `{var}.set()`: pass it \
                 to `{token_var}.reset()`"
            ),
        }
    }
}

impl std::error::Error for Error {}
