//! `crate = path`: a crate that re-exports `contextvars` under another name points the
//! macros at it. A shim module that counts the calls made through it proves that the
//! generated code takes the path it was given.

extern crate contextvars as renamed;

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a re-exporting crate would offer: `contextvars`'s macro helpers, with
/// `propagate_back` and `Context::current` routed through counters.
mod shim {
    pub mod __private {
        pub use renamed::__private::*;

        use std::sync::atomic::Ordering;

        pub fn propagate_back<R>(only: Option<&'static [&'static dyn AnyVar]>, f: impl FnOnce() -> R) -> R {
            super::super::BACK_CALLS.fetch_add(1, Ordering::SeqCst);
            renamed::__private::propagate_back(only, f)
        }

        pub struct Context;

        impl Context {
            pub fn current() -> renamed::Context {
                super::super::COPY_CALLS.fetch_add(1, Ordering::SeqCst);
                renamed::Context::current()
            }
        }
    }
}

static BACK_CALLS: AtomicUsize = AtomicUsize::new(0);
static COPY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[renamed::context_var(crate = renamed)]
static USER: Option<String>;

#[renamed::context_var(crate = shim, name = "request")]
static REQUEST_ID: u64 = 1;

renamed::context_vars! {
    #[context_var(crate = renamed, back = false)]
    static SCRATCH: u8;
}

#[renamed::propagate(back, crate = shim)]
fn authenticate() {
    USER.set(Some("ada".into()));
}

#[renamed::propagate(back(USER, REQUEST_ID), crate = shim)]
fn login() {
    REQUEST_ID.set(3);
}

#[renamed::propagate(none, crate = shim)]
fn dry_run() {
    USER.set(Some("dry".into()));
}

#[renamed::sync_endpoint(crate = renamed)]
fn endpoint(id: u64) -> u64 {
    REQUEST_ID.set(id);
    id
}

#[tokio::test(flavor = "current_thread")]
async fn every_macro_uses_the_given_path() {
    assert_eq!((REQUEST_ID.name(), REQUEST_ID.get(), SCRATCH.flows_back()), ("request", 1, false));

    renamed::spawn_blocking(authenticate).await.unwrap();
    renamed::spawn_blocking(login).await.unwrap();
    assert_eq!(BACK_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!((USER.get().as_deref(), REQUEST_ID.get()), (Some("ada"), 3));

    dry_run();
    assert_eq!(COPY_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(USER.get().as_deref(), Some("ada"));

    assert_eq!(endpoint(9).await, 9);
    assert_eq!(REQUEST_ID.get(), 9);
}
