//! # Crossing boundaries
//!
//! Every place where work leaves the current task or thread, what it takes along, and what
//! comes back. "Copied down" is an O(1) snapshot of the context where the work is started,
//! without the variables declared `inherit = false`. "Marked" is the final value of each
//! variable a `#[propagate(back)]` function changed in the child (what a plain `.await` of a
//! task delivers, marked again where it lands, so it passes on through every join above);
//! "all" is every change the child made. Both are merged into
//! the context current where the join happens, against the child's own fork, by the
//! three-way merge ([`Changes::apply`](crate::Changes::apply)): a variable declared
//! `back = false` never comes back, and siblings that changed the same variable are
//! combined by its `merge` function. A child that panicked, was aborted or was cancelled
//! delivers nothing.
//!
//! | boundary | start it with | copied down | what comes back, and when | to opt in |
//! | --- | --- | --- | --- | --- |
//! | tokio task | [`spawn(fut)`](crate::spawn) | the context at the spawn | at `handle.await`: marked; at [`.merge_back().await`](crate::JoinHandle::merge_back): all | `merge_back`, or `#[propagate(back)]` on the functions whose changes should travel |
//! | blocking pool | [`spawn_blocking(f)`](crate::spawn_blocking), [`#[sync_endpoint]`](crate::sync_endpoint) | the context at the spawn | as for a task; `#[sync_endpoint]`: all, at its `.await` | as for a task |
//! | local task | [`spawn_local(fut)`](crate::spawn_local), inside a `LocalSet` | the context at the spawn | as for a task | as for a task |
//! | [`JoinSet`](crate::JoinSet) | `set.spawn(fut)`, `set.spawn_blocking(f)`, `set.spawn_local(fut)` | each child: the context at its own spawn | at [`join_next().await`](crate::JoinSet::join_next): marked; at [`merge_back_next().await`](crate::JoinSet::merge_back_next): all; nothing from `shutdown`, nor from a child `abort_all` cancelled (one that had finished still delivers at its join) | `merge_back_next` |
//! | std thread | [`thread::spawn(f)`](crate::thread::spawn) | the context at the spawn | at [`join()`](crate::thread::JoinHandle::join): marked; at [`merge_back()`](crate::thread::JoinHandle::merge_back): all, into the joining thread's current context | `merge_back` |
//! | scoped thread | [`thread::scope(\|s\| s.spawn(f))`](crate::thread::scope) | the context at the spawn | as for a std thread, through its handle; nothing from a thread only the scope joined | `merge_back` |
//! | rayon `join` | `contextvars::rayon::join(a, b)` | each closure: the caller's context | all, once both returned: `a`'s, then `b`'s | always (feature `rayon`) |
//! | rayon `scope` | `contextvars::rayon::scope(\|s\| s.spawn(..))` | the body and each spawn: the context where it was started | all, when the scope ends: the body's, then the spawns' in spawn order | always (feature `rayon`) |
//! | rayon parallel iterator | `.with_context()` (`contextvars::rayon::WithContextExt`) | each item: the caller's context at `.with_context()` | when the iterator is consumed: marked; with `.merge_back()`: all, item after item in the iterator's order | `.with_context()`, then `.merge_back()`; again after a `flat_map` of a parallel iterator, whose items run as plain rayon jobs (feature `rayon`) |
//! | plain `tokio::spawn` | (not through this crate) | nothing: the task reads defaults, and `set` panics with the fix | nothing | start it with [`spawn`](crate::spawn), or wrap it: `Context::current().scope(fut)` |
//! | plain rayon job | (not through this crate) | nothing: the job reads defaults, and `set` panics with the fix | nothing | the rayon rows above, or `context.run(f)` inside the job |
//! | plain `std::thread::spawn` | (not through this crate) | nothing: the thread starts with an empty context of its own | nothing | [`thread::spawn`](crate::thread::spawn) |
//! | foreign executor or pool | [`Fork::current()`](crate::Fork::current), then [`fork.context()`](crate::Fork::context) `.scope(fut)` or `.run(f)` | the context at the fork | at [`fork.join(end)`](crate::Fork::join): marked; at [`fork.merge_back(end)`](crate::Fork::merge_back): all, where you call it | [`Fork`](crate::Fork); `Context::current().scope(fut)` alone copies down only |
//!
//! With the features `tracing` and `opentelemetry`, every child started through this crate
//! (the rows above that name one of its functions) also runs inside the spawner's tracing
//! span and with its `TRACE_CONTEXT` as OpenTelemetry's current context, around each poll
//! or closure; [`untraced`](crate::untraced) opts out for all of them. A child started with
//! a [`Fork`](crate::Fork) on a foreign executor carries neither: instrument it yourself.
//!
//! Changes always land in the context current where the join runs, never in a thread's
//! own context behind the code's back. A tokio task that has no context of its own has
//! nowhere to take them: a plain join there delivers nothing (the marks stop there, as at a
//! dropped handle), and a `merge_back` of a `JoinHandle` panics with the fix, naming
//! `contextvars::JoinSet` and `Context::current().scope(..)` (other joins: if anything is to
//! land).
//!
//! A `merge` function that panics at a join lands nothing of that child (a merge is all or
//! nothing) and the panic reaches the joining code: the child's output goes with it, and a
//! [`JoinSet`](crate::JoinSet) has already taken the child out of the set. Where one join
//! merges several children (rayon `join`, `scope` and iterators), those merged before the
//! panicking one have landed.
//!
//! ## A foreign executor
//!
//! Any executor can carry the context with a [`Fork`](crate::Fork): run the child in
//! `fork.context()`, then hand its final context to the join of your choice. A [`Scope`](crate::Scope)
//! keeps its context after its future finished, so an async child's end is
//! [`Scope::context`](crate::Scope::context):
//!
//! ```
//! use contextvars::{ContextVar, Fork};
//! static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
//!
//! USER.set("ada");
//! let fork = Fork::current();
//! let mut child = Box::pin(fork.context().scope(async {
//!     assert_eq!(USER.get(), "ada");
//!     USER.set("bob");
//! }));
//! // Another executor, on another thread: here a tokio runtime of its own.
//! let child = std::thread::spawn(move || {
//!     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//!     runtime.block_on(child.as_mut());
//!     child.context()
//! })
//! .join()
//! .unwrap();
//! fork.merge_back(child);
//! assert_eq!(USER.get(), "bob");
//! ```
