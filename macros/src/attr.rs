//! The arguments of the three attributes, parsed into typed settings that keep their spans.
//!
//! Each argument is parsed on its own, so one bad argument does not hide the others: the
//! mistakes go to [`Errors`] and the remaining settings still expand (which spares the user
//! a cascade of follow-up errors).

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token, token};

use crate::errors::Errors;

/// One argument as written: `name`, `name = value` or `name(list)`.
struct Arg {
    name: Ident,
    value: ArgValue,
}

enum ArgValue {
    Flag,
    Value(Expr),
    List(TokenStream),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Arg> {
        // `crate` is a keyword, and still an argument name here.
        let name = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            ArgValue::Value(input.parse()?)
        } else if input.peek(token::Paren) {
            let list;
            syn::parenthesized!(list in input);
            ArgValue::List(list.parse()?)
        } else {
            ArgValue::Flag
        };
        Ok(Arg { name, value })
    }
}

/// Parses `a, b = c, d(e)`; a syntax error ends parsing and is reported alone.
fn parse_args(args: TokenStream, errors: &mut Errors) -> Vec<Arg> {
    match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args) {
        Ok(args) => args.into_iter().collect(),
        Err(error) => {
            errors.push(error);
            Vec::new()
        }
    }
}

/// The one setter every argument goes through: a second occurrence is an error on its name.
fn set<T>(slot: &mut Option<T>, name: &Ident, value: Option<T>, errors: &mut Errors) {
    match (slot.is_some(), value) {
        (true, _) => errors.spanned(name, format!("duplicate argument `{name}`: give it once")),
        (false, value) => *slot = value,
    }
}

/// The `crate = path` argument shared by all the macros: where the facade crate is.
fn crate_path(arg: &Arg, errors: &mut Errors) -> Option<Path> {
    match &arg.value {
        ArgValue::Value(Expr::Path(path)) if path.qself.is_none() && path.attrs.is_empty() => {
            Some(path.path.clone())
        }
        _ => {
            errors.spanned(&arg.name, "expected a path: `crate = path::to::contextvars`");
            None
        }
    }
}

/// The path generated code starts with: `::contextvars` unless `crate = path` renamed it.
#[derive(Clone)]
pub(crate) struct CratePath(Option<Path>);

impl CratePath {
    /// The path, with `span` on the default `::contextvars` so errors land where asked.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        match &self.0 {
            Some(path) => quote::ToTokens::to_token_stream(path),
            None => quote::quote_spanned!(span=> ::contextvars),
        }
    }
}

/// `#[context_var(name = "…", inherit = bool, back = bool, merge = path, baggage = "key",
/// back_from_remote = bool, crate = path)]`.
#[derive(Default)]
pub(crate) struct VarArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) inherit: Option<LitBool>,
    pub(crate) back: Option<LitBool>,
    pub(crate) merge: Option<Expr>,
    pub(crate) baggage: Option<LitStr>,
    pub(crate) back_from_remote: Option<LitBool>,
    krate: Option<Path>,
}

impl VarArgs {
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> VarArgs {
        let mut out = VarArgs::default();
        for arg in parse_args(args, errors) {
            let name = &arg.name;
            match name.to_string().as_str() {
                "name" => set(&mut out.name, name, string(&arg, errors), errors),
                "inherit" => set(&mut out.inherit, name, boolean(&arg, errors), errors),
                "back" => set(&mut out.back, name, boolean(&arg, errors), errors),
                "merge" => set(&mut out.merge, name, merge(&arg, errors), errors),
                "crate" => set(&mut out.krate, name, crate_path(&arg, errors), errors),
                "baggage" => set(&mut out.baggage, name, baggage_key(&arg, errors), errors),
                "back_from_remote" => set(&mut out.back_from_remote, name, boolean(&arg, errors), errors),
                _ => errors.spanned(
                    name,
                    format!(
                        "unknown argument `{name}`: expected `name = \"…\"`, `inherit = bool`, \
                         `back = bool`, `merge = fn_path`, `baggage = \"key\"`, \
                         `back_from_remote = bool` or `crate = path`"
                    ),
                ),
            }
        }
        out
    }

    pub(crate) fn krate(&self) -> CratePath {
        CratePath(self.krate.clone())
    }
}

fn string(arg: &Arg, errors: &mut Errors) -> Option<LitStr> {
    match &arg.value {
        ArgValue::Value(Expr::Lit(ExprLit { lit: Lit::Str(string), .. })) => Some(string.clone()),
        ArgValue::Value(other) => {
            errors.spanned(other, format!("expected a string literal: `{} = \"…\"`", arg.name));
            None
        }
        _ => {
            errors.spanned(&arg.name, format!("expected a value: `{} = \"…\"`", arg.name));
            None
        }
    }
}

/// A `baggage` key: an HTTP token, the only keys the W3C header can carry.
fn baggage_key(arg: &Arg, errors: &mut Errors) -> Option<LitStr> {
    let key = string(arg, errors)?;
    let text = key.value();
    let token = !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    if !token {
        errors.spanned(
            &key,
            "a baggage key is an HTTP token: use letters, digits and `!#$%&'*+-.^_`|~` only, as in `\"user.id\"`",
        );
        return None;
    }
    Some(key)
}

fn boolean(arg: &Arg, errors: &mut Errors) -> Option<LitBool> {
    match &arg.value {
        ArgValue::Value(Expr::Lit(ExprLit { lit: Lit::Bool(flag), .. })) => Some(flag.clone()),
        ArgValue::Value(other) => {
            errors.spanned(other, format!("expected `true` or `false`: `{} = false`", arg.name));
            None
        }
        _ => {
            errors.spanned(&arg.name, format!("expected a value: `{0} = true` or `{0} = false`", arg.name));
            None
        }
    }
}

fn merge(arg: &Arg, errors: &mut Errors) -> Option<Expr> {
    match &arg.value {
        // Any expression that coerces to `fn(&T, &T, &T) -> T`; the compiler checks the type
        // and reports a mismatch on the expression itself.
        ArgValue::Value(function) => Some(function.clone()),
        _ => {
            errors.spanned(&arg.name, "expected a function: `merge = path::to::fn(base, parent, child)`");
            None
        }
    }
}

/// What `#[propagate(…)]` does with the function's changes.
pub(crate) enum Mode {
    /// All changes flow back to whoever awaits the task or thread (`None`), or only those to
    /// the listed variables.
    Back(Option<Vec<Path>>),
    /// Nothing flows back: the function runs as written.
    Down,
    /// The function runs in a copy of the context; its changes are discarded.
    None,
}

const MODES: &str = "expected `back`, `back(VAR, …)`, `down` or `none`";

/// `#[propagate(back | back(VAR, …) | down | none, crate = path)]`.
pub(crate) struct PropagateArgs {
    pub(crate) mode: Mode,
    krate: Option<Path>,
}

impl PropagateArgs {
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> PropagateArgs {
        let mut mode = None;
        let mut krate = None;
        let mut any = false;
        for arg in parse_args(args, errors) {
            any = true;
            let name = &arg.name;
            match name.to_string().as_str() {
                "crate" => set(&mut krate, name, crate_path(&arg, errors), errors),
                "back" | "down" | "none" => {
                    if mode.is_some() {
                        errors.spanned(
                            name,
                            format!("a second mode `{name}`: a function has one mode, {MODES}"),
                        );
                    } else {
                        mode = self::mode(&arg, errors);
                    }
                }
                _ => errors.spanned(name, format!("unknown mode `{name}`: {MODES}")),
            }
        }
        if !any {
            errors.push(syn::Error::new(Span::call_site(), format!("`#[propagate]` needs a mode: {MODES}")));
        }
        // After an error, expand as `down` (the body unchanged): the fewest follow-up errors.
        PropagateArgs { mode: mode.unwrap_or(Mode::Down), krate }
    }

    pub(crate) fn krate(&self) -> CratePath {
        CratePath(self.krate.clone())
    }
}

fn mode(arg: &Arg, errors: &mut Errors) -> Option<Mode> {
    let name = arg.name.to_string();
    match (name.as_str(), &arg.value) {
        ("back", ArgValue::Flag) => Some(Mode::Back(None)),
        ("back", ArgValue::List(list)) => {
            match Punctuated::<Path, Token![,]>::parse_terminated.parse2(list.clone()) {
                Ok(vars) if vars.is_empty() => {
                    errors.spanned(
                        &arg.name,
                        "`back()` lists no variable: name some, `back(USER, …)`, or write `back` for all",
                    );
                    None
                }
                Ok(vars) => Some(Mode::Back(Some(vars.into_iter().collect()))),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
        ("down", ArgValue::Flag) => Some(Mode::Down),
        ("none", ArgValue::Flag) => Some(Mode::None),
        _ => {
            errors.spanned(&arg.name, format!("`{name}` takes no value: {MODES}"));
            None
        }
    }
}

/// `#[sync_endpoint(crate = path)]`.
pub(crate) struct EndpointArgs {
    krate: Option<Path>,
}

impl EndpointArgs {
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> EndpointArgs {
        let mut krate = None;
        for arg in parse_args(args, errors) {
            let name = &arg.name;
            match name.to_string().as_str() {
                "crate" => set(&mut krate, name, crate_path(&arg, errors), errors),
                _ => errors.spanned(name, format!("unknown argument `{name}`: expected only `crate = path`")),
            }
        }
        EndpointArgs { krate }
    }

    pub(crate) fn krate(&self) -> CratePath {
        CratePath(self.krate.clone())
    }
}
