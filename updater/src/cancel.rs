//! Cancel and activation are one decision: an install that may still be cancelled is either
//! cancelled or committed, never both, so an acknowledged cancel always means the target group
//! was not activated.
use std::sync::atomic::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const COMMITTED: u8 = 2;

#[derive(Debug, Default)]
pub struct CancelToken(AtomicU8);

impl CancelToken {
    /// Asks the install to stop. True when it will stop (or already was asked to); false when it
    /// has committed to activating its group and can no longer be cancelled.
    pub fn cancel(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(now) => now == CANCELLED,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) == CANCELLED
    }

    /// The install's point of no return; false when a cancel came first.
    pub fn commit(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, COMMITTED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_before_commit_wins_and_after_commit_is_refused() {
        let token = CancelToken::default();
        assert!(token.cancel());
        assert!(token.cancel(), "a second cancel is acknowledged too");
        assert!(!token.commit());
        assert!(token.is_cancelled());

        let token = CancelToken::default();
        assert!(token.commit());
        assert!(!token.cancel());
        assert!(!token.is_cancelled());
    }
}
