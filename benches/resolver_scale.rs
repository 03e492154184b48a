//! `InMemoryResolver` with 10 to 1,000,000 subscriptions: time per lookup (found and not found,
//! through `resolve` and through `resolve_now`, which the layer uses) and resident memory per
//! subscription.
//!
//! Run with `cargo bench --bench resolver_scale -- --measurement-time 3 --warm-up-time 1`
//! (Linux: memory is read from `/proc/self/statm`). Memory is the resident-set growth while the
//! store is built, subscriptions included, divided by their number: meaningful from 10,000 up
//! (smaller stores fit in memory the allocator already holds). The 1M store is built by one
//! `InMemoryResolver::new` over an iterator (about a second).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::Criterion;
use tower_jwt_plan::{
    InMemoryResolver, Subscription, SubscriptionQuery, SubscriptionResolver, SubscriptionStatus,
};

const SIZES: [usize; 6] = [10, 100, 1_000, 10_000, 100_000, 1_000_000];

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Realistic ids: a UUID-like subscription and application id, a 20-character client id, five
/// plans of one API.
fn subscription(i: usize) -> Subscription {
    Subscription::new(
        format!("3f2b9c1e-0000-4000-8000-{i:012}"),
        "orders-api",
        format!("plan-{}", i % 5),
        format!("a7d4e2f0-0000-4000-8000-{i:012}"),
        format!("client-{i:013}"),
        SubscriptionStatus::Accepted,
    )
}

fn query(i: usize) -> SubscriptionQuery {
    SubscriptionQuery {
        api: "orders-api".into(),
        plan: format!("plan-{}", i % 5).into(),
        client_id: format!("client-{i:013}").into(),
    }
}

fn lookup(store: &InMemoryResolver, q: SubscriptionQuery) -> bool {
    let future = pin!(store.resolve(q));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(found)) => found.is_some(),
        _ => panic!("an in-memory lookup is ready at once"),
    }
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut memory = Vec::new();
    for n in SIZES {
        let before = resident_bytes();
        let store = InMemoryResolver::new((0..n).map(subscription));
        let after = resident_bytes();
        assert_eq!(store.len(), n);
        if let (Some(b), Some(a)) = (before, after) {
            memory.push((n, a.saturating_sub(b) as f64 / n as f64));
        }
        let (hit, miss) = (query(n / 2), query(n + 1));
        assert!(lookup(&store, hit.clone()) && !lookup(&store, miss.clone()));
        let mut group = c.benchmark_group(format!("resolver_scale/{n}"));
        group.bench_function("found", |b| b.iter(|| lookup(&store, hit.clone())));
        group.bench_function("not_found", |b| b.iter(|| lookup(&store, miss.clone())));
        // What the layer asks: the ids borrowed, the subscription shared.
        let now = |q: &SubscriptionQuery| store.resolve_now(&q.api, &q.plan, &q.client_id);
        group.bench_function("found_now", |b| b.iter(|| now(&hit).unwrap().is_some()));
        group.bench_function("not_found_now", |b| b.iter(|| now(&miss).unwrap().is_some()));
        group.finish();
    }
    c.final_summary();
    println!("\nresident bytes per subscription (the store's growth / its size):");
    for (n, per) in memory {
        println!("  {n:>9} {per:>10.0}");
    }
}
