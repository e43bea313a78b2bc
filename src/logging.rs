//! Logs through `tracing` on stderr: readable lines by default, JSON with `--log-format json`.

use crate::cli::LogFormat;
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber (and the bridge for libraries that log through `log`). A bad
/// filter falls back to `info` with a warning.
pub fn init(format: LogFormat, filter: &str) {
    let (filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry.with(lines.with_filter(ClientAbortOnHit)).init(),
        LogFormat::Json => registry
            .with(lines.json().flatten_event(true).with_filter(ClientAbortOnHit))
            .init(),
    }
    if let Some(e) = bad {
        tracing::warn!(error = %e, "bad --log filter; using `info`");
    }
}

/// What pingora writes, at ERROR and with no hook to silence it, for every hit whose client
/// goes away or is let go mid-response. Players abandon segments all the time (a quality
/// switch, a seek), so on an edge this would be most of the error log; the access log already
/// has each such request, as `cache=client_abort` with its error.
const CLIENT_ABORT_ON_HIT: &str = "Fail to serve cache: Downstream ";

/// Leaves pingora's [`CLIENT_ABORT_ON_HIT`] lines out.
struct ClientAbortOnHit;

impl<S> Filter<S> for ClientAbortOnHit {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        if *event.metadata().level() != Level::ERROR {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !message.0.starts_with(CLIENT_ABORT_ON_HIT)
    }
}

/// An event's `message` field, as text.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}
