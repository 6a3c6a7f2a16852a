//! `ContextVar<T>`: a static key with a lazy default and a flow policy.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::current;
use crate::error::Error;
use crate::token::{Prev, Token};
use crate::value::{self, Value};

/// A context variable: a `static` whose value depends on the current [`Context`](crate::Context).
///
/// Declare it as a `static` (the `#[context_var]` macro of the facade writes this for you).
/// The default is computed lazily, at most once per variable, the first time a context
/// without a value for it is read.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("REQUEST_ID", || 0);
///
/// assert_eq!(REQUEST_ID.get(), 0);
/// let token = REQUEST_ID.set(7);
/// assert_eq!(REQUEST_ID.get(), 7);
/// REQUEST_ID.reset(token).unwrap();
/// assert_eq!(REQUEST_ID.get(), 0);
/// ```
///
/// Its identity is the static itself, not its name: two variables named alike are distinct.
/// The policy decides how values cross a [`spawn`](crate::spawn) and its join:
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::ContextVar;
///
/// fn union(_base: &Vec<u32>, parent: &Vec<u32>, child: &Vec<u32>) -> Vec<u32> {
///     let mut all = parent.clone();
///     all.extend(child.iter().filter(|x| !parent.contains(x)));
///     all
/// }
///
/// // A transaction handle must not follow a task, nor come back from one.
/// static TXN: ContextVar<Option<u32>> = ContextVar::new("txn", || None).inherit(false).back(false);
/// // Both sides may add to this list; the merge keeps both.
/// static SEEN: ContextVar<Vec<u32>> = ContextVar::new("SEEN", Vec::new).merge(union);
/// # assert!(!TXN.inherits() && !TXN.flows_back() && SEEN.flows_back());
/// ```
pub struct ContextVar<T: 'static> {
    name: &'static str,
    default: fn() -> T,
    /// The default once computed, stored like any value: not as a `T` inline, so that
    /// whether a `ContextVar<T>` is `Sync` (as a `static` must be) does not depend on `T`.
    /// A `T` that is not `Send + Sync` is then reported once, by the bounds of the
    /// constructor, and not a second time as the static's `Sync`.
    default_value: OnceLock<Value>,
    /// The map key plus one; zero until the variable is first used.
    key: AtomicU32,
    inherit: bool,
    back: bool,
    merge: Option<fn(&T, &T, &T) -> T>,
    /// The key under which the variable travels in the W3C `baggage` header, if it does.
    baggage: Option<&'static str>,
    /// Whether a called service may send the variable back (facade feature `opentelemetry`).
    back_from_remote: bool,
}

/// What a `reset` took out of the context, dropped once the context is released.
enum Replaced<T> {
    Owned(#[allow(dead_code)] T),
    /// The value replaced, and what else the map let go of (see `Map::update`).
    Shared(#[allow(dead_code)] Option<Value>, #[allow(dead_code)] Vec<Value>),
}

/// Keys are handed out in order of first use, so they stay small and dense. Holds the next
/// key plus one (a variable's `key` field uses zero for "none yet").
static NEXT_KEY: AtomicU32 = AtomicU32::new(1);

/// The panic of a variable built with both `back(false)` and `back_from_remote(true)`.
const BACK_FROM_REMOTE_NOT_BACK: &str = "contextvars: a variable with `back_from_remote(true)` and `back(false)`: a \
     value sent back would never land, as the variable never flows back to a parent; remove one of them";

/// Takes the next key (plus one) from `counter`, or `None` once every key has been handed
/// out. Exhaustion is permanent: the counter never wraps, so no key is ever handed out twice
/// (the downcasts of `value.rs` rely on it).
fn take_key(counter: &AtomicU32) -> Option<u32> {
    let mut next = counter.load(Ordering::Relaxed);
    loop {
        let after = next.checked_add(1)?;
        match counter.compare_exchange_weak(next, after, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(next),
            Err(seen) => next = seen,
        }
    }
}

/// The defaults being computed on this thread, to name a cycle instead of deadlocking.
mod default_cycle {
    use std::cell::RefCell;

    thread_local! {
        static COMPUTING: RefCell<Vec<(usize, &'static str)>> = const { RefCell::new(Vec::new()) };
    }

    /// One default being computed; leaves the list on drop, also by panic.
    pub(super) struct Computing(());

    impl Computing {
        /// Notes that the default of the variable at `address` is being computed.
        ///
        /// # Panics
        ///
        /// If it already is, further up this thread's stack: the default reads its own
        /// variable.
        pub(super) fn enter(address: usize, name: &'static str) -> Computing {
            let cycle = COMPUTING.with_borrow_mut(|computing| {
                if let Some(at) = computing.iter().position(|(seen, _)| *seen == address) {
                    let names: Vec<&str> = computing[at..].iter().map(|(_, name)| *name).collect();
                    return Some(names.join(" -> "));
                }
                computing.push((address, name));
                None
            });
            if let Some(cycle) = cycle {
                panic!(
                    "contextvars: the default of `{name}` reads `{name}` itself ({cycle} -> {name}); \
                     a default cannot depend on its own variable. Compute it from other values, \
                     or set the variable instead"
                );
            }
            Computing(())
        }
    }

    impl Drop for Computing {
        fn drop(&mut self) {
            COMPUTING.with_borrow_mut(|computing| {
                computing.pop();
            });
        }
    }
}

impl<T: Clone + Send + Sync + 'static> ContextVar<T> {
    /// A variable named `name` whose value is `default()` in a context that never set it.
    ///
    /// `const`, so it can initialise a `static` and fill `[const { .. }; N]` arrays (each
    /// element is a variable of its own):
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static SHARDS: [ContextVar<u8>; 4] = [const { ContextVar::new("shard", || 0) }; 4];
    /// SHARDS[1].set(9);
    /// assert_eq!((SHARDS[0].get(), SHARDS[1].get()), (0, 9));
    /// ```
    pub const fn new(name: &'static str, default: fn() -> T) -> ContextVar<T> {
        ContextVar {
            name,
            default,
            default_value: OnceLock::new(),
            key: AtomicU32::new(0),
            inherit: true,
            back: true,
            merge: None,
            baggage: None,
            back_from_remote: false,
        }
    }

    /// Whether tasks and threads spawned from a context start with this variable's value
    /// (`true`, the default) or at its default (`false`: for handles that must not follow a
    /// task, such as a database transaction).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static CONN: ContextVar<Option<u32>> = ContextVar::new("CONN", || None).inherit(false);
    /// assert!(!CONN.inherits());
    /// ```
    pub const fn inherit(mut self, inherit: bool) -> Self {
        self.inherit = inherit;
        self
    }

    /// Whether a child's changes to this variable flow back to the parent at a join
    /// (`true`, the default) or never (`false`).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static SCRATCH: ContextVar<u32> = ContextVar::new("SCRATCH", || 0).back(false);
    /// assert!(!SCRATCH.flows_back());
    /// ```
    ///
    /// # Panics
    ///
    /// `back(false)` on a variable that accepts values back from a remote service (see
    /// [`back_from_remote`](Self::back_from_remote)): in a `static`, a compile error.
    pub const fn back(mut self, back: bool) -> Self {
        assert!(back || !self.back_from_remote, "{}", BACK_FROM_REMOTE_NOT_BACK);
        self.back = back;
        self
    }

    /// How to combine the values when both the parent and the child changed this variable
    /// since the fork: `merge(base, parent, child)`. Without it the child wins. A side that
    /// unset the variable passes the default.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
    /// fn sum(base: &u64, parent: &u64, child: &u64) -> u64 { parent + child - base }
    /// static BYTES: ContextVar<u64> = ContextVar::new("BYTES", || 0).merge(sum);
    ///
    /// BYTES.set(10);
    /// let fork = Context::current();
    /// let mut child = fork.clone();
    /// child.run(|| BYTES.set(BYTES.get() + 5)); // the child sent 5 bytes,
    /// BYTES.set(BYTES.get() + 3); // the parent 3 meanwhile
    /// Changes::between(&fork, &child).apply();
    /// assert_eq!(BYTES.get(), 18);
    /// ```
    pub const fn merge(mut self, merge: fn(&T, &T, &T) -> T) -> Self {
        self.merge = Some(merge);
        self
    }

    /// The key under which the variable travels to other services in the W3C `baggage`
    /// header (used by the facade's feature `opentelemetry`, which also needs the variable
    /// registered: `#[context_var(baggage = "…")]` does both).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None).baggage("user.id");
    /// assert_eq!(USER.baggage_key(), Some("user.id"));
    /// ```
    pub const fn baggage(mut self, key: &'static str) -> Self {
        self.baggage = Some(key);
        self
    }

    /// Whether a called service may send this variable back in its response, to be merged
    /// into the caller like a join (default `false`: a remote service never sets it).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static ROWS: ContextVar<u64> = ContextVar::new("ROWS", || 0).baggage("db.rows").back_from_remote(true);
    /// assert!(ROWS.accepts_back_from_remote());
    /// ```
    ///
    /// # Panics
    ///
    /// `back_from_remote(true)` on a variable built with `back(false)`: in a `static`, a
    /// compile error.
    pub const fn back_from_remote(mut self, accept: bool) -> Self {
        assert!(!accept || self.back, "{}", BACK_FROM_REMOTE_NOT_BACK);
        self.back_from_remote = accept;
        self
    }

    /// The value in the current context, or the default.
    ///
    /// Allocates nothing beyond `T::clone`. That clone runs while the context is held: it may
    /// read variables (and call `#[propagate(back)]` functions that only read), but setting a
    /// variable or entering a context (`Context::run`, a `Scope`) there panics and says so;
    /// [`with`](Self::with) does not hold the context while its closure runs.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
    /// assert_eq!(USER.get(), None);
    /// USER.set(Some("ada".into()));
    /// assert_eq!(USER.get().as_deref(), Some("ada"));
    /// ```
    #[inline]
    pub fn get(&'static self) -> T {
        let key = self.key();
        match current::read_value(
            key,
            #[inline(always)]
            |stored| value::typed(self, stored).cloned(),
        ) {
            Some(value) => value,
            None => self.default_value().clone(),
        }
    }

    /// Calls `f` with a reference to the value in the current context (or the default),
    /// without cloning it.
    ///
    /// `f` may read and set context variables itself.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static NAME: ContextVar<String> = ContextVar::new("NAME", || "anonymous".to_string());
    /// assert_eq!(NAME.with(|name| name.len()), 9);
    /// ```
    #[inline]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self.key();
        // Hold the value, not the thread's context, while `f` runs: `f` may call `set`.
        match current::read(|map| map.get(key).cloned()) {
            Some(stored) => f(value::typed(self, &stored).expect("a value stored under its variable's key")),
            None => f(self.default_value()),
        }
    }

    /// Sets the value in the current context and returns a [`Token`] that
    /// [`reset`](Self::reset) takes to restore the previous value.
    ///
    /// # Panics
    ///
    /// In code without a context of its own, at the caller's line, with the fix in the
    /// message: a tokio task that was started with `tokio::spawn` instead of
    /// [`contextvars::spawn`](crate::spawn) and is not inside a [`Scope`](crate::Scope) (in a
    /// web service: a request served without `ContextLayer`, or a middleware outside it),
    /// whatever polls it, even a runtime driven inside [`Context::run`](crate::Context::run);
    /// and, with the `rayon` feature, a rayon job outside any context. The value would
    /// otherwise leak into the other tasks or jobs of the thread. Also from the `Clone` of a
    /// value that `get` is cloning. Not while the thread unwinds from a panic (in a `Drop` the
    /// unwinding runs): the value is then dropped unwritten, since a second panic would abort
    /// the process.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static LEVEL: ContextVar<u8> = ContextVar::new("LEVEL", || 0);
    /// let _token = LEVEL.set(3);
    /// assert_eq!(LEVEL.get(), 3);
    /// ```
    #[inline]
    #[track_caller]
    pub fn set(&'static self, value: T) -> Token<T> {
        let key = self.key();
        // The closures of `get` and `set` are inlined into the thread-context access, and the
        // token of an in-place write is built there and comes back alone: returned from a
        // call, or wrapped with what else a write let go of, it went through the stack and
        // stalled on store forwarding (`set` took three times as long).
        let written = current::write(
            self.name,
            #[inline(always)]
            |map, context| {
                // Nobody else holds this value: overwrite it in place, no allocation.
                match map.unique_mut(key).and_then(|stored| value::typed_mut(self, stored)) {
                    Some(current) => {
                        Ok(Token::new(self, context, Prev::Owned(std::mem::replace(current, value))))
                    }
                    None => Err(self.store_anew(map, key, value, context)),
                }
            },
        );
        match written {
            Ok(token) => token,
            Err((token, displaced)) => {
                // Dropped with the context released: a `Drop` may read context variables.
                drop(displaced);
                token
            }
        }
    }

    /// The rest of [`set`](Self::set): stores `value` anew, replacing (not overwriting) what
    /// the context held; also returns what else the map let go of (see `Map::update`). Out
    /// of line: it allocates anyway, and the in-place path stays short.
    #[inline(never)]
    fn store_anew(
        &'static self,
        map: &mut value::Map,
        key: u32,
        value: T,
        context: u64,
    ) -> (Token<T>, Vec<Value>) {
        let mut displaced = Vec::new();
        let prev = map.update(key, value::flags(self.inherit), &mut displaced, |slot| {
            match slot.replace(value::store(self, value)) {
                Some(shared) => Prev::Shared(shared),
                None => Prev::Unset,
            }
        });
        (Token::new(self, context, prev), displaced)
    }

    /// Restores the value the variable had before the `set` that returned `token`, also
    /// "not set" (then [`get`](Self::get) returns the default again).
    ///
    /// A token is consumed, so resetting twice is a compile error.
    ///
    /// # Errors
    ///
    /// [`Error::TokenFromOtherVar`] if `token` came from another variable and
    /// [`Error::TokenFromOtherContext`] if it was created in another context; then nothing
    /// changes.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
    /// let token = USER.set(Some("ada".into()));
    /// USER.reset(token)?;
    /// assert!(!USER.is_set());
    /// # Ok::<(), contextvars::Error>(())
    /// ```
    #[track_caller]
    pub fn reset(&'static self, token: Token<T>) -> Result<(), Error> {
        if !std::ptr::eq(token.var(), self) {
            return Err(Error::TokenFromOtherVar { token_var: token.var().name, var: self.name });
        }
        let key = self.key();
        let context = token.context();
        let prev = token.into_prev();
        // Checked and written in one visit to the thread's context. What is replaced is
        // dropped after the context is released: its `Drop` may read context variables.
        let outcome = current::write(self.name, |map, id| {
            if id != context {
                return Err(prev);
            }
            let flags = value::flags(self.inherit);
            let mut displaced = Vec::new();
            Ok(match prev {
                // The value `set` overwrote in place goes back in place when nobody shares
                // the stored value meanwhile: no allocation either way.
                Prev::Owned(old) => {
                    match map.unique_mut(key).and_then(|stored| value::typed_mut(self, stored)) {
                        Some(current) => Replaced::Owned(std::mem::replace(current, old)),
                        None => {
                            let restored = Some(value::store(self, old));
                            let replaced = map
                                .update(key, flags, &mut displaced, |slot| std::mem::replace(slot, restored));
                            Replaced::Shared(replaced, displaced)
                        }
                    }
                }
                Prev::Shared(shared) => {
                    let replaced = map.update(key, flags, &mut displaced, |slot| slot.replace(shared));
                    Replaced::Shared(replaced, displaced)
                }
                Prev::Unset => {
                    Replaced::Shared(map.update(key, flags, &mut displaced, Option::take), displaced)
                }
            })
        });
        match outcome {
            Ok(replaced) => {
                drop(replaced);
                Ok(())
            }
            Err(prev) => {
                drop(prev);
                Err(Error::TokenFromOtherContext { var: self.name })
            }
        }
    }

    /// Whether the current context holds a value for this variable (as opposed to the
    /// default).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static FLAG: ContextVar<bool> = ContextVar::new("FLAG", || false);
    /// assert!(!FLAG.is_set());
    /// FLAG.set(false);
    /// assert!(FLAG.is_set());
    /// ```
    pub fn is_set(&'static self) -> bool {
        let key = self.key();
        current::read(|map| map.get(key).is_some())
    }

    /// The default value, computed on first use.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static LIMIT: ContextVar<u32> = ContextVar::new("LIMIT", || 100);
    /// LIMIT.set(5);
    /// assert_eq!(*LIMIT.default_value(), 100);
    /// ```
    ///
    /// # Panics
    ///
    /// When the default reads its own variable (directly or through other defaults): the
    /// message names the cycle. Also when the default itself panics (it is then computed
    /// again on the next read).
    #[inline]
    pub fn default_value(&'static self) -> &'static T {
        let stored = match self.default_value.get() {
            Some(stored) => stored,
            None => self.init_default(),
        };
        value::typed(self, stored).expect("the default is stored under its variable's key")
    }

    /// Computes the default, refusing a cycle: `OnceLock` would wait for itself forever.
    #[cold]
    fn init_default(&'static self) -> &'static Value {
        let _computing = default_cycle::Computing::enter(self as *const Self as usize, self.name);
        self.default_value.get_or_init(|| value::store(self, (self.default)()))
    }

    /// Whether spawned tasks and threads inherit this variable (see [`inherit`](Self::inherit)).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static V: ContextVar<u8> = ContextVar::new("V", || 0);
    /// assert!(V.inherits());
    /// ```
    pub const fn inherits(&self) -> bool {
        self.inherit
    }

    /// Whether a child's changes flow back at a join (see [`back`](Self::back)).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static V: ContextVar<u8> = ContextVar::new("V", || 0);
    /// assert!(V.flows_back());
    /// ```
    pub const fn flows_back(&self) -> bool {
        self.back
    }

    /// The `baggage` key given with [`baggage`](Self::baggage), if any.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static V: ContextVar<u8> = ContextVar::new("V", || 0);
    /// assert_eq!(V.baggage_key(), None);
    /// ```
    pub const fn baggage_key(&self) -> Option<&'static str> {
        self.baggage
    }

    /// Whether a called service may send the variable back (see
    /// [`back_from_remote`](Self::back_from_remote)).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static V: ContextVar<u8> = ContextVar::new("V", || 0);
    /// assert!(!V.accepts_back_from_remote());
    /// ```
    pub const fn accepts_back_from_remote(&self) -> bool {
        self.back_from_remote
    }

    /// The map key of this variable, assigned on first use.
    #[inline]
    pub(crate) fn key(&'static self) -> u32 {
        match self.key.load(Ordering::Relaxed) {
            0 => self.assign_key(),
            key => key - 1,
        }
    }

    /// Whether `key` is this variable's key: one load and one comparison, no key assigned
    /// (a variable without one has no value stored anywhere, and no key matches it).
    #[inline]
    pub(crate) fn has_key(&self, key: u32) -> bool {
        // Keys stay below `u32::MAX - 1`, so the sum does not wrap; the field holds key + 1.
        self.key.load(Ordering::Relaxed) == key.wrapping_add(1)
    }

    #[cold]
    fn assign_key(&self) -> u32 {
        let Some(fresh) = take_key(&NEXT_KEY) else {
            panic!("contextvars: more than 4 billion context variables were used in this process")
        };
        match self.key.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => fresh - 1,
            Err(won) => won - 1,
        }
    }
}

impl<T: 'static> ContextVar<T> {
    /// The name given at declaration (the static's name, unless `name = "…"` was given).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::ContextVar;
    /// static USER: ContextVar<u8> = ContextVar::new("user", || 0);
    /// assert_eq!(USER.name(), "user");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: 'static> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .field("inherit", &self.inherit)
            .field("back", &self.back)
            .field("merge", &self.merge.is_some())
            .field("baggage", &self.baggage)
            .finish_non_exhaustive()
    }
}

/// Any context variable, whatever its value type: lets one list name variables of several
/// types, as `#[propagate(back(USER, REQUEST_ID))]` does.
///
/// Implemented by every [`ContextVar<T>`]; sealed.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{AnyVar, ContextVar};
/// static USER: ContextVar<String> = ContextVar::new("USER", String::new);
/// static ID: ContextVar<u64> = ContextVar::new("ID", || 0);
/// let vars: [&'static dyn AnyVar; 2] = [&USER, &ID];
/// assert_eq!(vars.map(|v| v.var_name()), ["USER", "ID"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a context variable",
    label = "not a `ContextVar`",
    note = "list statics declared with `#[context_var]` (or of type `ContextVar<T>`)"
)]
pub trait AnyVar: Send + Sync + sealed::Sealed + 'static {
    /// The variable's name.
    fn var_name(&self) -> &'static str;
    /// The map key (assigned on first use).
    #[doc(hidden)]
    fn var_key(&'static self) -> u32;
    /// See [`ContextVar::inherits`].
    #[doc(hidden)]
    fn var_inherits(&self) -> bool;
    /// See [`ContextVar::flows_back`].
    #[doc(hidden)]
    fn var_flows_back(&self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl<T: 'static> Sealed for super::ContextVar<T> {}
}

impl<T: Clone + Send + Sync + 'static> AnyVar for ContextVar<T> {
    fn var_name(&self) -> &'static str {
        self.name
    }
    fn var_key(&'static self) -> u32 {
        self.key()
    }
    fn var_inherits(&self) -> bool {
        self.inherit
    }
    fn var_flows_back(&self) -> bool {
        self.back
    }
}

impl<T: Clone + Send + Sync + 'static> ContextVar<T> {
    /// The merged value when both sides changed the variable, or `None` when the variable
    /// has no merge function (then the child wins). A side without a value passes the default.
    pub(crate) fn merge_values(
        &'static self,
        base: Option<&Value>,
        parent: Option<&Value>,
        child: Option<&Value>,
    ) -> Option<Value> {
        let merge = self.merge?;
        let merged = merge(self.view(base), self.view(parent), self.view(child));
        Some(value::store(self, merged))
    }

    /// The typed value, or the default where there is none.
    pub(crate) fn view<'a>(&'static self, value: Option<&'a Value>) -> &'a T {
        value.and_then(|stored| value::typed(self, stored)).unwrap_or_else(|| self.default_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_run_out_for_good_instead_of_wrapping() {
        let counter = AtomicU32::new(u32::MAX - 2);
        assert_eq!(take_key(&counter), Some(u32::MAX - 2));
        assert_eq!(take_key(&counter), Some(u32::MAX - 1));
        // The last value is never handed out: handing it out would leave nothing to stop at.
        for _ in 0..3 {
            assert_eq!(take_key(&counter), None);
        }
        assert_eq!(counter.load(Ordering::Relaxed), u32::MAX, "the counter never wraps to reuse a key");
    }

    #[test]
    fn keys_are_handed_out_once_under_contention() {
        let counter = AtomicU32::new(u32::MAX - 1_000);
        let taken: Vec<Vec<u32>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| std::iter::from_fn(|| take_key(&counter)).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().map(|worker| worker.join().unwrap()).collect()
        });
        let mut all: Vec<u32> = taken.into_iter().flatten().collect();
        all.sort_unstable();
        let expected: Vec<u32> = (u32::MAX - 1_000..u32::MAX).collect();
        assert_eq!(all, expected, "every key once, none after exhaustion");
    }
}
