//! Evaluating events that match no rule must not allocate: the rule engine runs on every
//! captured syscall.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use monitor::event::{EventType, L4Proto};
use monitor::rules::testkit::{Ev, O_CREAT, O_WRONLY};
use monitor::rules::{Engine, LoadOptions, dns};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn no_match_path_does_not_allocate() {
    dns::set_resolution(false);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules/falco_rules.yaml");
    let (engine, _) = match Engine::load(&[path], &LoadOptions::default()) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    let events = [
        Ev::open("/usr/lib/x86_64-linux-gnu/libc.so.6", 0).build(),
        Ev::open("/tmp/cc1234.o", O_WRONLY | O_CREAT)
            .container("gcc")
            .build(),
        Ev::open("/etc/hostname", 0).build(),
        Ev::exec("/usr/bin/ls", &["-la"]).build(),
        Ev::exec("/usr/bin/python3", &["app.py"])
            .container("python")
            .build(),
        Ev::socket_fd(
            EventType::Connect,
            ("10.0.0.2", 40000),
            ("10.0.0.5", 5432),
            L4Proto::Tcp,
        )
        .build(),
        Ev::socket_fd(
            EventType::Connect,
            ("172.17.0.2", 1),
            ("93.184.216.34", 443),
            L4Proto::Tcp,
        )
        .container("curl")
        .build(),
    ];
    let mut out = Vec::with_capacity(4);
    for ev in &events {
        let before = ALLOCS.with(Cell::get);
        engine.evaluate(ev, &mut out);
        let after = ALLOCS.with(Cell::get);
        assert!(out.is_empty(), "{ev:?} matched {out:?}");
        assert_eq!(after - before, 0, "evaluating {:?} allocated", ev.ty);
    }
}
