//! Per-destination concurrency: Postfix 2.5's slow start with feedback and
//! hysteresis, and dead-destination detection (SCHEDULER_README).
//!
//! Pure arithmetic, no clocks: the scheduler owns the timers.
//!
//! * A destination starts with `initial_destination_concurrency`.
//! * After a delivery without connection failure, positive feedback `g(N)`
//!   accumulates in `success`; each full unit raises the window by 1 (up to
//!   the destination limit). Positive feedback is skipped unless the window
//!   is actually in use (`window < busy + initial`), so an idle destination
//!   does not grow a window it never tested.
//! * After a connection failure, `1/N` is added to the failed pseudo-cohort
//!   count; above `*_destination_concurrency_failed_cohort_limit` the
//!   destination is dead (window 0). Otherwise negative feedback `f(N)` is
//!   subtracted from `failure`, which starts at 0, so the first failure
//!   already lowers the window ("reverse" hysteresis), never below 1.
//! * A success resets the failed cohort count.
//!
//! Feedback values are `x`, `x/concurrency` or `x/sqrt_concurrency` (also
//! spelled `x/sqrt(concurrency)`), with `x` a number.

/// Rounding slack: `6 × 1/6` must count as a full unit.
const EPS: f64 = 1e-9;

/// One feedback function of the window `N`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Feedback {
    /// `x`
    Constant(f64),
    /// `x/concurrency`
    PerConcurrency(f64),
    /// `x/sqrt_concurrency`
    PerSqrtConcurrency(f64),
}

impl Feedback {
    /// Parses a feedback setting; `None` when it is malformed.
    pub fn parse(s: &str) -> Option<Feedback> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let num = |t: &str| -> Option<f64> {
            let v: f64 = t.parse().ok()?;
            (v.is_finite() && v >= 0.0).then_some(v)
        };
        match s.split_once('/') {
            None => num(&s).map(Feedback::Constant),
            Some((x, "concurrency")) => num(x).map(Feedback::PerConcurrency),
            Some((x, "sqrt_concurrency" | "sqrt(concurrency)")) => {
                num(x).map(Feedback::PerSqrtConcurrency)
            }
            Some(_) => None,
        }
    }

    /// The feedback amount at window `n` (n >= 1).
    pub fn value(self, n: u32) -> f64 {
        let n = f64::from(n.max(1));
        match self {
            Feedback::Constant(x) => x,
            Feedback::PerConcurrency(x) => x / n,
            Feedback::PerSqrtConcurrency(x) => x / n.sqrt(),
        }
    }
}

/// Settings for one transport.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `initial_destination_concurrency`.
    pub initial: u32,
    /// `<transport>_destination_concurrency_limit` (0 = no limit).
    pub limit: u32,
    /// Positive feedback.
    pub positive: Feedback,
    /// Negative feedback.
    pub negative: Feedback,
    /// `<transport>_destination_concurrency_failed_cohort_limit`.
    pub cohort_limit: f64,
}

impl Limits {
    fn cap(&self, w: u32) -> u32 {
        if self.limit == 0 {
            w
        } else {
            w.min(self.limit)
        }
    }

    /// The window a new (or revived) destination starts with.
    pub fn start(&self) -> u32 {
        self.cap(self.initial.max(1))
    }
}

/// One destination's concurrency state.
#[derive(Debug, Clone, PartialEq)]
pub struct Conc {
    /// Concurrency window: deliveries allowed at once (0 = dead).
    pub window: u32,
    success: f64,
    failure: f64,
    /// Failed pseudo-cohorts since the last success.
    pub fail_cohorts: f64,
}

impl Conc {
    /// A fresh destination.
    pub fn new(l: &Limits) -> Conc {
        Conc {
            window: l.start(),
            success: 0.0,
            failure: 0.0,
            fail_cohorts: 0.0,
        }
    }

    /// Whether the destination was declared dead.
    pub fn dead(&self) -> bool {
        self.window == 0
    }

    /// A delivery finished without connection failure; `busy` = deliveries
    /// still running to this destination.
    pub fn on_success(&mut self, l: &Limits, busy: u32) {
        self.fail_cohorts = 0.0;
        if self.dead() {
            // The dead timer, not a straggler's success, revives a destination.
            return;
        }
        if self.window >= busy.saturating_add(l.initial.max(1)) {
            return;
        }
        self.success += l.positive.value(self.window);
        while self.success >= 1.0 - EPS {
            self.window += 1;
            self.failure = 0.0;
            self.success -= 1.0;
        }
        self.window = l.cap(self.window).max(1);
    }

    /// A delivery failed to connect; returns true when this failure declared
    /// the destination dead.
    pub fn on_failure(&mut self, l: &Limits) -> bool {
        if self.dead() {
            return false;
        }
        self.fail_cohorts += 1.0 / f64::from(self.window);
        if self.fail_cohorts > l.cohort_limit {
            self.window = 0;
            self.success = 0.0;
            self.failure = 0.0;
            return true;
        }
        self.failure -= l.negative.value(self.window);
        while self.failure < -EPS {
            self.window = self.window.saturating_sub(1);
            self.failure += 1.0;
            self.success = 0.0;
        }
        self.window = self.window.max(1);
        false
    }

    /// The dead period is over: start again from the initial concurrency.
    pub fn revive(&mut self, l: &Limits) {
        *self = Conc::new(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pos: &str, neg: &str) -> Limits {
        Limits {
            initial: 5,
            limit: 20,
            positive: Feedback::parse(pos).unwrap(),
            negative: Feedback::parse(neg).unwrap(),
            cohort_limit: 1.0,
        }
    }

    #[test]
    fn parse_forms() {
        assert_eq!(Feedback::parse("1"), Some(Feedback::Constant(1.0)));
        assert_eq!(
            Feedback::parse("1/concurrency"),
            Some(Feedback::PerConcurrency(1.0))
        );
        assert_eq!(
            Feedback::parse("0.5 / sqrt_concurrency"),
            Some(Feedback::PerSqrtConcurrency(0.5))
        );
        assert_eq!(
            Feedback::parse("1/sqrt(concurrency)"),
            Some(Feedback::PerSqrtConcurrency(1.0))
        );
        assert_eq!(Feedback::parse("1/foo"), None);
        assert_eq!(Feedback::parse("-1"), None);
        assert_eq!(Feedback::parse("x"), None);
        assert!((Feedback::PerSqrtConcurrency(1.0).value(4) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn constant_feedback_grows_by_one_per_success_up_to_limit() {
        let l = limits("1", "1");
        let mut c = Conc::new(&l);
        assert_eq!(c.window, 5);
        for _ in 0..30 {
            let busy = c.window; // fully used
            c.on_success(&l, busy);
        }
        assert_eq!(c.window, 20);
    }

    #[test]
    fn per_concurrency_feedback_needs_n_successes_per_step() {
        let l = limits("1/concurrency", "1/concurrency");
        let mut c = Conc::new(&l);
        for i in 0..5 {
            assert_eq!(c.window, 5, "after {i} successes");
            c.on_success(&l, 5);
        }
        assert_eq!(c.window, 6);
        for _ in 0..6 {
            c.on_success(&l, 6);
        }
        assert_eq!(c.window, 7);
    }

    #[test]
    fn idle_window_does_not_grow() {
        let l = limits("1", "1");
        let mut c = Conc::new(&l);
        // One delivery at a time never tests more than `initial` parallel ones.
        for _ in 0..10 {
            c.on_success(&l, 0);
        }
        assert_eq!(c.window, 5);
    }

    #[test]
    fn first_failure_shrinks_at_once_and_cohorts_declare_dead() {
        let l = limits("1", "1");
        let mut c = Conc::new(&l);
        assert!(!c.on_failure(&l)); // 1/5
        assert_eq!(c.window, 4);
        assert!(!c.on_failure(&l)); // + 1/4
        assert_eq!(c.window, 3);
        assert!(!c.on_failure(&l)); // + 1/3 = 0.78
        assert_eq!(c.window, 2);
        assert!(c.on_failure(&l)); // + 1/2 > 1
        assert!(c.dead());
        assert!(!c.on_failure(&l), "already dead");
        c.revive(&l);
        assert_eq!(c, Conc::new(&l));
    }

    #[test]
    fn fractional_negative_feedback_and_success_resets_cohorts() {
        let l = limits("1/concurrency", "1/concurrency");
        let mut c = Conc::new(&l);
        c.on_failure(&l); // failure = -0.2 -> window 4, failure 0.8
        assert_eq!(c.window, 4);
        c.on_failure(&l); // cohorts .45; failure .55
        assert_eq!(c.window, 4);
        c.on_success(&l, 4);
        assert_eq!(c.fail_cohorts, 0.0);
        // Cohorts restart from zero: five more failures at window 4 are
        // needed before 1/4 + ... exceeds 1.
        let mut dead_after = 0;
        for i in 1..=10 {
            if c.on_failure(&l) {
                dead_after = i;
                break;
            }
        }
        assert!(dead_after >= 4, "{dead_after}");
    }

    #[test]
    fn window_never_below_one_and_limit_caps_initial() {
        let mut l = limits("1", "5");
        l.cohort_limit = 100.0;
        let mut c = Conc::new(&l);
        c.on_failure(&l);
        assert_eq!(c.window, 1);
        c.on_failure(&l);
        assert_eq!(c.window, 1);
        l.limit = 2;
        assert_eq!(Conc::new(&l).window, 2);
    }
}
