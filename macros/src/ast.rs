//! The items the macros take, parsed into a model that keeps every token, so that errors
//! and generated code carry the user's spans.

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Meta, Signature, Token, Type, Visibility, token};

use crate::errors::Errors;

/// `static NAME: Type;` or `static NAME: Type = default;`, as `#[context_var]` takes it.
///
/// Parsed by hand: the initializer is optional here (the compiler parses a static without
/// one, and only rejects it after macro expansion), and `static mut` is kept so that the
/// validation can point at the `mut`.
pub(crate) struct VarItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) static_token: Token![static],
    pub(crate) mutability: Option<Token![mut]>,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// The default expression, as tokens: the compiler parses it (a syntax error in it is
    /// reported once, by the compiler).
    pub(crate) init: Option<TokenStream>,
    pub(crate) semi_token: Token![;],
}

impl VarItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<VarItem> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        if !input.peek(Token![static]) {
            return Err(input.error(
                "`#[context_var]` declares a context variable: expected `static NAME: Type;` or \
                 `static NAME: Type = default;`",
            ));
        }
        let static_token = input.parse()?;
        let mutability = input.parse()?;
        let ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        let init = match input.parse::<Option<Token![=]>>()? {
            Some(_) => Some(input.call(until_semicolon)?),
            None => None,
        };
        let semi_token = input.parse()?;
        Ok(VarItem { attrs, vis, static_token, mutability, ident, ty, init, semi_token })
    }

    /// Takes the `#[context_var]` attributes (by their last path segment) off the item.
    pub(crate) fn take_var_attrs(&mut self) -> Vec<Attribute> {
        let (vars, kept) = std::mem::take(&mut self.attrs).into_iter().partition(is_var_attr);
        self.attrs = kept;
        vars
    }
}

/// The tokens up to the next `;` outside any brackets (which is left in `input`); none if
/// the default is missing, which the compiler has reported already.
fn until_semicolon(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut tokens = TokenStream::new();
        while let Some((tree, next)) = rest.token_tree() {
            if matches!(&tree, TokenTree::Punct(punct) if punct.as_char() == ';') {
                break;
            }
            tokens.extend([tree]);
            rest = next;
        }
        Ok((tokens, rest))
    })
}

fn is_var_attr(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|segment| segment.ident == "context_var")
}

/// The arguments of one `#[context_var]` or `#[context_var(…)]` attribute.
pub(crate) fn var_attr_args(attr: Attribute, errors: &mut Errors) -> TokenStream {
    match attr.meta {
        Meta::Path(_) => TokenStream::new(),
        Meta::List(list) => list.tokens,
        Meta::NameValue(pair) => {
            errors.spanned(&pair, "expected `#[context_var]` or `#[context_var(arguments)]`");
            TokenStream::new()
        }
    }
}

/// The item under `#[context_var]`.
pub(crate) fn parse_var(tokens: TokenStream) -> syn::Result<VarItem> {
    VarItem::parse.parse2(tokens)
}

/// The body of `context_vars! { … }`: statics, each optionally with `#[context_var(…)]`.
pub(crate) fn parse_var_list(tokens: TokenStream) -> syn::Result<Vec<VarItem>> {
    let parser = |input: ParseStream<'_>| {
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(VarItem::parse(input)?);
        }
        Ok(items)
    };
    parser.parse2(tokens)
}

/// A function with a body (free function or method), as `#[propagate]` and
/// `#[sync_endpoint]` take it: the signature parsed, the body kept as tokens.
///
/// The body is not parsed: the compiler parses it once more after expansion, so a syntax
/// error in it would be reported twice (and nothing in a body changes what the macros do).
#[derive(Clone)]
pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Body,
}

impl FnItem {
    /// The function's `#[track_caller]`, if it has one.
    pub(crate) fn track_caller(&self) -> Option<&Attribute> {
        self.attrs.iter().find(|attr| attr.path().is_ident("track_caller"))
    }
}

/// A function body: its inner attributes (`#![allow(…)]`), which apply to the whole
/// function, and the statements after them, as written.
#[derive(Clone)]
pub(crate) struct Body {
    pub(crate) brace_token: token::Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) stmts: TokenStream,
}

/// Parses the function under `#[macro_name]`; `macro_name` goes into the error for any
/// other item.
pub(crate) fn parse_fn(tokens: TokenStream, macro_name: &str) -> syn::Result<FnItem> {
    let parser = |input: ParseStream<'_>| {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse::<Visibility>()?;
        let looks_like_fn = input.peek(Token![fn])
            || input.peek(Token![const])
            || input.peek(Token![async])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !looks_like_fn {
            return Err(input.error(format!("`#[{macro_name}]` goes on a function or a method")));
        }
        let sig = input.parse::<Signature>()?;
        if !input.peek(token::Brace) {
            return Err(input.error(format!(
                "`#[{macro_name}]` needs a function body: a declaration without one has nothing to wrap"
            )));
        }
        let content;
        let brace_token = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.parse()?;
        Ok(FnItem { attrs, vis, sig, body: Body { brace_token, inner_attrs, stmts } })
    };
    parser.parse2(tokens)
}
