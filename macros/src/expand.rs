//! Code generation only: every input here has been parsed and checked.
//!
//! Generated code names everything by absolute path (`::core::…`, `<crate>::__private::…`)
//! and its own locals with `Span::mixed_site()`, so it neither depends on nor disturbs the
//! names in scope at the call site. Bounds the compiler checks are spanned on the user's
//! types, so a type error points there rather than at the attribute.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, LitStr, Pat, PathArguments, ReceiverKind, ReturnType, Signature, Token,
    Type,
};

use crate::ast::{Body, FnItem, VarItem};
use crate::attr::{CratePath, EndpointArgs, Mode, PropagateArgs, VarArgs};

/// `static NAME: ContextVar<T> = new_context_var::<T>("NAME", default).inherit(…)…;`
pub(crate) fn var(item: &VarItem, args: &VarArgs) -> TokenStream {
    let VarItem { attrs, vis, static_token, ident, ty, init, semi_token, .. } = item;
    let ty_range = span_range(ty);
    let name = match &args.name {
        Some(name) => name.clone(),
        None => LitStr::new(&ident.unraw().to_string(), ident.span()),
    };
    // The default runs lazily, at most once, from a plain `fn() -> T`: a closure that
    // captures nothing, or `Default::default`. The closure does not name the type, which
    // only the static's own type elides to `'static` (`&str`, `&[u8]`, `Option<&str>`); the
    // turbofish, in an expression, infers its lifetimes from the static's type.
    let default = match init {
        // `static NAME: Type = ;` is the compiler's error already; nothing adds another.
        Some(expr) if expr.is_empty() => quote!(|| ::core::unreachable!()),
        Some(expr) => {
            // In braces spanned on the user's `;`: a default that does not parse (in
            // `context_vars!`, which the compiler does not parse first) is reported there.
            let mut body = Group::new(Delimiter::Brace, expr.clone());
            body.set_span(semi_token.span);
            quote!(|| #body)
        }
        None => {
            spanned_range(quote_spanned!(ty_range.0=> <#ty as ::core::default::Default>::default), ty_range)
        }
    };
    // A type that is not `Clone + Send + Sync + 'static` fails the bounds of
    // `new_context_var::<T>`, once per missing trait (a `ContextVar<T>` is `Sync` whatever
    // `T`): reported on the user's type, whose span both the turbofish and the static's type
    // carry.
    let krate_at_type = args.krate().at(ty_range.0);
    let var_type =
        spanned_range(quote_spanned!(ty_range.0=> #krate_at_type::__private::ContextVar<#ty>), ty_range);
    let krate = args.krate().at(Span::call_site());
    let mut value = quote!(#krate::__private::new_context_var::<#ty>(#name, #default));
    if let Some(inherit) = &args.inherit {
        value = quote!(#value.inherit(#inherit));
    }
    if let Some(back) = &args.back {
        value = quote!(#value.back(#back));
    }
    if let Some(merge) = &args.merge {
        value = quote!(#value.merge(#merge));
    }
    if let Some(key) = &args.baggage {
        value = quote!(#value.baggage(#key));
    }
    if let Some(back_from_remote) = &args.back_from_remote {
        value = quote!(#value.back_from_remote(#back_from_remote));
    }
    // A variable with a `baggage` key is registered for the integrations of the feature
    // `opentelemetry` (without the feature, the facade's macro is one error naming it).
    let register = args.baggage.as_ref().map(|key| {
        let krate = args.krate().at(key.span());
        quote_spanned!(key.span()=> #krate::__private::baggage_var!(#ident);)
    });
    quote! {
        #(#attrs)*
        #vis #static_token #ident: #var_type = #value #semi_token
        #register
    }
}

/// The function with its body wrapped for `mode`.
pub(crate) fn propagate(item: &FnItem, args: &PropagateArgs) -> TokenStream {
    let krate = args.krate().at(Span::call_site());
    let is_async = item.sig.asyncness.is_some();
    if !is_async && item.track_caller().is_some() && !matches!(args.mode, Mode::Down) {
        return function(item, &item.sig, inline_copy(item, args, &krate));
    }
    let body = match &args.mode {
        Mode::Down => item.body.stmts.clone(),
        Mode::Back(vars) => {
            // The body runs in a copy of the caller's context; its changes land when it
            // completes (not when it panics, nor when an async one is dropped half-way). The
            // call keeps the call site's span, the attribute, on purpose: both functions are
            // `#[track_caller]`, so a landing refused in code without a context of its own is
            // reported at the attribute (sync) or names it in its message (async).
            let only = back_list(vars.as_deref(), &krate);
            let block = typed_block(item);
            if is_async {
                quote!(#krate::__private::propagate_back_async(#only, async move #block).await)
            } else {
                quote!(#krate::__private::propagate_back(#only, move || #block))
            }
        }
        Mode::None => {
            let block = typed_block(item);
            if is_async {
                quote!(#krate::__private::Context::current().scope(async move #block).await)
            } else {
                let context = Ident::new("__contextvars_copy", Span::mixed_site());
                quote! {
                    let mut #context = #krate::__private::Context::current();
                    #context.run(move || #block)
                }
            }
        }
    };
    function(item, &item.sig, body)
}

/// A sync `#[track_caller]` function's body, inline in the arm of a `match` on a guard that
/// enters the copy: in a closure, `Location::caller()` and the body's `#[track_caller]` calls
/// would name the body instead of the function's caller (closures cannot be `#[track_caller]`
/// on stable Rust). The guard is the arm's binding, not a local of the function: an arm is
/// dropped after the temporaries of its body, which in edition 2021 outlive the function's
/// locals (a `let` guard would be dropped before them, and draw `tail_expr_drop_order`).
///
/// The changes of `back` land in the guard's `Drop`, which no caller's location reaches: the
/// guard keeps the function's caller (`InlineCopy::back` is `#[track_caller]`, called in the
/// `#[track_caller]` function) for the message of a landing refused there.
fn inline_copy(item: &FnItem, args: &PropagateArgs, krate: &TokenStream) -> TokenStream {
    let guard = Ident::new("__contextvars_copy", Span::mixed_site());
    let enter = match &args.mode {
        Mode::Back(vars) => {
            let only = back_list(vars.as_deref(), krate);
            quote!(#krate::__private::InlineCopy::back(#only))
        }
        _ => quote!(#krate::__private::InlineCopy::discard()),
    };
    let mut body = Group::new(Delimiter::Brace, item.body.stmts.clone());
    body.set_span(item.body.brace_token.span.close());
    quote! {
        match #enter {
            #guard => #body
        }
    }
}

/// `Some(LIST)` for `back(VAR, …)`, a local `static LIST: &[&dyn AnyVar] = &[&VAR, …]`;
/// `None` for `back`.
fn back_list(vars: Option<&[syn::Path]>, krate: &TokenStream) -> TokenStream {
    let Some(vars) = vars else { return quote!(::core::option::Option::None) };
    let list = Ident::new("__CONTEXTVARS_BACK", Span::mixed_site());
    // Spanned on each name: one that is not a context variable fails the coercion to
    // `&dyn AnyVar` right there.
    let vars = vars.iter().map(|var| quote_spanned!(var.span()=> &#var));
    quote! {{
        static #list: &[&dyn #krate::__private::AnyVar] = &[#(#vars),*];
        ::core::option::Option::Some(#list)
    }}
}

/// `async fn same(args) -> R { run_sync_endpoint(move || { body }).await }`.
pub(crate) fn endpoint(item: &FnItem, args: &EndpointArgs) -> TokenStream {
    let mut checks = Vec::new();
    for input in &item.sig.inputs {
        let (ty, value): (Type, Option<Ident>) = match input {
            FnArg::Receiver(receiver) => {
                let span = receiver.self_token.span;
                let ty = match &receiver.kind {
                    ReceiverKind::Typed(_, ty) => (**ty).clone(),
                    _ => syn::parse_quote_spanned!(span=> Self),
                };
                (ty, Some(Ident::new("self", span)))
            }
            FnArg::Typed(arg) => match &*arg.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    ((*arg.ty).clone(), Some(pat.ident.clone()))
                }
                _ => ((*arg.ty).clone(), None),
            },
        };
        checks.push(assert_send_argument(&ty, value, &args.krate()));
    }
    let closure = {
        let block = typed_block(item);
        quote!(move || #block)
    };
    let call = match &item.sig.output {
        // The call and its `.await` spanned on the output type: one that is not `Send +
        // 'static` fails the bounds of `run_sync_endpoint` for both, on the same token, and
        // the compiler shows that error once. (Named in a turbofish, the type would draw a
        // third report on its whole range.) The output type itself comes from the closure's
        // first `return`. An `impl Trait` output is left unspanned.
        ReturnType::Type(_, ty) if !contains_impl(ty) => {
            let range = span_range(ty);
            let krate = args.krate().at(range.0);
            let mut arguments = Group::new(Delimiter::Parenthesis, closure);
            arguments.set_span(range.0);
            quote_spanned!(range.0=> #krate::__private::run_sync_endpoint #arguments.await)
        }
        _ => {
            let krate = args.krate().at(Span::call_site());
            quote!(#krate::__private::run_sync_endpoint(#closure).await)
        }
    };
    let body = quote! {
        #(#checks)*
        #call
    };
    function(item, &async_signature(&item.sig), body)
}

/// What `#[sync_endpoint]` emits after an error: the async signature callers expect, around
/// the body as written. Callers then compile (and get no second error, such as "not a
/// future", for the one mistake).
pub(crate) fn endpoint_fallback(item: &FnItem) -> TokenStream {
    // Without a `#[track_caller]` (its error was given): on an async fn it draws a warning.
    let attrs = item.attrs.iter().filter(|attr| !attr.path().is_ident("track_caller")).cloned();
    let item = FnItem { attrs: attrs.collect(), ..item.clone() };
    function(&item, &async_signature(&item.sig), item.body.stmts.clone())
}

/// The signature made `async` (without what an `async fn` cannot be: `const`, an ABI).
fn async_signature(sig: &Signature) -> Signature {
    let mut sig = sig.clone();
    sig.asyncness = Some(Token![async](sig.fn_token.span));
    sig.constness = None;
    sig.abi = None;
    sig
}

/// `attrs vis sig { #![inner_attrs] body }`, in the user's braces.
fn function(item: &FnItem, sig: &Signature, body: TokenStream) -> TokenStream {
    let FnItem { attrs, vis, body: Body { brace_token, inner_attrs, .. }, .. } = item;
    let mut block = Group::new(Delimiter::Brace, quote!(#(#inner_attrs)* #body));
    block.set_span(brace_token.span.close());
    quote!(#(#attrs)* #vis #sig #block)
}

/// The body's statements, in the user's braces, for a closure or an async block that stands
/// for the body: first an unreachable `return` of the declared type. A closure or an async
/// block infers its output from its first `return`; that one fixes it to the function's
/// return type, so that a later `return` or `?` converts and coerces as in the function
/// (`Box<dyn Error>`, `&dyn Display`, the error type of `?`). An `impl Trait` in the type is
/// left to inference (`_`).
fn typed_block(item: &FnItem) -> Group {
    let stmts = &item.body.stmts;
    let edge = match return_type_for_inference(&item.sig.output) {
        Some(ty) => {
            let value = Ident::new("__contextvars_return", Span::mixed_site());
            quote! {
                #[allow(
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::needless_return,
                    clippy::let_unit_value
                )]
                if false {
                    let #value: #ty = loop {};
                    return #value;
                }
            }
        }
        None => TokenStream::new(),
    };
    let mut block = Group::new(Delimiter::Brace, quote!(#edge #stmts));
    block.set_span(item.body.brace_token.span.close());
    block
}

/// The declared return type with every `impl Trait` in it replaced by `_`; `None` where it
/// tells inference nothing (no type, `()`, `!`, a bare `impl Trait`).
fn return_type_for_inference(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else { return None };
    let mut ty = (**ty).clone();
    erase_impl(&mut ty);
    match &ty {
        Type::Infer(_) | Type::Never(_) => None,
        ty if is_unit(ty) || contains_impl(ty) => None,
        _ => Some(ty),
    }
}

/// Replaces each `impl Trait` in `ty` by `_`, where it can be reached (the common shapes:
/// paths, references, tuples, arrays, slices).
fn erase_impl(ty: &mut Type) {
    match ty {
        Type::ImplTrait(bounds) => {
            let span = bounds.span();
            *ty = syn::parse_quote_spanned!(span=> _);
        }
        Type::Reference(reference) => erase_impl(&mut reference.elem),
        Type::Array(array) => erase_impl(&mut array.elem),
        Type::Slice(slice) => erase_impl(&mut slice.elem),
        Type::Paren(paren) => erase_impl(&mut paren.elem),
        Type::Group(group) => erase_impl(&mut group.elem),
        Type::Tuple(tuple) => tuple.elems.iter_mut().for_each(erase_impl),
        Type::Path(path) => {
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(arguments) = &mut segment.arguments {
                    for argument in &mut arguments.args {
                        if let GenericArgument::Type(ty) = argument {
                            erase_impl(ty);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// A check, spanned on the argument's type, that the argument can move to another thread.
/// The type is named where it can be; an `impl Trait` argument is checked by its `value` (its
/// name, re-spanned on the type so that the whole call is), when it has a name.
fn assert_send_argument(ty: &Type, value: Option<Ident>, krate: &CratePath) -> TokenStream {
    let range = span_range(ty);
    let krate = krate.at(range.0);
    if !contains_impl(ty) {
        let check = spanned_range(
            quote_spanned!(range.0=> #krate::__private::assert_send_argument_type::<#ty>),
            range,
        );
        return quote!(#check(););
    }
    let Some(mut value) = value else { return TokenStream::new() };
    value.set_span(range.1);
    let check = spanned_range(quote_spanned!(range.0=> #krate::__private::assert_send_argument), range);
    let borrow = quote_spanned!(range.0=> &);
    quote!(#check(#borrow #value);)
}

/// The spans of the first and the last token of `tokens`.
fn span_range(tokens: &impl ToTokens) -> (Span, Span) {
    let mut tokens = tokens.to_token_stream().into_iter();
    let start = tokens.next().map_or_else(Span::call_site, |token| token.span());
    let end = tokens.last().map_or(start, |token| token.span());
    (start, end)
}

/// `tokens` (generated with `quote_spanned!` at `range.0`) with the last one spanned at
/// `range.1`: the compiler then reports an error on the expression as the whole range, the
/// way `syn::Error::new_spanned` does (on stable Rust one span cannot cover several tokens).
fn spanned_range(tokens: TokenStream, range: (Span, Span)) -> TokenStream {
    let mut tokens: Vec<TokenTree> = tokens.into_iter().collect();
    if let Some(last) = tokens.last_mut() {
        last.set_span(range.1);
    }
    tokens.into_iter().collect()
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// Whether `ty` mentions `impl Trait` anywhere.
fn contains_impl(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    scan(ty.to_token_stream())
}
