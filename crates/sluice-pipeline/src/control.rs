//! What the pipeline and a binding's worker share: the pause switch and the status the API
//! shows.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A binding's state as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingStatus {
    /// Paused by an operator or tenant: messages wait, unacknowledged.
    pub paused: bool,
    /// Messages waiting in the queue.
    pub queue_depth: u64,
    /// Messages decoded and being delivered.
    pub in_flight: u64,
    /// The quarantine circuit breaker, when the binding has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<serde_json::Value>,
    /// Instance restarts after a trap or a limit breach.
    pub restarts: u64,
    /// The wait applied before the next restart, in milliseconds.
    pub restart_backoff_ms: u64,
    /// Total time messages waited for the binding's throttle, in milliseconds.
    pub throttled_ms: u64,
    /// Total time messages waited for the tenant-wide throttle budget, in milliseconds.
    pub tenant_throttled_ms: u64,
}

/// The pause switch and the status of one binding.
#[derive(Debug, Default)]
pub(crate) struct Control {
    state: Mutex<ControlState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ControlState {
    paused: bool,
    closing: bool,
    status: BindingStatus,
}

impl Control {
    pub(crate) fn set_paused(&self, paused: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.paused = paused;
            s.status.paused = paused;
        }
        self.changed.notify_all();
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.state.lock().map(|s| s.paused).unwrap_or(false)
    }

    /// Stops waiting: a paused worker gives up its held message and ends.
    pub(crate) fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closing = true;
        }
        self.changed.notify_all();
    }

    /// Blocks while paused. `false` when the pipeline closes during the pause.
    pub(crate) fn wait_while_paused(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        while s.paused && !s.closing {
            s = match self.changed.wait(s) {
                Ok(s) => s,
                Err(_) => return true,
            };
        }
        !(s.paused && s.closing)
    }

    /// Sleeps for `wait`, waking early when the pipeline closes. `false` if it closed.
    pub(crate) fn sleep(&self, wait: Duration) -> bool {
        let Ok(s) = self.state.lock() else {
            return true;
        };
        match self.changed.wait_timeout_while(s, wait, |s| !s.closing) {
            Ok((s, _)) => !s.closing,
            Err(_) => true,
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut BindingStatus)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s.status);
        }
    }

    pub(crate) fn status(&self) -> BindingStatus {
        self.state
            .lock()
            .map(|s| s.status.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_paused_worker_waits_until_resumed() {
        let control = Arc::new(Control::default());
        control.set_paused(true);
        let c = control.clone();
        let waiter = std::thread::spawn(move || c.wait_while_paused());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        control.set_paused(false);
        assert!(waiter.join().expect("join"));
    }

    #[test]
    fn closing_ends_a_pause_and_a_sleep() {
        let control = Arc::new(Control::default());
        control.set_paused(true);
        let c = control.clone();
        let waiter = std::thread::spawn(move || c.wait_while_paused());
        let c = control.clone();
        let sleeper = std::thread::spawn(move || c.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        control.close();
        assert!(!waiter.join().expect("join"));
        assert!(!sleeper.join().expect("join"));
    }
}
