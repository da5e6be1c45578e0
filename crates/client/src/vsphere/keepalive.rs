//! Keepalive: pings a session before the server's idle timeout ends it.
//!
//! Unlike govmomi's keepalive, failures are not swallowed: each is logged and delivered
//! on a channel, and [`KeepAlive::last_error`] reports the latest.
use super::Client;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running keepalive; dropping it stops the pings.
pub struct KeepAlive {
    task: JoinHandle<()>,
    last: Arc<Mutex<Option<String>>>,
    errors: mpsc::Receiver<Error>,
}

/// What to ping.
#[derive(Debug, Clone)]
pub enum Ping {
    /// SOAP `CurrentTime` on the client's session (relogin applies as for any call, and
    /// a cached client's relogin updates the cache).
    Soap,
    /// `GET /api/session` with this session id. A session the server no longer knows is
    /// reported as a `NotAuthenticated` fault ([`Error::is_unauthenticated`]).
    Rest(String),
}

impl KeepAlive {
    /// Pings every `interval` (choose less than the server's idle timeout). A zero
    /// `interval` is refused ([`Error::Config`]).
    pub fn start(client: Client, ping: Ping, interval: Duration) -> Result<Self> {
        if interval.is_zero() {
            return Err(Error::Config(
                "the keepalive interval must be more than zero: choose one shorter than the \
                 server's idle session timeout (for example 5 minutes for vCenter's 30)"
                    .into(),
            ));
        }
        let (tx, errors) = mpsc::channel(16);
        let last = Arc::new(Mutex::new(None));
        let last2 = last.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let r = match &ping {
                    Ping::Soap => client.current_time().await.map(|_| ()),
                    Ping::Rest(id) => match client.rest_session(id).await {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) => Err(Error::not_authenticated(
                            "keepalive: the REST session is no longer valid; log in again".into(),
                        )),
                        Err(e) => Err(e),
                    },
                };
                let mut l = last2.lock().unwrap_or_else(|e| e.into_inner());
                match r {
                    Ok(()) => *l = None,
                    Err(e) => {
                        tracing::warn!("session keepalive failed: {e}");
                        *l = Some(e.to_string());
                        let _ = tx.try_send(e);
                    }
                }
            }
        });
        Ok(Self { task, last, errors })
    }

    /// The latest failure, if the latest ping failed.
    pub fn last_error(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for the next failure.
    pub async fn next_error(&mut self) -> Option<Error> {
        self.errors.recv().await
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}
