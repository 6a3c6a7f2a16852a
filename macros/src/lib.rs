//! Procedural macros of the [`contextvars`](https://docs.rs/contextvars) crate:
//! `#[context_var]`, `context_vars!`, `#[propagate]` and `#[sync_endpoint]`.
//!
//! Use them through the `contextvars` crate, which re-exports them with runnable examples;
//! the code they generate names that crate (`::contextvars::__private::…`, or the path given
//! by `crate = path`).
//!
//! Each macro parses its input into a typed model (`ast`, `attr`), checks it (`valid`) and
//! generates code (`expand`). Mistakes are collected and reported together, each on the
//! user's token; the item is still emitted so that one mistake causes no further errors.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

mod ast;
mod attr;
mod errors;
mod expand;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

use crate::attr::{EndpointArgs, PropagateArgs, VarArgs};
use crate::errors::Errors;

/// # Expansion
///
/// `static NAME: ::contextvars::ContextVar<Type>`, built in the static's initializer by a
/// `const` constructor (`new_context_var::<Type>("NAME", default)`, then `.inherit(…)`,
/// `.back(…)`, `.merge(…)` for the arguments given). The default expression becomes a
/// closure that captures nothing (`|| default`, a `fn() -> Type`), so that it runs only when
/// first needed and takes its type from the static's, where an elided lifetime is `'static`
/// (`&str`, `&[u8]`); without one it is `<Type as Default>::default`.
#[proc_macro_attribute]
pub fn context_var(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    let mut errors = Errors::default();
    let mut var = match ast::parse_var(item.clone()) {
        Ok(var) => var,
        Err(error) => return with_error(item, error),
    };
    valid::check_duplicates(var.take_var_attrs(), &mut errors);
    let mut args = VarArgs::parse(args.into(), &mut errors);
    valid::check_var_args(&mut args, &mut errors);
    valid::check_var(&var, &mut errors);
    let mut out = expand::var(&var, &args);
    out.extend(errors.into_compile_error());
    out.into()
}

/// # Expansion
///
/// The `#[context_var]` expansion of each item in turn.
#[proc_macro]
pub fn context_vars(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let vars = match ast::parse_var_list(input.into()) {
        Ok(vars) => vars,
        Err(error) => return error.into_compile_error().into(),
    };
    let mut out = TokenStream2::new();
    for mut var in vars {
        let mut attrs = var.take_var_attrs().into_iter();
        let args = attrs.next().map(|attr| ast::var_attr_args(attr, &mut errors)).unwrap_or_default();
        valid::check_duplicates(attrs, &mut errors);
        let mut args = VarArgs::parse(args, &mut errors);
        valid::check_var_args(&mut args, &mut errors);
        valid::check_var(&var, &mut errors);
        out.extend(expand::var(&var, &args));
    }
    out.extend(errors.into_compile_error());
    out.into()
}

/// # Expansion
///
/// The signature stays as written; the body is kept as tokens (a syntax error in it is the
/// compiler's, reported once).
///
/// `back`: `propagate_back(None, move || { body })` (`Some(LIST)` for a list, a local
/// `static LIST: &[&dyn AnyVar] = &[&VAR, …]`): the body runs in a copy of the caller's
/// context, and its changes land in the caller's when it returns, not when it panics. An
/// async fn: `propagate_back_async(None, async move { body }).await`, which copies at the
/// first poll and lands when the body completes: a future dropped half-way lands nothing.
/// `none`: the body runs in `Context::current().run(move || { body })`, or for an async fn
/// `Context::current().scope(async move { body }).await`. `down`: the function as written.
/// A sync `#[track_caller]` fn under `back` or `none` keeps its body inline instead, as
/// `match InlineCopy::back(None) { guard => { body } }` (or `InlineCopy::discard()`): a
/// closure would lose the caller's location.
///
/// Where the body becomes a closure or an async block, its first statement is an
/// unreachable `return` of the declared type (`impl Trait` in it left as `_`): the block's
/// output is then the function's, and a later `return` or `?` coerces and converts as it
/// does in the function.
#[proc_macro_attribute]
pub fn propagate(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    let mut errors = Errors::default();
    let args = PropagateArgs::parse(args.into(), &mut errors);
    let function = match ast::parse_fn(item.clone(), "propagate") {
        Ok(function) => function,
        Err(error) => return with_errors(item, errors, error),
    };
    valid::check_propagate(&function, &mut errors);
    if !errors.is_empty() {
        // The function unchanged: its callers still compile.
        return with_errors(item, errors, None);
    }
    expand::propagate(&function, &args).into()
}

/// # Expansion
///
/// `async fn name(args) -> R { run_sync_endpoint(move || { body }).await }`, after a check
/// per argument, spanned on its type, that it is `Send + 'static`; the closure's output is
/// fixed to `R` as for `#[propagate]`. After a mistake the function is still made `async`
/// (its body as written), so that callers, which `.await` it, get no second error.
#[proc_macro_attribute]
pub fn sync_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    let mut errors = Errors::default();
    let args = EndpointArgs::parse(args.into(), &mut errors);
    let function = match ast::parse_fn(item.clone(), "sync_endpoint") {
        Ok(function) => function,
        Err(error) => return with_errors(item, errors, error),
    };
    valid::check_endpoint(&function, &mut errors);
    if !errors.is_empty() {
        // Still an async fn, as callers expect: they `.await` it without a second error.
        return with_errors(expand::endpoint_fallback(&function), errors, None);
    }
    expand::endpoint(&function, &args).into()
}

/// The item as written, followed by the errors.
fn with_errors(item: TokenStream2, mut errors: Errors, last: impl Into<Option<syn::Error>>) -> TokenStream {
    if let Some(last) = last.into() {
        errors.push(last);
    }
    let mut out = item;
    out.extend(errors.into_compile_error());
    out.into()
}

fn with_error(item: TokenStream2, error: syn::Error) -> TokenStream {
    with_errors(item, Errors::default(), error)
}
