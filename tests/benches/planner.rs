//! The planner at fleet scale: 1,000 hosts × 30 tasks (target: under 200 ms), and how its
//! time grows with hosts. Run with `cargo bench -p ship-tests --bench planner`.

/// Counts allocations, so the run also shows that memory grows linearly with hosts.
#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

#[divan::bench(args = [10, 100, 1000])]
fn plan_hosts_x_30_tasks(bencher: divan::Bencher<'_, '_>, hosts: usize) {
    let stage = ship_tests::synthetic::stage(hosts, 30, 10);
    bencher.bench_local(|| ship_tests::synthetic::plan(divan::black_box(&stage), "20261122235800"));
}
