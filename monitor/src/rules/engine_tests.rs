//! Loading Falco's default rules files, and loader semantics.

use std::path::PathBuf;

use super::*;

pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules")
}

fn load(files: &[&str]) -> (Engine, Vec<Warning>) {
    let paths: Vec<PathBuf> = files.iter().map(|f| rules_dir().join(f)).collect();
    match Engine::load(&paths, &LoadOptions::default()) {
        Ok(x) => x,
        Err(e) => panic!("{files:?} failed to load: {e}"),
    }
}

#[test]
fn default_files_load() {
    for f in [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ] {
        let (e, _) = load(&[f]);
        let report = e.check_report();
        let ok = report.iter().filter(|r| r.supported).count();
        eprintln!("{f}: {} rules, {ok} fully supported", report.len());
        for r in report.iter().filter(|r| !r.supported) {
            eprintln!(
                "  {}: {:?} {:?}",
                r.name, r.missing_fields, r.missing_event_types
            );
        }
    }
    let (e, _) = load(&[
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]);
    assert_eq!(e.rules().len(), 25 + 31 + 37);
}

#[test]
fn stable_rules_are_all_supported() {
    let (e, _) = load(&["falco_rules.yaml"]);
    assert_eq!(e.rules().len(), 25);
    let bad: Vec<_> = e
        .check_report()
        .into_iter()
        .filter(|r| !r.supported)
        .collect();
    assert!(bad.is_empty(), "unsupported stable rules: {bad:?}");
}

use super::testkit::{Ev, O_TRUNC, O_WRONLY};
use crate::alert::Action;
use crate::event::{EventType, KernelEnforcement};

fn load_yaml(yaml: &str) -> Result<(Engine, Vec<Warning>), LoadError> {
    Engine::load_str(
        "test.yaml",
        yaml,
        &LoadOptions {
            rule_matching: RuleMatching::All,
        },
    )
}

fn must_load(yaml: &str) -> Engine {
    match load_yaml(yaml) {
        Ok((e, _)) => e,
        Err(e) => panic!("does not load: {e}"),
    }
}

fn fired(e: &Engine, ev: &Event) -> Vec<String> {
    let mut out = Vec::new();
    e.evaluate(ev, &mut out);
    out.iter().map(|i| e.rules()[*i].name.to_string()).collect()
}

fn err_text(yaml: &str) -> String {
    match load_yaml(yaml) {
        Ok(_) => panic!("loaded although it is wrong:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn condition_errors_point_at_line_and_column() {
    let yaml = "\
- rule: bad
  desc: d
  condition: evt.type = open and proc.name = (bash)
  output: o
  priority: INFO
";
    let msg = err_text(yaml);
    assert!(
        msg.starts_with("test.yaml:3:46: rule 'bad': syntax error"),
        "{msg}"
    );

    let yaml = "\
- macro: m
  condition: evt.type = open
- rule: bad2
  desc: d
  condition: >
    m
    and proc.nme = bash
  output: o
  priority: INFO
";
    let msg = err_text(yaml);
    assert!(msg.starts_with("test.yaml:7:9: rule 'bad2'"), "{msg}");
    assert!(msg.contains("unknown field 'proc.nme'"), "{msg}");
    assert!(msg.contains("closest known field: 'proc.name'"), "{msg}");
}

#[test]
fn errors_inside_macros_and_after_list_substitution_point_into_the_macro() {
    let yaml = "\
- list: shells
  items: [bash, zsh, fish]
- macro: m
  condition: proc.name in (shells) and fd.nam = x
- rule: r
  desc: d
  condition: m
  output: o
  priority: INFO
";
    let msg = err_text(yaml);
    assert!(msg.starts_with("test.yaml:4:40: rule 'r'"), "{msg}");
    assert!(msg.contains("'fd.nam'"), "{msg}");
}

#[test]
fn yaml_errors_have_a_position() {
    let msg = err_text("- rule: x\n  desc: [unclosed\n  output: o\n");
    assert!(msg.starts_with("test.yaml:"), "{msg}");
    let pos: Vec<&str> = msg.splitn(4, ':').collect();
    assert!(pos[1].parse::<usize>().is_ok_and(|l| l >= 2), "{msg}");
}

#[test]
fn bad_keys_are_reported_at_their_line() {
    let msg = err_text(
        "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: LOUD\n",
    );
    assert!(msg.starts_with("test.yaml:5:"), "{msg}");
    assert!(msg.contains("unknown priority 'LOUD'"), "{msg}");
    let msg = err_text(
        "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n  action: explode\n",
    );
    assert!(msg.starts_with("test.yaml:6:"), "{msg}");
    assert!(msg.contains("unknown action 'explode'"), "{msg}");
    let msg = err_text(
        "- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n  dry_run: maybe\n",
    );
    assert!(msg.contains("'dry_run' must be true or false"), "{msg}");
    let msg = err_text("- rule: r\n  desc: d\n  output: o\n  priority: INFO\n");
    assert!(msg.contains("missing required key(s): condition"), "{msg}");
}

const BASE: &str = "
- list: shells
  items: [bash, sh]
- macro: is_shell
  condition: proc.name in (shells)
- rule: shell
  desc: d
  condition: evt.type = execve and is_shell
  output: shell %proc.name
  priority: WARNING
- rule: other
  desc: d
  condition: evt.type = execve and proc.name = ls
  output: ls
  priority: INFO
";

#[test]
fn append_and_override_refine_earlier_definitions() {
    let more = "
- list: shells
  items: [zsh]
  append: true
- rule: shell
  condition: and proc.pname = nginx
  override:
    condition: append
- rule: shell
  priority: CRITICAL
  tags: [t1]
  override:
    priority: replace
    tags: replace
";
    let e = must_load(&format!("{BASE}{more}"));
    let zsh_nginx = Ev::exec("/bin/zsh", &[])
        .parents(&[("nginx", "/usr/sbin/nginx", &[])])
        .build();
    let bash_sshd = Ev::exec("/bin/bash", &[]).build();
    assert_eq!(fired(&e, &zsh_nginx), vec!["shell"]);
    assert!(fired(&e, &bash_sshd).is_empty());
    assert_eq!(e.rules()[0].priority, Priority::Critical);
    assert_eq!(e.rules()[0].tags, vec!["t1".to_string()]);
}

#[test]
fn redefinition_replaces_but_keeps_position() {
    let more = "
- rule: shell
  desc: d2
  condition: evt.type = execve and proc.name = ls
  output: redefined
  priority: ERROR
";
    let e = must_load(&format!("{BASE}{more}"));
    let names: Vec<&str> = e.rules().iter().map(|r| &*r.name).collect();
    assert_eq!(names, vec!["shell", "other"]);
    assert_eq!(e.rules()[0].desc, "d2");
    let ls = Ev::exec("/bin/ls", &[]).build();
    assert_eq!(fired(&e, &ls), vec!["shell", "other"]);
    // rule_matching: first stops at the first match, in definition order.
    let (first, _) =
        Engine::load_str("t", &format!("{BASE}{more}"), &LoadOptions::default()).expect("loads");
    let mut out = Vec::new();
    first.evaluate(&ls, &mut out);
    assert_eq!(out, vec![0]);
}

#[test]
fn enabled_only_item_toggles_a_rule_and_disabled_rules_are_compiled() {
    let e = must_load(&format!("{BASE}\n- rule: shell\n  enabled: false\n"));
    assert!(!e.rules()[0].enabled);
    assert!(fired(&e, &Ev::exec("/bin/bash", &[]).build()).is_empty());
    let msg = err_text(
        "- rule: off\n  desc: d\n  condition: proc.nam = x\n  output: o\n  priority: INFO\n  enabled: false\n",
    );
    assert!(msg.contains("unknown field 'proc.nam'"), "{msg}");
    let (e, warnings) = load_yaml("- rule: off\n  desc: d\n  condition: proc.nam = x\n  output: o\n  priority: INFO\n  skip-if-unknown-filter: true\n").expect("skips");
    assert!(e.rules().is_empty());
    assert!(
        warnings.iter().any(|w| w.message.contains("skipped")),
        "{warnings:?}"
    );
}

#[test]
fn exceptions_become_and_not() {
    let yaml = "
- rule: shadow
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: o
  priority: INFO
  exceptions:
    - name: known
      fields: [proc.name, fd.directory]
      comps: [=, in]
      values:
        - [cat, [/etc, /var]]
    - name: tools
      fields: proc.name
      values: [vipw, vigr]
";
    let e = must_load(yaml);
    let by = |n: &'static str| {
        Ev::open("/etc/shadow", 0)
            .with_proc(move |p| p.name = n.into())
            .build()
    };
    assert_eq!(fired(&e, &by("less")), vec!["shadow"]);
    assert!(fired(&e, &by("cat")).is_empty());
    assert!(fired(&e, &by("vipw")).is_empty());
}

#[test]
fn actions_and_alerts() {
    let yaml = "
- rule: kill shells
  desc: d
  condition: evt.type = execve and proc.name = bash
  output: shell by %user.name gp=%proc.aname[2] up=%toupper(proc.name) img=%container.image.repository %container.info
  priority: CRITICAL
  tags: [shell]
  action: kill
  dry_run: false
- rule: watch
  desc: d
  condition: evt.type = execve and proc.name = ls
  output: ls
  priority: NOTICE
";
    let (e, warnings) = load_yaml(yaml).expect("loads");
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("container.info")),
        "{warnings:?}"
    );
    assert_eq!(e.rules()[0].action, Action::Kill);
    assert!(!e.rules()[0].dry_run);
    assert_eq!(e.rules()[1].action, Action::Alert);
    let mut ev = Ev::exec("/bin/bash", &[]).build();
    ev.enforcement = Some(KernelEnforcement::Killed);
    let host: Arc<str> = "node1".into();
    let a = e.alert(0, &ev, &host);
    assert_eq!(a.output, "shell by root gp=systemd up=BASH img=<NA> ");
    assert_eq!(a.output_fields["user.name"], serde_json::json!("root"));
    assert_eq!(
        a.output_fields["proc.aname[2]"],
        serde_json::json!("systemd")
    );
    assert_eq!(
        a.output_fields["container.image.repository"],
        serde_json::Value::Null
    );
    assert_eq!(a.tags, vec!["shell".to_string()]);
    assert_eq!(&*a.hostname, "node1");
    assert_eq!(a.source, "syscall");
    let enf = a.enforcement.expect("kill rule reports enforcement");
    assert!(enf.enforced && !enf.dry_run);
    let b = e.alert(1, &Ev::exec("/bin/ls", &[]).build(), &host);
    assert!(b.enforcement.is_none());
}

#[test]
fn stable_outputs_render_like_falco() {
    let (e, _) = load(&["falco_rules.yaml"]);
    let i = e
        .rules()
        .iter()
        .position(|r| &*r.name == "Clear Log Activities")
        .expect("rule");
    let ev = Ev::open("/var/log/syslog", O_WRONLY | O_TRUNC).build();
    let a = e.alert(i, &ev, &"h".into());
    assert!(a.output.starts_with("Log files were tampered | file=/var/log/syslog evt_type=openat user=root user_uid=0 user_loginuid=-1 process=bash"), "{}", a.output);
    assert_eq!(a.output_fields["proc.tty"], serde_json::json!(0));
    assert_eq!(
        a.output_fields["fd.name"],
        serde_json::json!("/var/log/syslog")
    );
    assert_eq!(a.output_fields["user.loginuid"], serde_json::json!(-1));
    for f in [
        "evt.type",
        "proc.name",
        "proc.pname",
        "proc.cmdline",
        "proc.exepath",
        "proc.tty",
        "user.name",
        "user.uid",
        "user.loginuid",
    ] {
        assert!(
            a.output_fields.contains_key(f),
            "{f} missing from {:?}",
            a.output_fields
        );
    }
}

#[test]
fn other_sources_and_plugins_warn_once() {
    let yaml = "
- required_engine_version: 0.57.0
- required_plugin_versions:
    - name: container
      version: 0.4.0
    - name: k8saudit
      version: 0.7.0
- rule: a1
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
- rule: a2
  desc: d
  condition: ka.verb = delete
  output: o
  priority: INFO
  source: k8s_audit
";
    let (e, warnings) = load_yaml(yaml).expect("loads");
    assert!(e.rules().is_empty());
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.message.contains("k8s_audit"))
            .count(),
        1,
        "{warnings:?}"
    );
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.message.contains("k8saudit"))
            .count(),
        1,
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.message.contains("'container'")),
        "{warnings:?}"
    );
    let msg = err_text("- required_engine_version: 9.0.0\n");
    assert!(msg.contains("require engine version 9.0.0"), "{msg}");
}

#[test]
fn incubating_list_redefinitions_change_stable_rules_as_in_falco() {
    let uv = Ev::open("/etc/shadow", 0)
        .with_proc(|p| p.name = "uv".into())
        .build();
    let names = |e: &Engine| {
        let mut out = Vec::new();
        for (i, r) in e.rules().iter().enumerate() {
            if r.enabled && r.matches(&uv) {
                out.push(e.rules()[i].name.to_string());
            }
        }
        out
    };
    let (stable, _) = load(&["falco_rules.yaml"]);
    assert!(!names(&stable).contains(&"Read sensitive file untrusted".to_string()));
    let (both, _) = load(&["falco_rules.yaml", "falco-incubating_rules.yaml"]);
    assert!(names(&both).contains(&"Read sensitive file untrusted".to_string()));
}

#[test]
fn stable_path_prefilter_is_bounded_and_necessary() {
    let (e, _) = load(&["falco_rules.yaml"]);
    let pf = e
        .path_prefilter()
        .expect("stable rules bound the paths of opens");
    for p in [
        "/etc/hostname",
        "/tmp/x",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        assert!(!pf.passes(p, p), "{p} should be filtered out: {pf:?}");
    }
    for p in [
        "/etc/shadow",
        "/etc/pam.d/common-auth",
        "/var/log/syslog",
        "/sys/fs/cgroup/x/release_agent",
    ] {
        assert!(pf.passes(p, p), "{p} must pass: {pf:?}");
    }
    assert!(pf.passes("/etc/passwd", "../../etc/passwd"));
    // Necessity: every open some stable rule fires on passes the filter.
    let opens = [
        Ev::open("/etc/shadow", 0).with_proc(|p| p.name = "cat".into()),
        Ev::open("/var/log/syslog", O_WRONLY | O_TRUNC),
        Ev::open("/sys/fs/cgroup/rdma/release_agent", O_WRONLY)
            .container("alpine")
            .with_proc(|p| p.cap_effective = super::testkit::CAP_SYS_ADMIN),
        Ev::open("/etc/passwd", 0)
            .raw("../../../../etc/passwd")
            .with_proc(|p| p.name = "php".into())
            .parents(&[("apache2", "/usr/sbin/apache2", &[])]),
    ];
    for o in opens {
        let ev = o.build();
        assert!(
            !fired(&e, &ev).is_empty() || {
                let mut v = Vec::new();
                e.evaluate(&ev, &mut v);
                !v.is_empty()
            },
            "test event does not fire any rule: {ev:?}"
        );
        let f = ev.fd.as_ref().expect("fd");
        assert!(
            pf.passes(&f.name, &f.nameraw),
            "{} ({}) fires a rule but is filtered",
            f.name,
            f.nameraw
        );
    }
    // A rule that does not bound the path disables the prefilter.
    let loose = must_load(
        "- rule: r\n  desc: d\n  condition: evt.type = openat and proc.name = cat\n  output: o\n  priority: INFO\n",
    );
    assert!(loose.path_prefilter().is_none());
}

#[test]
fn event_types_follow_the_rules() {
    let (e, _) = load(&["falco_rules.yaml"]);
    let types = e.event_types();
    for t in [
        EventType::Execve,
        EventType::Openat,
        EventType::Connect,
        EventType::Ptrace,
        EventType::Symlinkat,
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert!(!types.contains(&EventType::Mkdir), "{types:?}");
    let e = must_load(
        "- rule: r\n  desc: d\n  condition: not evt.type in (execve, openat) and proc.name = x\n  output: o\n  priority: INFO\n",
    );
    let types = e.event_types();
    assert!(!types.contains(&EventType::Execve) && types.contains(&EventType::Mkdir));
}

#[test]
fn filter_and_extract_for_trace() {
    let ev = Ev::open("/etc/shadow", O_WRONLY | O_TRUNC).build();
    let f = Filter::compile(
        "fd.name pmatch (/etc) and evt.arg.flags contains O_TRUNC and proc.aname[1] = sshd",
    )
    .expect("compiles");
    assert!(f.matches(&ev));
    let g = Filter::compile("fd.name startswith oneof (/proc/, /sys/)").expect("compiles");
    assert!(!g.matches(&ev));
    assert_eq!(
        extract("proc.aname[1]", &ev),
        Some(serde_json::json!("sshd"))
    );
    assert_eq!(
        extract("evt.arg.flags", &ev),
        Some(serde_json::json!("O_WRONLY|O_TRUNC"))
    );
    assert_eq!(extract("fd.num", &ev), Some(serde_json::json!(3)));
    assert_eq!(extract("container.image", &ev), None);
    assert_eq!(extract("no.such", &ev), None);
    let err = Filter::compile("proc.nmae = bash").expect_err("unknown field");
    assert!(err.to_string().contains("proc.name"), "{err}");
}

#[test]
fn operators_and_types() {
    let ev = Ev::socket_fd(
        EventType::Connect,
        ("10.1.2.3", 5555),
        ("8.8.8.8", 53),
        crate::event::L4Proto::Udp,
    )
    .with_proc(|p| {
        p.env = vec!["HOME=/root".into(), "LD_PRELOAD=/tmp/x.so".into()];
    })
    .build();
    let t = |c: &str| {
        Filter::compile(c)
            .unwrap_or_else(|e| panic!("{c}: {e}"))
            .matches(&ev)
    };
    assert!(t("fd.snet in (\"8.8.0.0/16\", \"1.1.1.1\")"));
    assert!(t("fd.cnet = 10.0.0.0/8 and not fd.cnet = 192.168.0.0/16"));
    assert!(t("fd.sport = 53 and fd.cport > 1024 and fd.l4proto = udp"));
    assert!(t(
        "proc.env[LD_PRELOAD] endswith .so and proc.env icontains ld_preload"
    ));
    assert!(t(
        "proc.name regex 'ba.h' and proc.name glob 'b*' and proc.name iglob 'B?SH'"
    ));
    assert!(t("len(proc.name) = 4 and basename(proc.exepath) = bash"));
    assert!(t("proc.name in val(proc.name)"));
    assert!(t("proc.name startswith allof (b, ba)"));
    assert!(!t("proc.name startswith allof (b, x)"));
    assert!(t(
        "proc.pid > 0 and evt.num != 0 and proc.aname exists and not proc.aname[9] exists"
    ));
    assert!(t("proc.aname = systemd and proc.aname in (sshd)"));
    assert!(Filter::compile("fd.sport contains 5").is_err());
    assert!(Filter::compile("proc.pid = abc").is_err());
    assert!(Filter::compile("fd.net = notanet").is_err());
    assert!(Filter::compile("proc.name regex '('").is_err());
}

#[test]
fn fast_readers_agree_with_the_registry() {
    use super::fields::{FIELDS, Fast, FieldArg, Value, fast};
    let events = [
        Ev::open("/etc/shadow", O_WRONLY).build(),
        Ev::open("/", 0)
            .container("nginx")
            .k8s_namespace("prod")
            .privileged()
            .build(),
        Ev::exec("/bin/bash", &["-c", "id"]).parents(&[]).build(),
        Ev::exec("", &[]).with_proc(|p| p.cwd.clear()).build(),
        Ev::socket_fd(
            EventType::Connect,
            ("10.0.0.1", 1),
            ("10.0.0.2", 2),
            crate::event::L4Proto::Tcp,
        )
        .build(),
        Ev::new(EventType::Close).build(),
    ];
    let mut n = 0;
    for def in FIELDS {
        let Some(f) = fast(def.name) else { continue };
        n += 1;
        for ev in &events {
            let slow = (def.extract)(ev, &FieldArg::None);
            let same = match (f, &slow) {
                (Fast::Str(g), Value::Str(s)) => g(ev) == Some(s.as_ref()),
                (Fast::Str(g), Value::Missing) => g(ev).is_none(),
                (Fast::Num(g), Value::Int(i)) => g(ev) == Some(i128::from(*i)),
                (Fast::Num(g), Value::Uint(u)) => g(ev) == Some(i128::from(*u)),
                (Fast::Num(g), Value::Bool(b)) => g(ev) == Some(i128::from(*b)),
                (Fast::Num(g), Value::Missing) => g(ev).is_none(),
                _ => false,
            };
            assert!(
                same,
                "{}: fast reader disagrees with {slow:?} on {ev:?}",
                def.name
            );
        }
    }
    assert!(n >= 30, "only {n} fast readers");
}

#[test]
fn compiled_programs_agree_with_the_trees() {
    let (e, _) = load(&[
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]);
    let events = [
        Ev::open("/etc/shadow", 0)
            .with_proc(|p| p.name = "cat".into())
            .build(),
        Ev::open("/var/log/syslog", O_WRONLY | O_TRUNC)
            .container("nginx")
            .build(),
        Ev::exec("/bin/bash", &["-c", "id"])
            .container("nginx")
            .tty(1)
            .parents(&[("runc", "/usr/bin/runc", &[])])
            .build(),
        Ev::exec("/usr/bin/nc", &["-e", "/bin/sh"])
            .container("alpine")
            .build(),
        Ev::socket_fd(
            EventType::Connect,
            ("192.168.1.5", 5),
            ("203.0.113.7", 443),
            crate::event::L4Proto::Tcp,
        )
        .with_proc(|p| p.exe = "/usr/bin/ssh".into())
        .build(),
        Ev::new(EventType::Ptrace).build(),
    ];
    let mut matched = 0;
    for r in e.rules() {
        for ev in &events {
            let tree = r.node.eval(ev);
            assert_eq!(tree, r.program.eval(ev), "rule {} on {ev:?}", r.name);
            matched += usize::from(tree);
        }
    }
    assert!(matched > 3, "the events should fire some rules ({matched})");
}
