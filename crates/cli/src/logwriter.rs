//! The server's log writer: lines go to a buffer, and a thread of its own writes them out
//! in batches.
//!
//! `tracing-appender`'s non-blocking writer, used before, woke its thread for every line:
//! under a stream of logins that was two thread wake-ups per Login+Logout pair, and its
//! thread took about 15% of the server's CPU in the S3 benchmark (`perf`), nearly all of it
//! in the kernel's scheduler. Here a line only wakes the thread when it is idle; once awake
//! it gathers lines for [`BATCH_WAIT`] and writes them with one `write`.
//!
//! Not lossy: above [`HIGH_WATER`] buffered bytes, a logging thread waits for the writer.
//! Lines reach stderr at most about [`BATCH_WAIT`] after they were logged. Dropping the
//! [`Guard`] writes what is left; a process killed outright loses at most that last batch,
//! as it would lose the queue of any asynchronous logger.
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread gathers lines after the first one wakes it.
pub const BATCH_WAIT: Duration = Duration::from_millis(10);
/// Buffered bytes above which a logging thread waits for the writer.
pub const HIGH_WATER: usize = 1 << 20;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The writer thread is waiting for a line (and must be woken for one).
    idle: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a line arrives for an idle writer, and on close.
    line: Condvar,
    /// Signalled when the writer has taken the buffer.
    space: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind: keep logging.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `MakeWriter` for `tracing_subscriber::fmt`.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the writer thread when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread (`name`) over `out`.
pub fn new<W: Write + Send + 'static>(out: W, name: &str) -> std::io::Result<(BatchWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || run(&s, out))?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let mut g = shared.lock();
        while g.buf.is_empty() && !g.closed {
            g.idle = true;
            g = shared.line.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.idle = false;
        if g.closed && g.buf.is_empty() {
            return;
        }
        if !g.closed && g.buf.len() < HIGH_WATER {
            // Let the lines of a busy moment gather, so that one write carries them.
            drop(g);
            std::thread::sleep(BATCH_WAIT);
            g = shared.lock();
        }
        std::mem::swap(&mut g.buf, &mut spare);
        drop(g);
        shared.space.notify_all();
        // A failed write to stderr has nowhere to be reported: those lines are dropped.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if spare.capacity() > HIGH_WATER {
            spare = Vec::new();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.line.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One event's writer: `tracing_subscriber::fmt` formats a whole line and writes it at once.
pub struct Line<'a> {
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut g = self.shared.lock();
        while g.buf.len() >= HIGH_WATER && !g.closed {
            g = self.shared.space.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.buf.extend_from_slice(bytes);
        if g.idle {
            g.idle = false;
            drop(g);
            self.shared.line.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// Records each `write_all` the writer thread makes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_busy_moments_share_a_write() {
        let sink = Sink::default();
        let (w, guard) = new(sink.clone(), "test-log").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        // One write per line, as `tracing_subscriber::fmt` makes it.
                        let line = format!("t{t} line {i}\n");
                        w.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let writes = sink.0.lock().unwrap();
        let text = String::from_utf8(writes.concat()).unwrap();
        for t in 0..4 {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<String> = (0..1000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(lines, want);
        }
        // 4,000 lines written as fast as four threads can: a handful of batches, not a
        // write (and a wake-up) per line.
        assert!(writes.len() <= 200, "{} writes", writes.len());
    }

    #[test]
    fn a_line_written_while_idle_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (w, _guard) = new(sink.clone(), "test-log").unwrap();
        w.make_writer().write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.0.lock().unwrap().concat(), b"alone\n");
    }

    #[test]
    fn a_full_buffer_makes_the_logger_wait_instead_of_dropping() {
        let sink = Sink::default();
        let (w, guard) = new(sink.clone(), "test-log").unwrap();
        let line = vec![b'x'; HIGH_WATER / 4];
        for _ in 0..20 {
            w.make_writer().write_all(&line).unwrap();
        }
        drop(guard);
        let total: usize = sink.0.lock().unwrap().iter().map(Vec::len).sum();
        assert_eq!(total, 20 * line.len());
    }
}
