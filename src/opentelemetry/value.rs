//! The types a baggage variable may hold: text in a `baggage` entry and back.

/// A type whose values travel as the text of a `baggage` entry.
///
/// Implemented for `String`, the integers, `bool`, and `Option<T>` of any of them (`None`
/// is not sent). Implement it for a type of your own to let it travel:
///
/// ```
/// use contextvars::opentelemetry::BaggageValue;
///
/// #[derive(Clone, Debug, PartialEq)]
/// enum Plan { Free, Paid }
///
/// impl BaggageValue for Plan {
///     fn to_baggage(&self) -> Option<String> {
///         Some(match self { Plan::Free => "free", Plan::Paid => "paid" }.to_string())
///     }
///     fn from_baggage(text: &str) -> Option<Plan> {
///         match text { "free" => Some(Plan::Free), "paid" => Some(Plan::Paid), _ => None }
///     }
/// }
/// assert_eq!(Plan::from_baggage("paid"), Some(Plan::Paid));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel in the `baggage` header",
    label = "does not implement `BaggageValue`",
    note = "use `String`, an integer, `bool` or an `Option` of one, or implement \
            `contextvars::opentelemetry::BaggageValue` (parse and format) for the type"
)]
pub trait BaggageValue: Sized {
    /// The text to send; `None` sends nothing for the variable.
    fn to_baggage(&self) -> Option<String>;

    /// The value for a received text; `None` drops the entry (with a warning).
    fn from_baggage(text: &str) -> Option<Self>;
}

impl BaggageValue for String {
    fn to_baggage(&self) -> Option<String> {
        Some(self.clone())
    }
    fn from_baggage(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
}

impl BaggageValue for bool {
    fn to_baggage(&self) -> Option<String> {
        Some(self.to_string())
    }
    fn from_baggage(text: &str) -> Option<bool> {
        text.parse().ok()
    }
}

macro_rules! integers {
    ($($int:ty)*) => {$(
        impl BaggageValue for $int {
            fn to_baggage(&self) -> Option<String> {
                Some(self.to_string())
            }
            fn from_baggage(text: &str) -> Option<$int> {
                text.parse().ok()
            }
        }
    )*};
}

integers!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

impl<T: BaggageValue> BaggageValue for Option<T> {
    fn to_baggage(&self) -> Option<String> {
        self.as_ref().and_then(T::to_baggage)
    }
    fn from_baggage(text: &str) -> Option<Option<T>> {
        T::from_baggage(text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::BaggageValue;

    #[test]
    fn values_round_trip() {
        assert_eq!(u64::from_baggage(&42u64.to_baggage().unwrap()), Some(42));
        assert_eq!(i8::from_baggage("-3"), Some(-3));
        assert_eq!(u8::from_baggage("300"), None);
        assert_eq!(bool::from_baggage("true"), Some(true));
        assert_eq!(bool::from_baggage("yes"), None);
        assert_eq!(None::<String>.to_baggage(), None);
        assert_eq!(Option::<String>::from_baggage("ada"), Some(Some("ada".to_string())));
    }
}
