//! Once warm (buffers grown, every (app, funnel, day, breakdown) seen), evaluating an actor allocates
//! nothing, and aggregating its outcomes only appends to the exact time-to-convert lists, whose
//! amortised growth is a few reallocations per list over a whole run: checked with a counting global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use funnelizer::{FunnelSet, OwnedRow, Worker};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts (per thread) on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

const DEF: &str = r#"
[[funnel]]
id = "purchase"
window = "7d"
breakdown = "props.plan"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase", where = { "props.plan" = { "!=" = "free" } } } ]
exclude = [ { event = "uninstall" } ]
[[funnel]]
id = "strict"
window = "1h"
mode = "strict_order"
steps = [ { hit = { tracker = "fb" } }, { event = "install" } ]
[[funnel]]
id = "unordered"
window = "1h"
mode = "unordered"
steps = [ { event = "signup" }, { event = "purchase" } ]
"#;

#[test]
fn a_warm_worker_does_not_allocate_per_actor() {
    let set = FunnelSet::parse(DEF, "t").unwrap();
    let names = ["install", "signup", "purchase", "uninstall", "open"];
    let actors: Vec<(String, Vec<OwnedRow>)> = (0..300i64)
        .map(|i| {
            let base = (i % 4) * 86_400_000;
            let mut rows: Vec<OwnedRow> = (0..(i % 9))
                .map(|j| {
                    OwnedRow::event(
                        base + j * 60_000 * (1 + i % 3),
                        names[((i + j) % 5) as usize],
                        &[("plan", ["free", "pro"][(j % 2) as usize])],
                    )
                })
                .collect();
            if i % 3 == 0 {
                rows.insert(0, OwnedRow::hit(base, "fb", "r"));
            }
            (format!("app{}", i % 2), rows)
        })
        .collect();
    let mut w = Worker::new(&set);
    for (app, rows) in &actors {
        w.observe_actor(app, rows);
    }
    let before = allocs();
    let passes = 10u64;
    for _ in 0..passes {
        for (app, rows) in &actors {
            w.observe_actor(app, rows);
        }
    }
    // One allocation per actor would be 3000; the time lists' doublings are a few per list (85 here:
    // each list grows elevenfold), far below one per ten actors.
    let n = allocs() - before;
    assert!(
        n * 10 < passes * actors.len() as u64,
        "{n} allocations by {} warm observe_actor calls",
        passes * actors.len() as u64
    );
    let agg = w.into_aggregator();
    assert!(agg.facts(&set).iter().any(|f| f.step == 3));
}
