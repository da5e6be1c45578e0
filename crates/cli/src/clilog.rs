//! The session commands' log when `RUST_LOG` is unset: warnings and errors only, one
//! `vsess: warning: MESSAGE (key=value ...)` line each on stderr. A whole `tracing`
//! subscriber for a command that runs for milliseconds: no spans, no registry, nothing
//! allocated until an event is written.
use std::fmt::{self, Write as _};
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Writes WARN and ERROR events to stderr; ignores the rest, and spans.
pub struct Warnings;

impl Warnings {
    /// The line for one event, with its newline.
    fn line(event: &Event<'_>) -> String {
        let mut v = Line::default();
        event.record(&mut v);
        let what = if *event.metadata().level() == Level::ERROR {
            "error"
        } else {
            "warning"
        };
        let mut out = format!("vsess: {what}: {}", v.message);
        if !v.fields.is_empty() {
            let _ = write!(out, " ({})", v.fields.trim_start());
        }
        out.push('\n');
        out
    }
}

impl Subscriber for Warnings {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        // One write per line, so lines of concurrent tasks do not interleave.
        let _ = std::io::stderr()
            .lock()
            .write_all(Self::line(event).as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The message and the other fields of an event.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// [`Warnings`], but keeping its lines instead of writing them to stderr.
    struct Captured(Arc<Mutex<Vec<String>>>);

    impl Subscriber for Captured {
        fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
            Warnings.register_callsite(m)
        }
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            Warnings.enabled(m)
        }
        fn max_level_hint(&self) -> Option<LevelFilter> {
            Warnings.max_level_hint()
        }
        fn new_span(&self, a: &Attributes<'_>) -> Id {
            Warnings.new_span(a)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, e: &Event<'_>) {
            self.0.lock().unwrap().push(Warnings::line(e));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn warnings_and_errors_are_one_line_each_and_the_rest_is_dropped() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Captured(lines.clone()), || {
            let file = std::path::Path::new("/g/sessions/ab");
            tracing::warn!(file = %file.display(), "ignoring a corrupt file");
            tracing::error!(code = 3, "it broke");
            tracing::info!("not shown");
            tracing::debug!("not shown either");
            let span = tracing::info_span!("a span");
            let _in = span.enter();
            tracing::warn!("inside a span");
        });
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "vsess: warning: ignoring a corrupt file (file=/g/sessions/ab)\n",
                "vsess: error: it broke (code=3)\n",
                "vsess: warning: inside a span\n",
            ]
        );
    }
}
