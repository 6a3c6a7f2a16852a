//! One outgoing call, the part every client integration shares: the headers on the way out,
//! and what comes back merged into the caller like a join merges a child.

use super::{BACK_HEADER, Baggage, registry};
use crate::{Changes, Context};

/// The mark of a response whose [`BACK_HEADER`] a [`Call`] has merged.
#[derive(Clone, Copy)]
struct Merged;

/// Whether the response with these `extensions` is still to be merged; marks it merged. A
/// response is merged once: a second integration around the same call (the middleware added
/// twice, two layers) finds the mark, where merging again would count a `merge` function's
/// change twice.
pub(super) fn first_merge(extensions: &mut http::Extensions) -> bool {
    extensions.insert(Merged).is_none()
}

/// The caller's side of one call in flight: the caller's context when the request left, the
/// base of the three-way merge of what comes back.
pub(super) struct Call {
    fork: Context,
}

impl Call {
    /// [`inject`](super::inject)s the current context into the request's headers and
    /// remembers it as the base. Called where the request leaves, in the caller's code.
    pub(super) fn start(headers: &mut http::HeaderMap) -> Call {
        super::inject(headers);
        Call { fork: Context::current() }
    }

    /// Merges the response's [`BACK_HEADER`] into the current context (the caller's): each
    /// value sent back for a variable declared `back_from_remote = true` is the child's, the
    /// context the request left with is the base, the caller's present one the parent. A key
    /// not declared so is ignored, with a warning.
    ///
    /// Called only for a response [`first_merge`] lets through.
    ///
    /// # Panics
    ///
    /// When something comes back and the caller is a tokio task without a context of its own
    /// (see [`ContextVar::set`](crate::ContextVar::set)).
    pub(super) fn finish(&self, headers: &http::HeaderMap) {
        let fork = &self.fork;
        let received = Baggage::parse(headers.get_all(BACK_HEADER).iter().map(|value| value.as_bytes()));
        if received.is_empty() {
            return;
        }
        let mut child = fork.clone();
        child.run(|| {
            for entry in received.iter() {
                let accepted: Vec<_> =
                    registry::find(entry.key()).iter().filter(|var| var.accepts_back_from_remote()).collect();
                if accepted.is_empty() {
                    tracing::warn!(
                        target: "contextvars::baggage",
                        key = entry.key(),
                        "ignored a value sent back for a variable not declared `back_from_remote = true`"
                    );
                }
                for var in accepted {
                    if var.text_in(fork).as_deref() != Some(entry.value()) && !var.set_text(entry.value()) {
                        tracing::warn!(
                            target: "contextvars::baggage",
                            key = entry.key(),
                            "ignored a value sent back: not one of the variable's type"
                        );
                    }
                }
            }
        });
        Changes::between(fork, &child).apply();
    }
}
