//! Time as the sale rules see it: milliseconds since the Unix epoch, from an injectable clock so
//! window tests can move time instead of sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in epoch milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The wall clock's reading.
pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

#[cfg(feature = "test-util")]
pub use manual::ManualClock;

#[cfg(feature = "test-util")]
mod manual {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::Clock;

    /// A clock that stays where it is put; tests share it with the code under test and move it.
    #[derive(Debug, Default, Clone)]
    pub struct ManualClock(Arc<AtomicI64>);

    impl ManualClock {
        pub fn at(now_ms: i64) -> Self {
            Self(Arc::new(AtomicI64::new(now_ms)))
        }

        pub fn set(&self, now_ms: i64) {
            self.0.store(now_ms, Ordering::SeqCst);
        }

        pub fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }
}
