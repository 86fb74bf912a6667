//! Any bytes as a rules file: the loader returns rules or an error, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::rules::{Engine, LoadOptions, dns};

fuzz_target!(|data: &[u8]| {
    dns::set_resolution(false);
    let text = String::from_utf8_lossy(data);
    if let Ok((engine, _)) = Engine::load_str("fuzz.yaml", &text, &LoadOptions::default()) {
        let ev = monitor::rules::testkit::Ev::open("/etc/shadow", 0).build();
        let mut out = Vec::new();
        engine.evaluate(&ev, &mut out);
        let host: std::sync::Arc<str> = "fuzz".into();
        for i in out {
            let _ = engine.alert(i, &ev, &host);
        }
        let _ = engine.path_prefilter();
        let _ = engine.check_report();
    }
});
