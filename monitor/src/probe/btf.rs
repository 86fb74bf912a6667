//! Offsets into kernel structures, read from the running kernel's BTF, so that no kernel's
//! layout is compiled into the programs.

use std::path::Path;

use btf_rs::{Btf, BtfType, Type};
use monitor_common::{
    IA32_SYSCALL_ARG_REG_NAMES, IA32_SYSCALL_ARG_REGS, KernelOffsets, SYSCALL_ARG_REG_NAMES,
    SYSCALL_ARG_REGS, SYSCALL_NR_REG,
};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF from {path}: {source}")]
    Read { path: String, source: btf_rs::Error },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("kernel BTF: {0}")]
    Other(String),
}

/// Offsets of the fields the programs read. Fields a kernel lacks (loginuid without
/// CONFIG_AUDIT) are left 0, which the programs treat as unknown.
pub fn kernel_offsets(btf_path: &Path) -> Result<KernelOffsets, BtfError> {
    let btf = Btf::from_file(btf_path).map_err(|source| BtfError::Read {
        path: btf_path.display().to_string(),
        source,
    })?;
    let off = |s: &str, m: &str| member_offset(&btf, s, m);
    let sock_common = off("sock", "__sk_common")?;
    Ok(KernelOffsets {
        task_real_parent: off("task_struct", "real_parent")?,
        task_tgid: off("task_struct", "tgid")?,
        task_pid: off("task_struct", "pid")?,
        task_loginuid: off("task_struct", "loginuid").unwrap_or(0),
        task_comm: off("task_struct", "comm")?,
        task_files: off("task_struct", "files")?,
        task_signal: off("task_struct", "signal")?,
        signal_tty: off("signal_struct", "tty")?,
        tty_index: off("tty_struct", "index")?,
        tty_driver: off("tty_struct", "driver")?,
        tty_driver_major: off("tty_driver", "major")?,
        tty_driver_minor_start: off("tty_driver", "minor_start")?,
        files_fdt: off("files_struct", "fdt")?,
        fdtable_fd: off("fdtable", "fd")?,
        file_private_data: off("file", "private_data")?,
        socket_sk: off("socket", "sk")?,
        socket_type: off("socket", "type")?,
        sk_family: sock_common + off("sock_common", "skc_family")?,
        sk_daddr: sock_common + off("sock_common", "skc_daddr")?,
        sk_rcv_saddr: sock_common + off("sock_common", "skc_rcv_saddr")?,
        sk_dport: sock_common + off("sock_common", "skc_dport")?,
        sk_num: sock_common + off("sock_common", "skc_num")?,
        sk_v6_daddr: sock_common + off("sock_common", "skc_v6_daddr").unwrap_or(0),
        sk_v6_rcv_saddr: sock_common + off("sock_common", "skc_v6_rcv_saddr").unwrap_or(0),
        sk_protocol: off("sock", "sk_protocol")?,
        task_mm: off("task_struct", "mm")?,
        mm_arg_start: off("mm_struct", "arg_start")?,
        mm_arg_end: off("mm_struct", "arg_end")?,
        task_real_cred: off("task_struct", "real_cred")?,
        cred_cap_effective: off("cred", "cap_effective")?,
        cred_cap_permitted: off("cred", "cap_permitted")?,
        task_thread_pid: off("task_struct", "thread_pid")?,
        pid_level: off("pid", "level")?,
        pid_numbers: off("pid", "numbers")?,
        upid_size: struct_size(&btf, "upid")?,
        bprm_filename: off("linux_binprm", "filename")?,
        task_ti_status: match (
            off("task_struct", "thread_info"),
            off("thread_info", "status"),
        ) {
            (Ok(ti), Ok(status)) => ti + status,
            _ => 0,
        },
        valid: 1,
    })
}

/// Whether the running kernel's `struct pt_regs` has the syscall number and argument
/// registers where the programs read them (`monitor_common::SYSCALL_NR_REG`,
/// `SYSCALL_ARG_REGS`).
pub fn check_syscall_regs(btf_path: &Path) -> Result<(), BtfError> {
    let btf = Btf::from_file(btf_path).map_err(|source| BtfError::Read {
        path: btf_path.display().to_string(),
        source,
    })?;
    let regs = SYSCALL_ARG_REG_NAMES
        .iter()
        .zip(SYSCALL_ARG_REGS)
        .chain(IA32_SYSCALL_ARG_REG_NAMES.iter().zip(IA32_SYSCALL_ARG_REGS))
        .chain(std::iter::once((&"orig_ax", SYSCALL_NR_REG)));
    for (name, want) in regs {
        let got = member_offset(&btf, "pt_regs", name)?;
        if got as usize != want {
            return Err(BtfError::Other(format!(
                "struct pt_regs has {name} at offset {got}, the programs read it at {want}: \
                 this kernel's architecture is not supported"
            )));
        }
    }
    Ok(())
}

/// Size in bytes of `struct strukt`.
fn struct_size(btf: &Btf, strukt: &str) -> Result<u32, BtfError> {
    let types = btf
        .resolve_types_by_name(strukt)
        .map_err(|_| BtfError::NoStruct(strukt.to_string()))?;
    types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s.size() as u32),
            _ => None,
        })
        .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))
}

/// Byte offset of `member` in `struct strukt`, looking through anonymous structs and unions.
fn member_offset(btf: &Btf, strukt: &str, member: &str) -> Result<u32, BtfError> {
    let types = btf
        .resolve_types_by_name(strukt)
        .map_err(|_| BtfError::NoStruct(strukt.to_string()))?;
    for t in types {
        if let Type::Struct(s) = t
            && let Some(bits) = find_member(btf, &s, member, 0)?
        {
            return Ok(bits / 8);
        }
    }
    Err(BtfError::NoMember {
        strukt: strukt.to_string(),
        member: member.to_string(),
    })
}

fn find_member(
    btf: &Btf,
    s: &btf_rs::Struct,
    member: &str,
    base_bits: u32,
) -> Result<Option<u32>, BtfError> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == member {
            return Ok(Some(base_bits + m.bit_offset()));
        }
        if name.is_empty() {
            // An anonymous struct or union: search inside it.
            let inner = btf
                .resolve_chained_type(m)
                .map_err(|e| BtfError::Other(e.to_string()))?;
            if let Type::Struct(inner) | Type::Union(inner) = resolve_qualifiers(btf, inner)?
                && let Some(found) = find_member(btf, &inner, member, base_bits + m.bit_offset())?
            {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn resolve_qualifiers(btf: &Btf, mut t: Type) -> Result<Type, BtfError> {
    for _ in 0..16 {
        t = match &t {
            Type::Typedef(_) | Type::Volatile(_) | Type::Const(_) | Type::Restrict(_) => {
                let bt: &dyn BtfType = t
                    .as_btf_type()
                    .ok_or_else(|| BtfError::Other("qualifier without a type".to_string()))?;
                btf.resolve_chained_type(bt)
                    .map_err(|e| BtfError::Other(e.to_string()))?
            }
            _ => return Ok(t),
        };
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_the_running_kernel_are_found() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but {} is missing: the kernel has no BTF",
                    path.display()
                );
            }
            eprintln!(
                "skipped: {} is missing (kernel without BTF)",
                path.display()
            );
            return;
        }
        let o = kernel_offsets(path).expect("offsets");
        check_syscall_regs(path).expect("x86_64 pt_regs layout");
        assert_eq!(o.valid, 1);
        // Fields every x86_64 kernel has far into task_struct, and sock_common at the start of
        // struct sock: family, ports and addresses in its first 64 bytes.
        assert!(o.task_tgid > 0 && o.task_real_parent > o.task_tgid);
        assert!(o.sk_daddr < 64 && o.sk_rcv_saddr == o.sk_daddr + 4);
        assert!(o.sk_num == o.sk_dport + 2);
        // struct upid { int nr; struct pid_namespace *ns; } on 64-bit.
        assert_eq!(o.upid_size, 16);
        assert!(o.mm_arg_end == o.mm_arg_start + 8);
        // x86's thread_info { flags, syscall_work, status } opens task_struct.
        assert_eq!(o.task_ti_status, 16);
    }
}
