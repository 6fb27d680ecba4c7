//! Criterion micro-benchmarks of the compiler: one pod added and removed on a mid-size cluster.

use criterion::{criterion_group, criterion_main, Criterion};
use kovs_bench::synth::{cluster, node_name, pod_object, Shape};
use pipelines::model::{Change, Object, ObjectKey};
use pipelines::{Compiler, NodeConfig, TunnelType};

fn pod_add_delete(c: &mut Criterion) {
    let shape = Shape {
        pods: 10_000,
        nodes: 100,
        subnets: 50,
    };
    let mut compiler = Compiler::new(
        NodeConfig::new(node_name(0), TunnelType::Geneve),
        cluster(&shape),
    );
    let mut i = 0usize;
    c.bench_function("pod_add_then_delete_10k_pods", |b| {
        b.iter(|| {
            let pod = pod_object(shape.pods + (i % 1000), &shape);
            i += 1;
            let key = ObjectKey::pod("default", pod.metadata.name.clone());
            compiler.apply(vec![Change::Apply(Object::Pod(pod))]);
            compiler.apply(vec![Change::Delete(key)])
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = pod_add_delete
}
criterion_main!(benches);
