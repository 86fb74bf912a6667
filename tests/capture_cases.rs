// The cases of `capture.rs` and `capture_raw.rs`, which set `HOOK` and include this file.

use std::ffi::{CStr, CString};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use e2e::{Monitor, TempDir, can_load_bpf, n, s};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// One monitor shared by the tests of this file (loading takes seconds), on `HOOK`.
fn monitor() -> MutexGuard<'static, Monitor> {
    static M: OnceLock<Mutex<Monitor>> = OnceLock::new();
    M.get_or_init(|| {
        let hook = format!("capture.syscall_hook={HOOK}");
        let m = Monitor::start(&[
            "trace",
            "--types",
            "execve,execveat,openat,connect,ptrace,memfd_create,symlink,symlinkat",
            "-o",
            &hook,
        ]);
        let says = format!("syscall hook: {HOOK}");
        assert!(m.log.iter().any(|l| l.contains(&says)), "{:?}", m.log);
        Mutex::new(m)
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
}

fn me() -> i64 {
    i64::from(std::process::id())
}

fn arg<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get("evt.arg")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn exec_shows_pid_parent_exe_and_argv() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    let child = Command::new("/bin/echo")
        .args(["e2e-exec-marker", "two words"])
        .output()
        .expect("run /bin/echo");
    assert!(child.status.success());
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "execve" && s(v, "proc.args").starts_with("e2e-exec-marker")
        })
        .expect("an execve event for /bin/echo");
    assert_eq!(
        n(&ev, "proc.ppid"),
        Some(me()),
        "parent is the test process: {ev}"
    );
    assert_eq!(s(&ev, "proc.exepath"), "/bin/echo");
    assert_eq!(s(&ev, "proc.name"), "echo");
    assert_eq!(s(&ev, "proc.exe"), "/bin/echo");
    assert_eq!(s(&ev, "proc.args"), "e2e-exec-marker two words");
    assert_eq!(s(&ev, "proc.cmdline"), "echo e2e-exec-marker two words");
    assert_eq!(s(&ev, "evt.res"), "SUCCESS");
    assert_ne!(n(&ev, "proc.pid"), Some(me()));
    assert_eq!(n(&ev, "proc.pid"), n(&ev, "thread.tid"));
    assert_eq!(s(&ev, "container.id"), "host");
}

/// Fork, then exec with `argv` from the child, the way C programs do: the strings are
/// literals in the binary's read-only data, which a forked child has not touched yet (its
/// page tables do not map them until it faults them in). Returns the child's pid after it
/// exited.
fn fork_exec(exec: impl FnOnce() -> i32) -> i64 {
    // SAFETY: the child only calls exec (async-signal-safe) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let rc = exec();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(100 + rc.clamp(0, 100)) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    i64::from(pid)
}

/// A child that opens `open` with `oflags` and runs `execveat(that fd, path, ["true", marker],
/// [], at_flags)`; its pid.
fn fork_execveat(open: &CStr, oflags: i32, path: &CStr, marker: &CStr, at_flags: i32) -> i64 {
    fork_exec(|| {
        let argv = [c"true".as_ptr(), marker.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: valid strings and arrays; the fd is the child's, gone with it.
        unsafe {
            let fd = libc::open(open.as_ptr(), oflags);
            libc::syscall(
                libc::SYS_execveat,
                fd,
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                at_flags,
            ) as i32
        }
    })
}

#[test]
fn exec_from_a_forked_child_shows_arguments_it_never_touched() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    let pid = fork_exec(|| {
        let argv = [
            c"true".as_ptr(),
            c"e2e-rodata-arg".as_ptr(),
            c"second".as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: NUL-terminated strings and a null-terminated array.
        unsafe { libc::execv(c"/bin/true".as_ptr(), argv.as_ptr()) }
    });
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "execve" && n(v, "proc.pid") == Some(pid)
        })
        .expect("an execve event for the forked child");
    assert_eq!(s(&ev, "evt.res"), "SUCCESS");
    assert_eq!(s(&ev, "proc.exepath"), "/bin/true");
    assert_eq!(s(&ev, "proc.cmdline"), "true e2e-rodata-arg second");
    assert_eq!(n(&ev, "proc.ppid"), Some(me()));
}

#[test]
fn a_failed_exec_shows_the_path_and_the_error() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    // A failed exec's arguments are read from the caller's memory, where the kernel never
    // touched them; a read that cannot fault cannot see a page the child has not mapped yet.
    // A forked child maps the parent's heap at once but a page of the binary's read-only data
    // only on first touch, so the arguments live on the heap, as a shell's or a runtime's do
    // (the test failed when the linker put them on another page than the path).
    let (arg0, arg1) = (c"missing".to_owned(), c"e2e-failed-exec".to_owned());
    let pid = fork_exec(|| {
        let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated strings and a null-terminated array.
        unsafe { libc::execv(c"/nonexistent/e2e-missing".as_ptr(), argv.as_ptr()) }
    });
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "execve" && n(v, "proc.pid") == Some(pid)
        })
        .expect("an execve event for the failed exec");
    assert_eq!(s(&ev, "evt.res"), "ENOENT");
    assert_eq!(arg(&ev, "filename"), "/nonexistent/e2e-missing");
    assert_eq!(arg(&ev, "args"), "e2e-failed-exec");
}

#[test]
fn execveat_relative_to_a_directory_fd_and_of_an_fd_show_the_program_path() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    // execveat(dirfd of /bin, "true", 0)
    let rel = fork_execveat(
        c"/bin",
        libc::O_RDONLY | libc::O_DIRECTORY,
        c"true",
        c"e2e-execveat-rel",
        0,
    );
    // execveat(fd of /bin/true, "", AT_EMPTY_PATH), as runc and fexecve do.
    let empty = fork_execveat(
        c"/bin/true",
        libc::O_RDONLY | libc::O_CLOEXEC,
        c"",
        c"e2e-execveat-fd",
        libc::AT_EMPTY_PATH,
    );
    for (pid, marker) in [(rel, "e2e-execveat-rel"), (empty, "e2e-execveat-fd")] {
        let ev = m
            .wait_json(WAIT, |v| {
                s(v, "evt.type") == "execveat" && n(v, "proc.pid") == Some(pid)
            })
            .unwrap_or_else(|| panic!("an execveat event for {marker}"));
        assert_eq!(s(&ev, "evt.res"), "SUCCESS", "{ev}");
        // /bin may be a link to /usr/bin: what the kernel ran, either way.
        let exe = s(&ev, "proc.exepath");
        assert!(
            exe == "/bin/true" || exe == "/usr/bin/true",
            "exepath of {marker}: {ev}"
        );
        assert_eq!(s(&ev, "proc.cmdline"), format!("true {marker}"));
    }
}

#[test]
fn openat_relative_to_a_directory_fd_shows_the_absolute_path_and_flags() {
    if !can_load_bpf() {
        return;
    }
    let dir = TempDir::new("openat");
    let mut m = monitor();
    let cdir = CString::new(dir.0.to_str().expect("utf-8 temp path")).expect("no NUL");
    let name = CString::new("e2e-file.txt").expect("no NUL");
    // SAFETY: valid C strings; fds closed below.
    let (dirfd, fd) = unsafe {
        let dirfd = libc::open(cdir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(dirfd >= 0);
        let fd = libc::openat(
            dirfd,
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
            0o640,
        );
        assert!(fd >= 0);
        (dirfd, fd)
    };
    let want = format!("{}/e2e-file.txt", dir.0.display());
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "openat"
                && n(v, "proc.pid") == Some(me())
                && s(v, "fd.name") == want
        })
        .expect("an openat event with the absolute path");
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(fd);
        libc::close(dirfd);
    }
    assert_eq!(s(&ev, "fd.nameraw"), "e2e-file.txt");
    assert_eq!(n(&ev, "fd.num"), Some(i64::from(fd)));
    assert_eq!(s(&ev, "fd.directory"), dir.0.to_str().unwrap_or_default());
    assert_eq!(s(&ev, "fd.filename"), "e2e-file.txt");
    assert_eq!(arg(&ev, "dirfd"), dirfd.to_string());
    let flags = arg(&ev, "flags");
    for f in ["O_WRONLY", "O_CREAT", "O_TRUNC"] {
        assert!(flags.split('|').any(|x| x == f), "{f} missing from {flags}");
    }
    assert_eq!(arg(&ev, "mode"), "0640");
    assert_eq!(ev.get("evt.is_open_write"), Some(&Value::Bool(true)));
    assert_eq!(ev.get("evt.is_open_read"), Some(&Value::Bool(false)));
}

/// A 32-bit syscall (`int 0x80`) goes through the same exit tracepoint as the 64-bit ones,
/// with the 32-bit table's numbers: ia32's 257 is remap_file_pages, x86_64's 257 is openat.
/// Read as the 64-bit call, it would be an openat of whatever rsi points to; it must not be
/// shown at all (as Falco's drivers, and the per-syscall tracepoints, do not).
#[cfg(target_arch = "x86_64")]
#[test]
fn a_32_bit_syscall_is_not_taken_for_the_64_bit_one_of_its_number() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    let marker = CString::new("/nonexistent/e2e-compat-marker").expect("no NUL");
    let ret: i64;
    // SAFETY: ia32 remap_file_pages(0, 0, 0, <pointer>, 0) changes nothing and fails with
    // EINVAL; rbx (which inline assembly may not name) is swapped in and out around it.
    unsafe {
        std::arch::asm!(
            "xchg {zero}, rbx",
            "int 0x80",
            "xchg {zero}, rbx",
            zero = inout(reg) 0i64 => _,
            inlateout("rax") 257i64 => ret,
            in("rcx") 0i64,
            in("rdx") 0i64,
            in("rsi") marker.as_ptr(),
            in("rdi") 0i64,
        );
    }
    assert!(
        ret < 0,
        "remap_file_pages(0, 0, ...) should fail, returned {ret}"
    );
    // A 64-bit openat after it, which must be shown: the monitor is looking.
    let control = CString::new("/nonexistent/e2e-compat-control").expect("no NUL");
    // SAFETY: a valid C string; the open fails (no such directory).
    let fd = unsafe { libc::open(control.as_ptr(), libc::O_RDONLY) };
    assert!(fd < 0);
    m.wait_json(WAIT, |v| {
        s(v, "fd.name") == "/nonexistent/e2e-compat-control"
    })
    .expect("the 64-bit openat is shown");
    let bogus = m.wait_json(Duration::from_secs(1), |v| {
        s(v, "fd.name").contains("e2e-compat-marker")
    });
    assert!(
        bogus.is_none(),
        "the 32-bit syscall was shown as an openat: {bogus:?}"
    );
}

#[test]
fn connect_to_localhost_shows_the_tuple() {
    if !can_load_bpf() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let sport = listener.local_addr().expect("addr").port();
    let mut m = monitor();
    let stream = TcpStream::connect(("127.0.0.1", sport)).expect("connect");
    let cport = stream.local_addr().expect("local addr").port();
    let fd = stream.as_raw_fd();
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "connect"
                && n(v, "proc.pid") == Some(me())
                && n(v, "fd.sport") == Some(i64::from(sport))
        })
        .expect("a connect event");
    assert_eq!(
        s(&ev, "fd.name"),
        format!("127.0.0.1:{cport}->127.0.0.1:{sport}")
    );
    assert_eq!(s(&ev, "fd.cip"), "127.0.0.1");
    assert_eq!(n(&ev, "fd.cport"), Some(i64::from(cport)));
    assert_eq!(s(&ev, "fd.sip"), "127.0.0.1");
    assert_eq!(s(&ev, "fd.l4proto"), "tcp");
    assert_eq!(s(&ev, "fd.type"), "ipv4");
    assert_eq!(n(&ev, "fd.num"), Some(i64::from(fd)));
    assert_eq!(arg(&ev, "addr"), format!("127.0.0.1:{sport}"));
    assert_eq!(n(&ev, "evt.rawres"), Some(0));
}

#[test]
fn ptrace_attach_shows_request_and_target() {
    if !can_load_bpf() {
        return;
    }
    let mut target = Command::new("/bin/sleep").arg("30").spawn().expect("sleep");
    let tpid = target.id() as i32;
    let mut m = monitor();
    // SAFETY: attach to and detach from our own child.
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, tpid, 0, 0) };
    assert_eq!(r, 0, "PTRACE_ATTACH failed");
    let mut status = 0;
    // SAFETY: waiting for our traced child to stop.
    unsafe {
        libc::waitpid(tpid, &mut status, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, tpid, 0, 0);
    }
    let ev = m.wait_json(WAIT, |v| {
        s(v, "evt.type") == "ptrace"
            && n(v, "proc.pid") == Some(me())
            && arg(v, "pid") == tpid.to_string()
    });
    let _ = target.kill();
    let _ = target.wait();
    let ev = ev.expect("a ptrace event");
    assert_eq!(arg(&ev, "request"), "PTRACE_ATTACH");
    assert_eq!(s(&ev, "evt.res"), "SUCCESS");
}

#[test]
fn memfd_create_shows_its_name_and_flags() {
    if !can_load_bpf() {
        return;
    }
    let mut m = monitor();
    let name = CString::new("e2e-memfd").expect("no NUL");
    // SAFETY: valid C string; the fd is closed below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    let ev = m
        .wait_json(WAIT, |v| {
            s(v, "evt.type") == "memfd_create" && n(v, "proc.pid") == Some(me())
        })
        .expect("a memfd_create event");
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    assert_eq!(arg(&ev, "name"), "e2e-memfd");
    assert_eq!(arg(&ev, "flags"), "MFD_CLOEXEC");
    assert_eq!(n(&ev, "fd.num"), Some(i64::from(fd)));
    assert_eq!(s(&ev, "fd.name"), "/memfd:e2e-memfd");
    assert_eq!(s(&ev, "fd.type"), "memfd");
}

#[test]
fn symlink_over_a_file_shows_target_and_link_path() {
    if !can_load_bpf() {
        return;
    }
    let dir = TempDir::new("symlink");
    let link = dir.0.join("passwd-link");
    std::fs::write(&link, b"a file that the link replaces").expect("write file");
    let mut m = monitor();
    // `ln -sf` replaces the file with a symlink to /etc/passwd.
    let st = Command::new("/bin/ln")
        .arg("-sf")
        .arg("/etc/passwd")
        .arg(&link)
        .status()
        .expect("ln");
    assert!(st.success());
    let want = link.to_str().unwrap_or_default().to_string();
    let ev = m
        .wait_json(WAIT, |v| {
            matches!(s(v, "evt.type"), "symlink" | "symlinkat")
                && arg(v, "linkpath").starts_with(dir.0.to_str().unwrap_or("?"))
                && n(v, "evt.rawres") == Some(0)
        })
        .expect("a successful symlink event");
    assert_eq!(arg(&ev, "target"), "/etc/passwd");
    // ln makes a temporary link and renames it over the file, or links in place.
    let lp = arg(&ev, "linkpath");
    assert!(
        lp == want || lp.starts_with(dir.0.to_str().unwrap_or("?")),
        "{lp}"
    );
    assert_eq!(s(&ev, "proc.name"), "ln");
    assert_eq!(n(&ev, "proc.ppid"), Some(me()));
}

#[test]
fn trace_filter_keeps_only_events_matching_the_condition() {
    if !can_load_bpf() {
        return;
    }
    let mut m = Monitor::start(&[
        "trace",
        "--types",
        "execve",
        "--filter",
        "proc.name = echo and proc.args contains e2e-filter",
    ]);
    let st = Command::new("/bin/true")
        .arg("e2e-filter-no")
        .status()
        .expect("true");
    assert!(st.success());
    let out = Command::new("/bin/echo")
        .arg("e2e-filter-yes")
        .output()
        .expect("echo");
    assert!(out.status.success());
    let ev = m
        .wait_json(WAIT, |v| s(v, "proc.args") == "e2e-filter-yes")
        .expect("the matching exec is printed");
    assert_eq!(s(&ev, "proc.name"), "echo");
    for l in m.collect_for(Duration::from_secs(1)) {
        let v: Value = serde_json::from_str(l).expect("JSON line");
        assert_eq!(
            s(&v, "proc.name"),
            "echo",
            "an event the filter rejects was printed: {l}"
        );
        assert!(s(&v, "proc.args").contains("e2e-filter"), "{l}");
    }
}

#[test]
fn a_bad_trace_filter_is_refused() {
    let out = Command::new(e2e::monitor_bin())
        .args(["trace", "--filter", "proc.nmae = bash"])
        .output()
        .expect("run monitor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("proc.nmae"), "{err}");
}
