use std::cell::RefCell;

use contextvars::context_var;

#[context_var]
static CACHE: RefCell<Vec<u32>>;

fn main() {}
