//! The fleet's numbers, simulated: rollout shares over 100 000 device ids, and when 10 000 devices
//! that start together poll. Figures are printed (`cargo test --test fleet_statistics --
//! --nocapture`); the bounds asserted are the issue's.
use std::time::Duration;

use bundle::release::{bucket, in_rollout};
use updater::fleet::schedule::Schedule;

const DEVICES: usize = 100_000;

/// Ids shaped like /etc/machine-id (32 hex digits), from a fixed generator.
fn machine_ids(count: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(2026);
    (0..count)
        .map(|_| format!("{:016x}{:016x}", rng.u64(..), rng.u64(..)))
        .collect()
}

fn members(ids: &[String], seed: &str, percent: u32) -> Vec<bool> {
    ids.iter()
        .map(|id| in_rollout(bucket(seed, id), percent * 100))
        .collect()
}

fn share(members: &[bool]) -> f64 {
    members.iter().filter(|&&m| m).count() as f64 / members.len() as f64 * 100.0
}

#[test]
fn rollout_shares_are_accurate_monotonic_and_reshuffled_by_the_seed() {
    let ids = machine_ids(DEVICES);
    let five = members(&ids, "release-1.2.0", 5);
    let ten = members(&ids, "release-1.2.0", 10);
    let other_seed = members(&ids, "release-1.3.0", 5);

    let five_share = share(&five);
    println!("5 % rollout over {DEVICES} ids: {five_share:.3} %");
    assert!((4.5..=5.5).contains(&five_share), "{five_share}");

    let ten_share = share(&ten);
    let kept = five.iter().zip(&ten).filter(|(a, b)| **a && !**b).count();
    println!("raised to 10 %: {ten_share:.3} %, devices dropped: {kept}");
    assert!((9.5..=10.5).contains(&ten_share), "{ten_share}");
    assert_eq!(
        kept, 0,
        "raising the percentage must keep every device that was in"
    );

    // Independent seeds: being first under one says nothing about the other.
    let both = five
        .iter()
        .zip(&other_seed)
        .filter(|(a, b)| **a && **b)
        .count() as f64
        / DEVICES as f64
        * 100.0;
    let expected = five_share * share(&other_seed) / 100.0;
    println!("in both 5 % rollouts of two seeds: {both:.3} % (independent: {expected:.3} %)");
    assert!((both - expected).abs() < 0.1, "{both} vs {expected}");
}

/// Peak over mean of polls per bin, over the bins of [from, to).
fn peak_to_mean(polls: &[f64], from: f64, to: f64, bin: f64) -> f64 {
    let bins = ((to - from) / bin) as usize;
    let mut counts = vec![0u32; bins];
    for &t in polls.iter().filter(|&&t| t >= from && t < to) {
        counts[((t - from) / bin) as usize] += 1;
    }
    let total: u32 = counts.iter().sum();
    let mean = f64::from(total) / bins as f64;
    f64::from(*counts.iter().max().unwrap()) / mean
}

fn simulate(schedule: Schedule, devices: usize, horizon: f64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut polls = Vec::new();
    for _ in 0..devices {
        let mut t = schedule.first_delay(&mut rng).as_secs_f64();
        while t < horizon {
            polls.push(t);
            t += schedule.next_delay(&mut rng).as_secs_f64();
        }
    }
    polls
}

#[test]
fn ten_thousand_devices_started_together_spread_their_polls_over_the_interval() {
    let hour = Duration::from_secs(3600);
    let horizon = 24.0 * 3600.0;
    let jittered = simulate(
        Schedule {
            interval: hour,
            jitter: hour,
        },
        10_000,
        horizon,
    );
    let first_hour_s = peak_to_mean(&jittered, 0.0, 3600.0, 1.0);
    let first_hour_min = peak_to_mean(&jittered, 0.0, 3600.0, 60.0);
    let day_s = peak_to_mean(&jittered, 0.0, horizon, 1.0);
    let day_min = peak_to_mean(&jittered, 0.0, horizon, 60.0);
    println!("polls of 10 000 devices started together, interval 1 h, jitter 1 h:");
    println!(
        "  first hour: peak/mean {first_hour_s:.2} per second, {first_hour_min:.2} per minute"
    );
    println!("  24 hours:   peak/mean {day_s:.2} per second, {day_min:.2} per minute");
    println!("  (all at once would be 3600 per second in the first hour)");
    // Random arrivals alone give ~4 per second at under 3 polls a second, ~1.3 per minute.
    assert!(first_hour_s < 6.0 && day_s < 6.0, "{first_hour_s} {day_s}");
    assert!(
        first_hour_min < 1.4 && day_min < 1.4,
        "{first_hour_min} {day_min}"
    );
}
