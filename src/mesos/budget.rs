//! The memory budget of agent answers in flight: a counting semaphore of bytes.
//!
//! Each body is bounded by `--max-body-bytes`, but with a thousand fetches at once that
//! bound alone allows gigabytes. A fetch reserves its answer's size before reading it
//! and waits while the budget is spent; the reservation lives as long as the bytes (or
//! the entries kept from them) and is given back when dropped. An answer without a length
//! reserves a first step and grows its reservation as its buffer grows (`grow_to`), so
//! it holds what it has read, not `--max-body-bytes`. No fetch waits for its first
//! reservation while holding another, and none asks for more than the whole budget, so
//! one answer larger than the budget waits for all of it rather than forever. A growing
//! answer does wait while holding; it gives up instead when every other holder is itself
//! waiting to grow, since then nobody would ever give bytes back.
//! (`process.rs` fixes glibc's mmap threshold so that resident memory follows it.)

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The budget every fetch of a pass reserves from; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<BudgetState>);

#[derive(Debug)]
struct BudgetState {
    total: u64,
    held: Mutex<Holdings>,
    freed: Condvar,
}

/// The budget's books, under one lock.
#[derive(Debug)]
struct Holdings {
    free: u64,
    /// Reservations alive (each gives its bytes back when dropped).
    holders: usize,
    /// Of those, how many are waiting in `grow_to`.
    waiting_to_grow: usize,
}

impl BudgetState {
    /// Poisoning only means a thread panicked between two additions, which stay right.
    fn held(&self) -> MutexGuard<'_, Holdings> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, bytes: u64, holder_leaves: bool) {
        let mut held = self.held();
        held.free += bytes;
        if holder_leaves {
            held.holders -= 1;
        }
        drop(held);
        self.freed.notify_all();
    }

    /// Waits until bytes are given back or `left` has passed.
    fn wait<'a>(
        &self,
        held: MutexGuard<'a, Holdings>,
        left: std::time::Duration,
    ) -> MutexGuard<'a, Holdings> {
        match self.freed.wait_timeout(held, left) {
            Ok((held, _)) => held,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// Why a reservation could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoGrowth {
    /// The bytes were not free by the time given.
    Timeout,
    /// Every other holder is waiting to grow too: nobody would give bytes back.
    HeldByGrowing,
}

impl BodyBudget {
    pub(crate) fn new(total: u64) -> BodyBudget {
        BodyBudget(Arc::new(BudgetState {
            total,
            held: Mutex::new(Holdings {
                free: total,
                holders: 0,
                waiting_to_grow: 0,
            }),
            freed: Condvar::new(),
        }))
    }

    /// Reserves `bytes` (at most the whole budget), waiting until they are free; None if
    /// they are not by `until`.
    pub(crate) fn reserve(&self, bytes: u64, until: Instant) -> Option<Reservation> {
        let bytes = bytes.min(self.0.total);
        let mut held = self.0.held();
        while held.free < bytes {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            held = self.0.wait(held, left);
        }
        held.free -= bytes;
        held.holders += 1;
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
            self.budget.give_back(self.bytes - bytes, false);
            self.bytes = bytes;
        }
    }

    /// Grows the reservation to `bytes` (at most the whole budget), waiting while they are
    /// not free, until `until`; gives up at once when every other holder waits to grow.
    pub(crate) fn grow_to(&mut self, bytes: u64, until: Instant) -> Result<(), NoGrowth> {
        let more = bytes.min(self.budget.total).saturating_sub(self.bytes);
        let mut held = self.budget.held();
        while held.free < more {
            if held.holders == held.waiting_to_grow + 1 {
                return Err(NoGrowth::HeldByGrowing);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoGrowth::Timeout);
            }
            held.waiting_to_grow += 1;
            held = self.budget.wait(held, left);
            held.waiting_to_grow -= 1;
        }
        held.free -= more;
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes, true);
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
        budget.0.held().free
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

    #[test]
    fn a_reservation_grows_while_bytes_are_free_and_waits_for_them() {
        let budget = BodyBudget::new(100);
        let mut growing = budget.reserve(10, soon()).expect("free");
        growing.grow_to(40, soon()).expect("free");
        assert_eq!(free(&budget), 60);
        let mut other = budget.reserve(60, soon()).expect("what is left");
        let waiter = std::thread::spawn(move || {
            let grown = growing.grow_to(70, Instant::now() + Duration::from_secs(30));
            (grown, growing)
        });
        std::thread::sleep(Duration::from_millis(50));
        other.shrink_to(30);
        let (grown, growing) = waiter.join().expect("no panic");
        assert_eq!(grown, Ok(()), "it got the bytes given back");
        assert_eq!(free(&budget), 0);
        drop((growing, other));
        assert_eq!(free(&budget), 100);
    }

    #[test]
    fn growth_gives_up_when_every_other_holder_waits_to_grow() {
        let budget = BodyBudget::new(100);
        let mut first = budget.reserve(50, soon()).expect("free");
        let mut second = budget.reserve(50, soon()).expect("free");
        let later = Instant::now() + Duration::from_secs(30);
        let waiter = std::thread::spawn(move || (first.grow_to(80, later), first));
        // The first waits (the second could still give bytes back); the second then finds
        // every other holder waiting to grow and gives up rather than wait for ever.
        while budget.0.held().waiting_to_grow == 0 {
            std::thread::yield_now();
        }
        assert_eq!(second.grow_to(80, later), Err(NoGrowth::HeldByGrowing));
        drop(second);
        let (grown, first) = waiter.join().expect("no panic");
        assert_eq!(grown, Ok(()), "the first grows once the second let go");
        drop(first);
        assert_eq!(free(&budget), 100);
        assert_eq!(budget.0.held().holders, 0);
    }

    #[test]
    fn growth_alone_takes_at_most_the_whole_budget_and_times_out_when_not_free() {
        let budget = BodyBudget::new(100);
        let mut alone = budget.reserve(10, soon()).expect("free");
        alone.grow_to(1_000, soon()).expect("capped at the budget");
        assert_eq!(free(&budget), 0);
        drop(alone);
        let _keeps = budget.reserve(90, soon()).expect("free");
        let mut growing = budget.reserve(10, soon()).expect("free");
        assert_eq!(growing.grow_to(50, soon()), Err(NoGrowth::Timeout));
    }
}
