//! A wall clock tests can set or move forward; components read it through
//! `wasi:clocks/wall-clock`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The real clock moved forward by `ahead`.
    Real { ahead: Duration },
    /// Stands still until set or advanced again.
    Fixed(SystemTime),
}

/// The host's wall clock: the real time unless a test sets it.
#[derive(Debug)]
pub struct TestClock {
    mode: Mutex<Mode>,
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock {
            mode: Mutex::new(Mode::Real {
                ahead: Duration::ZERO,
            }),
        }
    }
}

impl TestClock {
    /// A clock that follows the real time.
    pub fn new() -> Arc<TestClock> {
        Arc::new(TestClock::default())
    }

    fn mode(&self) -> std::sync::MutexGuard<'_, Mode> {
        // A poisoned lock only means a panicking test thread; the value is still a valid mode.
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Freeze the clock at `time`.
    pub fn set(&self, time: SystemTime) {
        *self.mode() = Mode::Fixed(time);
    }

    /// Move the clock forward by `by` (a frozen clock stays frozen, a real one stays running).
    pub fn advance(&self, by: Duration) {
        let mut mode = self.mode();
        *mode = match *mode {
            Mode::Fixed(t) => Mode::Fixed(t + by),
            Mode::Real { ahead } => Mode::Real { ahead: ahead + by },
        };
    }

    /// Back to the real time.
    pub fn reset(&self) {
        *self.mode() = Mode::Real {
            ahead: Duration::ZERO,
        };
    }

    /// The time components see now.
    pub fn now(&self) -> SystemTime {
        match *self.mode() {
            Mode::Fixed(t) => t,
            Mode::Real { ahead } => SystemTime::now() + ahead,
        }
    }
}

/// The adapter handed to each instance's WASI context.
pub(crate) struct WasiClock(pub Arc<TestClock>);

impl wasmtime_wasi::HostWallClock for WasiClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        // Times before 1970 are not expected from tests; report the epoch rather than fail.
        self.0.now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_freezes_and_advance_moves_forward() {
        let c = TestClock::new();
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        c.set(t);
        assert_eq!(c.now(), t);
        c.advance(Duration::from_secs(60));
        assert_eq!(c.now(), t + Duration::from_secs(60));
        c.reset();
        let real = SystemTime::now();
        c.advance(Duration::from_secs(3600));
        assert!(c.now() >= real + Duration::from_secs(3600));
    }
}
