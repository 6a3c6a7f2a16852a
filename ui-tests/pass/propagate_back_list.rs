// Every form of function compiles under `#[propagate(back(HITS))]` as it does without it, and
// behaves the same: literal bodies, early `return` and `?` that coerce or convert, borrowed
// and `impl Trait` returns, generics, `const` generics, `unsafe`, `extern` and `#[track_caller]` fns, methods
// with each receiver, trait methods (default and `async`), generic impls; sync and async.
// The four `propagate_*.rs` cases differ only in the mode.
#![deny(warnings, unused_qualifications, rust_2018_idioms)]

use std::error::Error;
use std::fmt::{self, Display};
use std::sync::Arc;

use contextvars::{context_var, propagate};

#[context_var]
static HITS: u32;

#[propagate(back(HITS))]
fn literal() -> u32 {
    5
}

#[propagate(back(HITS))]
fn empty() {}

#[propagate(back(HITS))]
fn unit_tail() {
    touch()
}

fn touch() {
    HITS.set(HITS.get() + 1);
}

#[propagate(back(HITS))]
fn shown(flag: bool) -> Box<dyn Display + Send> {
    if flag {
        return Box::new(1);
    }
    Box::new("one")
}

#[propagate(back(HITS))]
fn parsed(text: &str) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let number: u32 = text.parse()?;
    Ok(number)
}

#[propagate(back(HITS))]
fn first(words: &[String]) -> &str {
    &words[0]
}

#[propagate(back(HITS))]
fn describe(value: impl Display) -> impl Display {
    format!("<{value}>")
}

#[propagate(back(HITS))]
fn checked(number: u32) -> Result<impl Display, String> {
    let next = number.checked_add(1).ok_or("overflow")?;
    Ok(next)
}

#[propagate(back(HITS))]
fn largest<T, const N: usize>(items: [T; N]) -> Option<T>
where
    T: Ord + Copy,
{
    items.iter().copied().max()
}

#[propagate(back(HITS))]
unsafe fn read(pointer: *const u32) -> u32 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *pointer }
}

#[propagate(back(HITS))]
extern "C" fn callback(number: u32) -> u32 {
    number * 2
}

#[track_caller]
#[propagate(back(HITS))]
fn caller_line() -> u32 {
    std::panic::Location::caller().line()
}

#[propagate(back(HITS))]
fn patterns((left, right): (u32, u32), mut total: u32) -> u32 {
    total += left + right;
    total
}

#[propagate(back(HITS))]
fn inner_attribute() -> u32 {
    #![allow(unused_variables)]
    let unused = 1;
    2
}

#[propagate(back(HITS))]
fn diverges() -> ! {
    panic!("never called")
}

#[propagate(back(HITS))]
async fn literal_async() -> u32 {
    5
}

#[propagate(back(HITS))]
async fn empty_async() {}

#[propagate(back(HITS))]
async fn shown_async(flag: bool) -> Box<dyn Display + Send> {
    if flag {
        return Box::new(1);
    }
    Box::new("one")
}

#[propagate(back(HITS))]
async fn parsed_async(text: &str) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let number: u32 = text.parse()?;
    Ok(number)
}

#[propagate(back(HITS))]
async fn first_async(words: &[String]) -> &str {
    &words[0]
}

#[propagate(back(HITS))]
async fn describe_async(value: impl Display + Send) -> impl Display {
    format!("<{value}>")
}

#[propagate(back(HITS))]
async fn checked_async(number: u32) -> Result<impl Display, String> {
    let next = number.checked_add(1).ok_or("overflow")?;
    Ok(next)
}

#[propagate(back(HITS))]
async fn largest_async<T, const N: usize>(items: [T; N]) -> Option<T>
where
    T: Ord + Copy,
{
    items.iter().copied().max()
}

#[propagate(back(HITS))]
async unsafe fn read_async(pointer: *const u32) -> u32 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *pointer }
}

#[derive(Clone, Default)]
struct Counter {
    count: u32,
}

impl Counter {
    #[propagate(back(HITS))]
    fn new() -> Self {
        Self::default()
    }

    #[propagate(back(HITS))]
    fn by_value(self) -> u32 {
        self.count
    }

    #[propagate(back(HITS))]
    fn by_ref(&self) -> &u32 {
        &self.count
    }

    #[propagate(back(HITS))]
    fn by_mut(&mut self) {
        self.count += 1;
    }

    #[propagate(back(HITS))]
    fn boxed(self: Box<Self>) -> Box<Self> {
        self
    }

    #[propagate(back(HITS))]
    fn shared(self: Arc<Self>) -> u32 {
        self.count
    }

    #[propagate(back(HITS))]
    fn generic<T: Into<u32>>(&self, extra: T) -> u32 {
        self.count + extra.into()
    }

    #[propagate(back(HITS))]
    async fn by_value_async(self) -> u32 {
        self.count
    }

    #[propagate(back(HITS))]
    async fn by_ref_async(&self) -> &u32 {
        &self.count
    }

    #[propagate(back(HITS))]
    async fn by_mut_async(&mut self) {
        self.count += 1;
    }

    #[propagate(back(HITS))]
    async fn shared_async(self: Arc<Self>) -> u32 {
        self.count
    }
}

trait Greeter {
    #[propagate(back(HITS))]
    fn greeting(&self) -> String {
        "hello".to_string()
    }

    async fn greet(&self, name: &str) -> String;
}

impl Greeter for Counter {
    #[propagate(back(HITS))]
    async fn greet(&self, name: &str) -> String {
        format!("{} {name}", self.greeting())
    }
}

struct Wrapper<T>(T);

impl<T: Clone> Wrapper<T>
where
    T: Default + PartialEq,
{
    #[propagate(back(HITS))]
    fn value_or_default(&self) -> T {
        if self.0 == T::default() {
            return T::default();
        }
        self.0.clone()
    }

    #[propagate(back(HITS))]
    async fn value_async(&self) -> &T {
        &self.0
    }
}

#[propagate(back(HITS))]
fn pick<'a>(left: &'a str, right: &'a str) -> &'a str {
    if left.len() >= right.len() { left } else { right }
}

impl Display for Counter {
    #[propagate(back(HITS))]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.count)
    }
}

fn sync_forms() {
    assert_eq!(literal(), 5);
    empty();
    unit_tail();
    assert_eq!((shown(true).to_string(), shown(false).to_string()), ("1".into(), "one".into()));
    assert_eq!(parsed("7").unwrap(), 7);
    assert!(parsed("x").is_err());
    assert_eq!(first(&["a".to_string()]), "a");
    assert_eq!(describe(1).to_string(), "<1>");
    assert_eq!(checked(1).unwrap().to_string(), "2");
    assert_eq!(checked(u32::MAX).err().as_deref(), Some("overflow"));
    assert_eq!(largest([3, 9, 4]), Some(9));
    // SAFETY: a valid pointer.
    assert_eq!(unsafe { read(&4) }, 4);
    assert_eq!(callback(2), 4);
    assert_eq!(patterns((1, 2), 3), 6);
    assert_eq!(caller_line(), line!()); // `#[track_caller]` still names the caller
    assert_eq!(inner_attribute(), 2);
    let _never: fn() -> ! = diverges;
    let mut counter = Counter::new();
    counter.by_mut();
    assert_eq!(*counter.by_ref(), 1);
    assert_eq!(counter.generic(2_u8), 3);
    assert_eq!(counter.to_string(), "1");
    assert_eq!(Box::new(counter.clone()).boxed().count, 1);
    assert_eq!(Arc::new(counter.clone()).shared(), 1);
    assert_eq!(counter.greeting(), "hello");
    assert_eq!(Wrapper(3).value_or_default(), 3);
    assert_eq!(pick("ab", "c"), "ab");
    assert_eq!(counter.by_value(), 1);
}

async fn async_forms() {
    assert_eq!(literal_async().await, 5);
    empty_async().await;
    assert_eq!(shown_async(true).await.to_string(), "1");
    assert_eq!(shown_async(false).await.to_string(), "one");
    assert_eq!(parsed_async("7").await.unwrap(), 7);
    assert!(parsed_async("x").await.is_err());
    assert_eq!(first_async(&["a".to_string()]).await, "a");
    assert_eq!(describe_async(1).await.to_string(), "<1>");
    assert_eq!(checked_async(1).await.unwrap().to_string(), "2");
    assert_eq!(checked_async(u32::MAX).await.err().as_deref(), Some("overflow"));
    assert_eq!(largest_async([3, 9, 4]).await, Some(9));
    // SAFETY: a valid pointer.
    assert_eq!(unsafe { read_async(&4) }.await, 4);
    let mut counter = Counter::new();
    counter.by_mut_async().await;
    assert_eq!(*counter.by_ref_async().await, 1);
    assert_eq!(Arc::new(counter.clone()).shared_async().await, 1);
    assert_eq!(counter.greet("ada").await, "hello ada");
    assert_eq!(*Wrapper(4).value_async().await, 4);
    assert_eq!(counter.by_value_async().await, 1);
}

pub fn main() {
    sync_forms();
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async_forms());
    assert!(HITS.get() <= 1);
}
