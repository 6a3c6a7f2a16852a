// Every function `#[sync_endpoint]` accepts compiles and behaves as written, now awaited:
// literal bodies, early `return` and `?` that coerce or convert, `impl Trait` arguments and
// returns, generics with where clauses, `const` generics, `unsafe` fns, methods taking
// `self` by value, boxed or shared.
#![deny(warnings, unused_qualifications, rust_2018_idioms)]

use std::error::Error;
use std::fmt::Display;
use std::sync::Arc;

use contextvars::sync_endpoint;

#[sync_endpoint]
fn literal() -> u32 {
    5
}

#[sync_endpoint]
fn empty() {}

#[sync_endpoint]
fn shown(flag: bool) -> Box<dyn Display + Send> {
    if flag {
        return Box::new(1);
    }
    Box::new("one")
}

#[sync_endpoint]
fn parsed(text: String) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let number: u32 = text.parse()?;
    Ok(number)
}

#[sync_endpoint]
fn describe(value: impl Display + Send + 'static) -> impl Display + Send + 'static {
    format!("<{value}>")
}

#[sync_endpoint]
fn checked(number: u32) -> Result<impl Display + Send + 'static, String> {
    let next = number.checked_add(1).ok_or("overflow")?;
    Ok(next)
}

#[sync_endpoint]
fn largest<T, const N: usize>(items: [T; N]) -> Option<T>
where
    T: Ord + Copy + Send + 'static,
{
    items.iter().copied().max()
}

#[sync_endpoint]
unsafe fn doubled(number: u32) -> u32 {
    number * 2
}

#[sync_endpoint]
fn patterns((left, right): (u32, u32), mut total: u32) -> u32 {
    total += left + right;
    total
}

#[derive(Clone)]
struct Service {
    count: u32,
}

impl Service {
    #[sync_endpoint]
    fn by_value(self) -> u32 {
        self.count
    }

    #[sync_endpoint]
    fn boxed(self: Box<Self>) -> u32 {
        self.count
    }

    #[sync_endpoint]
    fn shared(self: Arc<Self>, extra: u32) -> u32 {
        self.count + extra
    }

    #[sync_endpoint]
    fn rebuilt(self) -> Self {
        Self { count: self.count + 1 }
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    assert_eq!(literal().await, 5);
    empty().await;
    assert_eq!(shown(true).await.to_string(), "1");
    assert_eq!(shown(false).await.to_string(), "one");
    assert_eq!(parsed("7".into()).await.unwrap(), 7);
    assert!(parsed("x".into()).await.is_err());
    assert_eq!(describe(1).await.to_string(), "<1>");
    assert_eq!(checked(1).await.unwrap().to_string(), "2");
    assert_eq!(checked(u32::MAX).await.err().as_deref(), Some("overflow"));
    assert_eq!(largest([3, 9, 4]).await, Some(9));
    // SAFETY: nothing to uphold.
    assert_eq!(unsafe { doubled(2) }.await, 4);
    assert_eq!(patterns((1, 2), 3).await, 6);
    let service = Service { count: 1 };
    assert_eq!(service.clone().by_value().await, 1);
    assert_eq!(Box::new(service.clone()).boxed().await, 1);
    assert_eq!(Arc::new(service.clone()).shared(1).await, 2);
    assert_eq!(service.rebuilt().await.count, 2);
}
