//! Logical-time tests of the quota limiter (tokio paused clock): the sliding bound holds over long
//! runs, a backlog uses ≥ 95 % of the quota, priority classes are strict, a 429 pause stops everyone,
//! and share changes re-split the rate without the replicas together exceeding the limit.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;

fn config(windows: &[(u32, u64)], margin_ms: u64, burst: u32) -> QuotaConfig {
    QuotaConfig {
        windows: windows.iter().map(|&(limit, secs)| QuotaWindow { limit, per: Duration::from_secs(secs) }).collect(),
        safety_margin: Duration::from_millis(margin_ms),
        burst,
    }
}

/// Runs `workers` tasks that acquire at `priority` in a loop until `run_for` elapsed; returns grant times.
async fn backlog(limiter: &QuotaLimiter, workers: usize, priority: Priority, run_for: Duration) -> Vec<Instant> {
    let grants = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let limiter = limiter.clone();
        let grants = grants.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = limiter.acquire(priority) => {
                        let now = Instant::now();
                        if now >= end { break; }
                        grants.lock().push(now);
                    }
                    () = tokio::time::sleep_until(end) => break,
                }
            }
        }));
    }
    for t in tasks {
        assert!(t.await.is_ok(), "worker panicked");
    }
    let mut g = grants.lock().clone();
    g.sort();
    g
}

/// The largest number of grants in any half-open interval `(t - per, t]` (checked at every grant).
fn max_in_any_window(grants: &[Instant], per: Duration) -> usize {
    let mut max = 0;
    let mut lo = 0;
    for hi in 0..grants.len() {
        while grants[hi].duration_since(grants[lo]) >= per {
            lo += 1;
        }
        max = max.max(hi - lo + 1);
    }
    max
}

#[tokio::test(start_paused = true)]
async fn default_windows_are_never_exceeded_and_a_backlog_uses_at_least_95_percent() {
    let limiter = QuotaLimiter::new(&QuotaConfig::default());
    let run = Duration::from_secs(30 * 60);
    let grants = backlog(&limiter, 40, Priority::Backfill, run).await;
    let per_min = max_in_any_window(&grants, Duration::from_secs(60));
    let per_10min = max_in_any_window(&grants, Duration::from_secs(600));
    assert!(per_min <= 500, "{per_min} grants in one minute");
    assert!(per_10min <= 10_000, "{per_10min} grants in ten minutes");
    let ideal = 500.0 * run.as_secs_f64() / 60.0;
    let utilisation = grants.len() as f64 / ideal;
    println!(
        "default windows, 30 min backlog: {} grants, utilisation {:.3}, max/min {per_min}",
        grants.len(),
        utilisation
    );
    assert!(utilisation >= 0.95, "utilisation {utilisation}");
}

#[tokio::test(start_paused = true)]
async fn the_long_window_binds_when_it_is_the_tighter_one_and_bursts_are_bounded() {
    // 100 per 10 s but only 300 per 60 s: the long window must cap the rate; burst 50 is large on
    // purpose so the pacer alone would overshoot at window edges.
    let limiter = QuotaLimiter::new(&config(&[(100, 10), (300, 60)], 0, 50));
    let run = Duration::from_secs(600);
    let grants = backlog(&limiter, 20, Priority::Live, run).await;
    assert!(max_in_any_window(&grants, Duration::from_secs(10)) <= 100);
    let long = max_in_any_window(&grants, Duration::from_secs(60));
    assert!(long <= 300, "{long}");
    let utilisation = grants.len() as f64 / (300.0 * 10.0);
    println!("tight long window: {} grants, utilisation {utilisation:.3}", grants.len());
    assert!(utilisation >= 0.95, "utilisation {utilisation}");
}

#[tokio::test(start_paused = true)]
async fn higher_classes_are_served_first_and_fifo_within_a_class() {
    let limiter = QuotaLimiter::new(&config(&[(10, 1)], 0, 0));
    limiter.pause_until(Instant::now() + Duration::from_secs(1));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Registered in the worst order: backfill first, urgent last.
    for (i, p) in [
        (0, Priority::Backfill),
        (1, Priority::Backfill),
        (2, Priority::Live),
        (3, Priority::Live),
        (4, Priority::Urgent),
        (5, Priority::Urgent),
    ] {
        let limiter = limiter.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            limiter.acquire(p).await;
            order.lock().push(i);
        }));
        // Let the task register before the next one.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(limiter.snapshot().waiters, [2, 2, 2]);
    for t in tasks {
        assert!(t.await.is_ok());
    }
    assert_eq!(*order.lock(), vec![4, 5, 2, 3, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_urgent_request_behind_a_backfill_backlog_waits_about_one_interval() {
    let limiter = QuotaLimiter::new(&QuotaConfig::default());
    let bg = {
        let limiter = limiter.clone();
        tokio::spawn(async move { backlog(&limiter, 20, Priority::Backfill, Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    let grant = limiter.acquire(Priority::Urgent).await;
    println!("urgent waited {:?} behind a backfill backlog", grant.waited);
    // One pacing interval at 500/61 s is 122 ms; allow two.
    assert!(grant.waited <= Duration::from_millis(250), "{:?}", grant.waited);
    assert!(bg.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_pause_stops_every_class_until_it_ends_and_is_never_shortened() {
    let limiter = QuotaLimiter::new(&config(&[(100, 10)], 0, 5));
    let start = Instant::now();
    limiter.pause_until(start + Duration::from_secs(7));
    limiter.pause_until(start + Duration::from_secs(3));
    assert!(limiter.snapshot().paused_for.is_some());
    let a = {
        let l = limiter.clone();
        tokio::spawn(async move { l.acquire(Priority::Urgent).await })
    };
    let b = {
        let l = limiter.clone();
        tokio::spawn(async move { l.acquire(Priority::Backfill).await })
    };
    let (a, b) = (a.await, b.await);
    assert!(a.is_ok() && b.is_ok());
    assert!(Instant::now() >= start + Duration::from_secs(7));
    assert_eq!(limiter.snapshot().pauses_total, 2);
    assert!(limiter.snapshot().paused_for.is_none());
}

#[tokio::test(start_paused = true)]
async fn share_splits_the_rate_and_an_increase_is_phased_in_over_one_window() {
    let limiter = QuotaLimiter::new(&config(&[(100, 10)], 0, 0));
    limiter.set_share(1, 4);
    assert_eq!(limiter.snapshot().windows[0].share, 25);
    let first = backlog(&limiter, 10, Priority::Live, Duration::from_secs(100)).await;
    assert!(max_in_any_window(&first, Duration::from_secs(10)) <= 25);
    assert!(first.len() >= 240, "{} grants at 25/10 s over 100 s", first.len());

    // The replica now owns 2 of 4 partitions: 50 per window, but not before the grants of the
    // replica that gave one partition up have aged out.
    let change = Instant::now();
    limiter.set_share(2, 4);
    let second = backlog(&limiter, 10, Priority::Live, Duration::from_secs(100)).await;
    let in_first_window = second.iter().filter(|t| t.duration_since(change) < Duration::from_secs(10)).count();
    assert!(in_first_window <= 25, "{in_first_window} grants in the window of the change");
    let mut all = first.clone();
    all.extend(&second);
    assert!(max_in_any_window(&all, Duration::from_secs(10)) <= 50);
    let later: Vec<_> =
        second.iter().copied().filter(|t| t.duration_since(change) >= Duration::from_secs(10)).collect();
    assert!(later.len() >= 430, "{} grants at 50/10 s over 90 s", later.len());

    // Owning nothing stops grants until partitions come back.
    limiter.set_share(0, 4);
    let l = limiter.clone();
    let waiting = tokio::spawn(async move { l.acquire(Priority::Urgent).await });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished());
    limiter.set_share(4, 4);
    assert!(waiting.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn two_replicas_splitting_one_quota_never_exceed_it_together_across_a_rebalance() {
    let cfg = config(&[(60, 10)], 0, 3);
    let a = QuotaLimiter::new(&cfg);
    let b = QuotaLimiter::new(&cfg);
    a.set_share(3, 3);
    b.set_share(0, 3);
    let grants = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for limiter in [a.clone(), b.clone()] {
        for _ in 0..5 {
            let limiter = limiter.clone();
            let grants = grants.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = limiter.acquire(Priority::Live) => {
                            if Instant::now() >= end { break; }
                            grants.lock().push(Instant::now());
                        }
                        () = tokio::time::sleep_until(end) => break,
                    }
                }
            }));
        }
    }
    // Rebalance at t=30 s: A gives 2 of its 3 partitions to B (revoke first, then assign).
    tokio::time::sleep(Duration::from_secs(30)).await;
    a.set_share(1, 3);
    b.set_share(2, 3);
    for t in tasks {
        assert!(t.await.is_ok());
    }
    let mut g = grants.lock().clone();
    g.sort();
    let max = max_in_any_window(&g, Duration::from_secs(10));
    println!("two replicas, rebalance: {} grants, max in any 10 s {max}", g.len());
    assert!(max <= 60, "{max}");
    assert!(g.len() as f64 >= 0.85 * 60.0 * 12.0, "{} grants", g.len());
}

#[tokio::test(start_paused = true)]
async fn init_share_applies_an_increase_at_once_where_set_share_phases_it_in() {
    let limiter = QuotaLimiter::new(&config(&[(100, 10)], 0, 100));
    limiter.set_share(0, 2);
    limiter.init_share(1, 2);
    let start = Instant::now();
    limiter.acquire(Priority::Live).await;
    assert_eq!(Instant::now(), start, "no wait after init_share");
    assert_eq!(limiter.snapshot().windows[0].share, 50);
    limiter.set_share(2, 2);
    // The 50 added slots count as used for one window.
    assert_eq!(limiter.snapshot().windows[0].available, 49);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_head_waiter_does_not_block_the_queue() {
    let limiter = QuotaLimiter::new(&config(&[(1, 10)], 0, 0));
    limiter.acquire(Priority::Live).await;
    let l = limiter.clone();
    let head = tokio::spawn(async move { l.acquire(Priority::Urgent).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let l = limiter.clone();
    let next = tokio::spawn(async move { l.acquire(Priority::Backfill).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    head.abort();
    assert!(head.await.is_err());
    let g = next.await;
    assert!(g.is_ok());
    assert_eq!(limiter.snapshot().waiters, [0, 0, 0]);
}

#[test]
fn config_rejects_empty_or_zero_windows_and_unknown_keys() {
    assert!(QuotaConfig::default().validate().is_ok());
    assert!(config(&[], 0, 0).validate().is_err());
    assert!(config(&[(0, 10)], 0, 0).validate().is_err());
    assert!(config(&[(1, 0)], 0, 0).validate().is_err());
    let parsed: Result<QuotaConfig, _> = serde_json::from_str(r#"{"windows":[{"limit":5,"per":"1m"}],"burst":2}"#);
    assert!(
        matches!(parsed, Ok(ref c) if c.windows[0].per == Duration::from_secs(60) && c.safety_margin == Duration::from_secs(1))
    );
    let unknown: Result<QuotaConfig, _> = serde_json::from_str(r#"{"windowz":[]}"#);
    assert!(unknown.is_err());
}

#[tokio::test(start_paused = true)]
async fn random_arrivals_pauses_and_share_changes_never_break_the_sliding_bound() {
    use rand::{Rng, SeedableRng};
    for seed in 0..5u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let limiter = QuotaLimiter::new(&config(&[(40, 5), (100, 20)], 0, rng.random_range(0..20)));
        let grants = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        let mut patient = 0;
        // 600 requests arriving at random times over 120 s with random priorities; some give up.
        for _ in 0..600 {
            let at = start + Duration::from_millis(rng.random_range(0..120_000));
            let p = Priority::ALL[rng.random_range(0..3)];
            let give_up = rng.random_bool(0.1).then(|| Duration::from_millis(rng.random_range(1..3_000)));
            patient += usize::from(give_up.is_none());
            let limiter = limiter.clone();
            let grants = grants.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let acquire = limiter.acquire(p);
                match give_up {
                    Some(d) => {
                        if tokio::time::timeout(d, acquire).await.is_ok() {
                            grants.lock().push(Instant::now());
                        }
                    }
                    None => {
                        acquire.await;
                        grants.lock().push(Instant::now());
                    }
                }
            }));
        }
        // Meanwhile: 429 pauses and rebalances at random moments.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..8_000))).await;
            if rng.random_bool(0.5) {
                limiter.pause_until(Instant::now() + Duration::from_millis(rng.random_range(0..3_000)));
            } else {
                limiter.set_share(rng.random_range(1..=4), 4);
            }
        }
        limiter.set_share(4, 4);
        for t in tasks {
            assert!(t.await.is_ok());
        }
        let mut g = grants.lock().clone();
        g.sort();
        assert!(max_in_any_window(&g, Duration::from_secs(5)) <= 40, "seed {seed}");
        assert!(max_in_any_window(&g, Duration::from_secs(20)) <= 100, "seed {seed}");
        assert_eq!(limiter.snapshot().waiters, [0, 0, 0], "seed {seed}");
        assert!(g.len() >= patient, "seed {seed}: {} granted, {patient} never gave up", g.len());
    }
}

#[tokio::test(start_paused = true)]
async fn saturated_only_while_quota_holds_requests_back_and_for_one_window_after() {
    // 10 per 10 s, burst 5: the pacer interval is 1 s.
    let limiter = QuotaLimiter::new(&config(&[(10, 10), (100, 60)], 0, 5));
    assert!(!limiter.snapshot().saturated, "an idle limiter is not saturated");

    // Requests the quota grants at once (within the burst) are demand, not saturation.
    for _ in 0..3 {
        limiter.acquire(Priority::Live).await;
    }
    assert!(!limiter.snapshot().saturated, "requests granted at once do not saturate");

    // More than the quota gives: a waiter is held back now, then granted after waiting.
    let waiting = {
        let l = limiter.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                l.acquire(Priority::Live).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(limiter.snapshot().saturated, "a request is queued behind an exhausted quota");
    assert!(waiting.await.is_ok());
    let done = Instant::now();
    assert!(limiter.snapshot().waiters.iter().all(|n| *n == 0));
    assert!(limiter.snapshot().saturated, "a request waited within the last (shortest) window");

    // One shortest window (10 s) after the last held request, it clears.
    tokio::time::sleep_until(done + Duration::from_millis(9_900)).await;
    assert!(limiter.snapshot().saturated);
    tokio::time::sleep_until(done + Duration::from_secs(10)).await;
    assert!(!limiter.snapshot().saturated, "no wait for a whole window: not saturated");

    // A 429 pause saturates for as long as it runs, with nobody waiting.
    limiter.pause_until(Instant::now() + Duration::from_secs(3));
    assert!(limiter.snapshot().saturated, "a running 429 pause is saturation");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!limiter.snapshot().saturated, "the pause is over and nobody waited");
}

/// `drain_time` (what `plan` predicts) equals the time the limiter itself takes to grant the same
/// number of back-to-back requests on the paused clock, and follows the windows.
#[tokio::test(start_paused = true)]
async fn drain_time_is_the_limiters_own_schedule() {
    for (cfg, n) in [
        (config(&[(500, 60), (10_000, 600)], 1000, 5), 1200u64),
        (config(&[(3000, 60)], 1000, 5), 200),
        (config(&[(10, 1)], 0, 1), 35),
    ] {
        let limiter = QuotaLimiter::new(&cfg);
        let start = Instant::now();
        let mut last = start;
        for _ in 0..n {
            limiter.acquire(Priority::Live).await;
            last = Instant::now();
        }
        let measured = last - start;
        let predicted = QuotaLimiter::drain_time(&cfg, n).unwrap();
        let gap = measured.abs_diff(predicted);
        assert!(gap <= Duration::from_millis(5), "{n} requests: limiter {measured:?}, drain_time {predicted:?}");
    }
    assert_eq!(QuotaLimiter::drain_time(&QuotaConfig::default(), 1), Some(Duration::ZERO));
    // 501 requests under 500/60s (+1s): the 501st waits for the first to age out of the window.
    let t = QuotaLimiter::drain_time(&QuotaConfig::default(), 501).unwrap();
    assert!(t >= Duration::from_secs(61) && t < Duration::from_secs(62), "{t:?}");
    assert_eq!(QuotaLimiter::drain_time(&config(&[(0, 60)], 0, 5), 3), None);
}
