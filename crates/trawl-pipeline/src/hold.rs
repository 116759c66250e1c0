//! The hold-back: flows one of whose private addresses nobody held at the
//! flow's time *while metadata lags* (the index's horizon is behind the
//! flow), kept as their text lines until metadata catches up or the hold
//! delay passes, then attributed with what is known by then.
//!
//! Invariants: at most `held_records_max` flows (the oldest leaves first
//! when full); every flow leaves the hold before a seal commits the source
//! positions that cover it (the pipeline releases everything under the
//! store lock before sealing), so a crash never loses a held flow.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use trawl_flowlog::LogFormat;

/// One held flow.
#[derive(Debug, Clone)]
pub struct HeldFlow {
    /// The record's line, as read.
    pub line: Box<str>,
    /// Its format.
    pub format: Arc<LogFormat>,
    /// The record's `start` (epoch seconds).
    pub start: i64,
    /// When the hold delay passes.
    pub deadline: Instant,
}

/// Held flows in arrival order (so deadlines are in order too).
#[derive(Debug, Default)]
pub struct HoldBuffer {
    flows: VecDeque<HeldFlow>,
    max: usize,
}

impl HoldBuffer {
    /// An empty buffer of at most `max` flows.
    pub fn new(max: usize) -> Self {
        HoldBuffer {
            flows: VecDeque::new(),
            max,
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Holds `flow`; returns the oldest flow when that makes room for it.
    pub fn push(&mut self, flow: HeldFlow) -> Option<HeldFlow> {
        let evicted = if self.flows.len() >= self.max {
            self.flows.pop_front()
        } else {
            None
        };
        if self.max > 0 {
            self.flows.push_back(flow);
            evicted
        } else {
            Some(flow)
        }
    }

    /// Takes the flows whose time metadata now covers (`start <= horizon`)
    /// and, separately, those whose delay passed.
    pub fn take_ready(&mut self, now: Instant, horizon: i64) -> (Vec<HeldFlow>, Vec<HeldFlow>) {
        let expired = self.flows.iter().take_while(|f| f.deadline <= now).count();
        let late: Vec<HeldFlow> = self.flows.drain(..expired).collect();
        let mut settled = Vec::new();
        if self.flows.iter().any(|f| f.start <= horizon) {
            let (ready, waiting): (VecDeque<_>, VecDeque<_>) =
                self.flows.drain(..).partition(|f| f.start <= horizon);
            settled = ready.into();
            self.flows = waiting;
        }
        (settled, late)
    }

    /// Takes every held flow.
    pub fn take_all(&mut self) -> Vec<HeldFlow> {
        self.flows.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn flow(start: i64, deadline: Instant) -> HeldFlow {
        HeldFlow {
            line: "x".into(),
            format: Arc::new(LogFormat::default()),
            start,
            deadline,
        }
    }

    #[test]
    fn releases_by_horizon_and_by_deadline_and_bounds_itself() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut hold = HoldBuffer::new(3);
        assert!(hold.push(flow(10, now)).is_none());
        assert!(hold.push(flow(50, later)).is_none());
        assert!(hold.push(flow(20, later)).is_none());
        let evicted = hold.push(flow(30, later)).expect("full: the oldest leaves");
        assert_eq!(evicted.start, 10);
        let (settled, late) = hold.take_ready(now, 25);
        assert_eq!(settled.iter().map(|f| f.start).collect::<Vec<_>>(), [20]);
        assert!(late.is_empty());
        let (settled, late) = hold.take_ready(later, 0);
        assert!(settled.is_empty());
        assert_eq!(late.iter().map(|f| f.start).collect::<Vec<_>>(), [50, 30]);
        assert!(hold.is_empty());
        let mut none = HoldBuffer::new(0);
        assert!(
            none.push(flow(1, now)).is_some(),
            "a zero-size hold holds nothing"
        );
    }
}
