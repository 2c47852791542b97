//! The signals `sentinel run` answers, caught from its first instant: SIGINT and SIGTERM ask
//! it to stop, SIGHUP to reload its configuration. Caught before anything slow starts, so that
//! a stop asked during start-up is neither lost nor, when a non-interactive parent left SIGINT
//! ignored, ignored: start-up checks at its safe points and stops there, with the summary.

use futures_util::FutureExt as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Stop,
    Reload,
}

pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    stopping: bool,
}

impl Signals {
    /// Installs the handlers (inside the async runtime). From now on these signals no longer
    /// end the process on their own: `next` and `stop_requested` tell what was asked.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            stopping: false,
        })
    }

    /// Whether a stop was asked, without waiting (for start-up's safe points).
    pub fn stop_requested(&mut self) -> bool {
        if !self.stopping {
            self.stopping = self.int.recv().now_or_never().is_some()
                || self.term.recv().now_or_never().is_some();
        }
        self.stopping
    }

    /// Waits for the next request. A stop, once asked, is answered at every call.
    pub async fn next(&mut self) -> Request {
        if self.stopping {
            return Request::Stop;
        }
        let r = tokio::select! {
            _ = self.int.recv() => Request::Stop,
            _ = self.term.recv() => Request::Stop,
            _ = self.hup.recv() => Request::Reload,
        };
        self.stopping = r == Request::Stop;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raised at this process, the signals are requests, not its end. One test raises them
    /// all: the handlers are per process, and tests run in parallel.
    #[tokio::test]
    async fn signals_become_requests() {
        let mut s = Signals::install().unwrap();
        assert!(!s.stop_requested());
        // SAFETY: raise(3) only sends a signal to this process, whose handlers are installed.
        unsafe { libc::raise(libc::SIGHUP) };
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), s.next()).await;
        assert_eq!(r.unwrap(), Request::Reload);
        assert!(!s.stop_requested(), "a reload is no stop");
        unsafe { libc::raise(libc::SIGTERM) };
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), s.next()).await;
        assert_eq!(r.unwrap(), Request::Stop);
        assert!(s.stop_requested(), "a stop, once asked, stays asked");
        assert_eq!(s.next().await, Request::Stop);
    }
}
