//! Every macro form, compiled under `#![deny(clippy::all, warnings)]`: `cargo clippy
//! --all-targets` fails if any expansion draws a lint. Running it checks the forms too.
//!
//! The UI cases that try every form of function and static (`ui-tests/pass/`) are compiled
//! here as well, so that clippy sees them, and run.
#![deny(clippy::all, warnings)]

#[path = "../ui-tests/pass/endpoint_forms.rs"]
mod endpoint_forms;
#[path = "../ui-tests/pass/propagate_back.rs"]
mod propagate_back;
#[path = "../ui-tests/pass/propagate_back_list.rs"]
mod propagate_back_list;
#[path = "../ui-tests/pass/propagate_down.rs"]
mod propagate_down;
#[path = "../ui-tests/pass/propagate_none.rs"]
mod propagate_none;
#[path = "../ui-tests/pass/var_forms.rs"]
mod var_forms;

#[test]
fn every_form_of_function_and_static() {
    propagate_back::main();
    propagate_back_list::main();
    propagate_down::main();
    propagate_none::main();
    var_forms::main();
}

#[test]
fn every_form_of_endpoint() {
    endpoint_forms::main();
}

use contextvars::{context_var, context_vars, propagate, sync_endpoint};

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent + child - base
}

/// The user.
#[context_var]
pub static USER: Option<String>;

#[context_var]
static REQUEST_ID: u64 = 0;

#[context_var(name = "txn", inherit = false, back = false)]
static TXN: Option<u32>;

#[context_var(merge = sum)]
static BYTES: u64;

context_vars! {
    /// The tenant.
    pub static TENANT: String = "public".to_string();
    #[context_var(back = false)]
    static SCRATCH: u32;
}

#[propagate(back)]
fn authenticate(token: &str) {
    USER.set(Some(token.to_string()));
}

#[propagate(back(USER, REQUEST_ID))]
async fn login(id: u64) -> u64 {
    REQUEST_ID.set(id);
    id
}

#[propagate(down)]
fn plain() -> Option<u32> {
    TXN.get()
}

#[propagate(none)]
fn dry_run() {
    SCRATCH.set(1);
}

#[propagate(none)]
async fn dry_run_async() -> Result<u32, String> {
    SCRATCH.set(1);
    let value = SCRATCH.get().checked_add(1).ok_or("overflow")?;
    Ok(value)
}

#[propagate(none)]
async fn delegate() -> u64 {
    login(1).await
}

#[propagate(back)]
async fn delegate_back() -> u64 {
    login(2).await
}

#[sync_endpoint]
fn shown(id: u64) -> impl std::fmt::Display + Send + 'static {
    id
}

pub struct Service;

impl Service {
    #[propagate(back)]
    pub fn enter(&self) -> Option<String> {
        USER.get()
    }

    #[propagate(none)]
    pub async fn peek(&self) -> String {
        TENANT.get()
    }

    #[sync_endpoint]
    pub fn consume(self, tag: u32) -> Vec<u32> {
        BYTES.set(BYTES.get() + u64::from(tag));
        vec![tag]
    }
}

#[sync_endpoint]
fn profile(id: u64) -> String {
    format!("{id}:{}", TENANT.get())
}

#[sync_endpoint]
fn nothing() {}

#[tokio::test(flavor = "current_thread")]
async fn every_form_expands_and_runs() {
    contextvars::spawn_blocking(|| authenticate("ada")).await.unwrap();
    assert_eq!(login(4).await, 4);
    assert_eq!(plain(), None);
    dry_run();
    assert_eq!(dry_run_async().await, Ok(2));
    assert_eq!(Service.enter().as_deref(), Some("ada"));
    assert_eq!(Service.peek().await, "public");
    assert_eq!(Service.consume(3).await, [3]);
    assert_eq!(profile(1).await, "1:public");
    nothing().await;
    assert_eq!((delegate().await, delegate_back().await), (1, 2));
    assert_eq!(shown(5).await.to_string(), "5");
    assert_eq!((BYTES.get(), SCRATCH.get(), REQUEST_ID.get()), (3, 0, 2));
}
