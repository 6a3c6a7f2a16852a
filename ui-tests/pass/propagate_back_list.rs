// Every form of function compiles under `#[propagate(back(HITS))]` as it does without it, and
// behaves the same (the forms: `shared/propagate_forms.rs`, the same for each mode).
#![deny(warnings, unused_qualifications, rust_2018_idioms)]

include!("shared/propagate_forms.rs");

every_form!(back(HITS));
