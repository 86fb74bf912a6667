//! Any bytes as a condition: parse, compile and evaluate without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::rules::{Filter, dns, parser, testkit::Ev};

fuzz_target!(|data: &[u8]| {
    dns::set_resolution(false);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parser::parse(text);
    let compiled = Filter::compile(text);
    // Whatever compiles must have parsed.
    assert!(compiled.is_err() || parsed.is_ok());
    if let Ok(f) = compiled {
        let ev = Ev::exec("/bin/bash", &["-c", "id"]).container("nginx").build();
        let _ = f.matches(&ev);
        let ev = Ev::open("/etc/shadow", 0).build();
        let _ = f.matches(&ev);
    }
});
