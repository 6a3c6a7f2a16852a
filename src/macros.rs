//! The macros, re-exported with their documentation. Their examples run as this crate's
//! doctests (a proc-macro crate's own doctests cannot use this crate).

/// Declares a context variable: a `static` whose value depends on the current
/// [`Context`](crate::Context).
///
/// `#[context_var] static NAME: Type = default;` becomes a `static NAME: ContextVar<Type>`
/// named `"NAME"`. Without an initializer the default is `Type::default()`. The default is
/// computed lazily, at most once, the first time a context without a value is read. The type
/// must be `Clone + Send + Sync + 'static` (a lifetime left out is `'static`, as in any
/// `static`: `&str`, `&[u8]`); for shared or mutable state, `Arc`, `Mutex`, `RwLock` and
/// atomics are. The visibility, doc comments and other attributes stay on the static.
///
/// ```
/// use contextvars::context_var;
///
/// /// Who sent the current request.
/// #[context_var]
/// pub static USER: Option<String>;
///
/// #[context_var]
/// static REQUEST_ID: u64 = 0;
///
/// assert_eq!((USER.get(), REQUEST_ID.get()), (None, 0));
/// USER.set(Some("ada".into()));
/// assert_eq!(USER.get().as_deref(), Some("ada"));
/// assert_eq!(USER.name(), "USER");
/// ```
///
/// # Arguments
///
/// | argument | default | what it sets |
/// |---|---|---|
/// | `name = "…"` | the static's name | what [`ContextVar::name`](crate::ContextVar::name) returns |
/// | `inherit = bool` | `true` | whether spawned tasks and threads start with the value ([`ContextVar::inherit`](crate::ContextVar::inherit)) |
/// | `back = bool` | `true` | whether a child's changes flow back at a join ([`ContextVar::back`](crate::ContextVar::back)) |
/// | `merge = path` | the child wins | `fn(base: &T, parent: &T, child: &T) -> T`, called when both sides changed the value ([`ContextVar::merge`](crate::ContextVar::merge)) |
/// | `baggage = "key"` | not sent | feature `opentelemetry`: the variable travels to called services under this W3C `baggage` key ([`ContextVar::baggage`](crate::ContextVar::baggage)), and is registered for the integrations; the type implements `opentelemetry::BaggageValue` |
/// | `back_from_remote = bool` | `false` | with `baggage`: a called service may send the variable back, merged like a join; not with `back = false` ([`ContextVar::back_from_remote`](crate::ContextVar::back_from_remote)) |
/// | `crate = path` | `::contextvars` | where this crate is, for a crate that re-exports it under another name |
///
/// ```
/// use contextvars::context_var;
///
/// // A transaction handle neither follows a task nor comes back from one.
/// #[context_var(name = "txn", inherit = false, back = false)]
/// static TXN: Option<u32>;
///
/// // Both sides may log; the merge keeps both.
/// #[context_var(merge = append_new)]
/// static AUDIT: Vec<String>;
///
/// # #[allow(clippy::ptr_arg)]
/// fn append_new(_base: &Vec<String>, parent: &Vec<String>, child: &Vec<String>) -> Vec<String> {
///     let mut all = parent.clone();
///     all.extend(child.iter().filter(|entry| !parent.contains(entry)).cloned());
///     all
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// TXN.set(Some(7));
/// AUDIT.set(vec!["start".into()]);
/// let child = contextvars::spawn(async {
///     assert_eq!(TXN.get(), None); // not inherited
///     TXN.set(Some(8));
///     AUDIT.set(vec!["start".into(), "child".into()]);
/// });
/// AUDIT.set(vec!["start".into(), "parent".into()]);
/// child.merge_back().await.unwrap();
///
/// assert_eq!(TXN.get(), Some(7)); // did not flow back
/// assert_eq!(AUDIT.get(), ["start", "parent", "child"]);
/// assert_eq!(TXN.name(), "txn");
/// # }
/// ```
///
/// # Compile errors
///
/// On anything but a `static`; on a `static mut`; without an initializer, for a type that
/// is not `Default`; for a type that is not `Clone + Send + Sync + 'static` (a type that is
/// not `Send + Sync`, such as `Rc` or `RefCell`, is told what to use instead); for an
/// unknown, misspelled or repeated argument; for a `merge` function of another signature.
/// Each error points at the token at fault.
#[doc(inline)]
pub use contextvars_macros::context_var;

/// Declares several context variables at once.
///
/// The body holds `static` items written as under [`#[context_var]`](context_var), each with
/// its arguments in an optional `#[context_var(…)]` before it.
///
/// ```
/// contextvars::context_vars! {
///     /// The tenant of the current request.
///     pub static TENANT: String = "public".to_string();
///     #[context_var(back = false)]
///     static SCRATCH: u32;
/// }
///
/// assert_eq!(TENANT.get(), "public");
/// assert!(!SCRATCH.flows_back());
/// ```
#[doc(inline)]
pub use contextvars_macros::context_vars;

/// Chooses what a function's changes to context variables do when it returns.
///
/// | mode | the changes the body makes |
/// |---|---|
/// | `back` | land in the caller's context when it returns, and flow on to whoever awaits the task or thread |
/// | `back(VAR, …)` | the same, for the listed variables only |
/// | `down` | stay where they are: the body runs as written (what an unmarked function does) |
/// | `none` | are discarded: the body runs in a copy of the current context |
///
/// It goes on sync and async functions, free functions and methods (any receiver), generic,
/// `unsafe` and `extern` functions: whatever compiles without the attribute compiles with it,
/// without a new warning, and a `return` or `?` in the body converts as it did.
///
/// With `back` the body runs in an O(1) copy of the caller's context. When it returns (on every
/// way out: its end, `return`, `?`; for an `async fn`, when its body completes) its changes
/// from entry to exit, restricted to the listed variables and to those that flow back, land in
/// the context it returns into by the three-way merge: base = the copy at entry, parent = the
/// caller's context now, child = the copy at exit; when both sides changed a variable its
/// `merge` decides, else the function wins. A panic lands nothing, nor does an `async fn` whose
/// future is dropped before it completed (cancelled by a `select!`, a timeout or an abort).
/// Changes to variables that do not land stay in the copy. Futures joined in one task (`join!`,
/// `join_all`) each work on their own copy and merge, so no update is lost where a merge
/// function is declared.
///
/// The caller keeps its context: a token it made before the call still resets after it (not
/// inside the function, which runs in a copy); a token made inside the function resets only
/// inside it.
///
/// The variables that land are marked in the receiving context. A plain `.await` of a
/// [`JoinHandle`](crate::JoinHandle) delivers, for each variable marked in the child, the
/// child's final value by the three-way merge against the fork (nothing when that is the
/// value the child started with), and marks it in turn, so it flows up through every plain
/// `.await`; see [`Changes::apply`](crate::Changes::apply) for the merge. (On a sync function
/// returning a future, the copy ends when the function returns, before the future runs: write
/// an `async fn`.)
///
/// ```
/// use contextvars::{context_var, propagate};
///
/// #[context_var]
/// static USER: Option<String>;
/// #[context_var]
/// static REQUEST_ID: u64;
///
/// #[propagate(back)]
/// fn authenticate(token: &str) {
///     USER.set(Some(format!("user-{token}")));
/// }
///
/// #[propagate(back(USER))]
/// async fn login(id: u64) -> Result<(), String> {
///     USER.set(Some("ada".into()));
///     REQUEST_ID.set(id); // not listed: stays in the function's copy
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// contextvars::spawn_blocking(|| authenticate("42")).await.unwrap();
/// assert_eq!(USER.get().as_deref(), Some("user-42"));
///
/// contextvars::spawn(login(7)).await.unwrap().unwrap();
/// assert_eq!((USER.get().as_deref(), REQUEST_ID.get()), (Some("ada"), 0));
/// # }
/// ```
///
/// In one task the changes land as each call completes, and calls joined there each work on
/// their own copy and merge:
///
/// ```
/// use contextvars::{context_var, propagate};
///
/// fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
///     parent + child - base
/// }
///
/// #[context_var(merge = sum)]
/// static BYTES: u64;
///
/// #[propagate(back)]
/// async fn read(n: u64) {
///     let before = BYTES.get();
///     tokio::task::yield_now().await; // the three calls overlap
///     BYTES.set(before + n);
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tokio::join!(read(1), read(2), read(4));
/// assert_eq!(BYTES.get(), 7); // without `merge = sum`, the last to finish would win: 4
/// # }
/// ```
///
/// `none` lets a function try things out:
///
/// ```
/// use contextvars::{context_var, propagate};
///
/// #[context_var]
/// static LIMIT: u32 = 10;
///
/// #[propagate(none)]
/// fn dry_run() -> u32 {
///     LIMIT.set(0);
///     LIMIT.get()
/// }
///
/// assert_eq!(dry_run(), 0);
/// assert_eq!(LIMIT.get(), 10);
/// ```
///
/// `crate = path` names this crate for a crate that re-exports it: `#[propagate(back, crate =
/// my_framework::contextvars)]`.
///
/// A sync function that is also `#[track_caller]` keeps it: its body then runs inline after a
/// guard that enters the copy (rather than in a closure, which stable Rust cannot make
/// `#[track_caller]`), so `Location::caller()`, `unwrap` and a refused `set` in the body name
/// the function's caller. Every rule above holds the same, with two differences: its arguments
/// are dropped after the copy is left (in the caller's context), where the closure drops them
/// inside the copy; and called from a `Drop` while the thread unwinds, a panic of its body that
/// a `catch_unwind` in that `Drop` catches still lands the changes made before it (the guard
/// cannot tell that panic from the one being unwound).
///
/// # Panics
///
/// When a `back` function returns into code without a context of its own (a plain
/// `tokio::spawn` task, a request served without `tower::ContextLayer` or by a middleware
/// outside it, a rayon job outside `contextvars::rayon`) having changed a variable that
/// lands. Its body reads defaults there and its `set`s work on its copy; the landing has
/// nowhere to go, and the message names the likely cause and the fix. A sync function panics
/// at its `#[propagate(back)]` attribute. An `async fn` lands in its last poll, which no
/// caller's location reaches, and a sync `#[track_caller]` one in its guard's drop: their
/// messages name the attribute, and the function's caller, instead. A function whose changes
/// do not land (to variables declared `back = false`, or not listed) does not panic; nor does
/// one called from a `Drop` while the thread unwinds, which lands nothing there rather than
/// abort the process.
///
/// # Compile errors
///
/// For a missing, unknown or second mode (the message lists `back`, `down` and `none`); for
/// a name in `back(…)` that is not a context variable; on a `const fn`; on a declaration
/// without a body; on anything but a function. The function is still emitted as written, so
/// its callers get no further error.
#[doc(inline)]
pub use contextvars_macros::propagate;

/// Turns a synchronous function into an async one of the same name and arguments that runs
/// the body on tokio's blocking pool and brings all its changes back.
///
/// The body runs in a copy of the caller's context (as with
/// [`spawn_blocking`](crate::spawn_blocking)), the arguments move to the blocking thread, and
/// the caller gets the function's own return value, not a `Result`: all changes to context
/// variables are merged back into the caller's context (see
/// [`merge_back`](crate::JoinHandle::merge_back)), and a panic in the body resumes in the
/// caller, whose context then stays as it was. Needs the `tokio` feature, and a tokio runtime
/// at the call.
///
/// ```
/// use contextvars::{context_var, sync_endpoint};
///
/// #[context_var]
/// static USER: Option<String>;
///
/// /// A blocking lookup, for example a database driver without async support.
/// #[sync_endpoint]
/// fn profile(id: u64) -> (String, std::thread::ThreadId) {
///     USER.set(Some(format!("user-{id}")));
///     (format!("profile {id}"), std::thread::current().id())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (profile, ran_on) = profile(7).await;
/// assert_eq!(profile, "profile 7");
/// assert_ne!(ran_on, std::thread::current().id());
/// assert_eq!(USER.get().as_deref(), Some("user-7"));
/// # }
/// ```
///
/// A panic in the body is the caller's panic:
///
/// ```
/// # use contextvars::sync_endpoint;
/// #[sync_endpoint]
/// fn fails() {
///     panic!("no such user");
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let caller = tokio::spawn(async { fails().await });
/// assert!(caller.await.unwrap_err().is_panic());
/// # }
/// ```
///
/// Takes `crate = path`, like the other macros.
///
/// # Compile errors
///
/// On an `async fn` (use [`#[propagate(back)]`](propagate) there); on a `const fn` or an
/// `extern` fn; with `#[track_caller]` (the body is called by the blocking pool, so no
/// caller's location can reach it); for a `&self` or `&mut self` receiver; for an argument or output that borrows
/// or is not `Send + 'static` (also a type parameter without those bounds). The function is
/// still made `async`, so that its callers, which `.await` it, get no second error.
#[doc(inline)]
pub use contextvars_macros::sync_endpoint;

/// In a crate of edition 2021, the temporaries of a `#[track_caller]` function's last
/// expression live past its locals: they are dropped in the copy all the same, and the
/// attribute draws no `tail_expr_drop_order` warning the function did not draw.
///
/// ```edition2021
/// #![deny(warnings, rust_2024_compatibility)]
/// use contextvars::{context_var, propagate};
///
/// #[context_var]
/// static USER: Option<String>;
///
/// struct SetsUserOnDrop;
///
/// impl SetsUserOnDrop {
///     fn visits(&self) -> u32 {
///         1
///     }
/// }
///
/// impl Drop for SetsUserOnDrop {
///     fn drop(&mut self) {
///         USER.set(Some("temporary".into()));
///     }
/// }
///
/// #[track_caller]
/// #[propagate(none)]
/// fn visits_through_a_temporary() -> u32 {
///     SetsUserOnDrop.visits()
/// }
///
/// fn visits_through_a_cell(cell: &std::cell::RefCell<Vec<u32>>) -> usize {
///     cell.borrow().len()
/// }
///
/// #[track_caller]
/// #[propagate(back)]
/// fn visits_through_a_cell_tracked(cell: &std::cell::RefCell<Vec<u32>>) -> usize {
///     cell.borrow().len()
/// }
///
/// USER.set(Some("caller".into()));
/// assert_eq!(visits_through_a_temporary(), 1);
/// assert_eq!(USER.get().as_deref(), Some("caller"));
/// let cell = std::cell::RefCell::default();
/// assert_eq!(visits_through_a_cell(&cell), visits_through_a_cell_tracked(&cell));
/// ```
#[cfg(doctest)]
pub struct TrackCallerEdition2021;
