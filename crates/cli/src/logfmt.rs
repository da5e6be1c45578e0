//! `vsess serve`'s log line format, written without most of the `fmt` machinery.
//!
//! [`FastFormat`] writes exactly the bytes of `tracing_subscriber`'s default format
//! (`Format<Full, SystemTime>` with the default field formatter, ANSI off):
//!
//! ```text
//! 2026-01-02T03:04:05.123456Z  INFO vsess_server::vim: login user=u key=k ip=127.0.0.1
//! ```
//!
//! It is what `serve` uses when stderr is not a terminal. Formatting that line the default
//! way cost about 7.4k instructions per event (callgrind, bench S3: one line per Login and
//! one per Logout): the timestamp through `fmt` (~2.3k), `nu_ansi_term` painting empty
//! styles (~2k), and each field through `write!` with three arguments. Here the timestamp's
//! date and time of day are computed once a second per thread and the digits written by
//! hand, nothing is painted, and only the field values themselves go through `fmt`
//! (integers, booleans and plain strings not even those).
//!
//! What it does not write itself it hands to the default formatter, so the output stays
//! the same bytes: events inside a span (the default prefixes the spans' names and
//! fields; vsess creates no spans, dependencies may at debug levels), events from the
//! `log` crate (whose target and level come from their fields), a writer with ANSI colours
//! on, and timestamps whose year has not four digits. An `error` field (`record_error`) is
//! written by the default field visitor. The differential tests below check the bytes
//! against the default formatter.
use std::cell::Cell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::VisitOutput;
use tracing_subscriber::fmt::format::{
    DefaultFields, DefaultVisitor, Format, FormatEvent, Full, Writer,
};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// Where [`FastFormat`] gets the time of an event from.
pub trait Clock {
    fn now(&self) -> std::time::SystemTime;
}

/// The wall clock, as the default format reads it.
impl Clock for tracing_subscriber::fmt::time::SystemTime {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

/// The default full format's bytes, with ANSI off, for the default field formatter.
///
/// `T` is both the clock for the lines written here and the timer of the default format
/// used for the rest: `tracing_subscriber::fmt::time::SystemTime` in `serve`.
pub struct FastFormat<T = tracing_subscriber::fmt::time::SystemTime> {
    timer: T,
    fallback: Format<Full, T>,
}

impl FastFormat {
    pub fn new() -> Self {
        Self::with_timer(tracing_subscriber::fmt::time::SystemTime)
    }
}

impl Default for FastFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clock + FormatTime + Clone> FastFormat<T> {
    pub fn with_timer(timer: T) -> Self {
        FastFormat {
            fallback: Format::default().with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, T> FormatEvent<S, DefaultFields> for FastFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: Clock + FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // tracing-log's events all have the target "log" (the default formatter takes the
        // real one from their `log.target` field); a tracing event with that target is
        // handed over too, needlessly but harmlessly.
        if writer.has_ansi_escapes() || meta.target() == "log" || ctx.event_scope().is_some() {
            #[cfg(test)]
            tests::FALLBACKS.set(tests::FALLBACKS.get() + 1);
            return self.fallback.format_event(ctx, writer, event);
        }
        self.write_time_and_level(&mut writer, meta.level())?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            sanitize: writer.sanitizes_ansi_escapes(),
            w: &mut writer,
            is_empty: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format pads it, and the space after it.
fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        _ => "ERROR ",
    }
}

/// `YYYY-MM-DDTHH:MM:SS`.
const PREFIX_LEN: usize = 19;

thread_local! {
    /// The second (since the epoch) last formatted on this thread, and its prefix.
    static SECOND: Cell<Option<(i64, [u8; PREFIX_LEN])>> = const { Cell::new(None) };
}

impl<T: Clock + FormatTime> FastFormat<T> {
    /// `2026-01-02T03:04:05.123456Z  INFO `: the timestamp as tracing-subscriber's
    /// `SystemTime` writes it (RFC 3339, UTC, microseconds truncated), then the level.
    fn write_time_and_level(&self, w: &mut Writer<'_>, level: &Level) -> fmt::Result {
        let level = level_str(level);
        let Some(stamp) = timestamp(self.timer.now()) else {
            // A year of other than four digits: as the default format writes it.
            if self.timer.format_time(w).is_err() {
                w.write_str("<unknown time>")?;
            }
            w.write_char(' ')?;
            return w.write_str(level);
        };
        let mut line = [0u8; TIMESTAMP_LEN + 7];
        line[..TIMESTAMP_LEN].copy_from_slice(&stamp);
        line[TIMESTAMP_LEN] = b' ';
        line[TIMESTAMP_LEN + 1..].copy_from_slice(level.as_bytes());
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const TIMESTAMP_LEN: usize = PREFIX_LEN + 8;

/// `t` as tracing-subscriber's `SystemTime` formats it, if its year has four digits
/// (otherwise `None`).
pub fn timestamp(t: std::time::SystemTime) -> Option<[u8; TIMESTAMP_LEN]> {
    // Whole seconds, rounded down, and the nanoseconds after them, as tracing-subscriber's
    // `DateTime` splits a time, also before 1970.
    let (secs, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).ok()?;
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    };
    let prefix = match SECOND.get() {
        Some((s, p)) if s == secs => p,
        _ => {
            let p = prefix(secs)?;
            SECOND.set(Some((secs, p)));
            p
        }
    };
    let mut out = [0u8; TIMESTAMP_LEN];
    out[..PREFIX_LEN].copy_from_slice(&prefix);
    out[PREFIX_LEN] = b'.';
    digits(&mut out[PREFIX_LEN + 1..PREFIX_LEN + 7], nanos / 1_000);
    out[PREFIX_LEN + 7] = b'Z';
    Some(out)
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch, UTC, if the year has four digits.
fn prefix(secs: i64) -> Option<[u8; PREFIX_LEN]> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp(secs, 0)?;
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut p = *b"0000-00-00T00:00:00";
    digits(&mut p[0..4], year);
    digits(&mut p[5..7], t.month());
    digits(&mut p[8..10], t.day());
    digits(&mut p[11..13], t.hour());
    digits(&mut p[14..16], t.minute());
    digits(&mut p[17..19], t.second());
    Some(p)
}

/// Writes the last `out.len()` decimal digits of `n` into `out`, zero-padded.
fn digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The event's fields as tracing-subscriber's `DefaultVisitor` writes them (ANSI off):
/// separated by single spaces, the message first as it comes (without a name), the others
/// as `name=value` with the value's `Debug` (for `%` fields their `Display`; a `&str` is
/// quoted and escaped), `r#` stripped from raw identifiers, fields named `log.*` skipped.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    sanitize: bool,
    is_empty: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Starts a field: the separating space and `name=` (nothing for the message).
    /// `Ok(None)` if the field is not written at all, `Ok(Some(true))` for the message.
    fn start(&mut self, name: &str) -> Result<Option<bool>, fmt::Error> {
        if self.result.is_err() || name.starts_with("log.") {
            return Ok(None);
        }
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.w.write_char(' ')?;
        }
        if name == "message" {
            return Ok(Some(true));
        }
        self.w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.w.write_char('=')?;
        Ok(Some(false))
    }

    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Self, bool) -> fmt::Result) {
        self.result = match self.start(field.name()) {
            Ok(None) => return,
            Ok(Some(message)) => value(self, message),
            Err(e) => Err(e),
        };
    }

    /// An integer, in decimal without `fmt`.
    fn int(&mut self, field: &Field, n: impl itoa::Integer) {
        self.field(field, |f, _| f.w.write_str(itoa::Buffer::new().format(n)));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |f, message| {
            if message && f.sanitize {
                write!(Escaping(&mut *f.w), "{value:?}")
            } else {
                write!(f.w, "{value:?}")
            }
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |f, message| {
            if message {
                // The default writes a `&str` message with `Display`.
                if f.sanitize {
                    Escaping(&mut *f.w).write_str(value)
                } else {
                    f.w.write_str(value)
                }
            } else if value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
            {
                // `Debug` would escape nothing: the quotes are all it adds.
                f.w.write_char('"')?;
                f.w.write_str(value)?;
                f.w.write_char('"')
            } else {
                write!(f.w, "{value:?}")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.int(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.int(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |f, _| {
            f.w.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // Rare, and intricate (the error's sources): the default visitor writes it.
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.w.by_ref(), self.is_empty);
        v.record_error(field, value);
        self.result = v.finish();
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

/// tracing-subscriber's escaping of ANSI and other terminal control characters in the
/// message (`EscapeGuard`), char by char the same.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C1 controls (U+0080..U+009F) are encoded as 0xC2 0x80..0x9F.
        if !s
            .bytes()
            .any(|b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2))
        {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Differential tests: the same events through the default formatter and through
    //! [`FastFormat`], compared byte for byte.
    use super::*;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tracing::{debug, error, info, trace, warn};
    use tracing_subscriber::layer::SubscriberExt;

    thread_local! {
        /// Events this thread's [`FastFormat`]s handed to the default format.
        pub(crate) static FALLBACKS: Cell<usize> = const { Cell::new(0) };
    }

    /// A stopped clock: the time for [`FastFormat`], and for the default format the time
    /// as chrono writes it in RFC 3339 (UTC, microseconds, `Z`).
    #[derive(Clone)]
    struct Fixed(SystemTime);

    impl Clock for Fixed {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            let t: chrono::DateTime<chrono::Utc> = self.0.into();
            w.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` logs, formatted by the default format (`fast` false) or by
    /// [`FastFormat`], and how many events the latter handed to the default.
    fn render(fast: bool, at: SystemTime, sanitize: bool, emit: &dyn Fn()) -> (String, usize) {
        let cap = Capture::default();
        let w = cap.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_ansi_sanitization(sanitize)
            .with_writer(move || w.clone());
        FALLBACKS.set(0);
        if fast {
            let sub = tracing_subscriber::registry()
                .with(layer.event_format(FastFormat::with_timer(Fixed(at))));
            tracing::subscriber::with_default(sub, emit);
        } else {
            let sub = tracing_subscriber::registry().with(layer.with_timer(Fixed(at)));
            tracing::subscriber::with_default(sub, emit);
        }
        let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        (out, FALLBACKS.get())
    }

    /// Asserts that both formats write the same bytes for `emit`; returns them.
    fn same(at: SystemTime, sanitize: bool, emit: &dyn Fn()) -> (String, usize) {
        let (default, _) = render(false, at, sanitize, emit);
        let (fast, fallbacks) = render(true, at, sanitize, emit);
        for (i, (d, f)) in default.lines().zip(fast.lines()).enumerate() {
            assert_eq!(f, d, "line {i} differs (left: FastFormat, right: default)");
        }
        assert_eq!(fast, default);
        assert!(!fast.is_empty());
        (fast, fallbacks)
    }

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \x1b[31mon fire")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot write the session log")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Events of every kind the formatter distinguishes. Returns how many events it
    /// emitted, and how many of them the fast format must hand to the default.
    fn everything() {
        let user = "administrator@vsphere.local".to_owned();
        let key = "52a1b6c0-0bd5-4f3b-9d8e-6f1d7e2a9c11".to_owned();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let nasty = "quote\" back\\slash\ttab\nnl\r é \u{7f} \u{1b}[31m \u{85} \u{301} 'single' \0";
        // vsess's own lines.
        info!(target: "vsess_server::vim", user = %user, key = %key, ip = %ip, "login");
        info!(target: "vsess_server::vim", user = %user, ip = %ip, fault = "InvalidLogin", "login failed");
        info!(target: "vsess_server::vim", user = %user, key = %key, "logout");
        info!(target: "vsess_server::vapi", user = %user, key = %key, carrier = ?Some("cookie"), "logout (REST)");
        info!(target: "vsess_server", count = 3usize, "reaped expired sessions");
        info!(target: "vsess", data_dir = %"/tmp/d x", "vsess {} listening on {} (SOAP at {}/sdk)", "0.1.0", "https://127.0.0.1:8989", "https://127.0.0.1:8989");
        error!(target: "vsess_store::embedded", error = %Outer(Inner), "cannot fsync the session log; retrying");
        // Levels, and this module's own target.
        trace!("trace");
        debug!("debug");
        info!("info");
        warn!("warn");
        error!("error");
        // Messages: empty, none, formatted, with control characters, a &str message,
        // the message after other fields.
        info!("");
        info!(a = 1);
        info!(target: "t", "{}-{:?}-{:>5}", 1, "two", 3);
        info!(
            "escape \x1b[31mred\x1b[0m bell\x07 bs\x08 ff\x0c del\x7f c1\u{85}\u{9f} nbsp\u{a0} é"
        );
        info!("{}", nasty);
        info!(message = "a &str message \x1b[1m with \"quotes\"", k = 1);
        info!(a = 1, message = "middle", b = 2);
        info!(message = ?"debug message");
        info!(message = %"display message");
        info!(message = 7u64);
        // Field types.
        info!(
            i = -42i64,
            i0 = 0i64,
            imin = i64::MIN,
            u = 42u64,
            umax = u64::MAX,
            small = 7u8,
            b = true,
            f = false,
            x = 1.0f64,
            y = 0.1f32,
            z = f64::NAN,
            big = u128::MAX,
            neg = i128::MIN,
            "numbers"
        );
        info!(
            s = "plain",
            empty = "",
            nasty = nasty,
            uni = "héllo wörld",
            "strings"
        );
        info!(d = %nasty, dbg = ?nasty, v = ?vec![1, 2], o = ?None::<u8>, "display and debug");
        info!(ip4 = %Ipv4Addr::new(10, 0, 0, 1), ip6 = %Ipv6Addr::LOCALHOST, ipd = ?ip, "addresses");
        info!(bytes = &b"\x00\x01ab\xff"[..], "bytes");
        let err: &(dyn std::error::Error + 'static) = &Outer(Inner);
        info!(error = err, "an error with a source");
        let plain: &(dyn std::error::Error + 'static) = &Inner;
        info!(error = plain, other = 1, "an error without");
        info!(error = plain, other = 1);
        info!(log.error = plain, other = 1);
        info!(r#type = "raw", r#fn = 1, "raw identifiers");
        info!(
            "r#raw" = "field name",
            "r#" = 1,
            "log" = 2,
            "message " = 3,
            "a literal name"
        );
        info!(log.target = "skipped", log.line = 3, kept = 1, "log fields");
        info!(log.target = "skipped", "only log fields and a message");
        info!(log.target = "skipped");
        info!(a = tracing::field::Empty, b = 1, "an empty field");
        info!(some = Some(3u64), none = None::<u64>, "options");
        info!(target: "vsess_server::x::y", "a deeper target");
        info!(target: "", "an empty target");
        // A tracing event with the target "log" (not from the log crate): handed over.
        info!(target: "log", a = 1, "target log");
        // From the log crate, via tracing-log: handed over.
        for (level, target) in [
            (log::Level::Debug, "rustls::client"),
            (log::Level::Warn, "h2"),
        ] {
            tracing_log::format_trace(
                &log::Record::builder()
                    .args(format_args!("from log \x1b x={}", 1))
                    .level(level)
                    .target(target)
                    .module_path(Some(target))
                    .file(Some("src/x.rs"))
                    .line(Some(12))
                    .build(),
            )
            .unwrap();
        }
        // Spans: handed over, except for an event explicitly outside them.
        let outer = tracing::info_span!("outer", user = %user, n = 1);
        outer.in_scope(|| {
            info!("in outer");
            tracing::debug_span!("inner").in_scope(|| {
                warn!(k = "v", "in inner");
                info!(parent: None, "a root event inside spans");
            });
            tracing::trace_span!("fields", a = "x\"y", r#b = true).in_scope(|| info!("in fields"));
        });
        info!(parent: &outer, "explicitly in outer");
    }

    /// How many events [`everything`] emits, and how many of them [`FastFormat`] hands
    /// to the default format (the `log` target, the log crate's, those in spans).
    const EVENTS: usize = 48;
    const HANDED_OVER: usize = 7;

    #[test]
    fn the_same_bytes_as_the_default_format() {
        let at = UNIX_EPOCH + Duration::new(1_614_834_367, 89_012_345);
        let (out, fallbacks) = same(at, true, &everything);
        assert_eq!(out.matches("Z ").count(), EVENTS, "{out}");
        assert_eq!(fallbacks, HANDED_OVER, "{out}");
        // And what that is, for one line:
        assert!(out.starts_with(
            "2021-03-04T05:06:07.089012Z  INFO vsess_server::vim: login \
             user=administrator@vsphere.local key=52a1b6c0-0bd5-4f3b-9d8e-6f1d7e2a9c11 \
             ip=127.0.0.1\n"
        ));
        assert!(out.contains("\\x1b[31mred"), "{out}");
    }

    #[test]
    fn the_same_bytes_without_ansi_sanitization() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        let (out, fallbacks) = same(at, false, &everything);
        assert_eq!(fallbacks, HANDED_OVER);
        assert!(out.contains("escape \x1b[31mred"), "{out}");
    }

    #[test]
    fn the_same_bytes_at_other_times() {
        for at in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_nanos(1),
            UNIX_EPOCH - Duration::new(86_400 * 365 * 100, 5_000),
            UNIX_EPOCH + Duration::new(951_827_696, 789_012_345), // 2000-02-29
            UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_999), // 9999-12-31T23:59:59
            UNIX_EPOCH + Duration::new(253_402_300_800, 0),       // year 10000: handed to the timer
            UNIX_EPOCH - Duration::new(62_167_219_200, 0),        // 0000-01-01
            UNIX_EPOCH - Duration::new(62_167_219_201, 0),        // year -1: handed to the timer
        ] {
            same(at, true, &|| {
                info!(target: "vsess_server::vim", user = "u", "login");
                warn!("w");
            });
        }
    }

    /// Random strings (quotes, backslashes, control characters, C1 controls, combining
    /// marks, other scripts) as messages, `&str`, `%` and `?` fields.
    #[test]
    fn the_same_bytes_for_random_strings() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            " ",
            "\"",
            "'",
            "\\",
            "\t",
            "\n",
            "\r",
            "\0",
            "\x07",
            "\x08",
            "\x0c",
            "\x1b",
            "\x1b[31m",
            "\x7f",
            "\u{80}",
            "\u{85}",
            "\u{9f}",
            "\u{a0}",
            "\u{ad}",
            "é",
            "\u{301}",
            "\u{200b}",
            "\u{feff}",
            "ß",
            "日本",
            "🙂",
            "\u{10ffff}",
            "{}",
            "=",
            "~",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let strings: Vec<String> = (0..300)
            .map(|_| {
                let n = (next() % 8) as usize;
                (0..n)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            })
            .collect();
        for sanitize in [true, false] {
            let (out, fallbacks) = same(
                UNIX_EPOCH + Duration::new(1_800_000_000, 1),
                sanitize,
                &|| {
                    for s in &strings {
                        let s = s.as_str();
                        info!(s = s, d = %s, g = ?s, "{s}");
                        info!(message = s);
                    }
                },
            );
            let lines = out.matches("  INFO vsess::logfmt::tests: ").count();
            assert_eq!(lines, 2 * strings.len(), "{out}");
            assert_eq!(fallbacks, 0);
        }
    }

    #[test]
    fn timestamps() {
        let t = |secs: i64, nanos: u32| {
            let at = if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
            } else {
                UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
            };
            timestamp(at).map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        let cases: &[(i64, u32, Option<&str>)] = &[
            (0, 0, Some("1970-01-01T00:00:00.000000Z")),
            (-1, 999_999_999, Some("1969-12-31T23:59:59.999999Z")),
            (-1, 0, Some("1969-12-31T23:59:59.000000Z")),
            (
                1_614_834_367,
                89_012_345,
                Some("2021-03-04T05:06:07.089012Z"),
            ),
            (1_614_834_367, 999, Some("2021-03-04T05:06:07.000000Z")),
            (1_614_834_368, 1_000, Some("2021-03-04T05:06:08.000001Z")),
            (1_614_834_366, 0, Some("2021-03-04T05:06:06.000000Z")),
            (951_782_400, 0, Some("2000-02-29T00:00:00.000000Z")),
            (4_107_542_399, 0, Some("2100-02-28T23:59:59.000000Z")),
            (4_107_542_400, 0, Some("2100-03-01T00:00:00.000000Z")),
            (
                1_735_689_599,
                999_999_999,
                Some("2024-12-31T23:59:59.999999Z"),
            ),
            (1_735_689_600, 0, Some("2025-01-01T00:00:00.000000Z")),
            (
                253_402_300_799,
                123_456_789,
                Some("9999-12-31T23:59:59.123456Z"),
            ),
            (253_402_300_800, 0, None),
            (-62_167_219_200, 0, Some("0000-01-01T00:00:00.000000Z")),
            (-62_167_219_201, 0, None),
        ];
        // Twice: through the cache of the previous second, and not.
        for _ in 0..2 {
            for &(secs, nanos, want) in cases {
                assert_eq!(t(secs, nanos).as_deref(), want, "{secs}.{nanos:09}");
            }
        }
    }

    /// Against the wall clock: tracing-subscriber's `SystemTime` before and after,
    /// [`timestamp`] between (all of fixed width, so they compare as times).
    #[test]
    fn timestamps_match_tracing_subscribers_clock() {
        let default = || {
            let mut s = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut s))
                .unwrap();
            s
        };
        for i in 0..20_000 {
            let before = default();
            let ours = String::from_utf8(timestamp(SystemTime::now()).unwrap().to_vec()).unwrap();
            let after = default();
            assert_eq!(ours.len(), before.len());
            assert!(
                before <= ours && ours <= after,
                "{i}: {before} {ours} {after}"
            );
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
