//! `Scope<F>`: a future that carries its own context.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::context::Context;
use crate::current::{Enter, Entered};
use crate::value::Map;

pin_project! {
    /// A future running in a context of its own: the context is swapped in for every poll
    /// (and for the drop of the inner future) and swapped out after, so what the future sets
    /// stays in this context and is seen at its next poll, whichever thread runs it.
    ///
    /// Made by [`Context::scope`].
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let a = Context::new().scope(async { N.set(1); tokio::task::yield_now().await; N.get() });
    /// let b = Context::new().scope(async { N.set(2); tokio::task::yield_now().await; N.get() });
    /// assert_eq!(tokio::join!(a, b), (1, 2));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Scope<F> {
        // Dropped after the future, in a scratch context of its own (see `Context`'s `Drop`).
        context: Context,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Scope<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                // (Not entered only inside the `Clone` of a value `get` is cloning: a drop
                // must not panic there.)
                let _entered = Enter::try_new(this.context, Entered::Scope);
                this.future.set(None);
            }
        }
    }
}

impl<F> Scope<F> {
    /// Replaces the scope's context (entering nothing), before its first poll, with a fresh
    /// copy (a new identity for tokens) of `map`: `PropagateBack` takes its copy when first
    /// polled (or dropped unpolled).
    pub(crate) fn replace_context(self: Pin<&mut Self>, map: Map) {
        *self.project().context = Context { map, id: 0 };
    }
}

impl<F: Future> Scope<F> {
    pub(crate) fn new(context: Context, future: F) -> Scope<F> {
        Scope { context, future: Some(future) }
    }

    /// The scope's context as it is now: what the future has set so far.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Context, ContextVar};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// let scope = Context::new().scope(async {});
    /// assert_eq!(scope.context().get(&N), 0);
    /// ```
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// Polls the inner future in the scope's context and, once it is ready (the inner future
    /// is then dropped, still in its context), also returns that context.
    pub(crate) fn poll_with_context(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<(F::Output, Context)> {
        let output = std::task::ready!(self.as_mut().poll(cx));
        Poll::Ready((output, std::mem::take(self.project().context)))
    }
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Enter::new(this.context, Entered::Scope);
        let mut future = this.future;
        let future_pin = future.as_mut().as_pin_mut().expect("`Scope` polled after completion");
        let output = std::task::ready!(future_pin.poll(cx));
        // Drop the finished future here, inside its context, like any other drop of it.
        future.set(None);
        Poll::Ready(output)
    }
}

impl<F> fmt::Debug for Scope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("finished", &self.future.is_none()).finish_non_exhaustive()
    }
}
