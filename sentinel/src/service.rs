//! systemd integration for `Type=notify` units (sd_notify(3), through the `sd-notify` crate):
//! readiness once the agent's hooks are attached or the dashboard's listener is bound, STATUS=
//! lines, STOPPING=1, and watchdog pings at half of WATCHDOG_USEC. Outside systemd
//! (no NOTIFY_SOCKET) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells the service manager start-up is complete, with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status (shown by `systemctl status`).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells the service manager a clean stop has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    // A manager that went away is no reason to stop watching: the failure is logged only.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(target: "sentinel::service", "sd_notify: {e}");
    }
}

/// Watchdog pings (WATCHDOG=1) at half the interval the manager asked for, as sd_watchdog_enabled(3)
/// recommends. Disabled (its `tick` never resolves) when WATCHDOG_USEC is unset, zero, or meant
/// for another process (WATCHDOG_PID).
pub struct Watchdog {
    interval: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Reads WATCHDOG_USEC / WATCHDOG_PID. Call inside the async runtime.
    pub fn from_env() -> Watchdog {
        Watchdog::every(sd_notify::watchdog_enabled().and_then(ping_period))
    }

    fn every(period: Option<Duration>) -> Watchdog {
        let interval = period.map(|p| {
            let mut i = tokio::time::interval(p);
            // A late ping is sent once, not in a burst.
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Watchdog { interval }
    }

    /// Whether pings are due at all.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// Resolves when the next ping is due (at once the first time); never when disabled.
    pub async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Sends one WATCHDOG=1.
    pub fn ping(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// Pings forever (for a loop that has nothing else to prove alive).
    pub async fn run(mut self) {
        loop {
            self.tick().await;
            self.ping();
        }
    }
}

/// Half the watchdog timeout; none for a zero timeout.
fn ping_period(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then(|| timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_timeout() {
        assert_eq!(
            ping_period(Duration::from_secs(30)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            ping_period(Duration::from_micros(3)),
            Some(Duration::from_nanos(1500))
        );
        assert_eq!(ping_period(Duration::ZERO), None);
    }

    #[tokio::test]
    async fn a_disabled_watchdog_never_ticks() {
        let mut w = Watchdog::every(None);
        assert!(!w.enabled());
        let r = tokio::time::timeout(Duration::from_millis(20), w.tick()).await;
        assert!(r.is_err(), "a disabled watchdog ticked");
        let mut w = Watchdog::every(Some(Duration::from_millis(5)));
        assert!(w.enabled());
        tokio::time::timeout(Duration::from_secs(5), async {
            w.tick().await;
            w.tick().await;
        })
        .await
        .expect("an enabled watchdog ticks");
    }
}
