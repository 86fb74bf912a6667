//! Rule engine costs: evaluating one event of a realistic mix against Falco's 25 stable rules
//! (target: median at most 200 ns), and loading the three default files (target: 50 ms).

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use monitor::event::{Event, EventType, L4Proto};
use monitor::rules::testkit::{Ev, O_CREAT, O_RDWR, O_WRONLY};
use monitor::rules::{Engine, LoadOptions, dns};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules")
}

/// What a busy host mostly does: opens of ordinary files, execs of ordinary programs, network
/// connections; none of them matches a stable rule.
fn mix() -> Vec<Event> {
    let ordinary_parents: &[(&str, &str, &[&str])] = &[
        ("make", "/usr/bin/make", &["-j2"]),
        ("bash", "/usr/bin/bash", &[]),
        ("sshd", "/usr/sbin/sshd", &["-D"]),
    ];
    vec![
        Ev::open("/usr/lib/x86_64-linux-gnu/libc.so.6", 0o2000000).build(),
        Ev::open("/etc/ld.so.cache", 0o2000000).build(),
        Ev::open("/proc/self/stat", 0).build(),
        Ev::open("/home/alice/src/main.rs", 0).build(),
        Ev::open("/tmp/cc1234.o", O_WRONLY | O_CREAT).build(),
        Ev::open("/var/lib/app/data.db", O_RDWR)
            .container("postgres")
            .build(),
        Ev::open("/etc/hostname", 0).build(),
        Ev::open("/usr/share/zoneinfo/UTC", 0).build(),
        Ev::exec("/usr/bin/ls", &["-la"]).build(),
        Ev::exec("/usr/bin/cc", &["-c", "main.c"])
            .parents(ordinary_parents)
            .build(),
        Ev::exec("/usr/bin/git", &["status"]).build(),
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
            ("172.17.0.2", 40001),
            ("93.184.216.34", 443),
            L4Proto::Tcp,
        )
        .container("curl")
        .build(),
        Ev::new(EventType::Close).build(),
        Ev::open("/usr/lib/python3/dist-packages/six.py", 0)
            .container("python")
            .build(),
    ]
}

fn bench(c: &mut Criterion) {
    dns::set_resolution(false);
    let stable = [rules_dir().join("falco_rules.yaml")];
    let (engine, _) = match Engine::load(&stable, &LoadOptions::default()) {
        Ok(x) => x,
        Err(e) => panic!("cannot load the stable rules: {e}"),
    };
    let events = mix();
    let mut out = Vec::with_capacity(4);
    let matched: usize = events
        .iter()
        .map(|e| {
            out.clear();
            engine.evaluate(e, &mut out);
            out.len()
        })
        .sum();
    assert_eq!(matched, 0, "the benchmark mix should not match any rule");

    let mut i = 0usize;
    c.bench_function("evaluate one event (stable rules, no-match mix)", |b| {
        b.iter(|| {
            let ev = &events[i % events.len()];
            i = i.wrapping_add(1);
            out.clear();
            engine.evaluate(std::hint::black_box(ev), &mut out);
            out.len()
        })
    });

    // The dearest part of the mix: execs meet the most candidate rules.
    for (label, ty) in [("execve", EventType::Execve), ("openat", EventType::Openat)] {
        let subset: Vec<&Event> = events.iter().filter(|e| e.ty == ty).collect();
        let mut j = 0usize;
        c.bench_function(
            &format!("evaluate one {label} (stable rules, no match)"),
            |b| {
                b.iter(|| {
                    let ev = subset[j % subset.len()];
                    j = j.wrapping_add(1);
                    out.clear();
                    engine.evaluate(std::hint::black_box(ev), &mut out);
                    out.len()
                })
            },
        );
    }

    let all = [
        rules_dir().join("falco_rules.yaml"),
        rules_dir().join("falco-incubating_rules.yaml"),
        rules_dir().join("falco-sandbox_rules.yaml"),
    ];
    c.bench_function("load the three default files", |b| {
        b.iter(|| match Engine::load(&all, &LoadOptions::default()) {
            Ok((e, w)) => (e.rules().len(), w.len()),
            Err(e) => panic!("{e}"),
        })
    });

    let hit = Ev::open("/etc/shadow", 0)
        .with_proc(|p| p.name = "cat".into())
        .build();
    let host: Arc<str> = "bench".into();
    c.bench_function("evaluate and alert (Read sensitive file untrusted)", |b| {
        b.iter(|| {
            out.clear();
            engine.evaluate(std::hint::black_box(&hit), &mut out);
            out.first()
                .map(|r| engine.alert(*r, &hit, &host).output.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
