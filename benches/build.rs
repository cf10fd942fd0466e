//! How long building one WebCluster's full object set takes (the Roundcube example).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use criterion::{Criterion, criterion_group, criterion_main};
use webcluster::desired::{self, Plan};

fn build_roundcube(c: &mut Criterion) {
    let input = include_str!("../examples/roundcube.yaml");
    let clusters = webcluster::render::parse(input).expect("the example parses");
    let cluster = &clusters[0];
    let plan = Plan::offline(cluster);
    c.bench_function("build roundcube (21 objects)", |b| {
        b.iter(|| desired::children(std::hint::black_box(cluster), &plan))
    });
}

criterion_group!(benches, build_roundcube);
criterion_main!(benches);
