//! When the daemon looks at the index. A fleet that powers up together (after an outage, a factory
//! flash) must not poll together: the first poll falls anywhere within `jitter` of the start, and
//! every later one `interval` after the previous, give or take half the jitter, so devices never
//! fall back into step.
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    /// At most `interval`.
    pub jitter: Duration,
}

impl Schedule {
    pub fn first_delay(&self, rng: &mut fastrand::Rng) -> Duration {
        uniform(rng, self.jitter)
    }

    pub fn next_delay(&self, rng: &mut fastrand::Rng) -> Duration {
        self.interval - self.jitter / 2 + uniform(rng, self.jitter)
    }
}

fn uniform(rng: &mut fastrand::Rng, upto: Duration) -> Duration {
    let millis = upto.as_millis() as u64;
    Duration::from_millis(if millis == 0 { 0 } else { rng.u64(0..millis) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_window() {
        let schedule = Schedule {
            interval: Duration::from_secs(600),
            jitter: Duration::from_secs(120),
        };
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..1000 {
            assert!(schedule.first_delay(&mut rng) < Duration::from_secs(120));
            let next = schedule.next_delay(&mut rng);
            assert!((Duration::from_secs(540)..Duration::from_secs(660)).contains(&next));
        }
        let none = Schedule {
            interval: Duration::from_secs(60),
            jitter: Duration::ZERO,
        };
        assert_eq!(none.first_delay(&mut rng), Duration::ZERO);
        assert_eq!(none.next_delay(&mut rng), Duration::from_secs(60));
    }
}
