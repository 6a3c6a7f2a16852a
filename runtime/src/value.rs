//! Type-erased values as the map stores them.
//!
//! A stored value carries its variable's key in a sized header, so that reading it back as
//! a `T` is one integer comparison (see [`typed`]); and it remembers its variable, so that
//! code which only holds the map (the merge, the copy into a child) still reaches the
//! variable's policy.

use std::sync::Arc;

use crate::map::{self, Flags};
use crate::var::{AnyVar, ContextVar};

/// One value of one variable, shared between every context that holds it.
///
/// A `std` handle, unlike the map's nodes (see `map`): building a `triomphe::Arc` of an
/// unsized `Keyed<dyn Stored>` takes either new `unsafe` code (its `unsize` coercion of a
/// struct that ends in a trait object) or a second allocation per value (`From<Box<_>>`).
/// The price is one locked instruction in a `set` in place (`Arc::get_mut` in `typed_mut`).
pub(crate) type Value = Arc<Keyed<dyn Stored>>;

/// The map of a context: variable keys to their values.
pub(crate) type Map = map::Map<Value>;

thread_local! {
    static SPARE: map::SpareList<Value> = const { map::SpareList::new() };
}

impl map::Spare for Value {
    fn spare() -> &'static std::thread::LocalKey<map::SpareList<Value>> {
        &SPARE
    }
    #[inline]
    fn drops_quietly(&self) -> bool {
        self.value.drops_quietly()
    }
}

/// The map flag of a value whose variable is not inherited (`ContextVar::inherit(false)`):
/// the copy into a child leaves it out (`Map::without`).
pub(crate) const NOT_INHERITED: Flags = Flags::kind(0);

/// The map flags of a value of a variable that `inherits` or not.
#[inline]
pub(crate) const fn flags(inherits: bool) -> Flags {
    Flags::NONE.with(NOT_INHERITED, !inherits)
}

/// A stored value: the key of its variable, then the value itself.
pub(crate) struct Keyed<V: ?Sized> {
    key: u32,
    value: V,
}

/// What the map needs from a value whose type it does not know.
pub(crate) trait Stored: Send + Sync + 'static {
    /// The variable this value belongs to.
    fn var(&self) -> &'static dyn AnyVar;
    /// The variable's merge of three values of it (see `ContextVar::merge_values`).
    fn merge(&self, base: Option<&Value>, parent: Option<&Value>, child: Option<&Value>) -> Option<Value>;
    /// Whether the value's type has no drop glue (`u64`, `&'static str`): its drop then runs
    /// no code of its own.
    fn drops_quietly(&self) -> bool;
}

/// A value together with its variable.
pub(crate) struct Typed<T: 'static> {
    var: &'static ContextVar<T>,
    value: T,
}

impl<T: Clone + Send + Sync + 'static> Stored for Typed<T> {
    fn var(&self) -> &'static dyn AnyVar {
        self.var
    }
    fn merge(&self, base: Option<&Value>, parent: Option<&Value>, child: Option<&Value>) -> Option<Value> {
        self.var.merge_values(base, parent, child)
    }
    fn drops_quietly(&self) -> bool {
        !std::mem::needs_drop::<T>()
    }
}

impl Keyed<dyn Stored> {
    /// The variable this value belongs to.
    pub(crate) fn var(&self) -> &'static dyn AnyVar {
        self.value.var()
    }

    /// See [`Stored::merge`].
    pub(crate) fn merge(
        &self,
        base: Option<&Value>,
        parent: Option<&Value>,
        child: Option<&Value>,
    ) -> Option<Value> {
        self.value.merge(base, parent, child)
    }
}

/// Wraps `value` of `var` for the map.
pub(crate) fn store<T: Clone + Send + Sync + 'static>(var: &'static ContextVar<T>, value: T) -> Value {
    Arc::new(Keyed { key: var.key(), value: Typed { var, value } })
}

/// The value of `var` that `stored` holds, or `None` if `stored` belongs to another variable.
#[inline]
pub(crate) fn typed<'a, T: Clone + Send + Sync + 'static>(
    var: &'static ContextVar<T>,
    stored: &'a Value,
) -> Option<&'a T> {
    if !var.has_key(stored.key) {
        return None;
    }
    let erased: *const Keyed<dyn Stored> = Arc::as_ptr(stored);
    let concrete = erased as *const Keyed<Typed<T>>;
    debug_assert!(std::ptr::eq(stored.var() as *const dyn AnyVar as *const (), var as *const _ as *const ()));
    // SAFETY: a `Keyed` is only ever built by `store`, which writes the key of the variable
    // whose `T` it holds; keys are unique per variable (handed out once by `ContextVar::key`)
    // and a `ContextVar<T>` has exactly one `T`. Equal keys therefore mean that the erased
    // value is a `Keyed<Typed<T>>`, so the cast (which only drops the vtable) points at a live
    // value of that type, borrowed for as long as `stored` is. A checked `dyn Any` downcast
    // costs a virtual call here, doubling the cost of `ContextVar::get` (see BENCHMARKS.md).
    #[allow(unsafe_code)]
    let keyed = unsafe { &*concrete };
    Some(&keyed.value.value)
}

/// The value of `var` in `stored`, mutably, if no other context shares it (reached through
/// `Map::unique_mut`, and the value itself not shared).
#[inline]
pub(crate) fn typed_mut<'a, T: Clone + Send + Sync + 'static>(
    var: &'static ContextVar<T>,
    stored: &'a mut Value,
) -> Option<&'a mut T> {
    // A shared value says so without `get_mut`'s locked instruction.
    if Arc::strong_count(stored) != 1 {
        return None;
    }
    let unique = Arc::get_mut(stored)?;
    if !var.has_key(unique.key) {
        return None;
    }
    let concrete = unique as *mut Keyed<dyn Stored> as *mut Keyed<Typed<T>>;
    // SAFETY: as in `typed`, equal keys mean the value is a `Keyed<Typed<T>>`; the exclusive
    // borrow of the value (which `Arc::get_mut` handed out) keeps it the only reference.
    #[allow(unsafe_code)]
    let keyed = unsafe { &mut *concrete };
    Some(&mut keyed.value.value)
}

/// Whether two optional values are the same stored value (not merely equal).
pub(crate) use map::same;

#[cfg(test)]
mod tests {
    use super::*;

    static NUMBER: ContextVar<u64> = ContextVar::new("NUMBER", || 0);
    static TEXT: ContextVar<String> = ContextVar::new("TEXT", String::new);

    #[test]
    fn typed_reads_its_own_variable_only() {
        let number = store(&NUMBER, 7);
        let text = store(&TEXT, "seven".to_string());
        assert_eq!(typed(&NUMBER, &number), Some(&7));
        assert_eq!(typed(&TEXT, &text).map(String::as_str), Some("seven"));
        // Another variable's value is never reinterpreted, whatever its type.
        assert_eq!(typed(&NUMBER, &text), None);
        assert_eq!(typed(&TEXT, &number), None);
    }

    #[test]
    fn typed_mut_writes_through_a_unique_value_only() {
        let mut text = store(&TEXT, "a".to_string());
        typed_mut(&TEXT, &mut text).unwrap().push('b');
        assert_eq!(typed(&TEXT, &text).map(String::as_str), Some("ab"));
        assert!(typed_mut(&NUMBER, &mut text).is_none());
        let shared = Arc::clone(&text);
        assert!(typed_mut(&TEXT, &mut text).is_none(), "a shared value is never handed out mutably");
        drop(shared);
    }
}
