//! Checks on the parsed items, each error on the token that is wrong and saying what is
//! allowed. Type-level rules (`Default`, `Send`, `Clone`) are left to the compiler: the
//! expansion spans its bounds on the user's types so that those errors land there too.

use syn::punctuated::Punctuated;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, Lifetime, PathArguments, ReceiverKind,
    ReturnType, Signature, Token, Type, TypeParamBound, WherePredicate,
};

use crate::ast::{FnItem, VarItem};
use crate::attr::VarArgs;
use crate::errors::Errors;

/// Where borrows are reported, and the lifetime parameters already reported.
struct Borrows<'a> {
    declared: &'a [&'a Ident],
    errors: &'a mut Errors,
}

pub(crate) fn check_var(item: &VarItem, errors: &mut Errors) {
    if let Some(mutability) = &item.mutability {
        errors.spanned(mutability, "context variables cannot be `static mut`: call `set` on them instead");
    }
}

/// A `#[context_var]` attribute beyond the first (`context_vars!` items, or a second one on
/// a `static`).
pub(crate) fn check_duplicates(duplicates: impl IntoIterator<Item = Attribute>, errors: &mut Errors) {
    for duplicate in duplicates {
        errors.spanned(duplicate, "duplicate `#[context_var]`: give its arguments to one attribute");
    }
}

/// The `#[context_var]` arguments that contradict each other, checked once all are parsed.
pub(crate) fn check_var_args(args: &mut VarArgs, errors: &mut Errors) {
    if let (Some(back_from_remote), None) = (&args.back_from_remote, &args.baggage) {
        errors.spanned(
            back_from_remote,
            "`back_from_remote` needs a `baggage` key: `baggage = \"key\", back_from_remote = true`",
        );
    }
    // A value sent back lands as a child's change at a join, which `back = false` refuses.
    if let (Some(back_from_remote), Some(back)) = (&args.back_from_remote, &args.back)
        && back_from_remote.value
        && !back.value
    {
        errors.spanned(
            back_from_remote,
            "`back_from_remote = true` with `back = false`: a value sent back would never land, \
             as the variable never flows back to a parent; remove one of them",
        );
        // One error: the variable is expanded as if it did not travel.
        args.back_from_remote = None;
        args.baggage = None;
    }
}

pub(crate) fn check_propagate(item: &FnItem, errors: &mut Errors) {
    if let Some(constness) = &item.sig.constness {
        errors.spanned(
            constness,
            "`#[propagate]` cannot go on a `const fn`: context variables are read and set at run time",
        );
    }
}

pub(crate) fn check_endpoint(item: &FnItem, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.spanned(
            asyncness,
            "`#[sync_endpoint]` turns a synchronous fn into an async one: remove `async` \
             (to send an async fn's changes back, use `#[propagate(back)]`)",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "`#[sync_endpoint]` cannot go on a `const fn`: it becomes an async fn");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            "`#[sync_endpoint]` cannot go on an `extern` fn: it becomes an async fn, which has no ABI; \
             remove the `extern`",
        );
    }
    if let Some(track_caller) = item.track_caller() {
        errors.spanned(
            track_caller,
            "`#[sync_endpoint]` cannot keep `#[track_caller]`: its body runs on the blocking pool, \
             called by the pool and not by the caller; remove `#[track_caller]`",
        );
    }
    check_generics(sig, errors);
    // A lifetime parameter is reported once, at its declaration, not at every use.
    let declared: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Lifetime(param) => Some(&param.lifetime.ident),
            _ => None,
        })
        .collect();
    let errors = &mut Borrows { declared: &declared, errors };
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => match &receiver.kind {
                ReceiverKind::Value => {}
                ReceiverKind::Reference(..) => errors.errors.spanned(
                    receiver,
                    "`#[sync_endpoint]` cannot borrow `self`: the body runs on another thread; take \
                     `self` by value (an `Arc` or a clone) or pass what the body needs as arguments",
                ),
                ReceiverKind::Typed(_, ty) => check_owned(ty, errors),
                _ => {}
            },
            FnArg::Typed(arg) => check_owned(&arg.ty, errors),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        check_owned(ty, errors);
    }
}

const MOVED: &str = "the arguments and the output of a `#[sync_endpoint]` cross to another thread";

/// Lifetime parameters cannot cross to another thread, and type parameters must be
/// `'static`. The `'static` bound is checked here, by syntax: left to the compiler, it is
/// reported once per place the value goes, some of them far from the parameter. `Send` is
/// left to the compiler, which reports it on each argument and names the missing bound.
fn check_generics(sig: &Signature, errors: &mut Errors) {
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(param) => errors.spanned(
                &param.lifetime,
                format!("{MOVED} and must be `'static`: remove the lifetime parameter `{}`", param.lifetime),
            ),
            GenericParam::Type(param) if !has_static(&param.bounds) && !where_static(sig, &param.ident) => {
                errors.spanned(
                    &param.ident,
                    format!("{MOVED}: add the bounds `{}: Send + 'static`", param.ident),
                );
            }
            _ => {}
        }
    }
    for input in &sig.inputs {
        if let FnArg::Typed(arg) = input
            && let Type::ImplTrait(bounds) = &*arg.ty
            && !has_static(&bounds.bounds)
        {
            errors.spanned(bounds, format!("{MOVED}: add the bounds `+ Send + 'static`"));
        }
    }
}

fn has_static(bounds: &Punctuated<TypeParamBound, Token![+]>) -> bool {
    bounds
        .iter()
        .any(|bound| matches!(bound, TypeParamBound::Lifetime(lifetime) if lifetime.ident == "static"))
}

/// Whether the where clause bounds `param` by `'static`.
fn where_static(sig: &Signature, param: &Ident) -> bool {
    let Some(clause) = &sig.generics.where_clause else { return false };
    clause.predicates.iter().any(|predicate| match predicate {
        WherePredicate::Type(predicate) => {
            matches!(&predicate.bounded_ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident(param))
                && has_static(&predicate.bounds)
        }
        _ => false,
    })
}

/// Reports every borrow in `ty` that is not `'static`.
fn check_owned(ty: &Type, errors: &mut Borrows<'_>) {
    match ty {
        Type::Reference(reference) => match &reference.lifetime {
            Some(lifetime) if lifetime.ident == "static" || errors.declared.contains(&&lifetime.ident) => {}
            _ => errors.errors.spanned(
                reference,
                format!(
                    "{MOVED} and cannot borrow: take an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)"
                ),
            ),
        },
        Type::Array(array) => check_owned(&array.elem, errors),
        Type::Group(group) => check_owned(&group.elem, errors),
        Type::Paren(paren) => check_owned(&paren.elem, errors),
        Type::Ptr(pointer) => check_owned(&pointer.elem, errors),
        Type::Slice(slice) => check_owned(&slice.elem, errors),
        Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| check_owned(elem, errors)),
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_owned(&qself.ty, errors);
            }
            for segment in &path.path.segments {
                check_arguments(&segment.arguments, errors);
            }
        }
        Type::ImplTrait(bounds) => check_bounds(&bounds.bounds, errors),
        Type::TraitObject(bounds) => check_bounds(&bounds.bounds, errors),
        // A function pointer's lifetimes are its own (higher-ranked): it is `'static`.
        _ => {}
    }
}

fn check_arguments(arguments: &PathArguments, errors: &mut Borrows<'_>) {
    if let PathArguments::AngleBracketed(arguments) = arguments {
        for argument in &arguments.args {
            match argument {
                GenericArgument::Lifetime(lifetime) => check_lifetime(lifetime, errors),
                GenericArgument::Type(ty) => check_owned(ty, errors),
                GenericArgument::AssocType(assoc) => check_owned(&assoc.ty, errors),
                _ => {}
            }
        }
    }
}

fn check_bounds(bounds: &Punctuated<TypeParamBound, Token![+]>, errors: &mut Borrows<'_>) {
    for bound in bounds {
        match bound {
            TypeParamBound::Lifetime(lifetime) => check_lifetime(lifetime, errors),
            TypeParamBound::Trait(bound) if bound.lifetimes.is_none() => {
                bound.path.segments.iter().for_each(|segment| check_arguments(&segment.arguments, errors));
            }
            _ => {}
        }
    }
}

fn check_lifetime(lifetime: &Lifetime, errors: &mut Borrows<'_>) {
    if lifetime.ident != "static" && !errors.declared.contains(&&lifetime.ident) {
        errors.errors.spanned(lifetime, format!("{MOVED} and must be `'static`, not `{lifetime}`"));
    }
}
