//! Which variables travel: every variable registered with a `baggage` key, found by key.
//!
//! The registry is filled before `main` by `inventory` (one static per registered
//! variable, collected by the platform's constructor mechanism): the server must know every
//! variable that an incoming `baggage` entry may set before any of them is first used, and
//! a variable cannot register itself from a `const` initializer. `#[context_var(baggage =
//! "…")]` registers the variable it declares; a variable built with
//! [`ContextVar::baggage`] is registered with [`register_baggage!`](crate::register_baggage).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::opentelemetry::BaggageValue;
use crate::{AnyVar, Context, ContextVar};

/// A context variable that travels in the `baggage` header: a [`ContextVar<T>`] whose `T`
/// is a [`BaggageValue`]. Sealed.
///
/// ```
/// use contextvars::{ContextVar, opentelemetry::BaggageVar};
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None).baggage("user.id");
/// let var: &'static dyn BaggageVar = &USER;
/// USER.set(Some("ada".into()));
/// assert_eq!((var.key(), var.text().as_deref()), ("user.id", Some("ada")));
/// ```
pub trait BaggageVar: Send + Sync + sealed::Sealed + 'static {
    /// The `baggage` key (the variable's name when it was given none).
    fn key(&self) -> &'static str;

    /// Whether a called service may send the variable back.
    fn accepts_back_from_remote(&self) -> bool;

    /// The variable, for lists of [`AnyVar`].
    fn any_var(&'static self) -> &'static dyn AnyVar;

    /// The text sent for the variable's value in the current context; `None` when the
    /// variable is not set there or its value sends nothing.
    fn text(&'static self) -> Option<String>;

    /// [`text`](Self::text) in `context`.
    fn text_in(&'static self, context: &Context) -> Option<String>;

    /// Sets the variable in the current context from a received text; `false` (and nothing
    /// set) when the text is not a value of the variable's type.
    fn set_text(&'static self, text: &str) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl<T: 'static> Sealed for crate::ContextVar<T> {}
}

impl<T: BaggageValue + Clone + Send + Sync + 'static> BaggageVar for ContextVar<T> {
    fn key(&self) -> &'static str {
        self.baggage_key().unwrap_or(self.name())
    }
    fn accepts_back_from_remote(&self) -> bool {
        ContextVar::accepts_back_from_remote(self)
    }
    fn any_var(&'static self) -> &'static dyn AnyVar {
        self
    }
    fn text(&'static self) -> Option<String> {
        if !self.is_set() {
            return None;
        }
        self.with(T::to_baggage)
    }
    fn text_in(&'static self, context: &Context) -> Option<String> {
        if !context.contains(self) {
            return None;
        }
        context.get(self).to_baggage()
    }
    fn set_text(&'static self, text: &str) -> bool {
        match T::from_baggage(text) {
            Some(value) => {
                self.set(value);
                true
            }
            None => false,
        }
    }
}

/// One registered variable. Not public API: written by the macros.
#[doc(hidden)]
pub struct Registered(pub &'static dyn BaggageVar);

inventory::collect!(Registered);

/// Registers variables built with [`ContextVar::baggage`](crate::ContextVar::baggage), so
/// that the `opentelemetry` integrations send and receive them (feature `opentelemetry`).
/// `#[context_var(baggage = "…")]` does this itself.
///
/// ```
/// use contextvars::ContextVar;
/// static TENANT: ContextVar<String> = ContextVar::new("TENANT", String::new).baggage("tenant");
/// contextvars::register_baggage!(TENANT);
///
/// TENANT.set("acme".into());
/// let mut headers = http::HeaderMap::new();
/// contextvars::opentelemetry::inject(&mut headers);
/// assert_eq!(headers["baggage"], "tenant=acme");
/// ```
#[macro_export]
macro_rules! register_baggage {
    ($($var:path),+ $(,)?) => {$(
        $crate::__private::inventory::submit! {
            $crate::__private::RegisteredBaggage(&$var)
        }
    )+};
}

/// The registered variables with a valid key, gathered once: looked up by key for every
/// incoming entry and listed for every outgoing request and every response.
struct Registry {
    by_key: HashMap<&'static str, Vec<&'static dyn BaggageVar>>,
    /// Every variable, by key (see [`declared`]).
    declared: Vec<&'static dyn BaggageVar>,
    /// Those a called service may send back, in the same order.
    back: Vec<&'static dyn BaggageVar>,
    /// `back` as [`AnyVar`]s, for [`Changes::only`](crate::Changes::only).
    back_any: Vec<&'static dyn AnyVar>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_key: HashMap<&'static str, Vec<&'static dyn BaggageVar>> = HashMap::new();
        for Registered(var) in inventory::iter::<Registered> {
            if !super::baggage::is_token(var.key().as_bytes()) {
                tracing::warn!(
                    target: "contextvars::baggage",
                    key = var.key(),
                    "a context variable's baggage key is not a token: it never travels"
                );
                continue;
            }
            let vars = by_key.entry(var.key()).or_default();
            // A variable registered twice is one variable.
            if !vars.iter().any(|known| std::ptr::addr_eq(*known, *var)) {
                vars.push(*var);
            }
        }
        let mut keys: Vec<&'static str> = by_key.keys().copied().collect();
        keys.sort_unstable();
        let declared: Vec<&'static dyn BaggageVar> =
            keys.into_iter().flat_map(|key| by_key[key].iter().copied()).collect();
        let back: Vec<&'static dyn BaggageVar> =
            declared.iter().copied().filter(|var| var.accepts_back_from_remote()).collect();
        let back_any = back.iter().map(|var| var.any_var()).collect();
        Registry { by_key, declared, back, back_any }
    })
}

/// The registered variables that travel under `key`.
pub(crate) fn find(key: &str) -> &'static [&'static dyn BaggageVar] {
    registry().by_key.get(key).map_or(&[], Vec::as_slice)
}

/// The registered variables a called service may send back, in [`declared`] order, and
/// the same as [`AnyVar`]s.
pub(crate) fn back_from_remote() -> (&'static [&'static dyn BaggageVar], &'static [&'static dyn AnyVar]) {
    let registry = registry();
    (&registry.back, &registry.back_any)
}

/// Every registered variable that travels in the `baggage` header.
///
/// ```
/// use contextvars::context_var;
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// let keys: Vec<&str> = contextvars::opentelemetry::declared().map(|var| var.key()).collect();
/// assert!(keys.contains(&"user.id"));
/// ```
pub fn declared() -> impl Iterator<Item = &'static dyn BaggageVar> {
    registry().declared.iter().copied()
}
