//! Connection timeouts against clients that hold connections without finishing requests
//! (slowloris): a connection (HTTPS, or plain HTTP with `serve --http`) is closed when it
//! makes no progress for too long.
//!
//! - **In a request** (HTTP/1: bytes have arrived since the last response was written, or a
//!   response is waiting for the client to read it): [`Limits::request`], 60 s by default,
//!   like nginx's `client_header_timeout` and `client_body_timeout`. A partial header, a
//!   stalled body or a client that stops reading is cut off then.
//! - **Idle** (HTTP/1 between requests, and HTTP/2 always): [`Limits::idle`], 960 s by
//!   default, longer than pyVmomi keeps a pooled connection (900 s), so that no client
//!   pool ever reuses a connection the server has closed.
//!
//! The guard reads the clock on progress and arms one timer only while the stream is
//! pending, so the request path pays no timer-wheel update per read or write; the timer
//! is moved back only when it fires early (see `Guarded::expired`).
use axum_server::accept::Accept;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

/// How long a connection may go without progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Within a request (HTTP/1), or with a response the client does not read.
    pub request: Duration,
    /// Between requests (HTTP/1), and on HTTP/2 connections.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(60),
            idle: Duration::from_secs(960),
        }
    }
}

/// An IO stream that fails with `TimedOut` when it makes no progress within [`Limits`].
pub struct Guarded<T> {
    /// Plain HTTP: this connection in its listener's [`OpenConnections`]. Declared before
    /// `inner`, so it is dropped (unregistered) before the socket is closed.
    registered: Option<Registered>,
    inner: T,
    limits: Limits,
    /// HTTP/2 multiplexes requests: only the idle limit applies.
    multiplexed: bool,
    /// The last read or write that moved bytes.
    last: Instant,
    /// HTTP/1: bytes were read since the last write, so a request is under way.
    mid_request: bool,
    /// A write is pending: the client is not reading.
    write_blocked: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, limits: Limits, multiplexed: bool) -> Self {
        Self {
            registered: None,
            inner,
            limits,
            multiplexed,
            last: Instant::now(),
            mid_request: false,
            write_blocked: false,
            timer: None,
        }
    }

    fn deadline(&self) -> Instant {
        let busy = self.write_blocked || (self.mid_request && !self.multiplexed);
        self.last
            + if busy {
                self.limits.request
            } else {
                self.limits.idle
            }
    }

    /// Called when the inner stream is pending: `Ready(error)` once the deadline has
    /// passed, else `Pending` with a timer armed to wake this task at the deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline();
        if Instant::now() >= deadline {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection closed: no progress within the time limit",
            ));
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Moved lazily: a timer set for before the deadline (progress has pushed it back
        // since) fires early and is set again then. Only a deadline brought forward (a
        // request begun, under the shorter limit) moves it now. A busy connection so
        // updates the timer wheel about once per limit, not on every request.
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection closed: no progress within the time limit",
                    ))
                }
                Poll::Ready(()) => timer.as_mut().reset(deadline),
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                    self.mid_request = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.expired(cx).map(Err),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => {
                self.write_blocked = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.write_blocked = true;
                self.expired(cx).map(Err)
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T> Guarded<T> {
    /// Books a write's outcome: progress, or a blocked write under the request limit.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.write_blocked = false;
                if n > 0 {
                    self.last = Instant::now();
                    self.mid_request = false;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                self.write_blocked = true;
                self.expired(cx).map(Err)
            }
            other => other,
        }
    }
}

/// Wraps an acceptor's TLS streams in [`Guarded`]; HTTP/2 (by ALPN) gets the idle limit
/// only.
#[derive(Clone)]
pub struct WatchdogAcceptor<A> {
    inner: A,
    limits: Limits,
}

impl<A> WatchdogAcceptor<A> {
    pub fn new(inner: A, limits: Limits) -> Self {
        Self { inner, limits }
    }
}

type Accepted<S> = io::Result<(Guarded<TlsStream<TcpStream>>, S)>;

impl<A, I, S> Accept<I, S> for WatchdogAcceptor<A>
where
    A: Accept<I, S, Stream = TlsStream<TcpStream>>,
    A::Future: Send + 'static,
    S: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Guarded<TlsStream<TcpStream>>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = Accepted<A::Service>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let limits = self.limits;
        Box::pin(async move {
            let (tls, service) = accepted.await?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok((Guarded::new(tls, limits, h2), service))
        })
    }
}

/// The open connections of a [`GuardedListener`]: counted, and cut on shutdown (axum's
/// `serve` can drain them but not cut them).
#[derive(Clone, Default)]
pub struct OpenConnections(Arc<Mutex<Registry>>);

#[derive(Default)]
struct Registry {
    next: u64,
    sockets: HashMap<u64, RawFd>,
}

impl OpenConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, fd: RawFd) -> Registered {
        let mut g = self.lock();
        let id = g.next;
        g.next += 1;
        g.sockets.insert(id, fd);
        Registered {
            open: self.clone(),
            id,
        }
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.lock().sockets.len()
    }

    /// Shuts down every open connection's socket (both ways): its pending reads and
    /// writes end, and so does its task. Returns how many there were.
    pub fn cut_all(&self) -> usize {
        let g = self.lock();
        for &fd in g.sockets.values() {
            // SAFETY: a registered socket is open: it is unregistered, under this lock,
            // before it is closed (see `Guarded::registered`). ManuallyDrop: borrowed,
            // not closed here.
            let s = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        g.sockets.len()
    }
}

/// A connection's place in [`OpenConnections`], given up when it is dropped.
struct Registered {
    open: OpenConnections,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().sockets.remove(&self.id);
    }
}

/// Plain HTTP (`serve --http`): TCP connections under the same [`Limits`], with
/// `TCP_NODELAY`. Plain HTTP/2 (prior knowledge) is not told apart: it gets HTTP/1's limits.
pub struct GuardedListener {
    inner: tokio::net::TcpListener,
    limits: Limits,
    open: OpenConnections,
}

impl GuardedListener {
    pub fn new(inner: tokio::net::TcpListener, limits: Limits) -> Self {
        Self {
            inner,
            limits,
            open: OpenConnections::default(),
        }
    }

    /// Its open connections, to count or cut them.
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own loop for a TCP listener: it waits out errors such as EMFILE.
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = tcp.set_nodelay(true);
        let registered = self.open.register(tcp.as_raw_fd());
        let mut guarded = Guarded::new(tcp, self.limits, false);
        guarded.registered = Some(registered);
        (guarded, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits() -> Limits {
        Limits {
            request: Duration::from_secs(2),
            idle: Duration::from_secs(10),
        }
    }

    fn pair() -> (tokio::io::DuplexStream, Guarded<tokio::io::DuplexStream>) {
        let (client, server) = tokio::io::duplex(1024);
        (client, Guarded::new(server, limits(), false))
    }

    /// How long `server`'s next read takes to fail with `TimedOut`.
    async fn times_out_after(server: &mut Guarded<tokio::io::DuplexStream>) -> Duration {
        let t0 = Instant::now();
        let e = server.read(&mut [0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        Instant::now() - t0
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_idle_limit() {
        let (_client, mut server) = pair();
        assert_eq!(times_out_after(&mut server).await, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_request_gets_the_request_limit_from_its_last_byte() {
        let (mut client, mut server) = pair();
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        assert!(server.read(&mut [0u8; 64]).await.unwrap() > 0);
        assert_eq!(times_out_after(&mut server).await, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_begun_on_a_waiting_connection_brings_its_deadline_forward() {
        let (mut client, mut server) = pair();
        let peer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
            client
        });
        // The read waits (the timer is armed at the idle limit), then gets the bytes.
        let t0 = Instant::now();
        assert!(server.read(&mut [0u8; 64]).await.unwrap() > 0);
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        let _client = peer.await.unwrap();
        assert_eq!(times_out_after(&mut server).await, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn answered_requests_leave_the_connection_idle_and_progress_never_times_out() {
        let (mut client, mut server) = pair();
        let mut buf = [0u8; 64];
        let peer = tokio::spawn(async move {
            for _ in 0..5 {
                // Longer than the request limit, shorter than the idle one.
                tokio::time::sleep(Duration::from_secs(8)).await;
                client.write_all(b"x").await.unwrap();
                let _ = client.read(&mut [0u8; 8]).await.unwrap();
            }
            client
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(server.read(&mut buf).await.unwrap(), 1);
            // The byte is a request under way; answering it makes the connection idle.
            server.write_all(b"y").await.unwrap();
        }
        assert_eq!(Instant::now() - t0, Duration::from_secs(40));
        let _client = peer.await.unwrap();
        assert_eq!(times_out_after(&mut server).await, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn multiplexed_connections_get_the_idle_limit_only() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = Guarded::new(server, limits(), true);
        client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        let t0 = Instant::now();
        let e = server.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now() - t0, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_gets_the_request_limit() {
        let (_client, server) = tokio::io::duplex(16);
        let mut server = Guarded::new(server, limits(), true);
        let t0 = Instant::now();
        let e = server.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    }
}
