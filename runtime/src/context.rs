//! `Context`: an immutable snapshot of every variable's value.

use std::fmt;
use std::future::Future;

use crate::current;
use crate::scope::Scope;
use crate::value::Map;
use crate::var::{AnyVar, ContextVar};

/// An immutable snapshot of context variables: what [`ContextVar::get`] reads.
///
/// [`Context::current`] takes one in O(1), whatever the number of variables. A context is
/// entered with [`run`](Context::run) (a closure) or [`scope`](Context::scope) (a future);
/// the changes made inside land in that context and nowhere else.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{Context, ContextVar};
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
///
/// let mut ctx = Context::new();
/// ctx.run(|| USER.set(Some("ada".into())));
/// assert_eq!(ctx.get(&USER).as_deref(), Some("ada"));
/// assert_eq!(USER.get(), None); // the thread's own context did not change
/// ```
///
/// Cloning a context is O(1) and gives an independent copy: changes made in one are not
/// seen in the other, and a token created in one cannot reset the other.
pub struct Context {
    pub(crate) map: Map,
    /// Identity for tokens; zero until a token needs it.
    pub(crate) id: u64,
}

impl Context {
    /// The context's map, taken out (a `Context` cannot be destructured: it has a `Drop`).
    pub(crate) fn into_map(mut self) -> Map {
        std::mem::take(&mut self.map)
    }
}

impl Drop for Context {
    /// The values only this context still holds are dropped in a scratch context: a value's
    /// `Drop` that sets a variable then neither panics (in a task without a context, or while
    /// unwinding, where a panic aborts) nor writes into whatever context is current.
    #[inline]
    fn drop(&mut self) {
        if let Some(released) = std::mem::take(&mut self.map).let_go() {
            // Values whose drop runs no code of theirs need no scratch context.
            if released.drops_quietly() {
                drop(released);
            } else {
                current::drop_outside(released);
            }
        }
    }
}

impl Context {
    /// An empty context: every variable at its default.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 1);
    /// N.set(2);
    /// assert_eq!(Context::new().get(&N), 1);
    /// ```
    pub const fn new() -> Context {
        Context { map: Map::EMPTY, id: 0 }
    }

    /// A snapshot of the current context, O(1) whatever the number of variables.
    ///
    /// Later changes to the current context do not show in the snapshot.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// N.set(1);
    /// let snapshot = Context::current();
    /// N.set(2);
    /// assert_eq!(snapshot.get(&N), 1);
    /// ```
    #[inline]
    pub fn current() -> Context {
        Context { map: current::snapshot(), id: 0 }
    }

    /// The value of `var` in this context, or its default.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 5);
    /// assert_eq!(Context::new().get(&N), 5);
    /// ```
    pub fn get<T: Clone + Send + Sync + 'static>(&self, var: &'static ContextVar<T>) -> T {
        var.view(self.map.get(var.key())).clone()
    }

    /// Whether this context holds a value for `var` (as opposed to its default), like Python's
    /// `var in ctx`. Takes a typed variable or a `&'static dyn AnyVar`, such as those
    /// [`vars`](Context::vars) yields.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{AnyVar, Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// static M: ContextVar<u8> = ContextVar::new("M", || 0);
    ///
    /// let mut ctx = Context::new();
    /// assert!(!ctx.contains(&N));
    /// ctx.run(|| N.set(0)); // set, even if to its default
    /// assert!(ctx.contains(&N));
    ///
    /// let any: [&'static dyn AnyVar; 2] = [&N, &M];
    /// assert_eq!(any.map(|var| ctx.contains(var)), [true, false]);
    /// ```
    pub fn contains<V: AnyVar + ?Sized>(&self, var: &'static V) -> bool {
        self.map.get(var.var_key()).is_some()
    }

    /// How many variables are set in this context, like Python's `len(ctx)`. Counts them:
    /// O(number of variables set).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static USER: ContextVar<&str> = ContextVar::new("USER", || "nobody");
    /// static ID: ContextVar<u64> = ContextVar::new("ID", || 0);
    ///
    /// let mut ctx = Context::new();
    /// assert_eq!(ctx.len(), 0);
    /// let token = ctx.run(|| {
    ///     USER.set("ada");
    ///     ID.set(7)
    /// });
    /// assert_eq!(ctx.len(), 2);
    /// ctx.run(|| ID.reset(token))?; // back to "not set"
    /// assert_eq!(ctx.len(), 1);
    /// # Ok::<(), contextvars::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        let mut len = 0;
        self.for_each_var(|_| len += 1);
        len
    }

    /// The variables set in this context, in no particular order, like iterating over a
    /// Python `Context`: what a request carries, say, for a framework to log or check.
    /// [`get`](Context::get) reads a value once the variable's type is known.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static USER: ContextVar<&str> = ContextVar::new("USER", || "nobody");
    /// static ID: ContextVar<u64> = ContextVar::new("ID", || 0);
    /// static UNUSED: ContextVar<u64> = ContextVar::new("UNUSED", || 0);
    ///
    /// let mut ctx = Context::new();
    /// ctx.run(|| {
    ///     USER.set("ada");
    ///     ID.set(7);
    /// });
    /// let mut names: Vec<&str> = ctx.vars().map(|var| var.var_name()).collect();
    /// names.sort_unstable();
    /// assert_eq!(names, ["ID", "USER"]);
    /// assert!(ctx.vars().all(|var| ctx.contains(var)));
    /// assert!(!ctx.contains(&UNUSED));
    /// ```
    pub fn vars(&self) -> impl Iterator<Item = &'static dyn AnyVar> {
        let mut vars = Vec::new();
        self.for_each_var(|var| vars.push(var));
        vars.into_iter()
    }

    /// Whether no variable is set in this context.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// assert!(Context::new().is_empty());
    /// let mut ctx = Context::new();
    /// ctx.run(|| N.set(1));
    /// assert!(!ctx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Runs `f` with this context as the thread's current one; the changes `f` makes land in
    /// `self`. On return, also by panic, the thread's previous context is restored.
    ///
    /// Taking `&mut self` makes entering one context twice at once a compile error.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0);
    ///
    /// let mut ctx = Context::current();
    /// for _ in 0..3 {
    ///     ctx.run(|| HITS.set(HITS.get() + 1));
    /// }
    /// assert_eq!(ctx.get(&HITS), 3);
    /// assert_eq!(HITS.get(), 0);
    /// ```
    ///
    /// # Panics
    ///
    /// When called from the `Clone` of a stored value that [`ContextVar::get`] is cloning:
    /// the current context is borrowed then.
    #[track_caller]
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _entered = current::Enter::new(self, current::Entered::Run);
        f()
    }

    /// Wraps `fut` so that every poll of it (and its drop) runs in this context.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut ctx = Context::new();
    /// ctx.run(|| USER.set("ada"));
    /// let seen = ctx.scope(async { USER.get() }).await;
    /// assert_eq!(seen, "ada");
    /// # });
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> Scope<F> {
        Scope::new(self, fut)
    }
}

impl Context {
    /// Calls `f` for every variable set in this context: every value of the map (its marks
    /// are no variables).
    fn for_each_var(&self, mut f: impl FnMut(&'static dyn AnyVar)) {
        self.map.for_each(&mut |_, value| f(value.var()));
    }
}

impl Clone for Context {
    /// An independent copy with an identity of its own (like Python's `Context.copy()`).
    fn clone(&self) -> Context {
        Context { map: self.map.clone(), id: 0 }
    }
}

impl Default for Context {
    fn default() -> Context {
        Context::new()
    }
}

impl fmt::Debug for Context {
    /// Names the variables set: `Context { set: ["USER", "ID"] }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.vars().map(|var| var.var_name()).collect();
        f.debug_struct("Context").field("set", &names).finish()
    }
}
