//! `CachingResolver` hit against miss, in front of a store that takes 1 ms per lookup.
//!
//! Run with `cargo bench --bench resolver_cache`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_jwt_plan::{
    CachingResolver, ResolveError, Subscription, SubscriptionQuery, SubscriptionResolver,
    SubscriptionStatus,
};

async fn slow_store(q: SubscriptionQuery) -> Result<Option<Subscription>, ResolveError> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(Some(Subscription::new(
        "s",
        &*q.api,
        &*q.plan,
        "app",
        q.client_id,
        SubscriptionStatus::Accepted,
    )))
}

fn query(client: String) -> SubscriptionQuery {
    SubscriptionQuery { api: "api".into(), plan: "gold".into(), client_id: client.into() }
}

fn resolver_cache(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cached = CachingResolver::builder(slow_store).max_entries(1_000_000).build();
    let mut group = c.benchmark_group("resolver_cache");
    rt.block_on(cached.resolve(query("hot".into()))).unwrap();
    group.bench_function("hit", |b| {
        b.to_async(&rt).iter(|| async { cached.resolve(query("hot".into())).await.unwrap() })
    });
    let fresh = AtomicU64::new(0);
    group.measurement_time(Duration::from_secs(5)).sample_size(20);
    group.bench_function("miss", |b| {
        b.to_async(&rt).iter(|| async {
            let client = format!("client-{}", fresh.fetch_add(1, Ordering::Relaxed));
            cached.resolve(query(client)).await.unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = resolver_cache
}
criterion_main!(benches);
