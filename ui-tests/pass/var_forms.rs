// Every static that compiles as a `static` compiles under `#[context_var]`: borrowed types
// written with the elided `'static` that clippy's `redundant_static_lifetimes` asks for,
// slices, function pointers, trait objects, literal and coercing defaults.
#![deny(warnings, unused_qualifications, rust_2018_idioms)]

use std::borrow::Cow;
use std::fmt::Display;
use std::sync::Arc;

use contextvars::{context_var, context_vars};

#[context_var]
static REGION: &str = "unknown";

#[context_var]
static EMPTY: &str;

#[context_var]
static BYTES: &[u8] = b"abc";

#[context_var]
static LABEL: Option<&str>;

#[context_var]
static EXPLICIT: &'static str = "explicit";

#[context_var]
static NAME: Cow<'_, str> = Cow::Borrowed("name");

#[context_var]
static PAIR: (&str, [u8; 2]) = ("pair", [1, 2]);

#[context_var]
static LENGTH: fn(&str) -> usize = str::len;

#[context_var]
static SHOWN: Arc<dyn Display + Send + Sync> = Arc::new(5);

#[context_var]
static LIMIT: u32 = 10 * 2;

context_vars! {
    static TENANT: &str = "public";
    #[context_var(inherit = false)]
    static PATH: &[&str] = &["a", "b"];
}

pub fn main() {
    assert_eq!((REGION.get(), EMPTY.get(), BYTES.get(), LABEL.get()), ("unknown", "", &b"abc"[..], None));
    REGION.set("eu");
    LABEL.set(Some("label"));
    assert_eq!((REGION.get(), LABEL.get()), ("eu", Some("label")));
    assert_eq!(
        (EXPLICIT.get(), NAME.get(), PAIR.get()),
        ("explicit", Cow::Borrowed("name"), ("pair", [1, 2]))
    );
    assert_eq!((LENGTH.get()("four"), SHOWN.get().to_string(), LIMIT.get()), (4, "5".to_string(), 20));
    assert_eq!((TENANT.get(), PATH.get()), ("public", &["a", "b"][..]));
}
