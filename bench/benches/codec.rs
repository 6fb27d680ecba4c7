//! Criterion micro-benchmarks of flowlib: encode (typed, and from the compiler's compact
//! encoding), decode, batch writer.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowlib::batch::Batch;
use flowlib::wire::bundle::BundleFlags;
use flowlib::wire::{FlowMod, FlowModCommand};
use kovs_bench::shapes;
use pipelines::CompactFlow;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    for (name, fm) in [
        ("route", FlowMod::add(shapes::route(7))),
        ("arp", FlowMod::add(shapes::arp(7))),
    ] {
        let mut buf = Vec::with_capacity(256);
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&fm).encode(1, &mut buf);
                black_box(&buf);
            })
        });
    }
    g.finish();
}

/// The agent's path: a FLOW_MOD straight from the compiler's compact encoding.
fn encode_compact(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_compact");
    g.throughput(Throughput::Elements(1));
    let mut scratch = Vec::new();
    for (name, flow) in [("route", shapes::route(7)), ("arp", shapes::arp(7))] {
        let compact = CompactFlow::new(0, &flow, &mut scratch);
        let mut buf = Vec::with_capacity(256);
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&compact).encode_flow_mod(FlowModCommand::Add, 1, &mut buf);
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, fm) in [
        ("route", FlowMod::add(shapes::route(7))),
        ("arp", FlowMod::add(shapes::arp(7))),
    ] {
        let mut buf = Vec::new();
        fm.encode(1, &mut buf);
        g.bench_function(name, |b| {
            b.iter(|| FlowMod::decode(black_box(&buf)).unwrap())
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let mods: Vec<FlowMod> = (0..1000).map(|i| FlowMod::add(shapes::route(i))).collect();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(mods.len() as u64));
    g.bench_function("push_1000_routes_and_frame_bundle", |b| {
        b.iter_batched(
            || {
                (
                    Batch::with_capacity(128 * 1024, 1000),
                    Vec::with_capacity(160 * 1024),
                )
            },
            |(mut batch, mut out)| {
                for fm in &mods {
                    batch.push_flow_mod(fm).unwrap();
                }
                batch.encode_bundle(1, BundleFlags::ATOMIC | BundleFlags::ORDERED, 1, &mut out);
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, encode, encode_compact, decode, batch);
criterion_main!(benches);
