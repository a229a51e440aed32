//! criterion benchmarks of the process runtime, each beside its raw ipc-channel reference:
//!
//! * `throughput_64B`: 64-byte messages from a producer process to a consumer, per message;
//! * `round_trip_pinned`: one round trip between two processes on one CPU (plain-number
//!   messages, which take the direct path, and a message type with an `Addr` variant);
//! * `spawn_stop`: start 4 idle actors and stop the system again.
//!
//! `cargo bench --bench actors`. The side-by-side table with ratios is `--bench compare`.

#[path = "common/mod.rs"]
mod common;

use common::{raw, MpactorPing, MpactorSmall};
use criterion::{Criterion, Throughput};
use std::time::Duration;

fn main() {
    // First: in an actor process this runs the actor, in a reference child its job.
    let _registry = common::registry().run_if_child();
    raw::run_raw_if_child();
    common::watchdog(Duration::from_secs(900));

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    {
        let mut g = c.benchmark_group("throughput_64B");
        g.throughput(Throughput::Elements(1));
        let rig = MpactorSmall::start(1).expect("start the mpactor producer and consumer");
        g.bench_function("mpactor", |b| {
            b.iter_custom(|iters| {
                let (_, secs) = rig.round(iters).expect("an mpactor round");
                Duration::from_secs_f64(secs)
            })
        });
        rig.finish().expect("stop the mpactor system");
        let rig = raw::IpcSmall::start(1).expect("start the raw ipc-channel producer");
        g.bench_function("raw_ipc_channel", |b| {
            b.iter_custom(|iters| {
                let (_, secs) = rig.round(iters).expect("a raw ipc-channel round");
                Duration::from_secs_f64(secs)
            })
        });
        drop(rig);
        g.finish();
    }

    {
        let mut g = c.benchmark_group("round_trip_pinned");
        for (name, rig) in [
            (
                "mpactor_plain_messages",
                MpactorPing::start_plain(Some(0)).expect("start the mpactor ping-pong"),
            ),
            (
                "mpactor_addr_variant",
                MpactorPing::start(Some(0)).expect("start the mpactor ping-pong"),
            ),
        ] {
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let times = rig.run(iters, 0).expect("mpactor round trips");
                    Duration::from_nanos(times.iter().sum())
                })
            });
            rig.finish().expect("stop the mpactor system");
        }
        let rig = raw::IpcPing::start(Some(0)).expect("start the raw ping-pong");
        g.bench_function("raw_ipc_channel", |b| {
            b.iter_custom(|iters| {
                let times = rig.run(iters, 0).expect("raw round trips");
                Duration::from_nanos(times.iter().sum())
            })
        });
        drop(rig);
        g.finish();
    }

    {
        let mut g = c.benchmark_group("spawn_stop");
        g.bench_function("4_idle_actors", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (spawn_ms, stop_ms, _, _) =
                        common::mpactor_spawn_stop(4).expect("spawn and stop 4 actors");
                    total += Duration::from_secs_f64((spawn_ms + stop_ms) / 1e3);
                }
                total
            })
        });
        g.finish();
    }

    c.final_summary();
}
