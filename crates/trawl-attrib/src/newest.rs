//! The newest event time that may drive watermarks, retention and horizons,
//! kept safe from clocks that are wrong.
//!
//! A stream's newest event time decides what is sealed, what is pruned and
//! what counts as settled, so one record stamped years ahead would move all
//! of it at once. [`NewestTime`] believes a time only when
//!
//! - it is no later than the wall clock plus a slack (a record from the
//!   future is never believed), and
//! - it is no more than the slack ahead of the newest time believed so far,
//!   or `confirmations` times that far ahead have been seen (a real jump,
//!   such as the first data after a gap, is confirmed by the records after
//!   it; one stray record is not).
//!
//! A time that is not believed is still the caller's to store or apply: it
//! only does not move anything. The state is the believed time plus at most
//! `confirmations` pending times, so it is bounded.

/// The system clock in Unix seconds, or `fixed` when given (tests).
pub fn wall_clock_secs(fixed: Option<u32>) -> u32 {
    fixed.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        u32::try_from(secs).unwrap_or(u32::MAX)
    })
}

/// What [`NewestTime::observe`] made of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Believed: the newest time is now at least this.
    Believed,
    /// Past the wall clock plus the slack: never believed.
    Future,
    /// Far ahead of the stream: believed once enough times agree.
    Pending,
}

/// Bounds on believing a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewestLimits {
    /// How far past the wall clock, and past the newest believed time, a
    /// time may be (seconds).
    pub slack_secs: u32,
    /// How many times further ahead than the slack confirm a jump.
    pub confirmations: usize,
}

impl NewestLimits {
    /// The latest time believed at all with the wall clock at `wall_clock_secs`.
    pub fn bound(self, wall_clock_secs: u32) -> u32 {
        wall_clock_secs.saturating_add(self.slack_secs)
    }
}

impl Default for NewestLimits {
    fn default() -> Self {
        NewestLimits {
            slack_secs: 3600,
            confirmations: 3,
        }
    }
}

/// The believed newest time of a stream (see the module header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewestTime {
    newest: Option<u32>,
    /// Times further ahead than the slack, smallest first; fewer than
    /// `confirmations`.
    ahead: Vec<u32>,
}

impl NewestTime {
    /// Starts from `newest` (as saved), pulled back to the wall-clock bound.
    pub fn new(newest: Option<u32>, limits: NewestLimits, wall_clock_secs: u32) -> Self {
        let bound = limits.bound(wall_clock_secs);
        NewestTime {
            newest: newest.map(|t| t.min(bound)),
            ahead: Vec::new(),
        }
    }

    /// The newest believed time.
    pub fn get(&self) -> Option<u32> {
        self.newest
    }

    /// Takes `t` into account, with the wall clock at `wall_clock_secs`.
    pub fn observe(&mut self, t: u32, limits: NewestLimits, wall_clock_secs: u32) -> Observed {
        if t > limits.bound(wall_clock_secs) {
            return Observed::Future;
        }
        let Some(newest) = self.newest else {
            self.newest = Some(t);
            return Observed::Believed;
        };
        let reach = newest.saturating_add(limits.slack_secs);
        if t <= reach {
            self.newest = Some(newest.max(t));
            return Observed::Believed;
        }
        let at = self.ahead.partition_point(|&a| a < t);
        self.ahead.insert(at, t);
        if self.ahead.len() < limits.confirmations.max(1) {
            return Observed::Pending;
        }
        // Confirmed: move to the least of the agreeing times (the others
        // may be further off), then forget those now within reach.
        self.newest = Some(self.ahead[0]);
        let reach = self.ahead[0].saturating_add(limits.slack_secs);
        self.ahead.retain(|&a| a > reach);
        Observed::Believed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u32 = 1_796_000_000;
    const LIMITS: NewestLimits = NewestLimits {
        slack_secs: 3600,
        confirmations: 3,
    };

    #[test]
    fn a_time_past_the_wall_clock_is_never_believed() {
        let mut newest = NewestTime::default();
        assert_eq!(newest.observe(NOW + 7200, LIMITS, NOW), Observed::Future);
        for _ in 0..10 {
            assert_eq!(newest.observe(NOW + 7200, LIMITS, NOW), Observed::Future);
        }
        assert_eq!(newest.get(), None);
        assert_eq!(newest.observe(NOW + 3000, LIMITS, NOW), Observed::Believed);
        assert_eq!(newest.get(), Some(NOW + 3000));
    }

    #[test]
    fn one_stray_jump_waits_and_a_real_one_is_confirmed() {
        let t0 = 1_000_000;
        let mut newest = NewestTime::default();
        assert_eq!(newest.observe(t0, LIMITS, NOW), Observed::Believed);
        assert_eq!(
            newest.observe(t0 + 10 * 365 * 86_400, LIMITS, NOW),
            Observed::Pending
        );
        assert_eq!(newest.observe(t0 + 60, LIMITS, NOW), Observed::Believed);
        assert_eq!(newest.get(), Some(t0 + 60));
        // The first data after a two-hour gap: three records confirm it.
        let later = t0 + 7200;
        assert_eq!(newest.observe(later, LIMITS, NOW), Observed::Pending);
        assert_eq!(newest.observe(later + 1, LIMITS, NOW), Observed::Believed);
        assert_eq!(newest.get(), Some(later), "the least of the agreeing times");
        // The stray one is still pending, alone.
        assert_eq!(newest.ahead.len(), 1);
    }

    #[test]
    fn a_saved_time_past_the_wall_clock_is_pulled_back() {
        let newest = NewestTime::new(Some(NOW + 86_400 * 365), LIMITS, NOW);
        assert_eq!(newest.get(), Some(NOW + 3600));
        assert_eq!(NewestTime::new(None, LIMITS, NOW).get(), None);
    }

    #[test]
    fn pending_times_stay_fewer_than_the_confirmations() {
        let mut newest = NewestTime::new(Some(1_000), LIMITS, NOW);
        for i in 0..1000u32 {
            newest.observe(1_000_000 + i * 10_000, LIMITS, NOW);
            assert!(newest.ahead.len() < LIMITS.confirmations, "{i}");
        }
    }
}
