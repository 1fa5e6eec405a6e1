//! The memory budget of agent answers in flight: a counting semaphore of bytes.
//!
//! Each body is bounded by `--max-body-bytes`, but with a thousand fetches at once that
//! bound alone allows gigabytes. A fetch reserves its answer's size before reading it
//! and waits while the budget is spent; the reservation lives as long as the bytes (or
//! the entries kept from them) and is given back when dropped. No fetch ever holds one
//! reservation while waiting for another, and none asks for more than the whole budget,
//! so one answer larger than the budget waits for all of it rather than forever.
//! (`process.rs` fixes glibc's mmap threshold so that resident memory follows it.)

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The budget every fetch of a pass reserves from; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    total: u64,
    free: Mutex<u64>,
    freed: Condvar,
}

impl BudgetState {
    /// Poisoning only means a thread panicked between two additions, which stay right.
    fn free(&self) -> MutexGuard<'_, u64> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, bytes: u64) {
        *self.free() += bytes;
        self.freed.notify_all();
    }
}

impl BodyBudget {
    pub(crate) fn new(total: u64) -> BodyBudget {
        BodyBudget(Arc::new(BudgetState {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }))
    }

    /// Reserves `bytes` (at most the whole budget), waiting until they are free; None if
    /// they are not by `until`.
    pub(crate) fn reserve(&self, bytes: u64, until: Instant) -> Option<Reservation> {
        let bytes = bytes.min(self.0.total);
        let mut free = self.0.free();
        while *free < bytes {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            free = match self.0.freed.wait_timeout(free, left) {
                Ok((free, _)) => free,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *free -= bytes;
        Some(Reservation {
            budget: Arc::clone(&self.0),
            bytes,
        })
    }
}

/// Bytes taken from the budget until this is dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<BudgetState>,
    bytes: u64,
}

impl Reservation {
    /// Gives back what is reserved beyond `bytes`, once fewer are held than reserved.
    pub(crate) fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    fn free(budget: &BodyBudget) -> u64 {
        *budget.0.free()
    }

    #[test]
    fn reservations_wait_while_the_budget_is_spent() {
        let budget = BodyBudget::new(100);
        let first = budget.reserve(60, soon()).expect("free");
        assert!(budget.reserve(50, soon()).is_none(), "only 40 left");
        let second = budget.reserve(40, soon()).expect("exactly what is left");
        assert_eq!(free(&budget), 0);
        drop(first);
        assert!(budget.reserve(50, soon()).is_some(), "given back");
        drop(second);
        assert_eq!(free(&budget), 100);
    }

    #[test]
    fn a_waiting_reservation_gets_what_is_given_back() {
        let budget = BodyBudget::new(100);
        let mut held = budget.reserve(100, soon()).expect("free");
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                budget
                    .reserve(70, Instant::now() + Duration::from_secs(30))
                    .is_some()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        held.shrink_to(30);
        assert!(waiter.join().expect("no panic"), "the waiter got its bytes");
        assert_eq!(
            free(&budget),
            70,
            "30 held; the waiter's 70 came back as it ended"
        );
        drop(held);
        assert_eq!(free(&budget), 100);
    }

    #[test]
    fn one_answer_larger_than_the_budget_takes_all_of_it() {
        let budget = BodyBudget::new(100);
        let mut all = budget.reserve(1_000, soon()).expect("capped at the budget");
        assert_eq!(free(&budget), 0);
        all.shrink_to(500);
        assert_eq!(free(&budget), 0, "never more than reserved is given back");
        all.shrink_to(10);
        assert_eq!(free(&budget), 90);
    }
}
