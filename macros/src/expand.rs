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
use syn::{Block, Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReceiverKind, ReturnType, Stmt, Token, Type};

use crate::ast::VarItem;
use crate::attr::{CratePath, EndpointArgs, Mode, PropagateArgs, VarArgs};

/// `static NAME: ContextVar<T> = new_context_var::<T>("NAME", default).inherit(…)…;`
pub(crate) fn var(item: &VarItem, args: &VarArgs) -> TokenStream {
    let VarItem { attrs, vis, static_token, ident, ty, init, semi_token, .. } = item;
    let ty_range = span_range(ty);
    let name = match &args.name {
        Some(name) => name.clone(),
        None => LitStr::new(&ident.unraw().to_string(), ident.span()),
    };
    // The default runs lazily, at most once, from a plain fn: that is what `ContextVar::new`
    // can hold in a `static`.
    let default_fn = Ident::new("__contextvars_default", Span::mixed_site());
    let default = match init {
        Some(expr) => expr.to_token_stream(),
        None => {
            let path = spanned_range(
                quote_spanned!(ty_range.0=> <#ty as ::core::default::Default>::default),
                ty_range,
            );
            quote!(#path())
        }
    };
    // A type that is not `Clone + Send + Sync + 'static` fails the bounds of
    // `new_context_var::<T>` (and the `Sync` of the static): reported on the user's type,
    // whose span both the turbofish and the static's type carry.
    let krate_at_type = args.krate().at(ty_range.0);
    let var_type =
        spanned_range(quote_spanned!(ty_range.0=> #krate_at_type::__private::ContextVar<#ty>), ty_range);
    let krate = args.krate().at(Span::call_site());
    let mut value = quote!(#krate::__private::new_context_var::<#ty>(#name, #default_fn));
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
        #vis #static_token #ident: #var_type = {
            fn #default_fn() -> #ty {
                #default
            }
            #value
        }#semi_token
        #register
    }
}

/// The function with its body wrapped for `mode`.
pub(crate) fn propagate(mut item: ItemFn, args: &PropagateArgs) -> TokenStream {
    let krate = args.krate().at(Span::call_site());
    let block = &item.block;
    let is_async = item.sig.asyncness.is_some();
    let only = match &args.mode {
        Mode::Back(Some(vars)) => {
            let list = Ident::new("__CONTEXTVARS_BACK", Span::mixed_site());
            // Spanned on each name: one that is not a context variable fails the coercion
            // to `&dyn AnyVar` right there.
            let vars = vars.iter().map(|var| quote_spanned!(var.span()=> &#var));
            quote! {{
                static #list: &[&dyn #krate::__private::AnyVar] = &[#(#vars),*];
                ::core::option::Option::Some(#list)
            }}
        }
        _ => quote!(::core::option::Option::None),
    };
    let body = match &args.mode {
        Mode::Down => return item.into_token_stream(),
        // The body runs in a copy of the caller's context; its changes land when it completes
        // (not when it panics, nor when an async one is dropped half-way).
        Mode::Back(_) if is_async => {
            let output = Ident::new("__contextvars_output", Span::mixed_site());
            // The declared type, where it can be named, drives inference inside the block
            // (a `?` there needs to know the error type).
            let annotation = match &item.sig.output {
                ReturnType::Type(_, ty) if !contains_impl(ty) => quote!(: #ty),
                _ => TokenStream::new(),
            };
            quote! {
                let #output #annotation =
                    #krate::__private::propagate_back_async(#only, async move #block).await;
                #output
            }
        }
        Mode::Back(_) => {
            let output = closure_output(&item.sig.output);
            quote! {
                #krate::__private::propagate_back(#only, move || #output #block)
            }
        }
        Mode::None if item.sig.asyncness.is_some() => quote! {
            #krate::__private::Context::current().scope(async move #block).await
        },
        Mode::None => {
            let context = Ident::new("__contextvars_copy", Span::mixed_site());
            let output = closure_output(&item.sig.output);
            quote! {
                let mut #context = #krate::__private::Context::current();
                #context.run(move || #output #block)
            }
        }
    };
    replace_body(&mut item, body);
    item.into_token_stream()
}

/// `async fn same(args) -> R { run_sync_endpoint(move || -> R { body }).await }`.
pub(crate) fn endpoint(mut item: ItemFn, args: &EndpointArgs) -> TokenStream {
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
    let output = closure_output(&item.sig.output);
    let block = &item.block;
    let closure = quote!(move || #output #block);
    let call = match &item.sig.output {
        // The output type named in the turbofish, and the call spanned on it: an output that
        // is not `Send + 'static` fails the bounds of `run_sync_endpoint` (and of the future
        // it returns) on the type. An `impl Trait` cannot be named; it is inferred.
        ReturnType::Type(_, ty) if !contains_impl(ty) => {
            let range = span_range(ty);
            let krate = args.krate().at(range.0);
            let mut arguments = Group::new(Delimiter::Parenthesis, closure);
            arguments.set_span(range.1);
            let await_token = Ident::new("await", range.0);
            quote_spanned!(range.0=> #krate::__private::run_sync_endpoint::<_, #ty> #arguments.#await_token)
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
    item.sig.asyncness = Some(Token![async](item.sig.fn_token.span));
    replace_body(&mut item, body);
    item.into_token_stream()
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

/// Swaps in a new body, keeping the user's braces (and so their spans).
fn replace_body(item: &mut ItemFn, body: TokenStream) {
    let brace_token = item.block.brace_token;
    *item.block = Block { brace_token, stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)] };
}

/// `-> R` for a closure that stands for the function body, so that `?` and `return` in the
/// body infer as they do in the function. Left out where a closure cannot name the type
/// (`impl Trait`) and for `()`.
fn closure_output(output: &ReturnType) -> TokenStream {
    match output {
        ReturnType::Type(arrow, ty) if !contains_impl(ty) && !is_unit(ty) => quote!(#arrow #ty),
        _ => TokenStream::new(),
    }
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
