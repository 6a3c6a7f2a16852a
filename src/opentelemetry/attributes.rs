//! Chosen context variables as attributes of the spans the OpenTelemetry SDK starts.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::Span as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::fields::{LogVar, Typed};

/// A span processor of `opentelemetry_sdk` that gives every span it starts the chosen
/// context variables as attributes: OpenTelemetry's counterpart of
/// `contextvars::tracing::ContextFields` (feature `tracing`).
///
/// The values are those of the context current where the span starts (`on_start` runs on
/// the thread that starts it): in a request, the request's; in a task or thread spawned
/// with `contextvars`, the copy it got. Variables that are not set there are left out.
/// Strings, integers, floats and booleans (and `Option`s of them, `None` left out) are
/// attributes of their type; a `u64` past `i64::MAX` and any other type are the string of
/// its `Debug` format. Spans started through another API that ends in the SDK's tracer
/// (a tracing layer) get them too, read where the SDK starts the span. A span started while
/// the values are read (by a value's `Debug`) gets none.
///
/// ```
/// use contextvars::{ContextVar, opentelemetry::ContextAttributes};
/// use opentelemetry::trace::{Tracer, TracerProvider};
///
/// static USER: ContextVar<String> = ContextVar::new("user.id", String::new);
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
///     .with_span_processor(ContextAttributes::new(&[&USER]))
///     .build();
/// USER.set("ada".into());
/// provider.tracer("app").in_span("query", |_| {
///     // This span has the attribute user.id = "ada".
/// });
/// ```
#[derive(Clone)]
pub struct ContextAttributes {
    vars: Vec<&'static dyn LogVar>,
}

impl ContextAttributes {
    /// The processor that records `vars`, under their names.
    ///
    /// ```
    /// use contextvars::{ContextVar, opentelemetry::ContextAttributes};
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant", String::new);
    /// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request.id", || 0);
    /// let processor = ContextAttributes::new(&[&TENANT, &REQUEST_ID]);
    /// # let _ = processor;
    /// ```
    pub fn new(vars: &[&'static dyn LogVar]) -> ContextAttributes {
        ContextAttributes { vars: vars.to_vec() }
    }

    /// The attributes for the variables set in the current context.
    fn attributes(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.vars.iter().filter(|var| var.is_set_here()).filter_map(|&var| {
            let value = match Typed::of(var) {
                Typed::Null => return None,
                Typed::Str(text) | Typed::Debug(text) => Value::from(text),
                Typed::I64(n) => Value::I64(n),
                Typed::U64(n) => i64::try_from(n).map_or_else(|_| Value::from(n.to_string()), Value::I64),
                Typed::F64(x) => Value::F64(x),
                Typed::Bool(b) => Value::Bool(b),
            };
            Some(KeyValue::new(var.field_name(), value))
        })
    }
}

impl SpanProcessor for ContextAttributes {
    fn on_start(&self, span: &mut Span, _parent: &opentelemetry::Context) {
        // A span started by a value's `Debug` gets none: it would start another, without end.
        crate::fields::write_values(|| {
            for attribute in self.attributes() {
                span.set_attribute(attribute);
            }
        });
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl fmt::Debug for ContextAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.vars.iter().map(|var| var.field_name())).finish()
    }
}
