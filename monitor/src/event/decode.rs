//! Decoding a ring-buffer record into plain data. Everything here treats the bytes as
//! untrusted: a short or inconsistent record is an error, never a panic.

use monitor_common::{ExecInfo, ForkInfo, ItemHeader, RecordHeader, SockTuple, item};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("item {index} runs past the end of the record")]
    ItemOverrun { index: u16 },
}

/// One record, its items taken apart.
#[derive(Clone, Debug, Default)]
pub struct RawRecord {
    pub hdr: Header,
    pub path: Option<String>,
    pub path2: Option<String>,
    pub path3: Option<String>,
    pub argv: Option<Vec<String>>,
    pub sockaddr: Option<Vec<u8>>,
    pub tuple: Option<SockTuple>,
    pub fork: Option<ForkInfo>,
    /// `struct open_how`: flags, mode, resolve.
    pub open_how: Option<[u64; 3]>,
    pub raw: Option<Vec<u8>>,
    /// The enforcement table entry that matched in the kernel.
    pub enforce_rule: Option<u32>,
    /// Credentials and namespace pid after a successful exec.
    pub exec_info: Option<ExecInfo>,
}

/// The record header, with comm as a string.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub ts_ns: u64,
    pub latency_ns: u64,
    pub cgroup_id: u64,
    pub ret: i64,
    pub args: [u64; 6],
    pub kind: u16,
    pub flags: u16,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub tty: u32,
    pub comm: String,
}

const HDR: usize = std::mem::size_of::<RecordHeader>();
const ITEM: usize = std::mem::size_of::<ItemHeader>();

fn read<T: Copy>(bytes: &[u8], at: usize) -> Option<T> {
    let end = at.checked_add(std::mem::size_of::<T>())?;
    let b = bytes.get(at..end)?;
    // SAFETY: `b` has exactly size_of::<T>() bytes, T is plain repr(C) data (Pod), read
    // unaligned.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const T) })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn decode(bytes: &[u8]) -> Result<RawRecord, DecodeError> {
    let h: RecordHeader = read(bytes, 0).ok_or(DecodeError::Short(bytes.len()))?;
    let comm_len = h.comm.iter().position(|&c| c == 0).unwrap_or(h.comm.len());
    let mut rec = RawRecord {
        hdr: Header {
            ts_ns: h.ts_ns,
            latency_ns: h.latency_ns,
            cgroup_id: h.cgroup_id,
            ret: h.ret,
            args: h.args,
            kind: h.kind,
            flags: h.flags,
            cpu: h.cpu,
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            loginuid: h.loginuid,
            tty: h.tty,
            comm: text(&h.comm[..comm_len]),
        },
        ..RawRecord::default()
    };
    let mut at = HDR;
    for index in 0..h.nitems {
        let ih: ItemHeader = read(bytes, at).ok_or(DecodeError::ItemOverrun { index })?;
        let start = at + ITEM;
        let data = bytes
            .get(start..start + usize::from(ih.len))
            .ok_or(DecodeError::ItemOverrun { index })?;
        match ih.tag {
            item::PATH => rec.path = Some(text(data)),
            item::PATH2 => rec.path2 = Some(text(data)),
            item::PATH3 => rec.path3 = Some(text(data)),
            item::ARGV => {
                let mut args: Vec<String> = data.split(|&b| b == 0).map(text).collect();
                // The last argument ends with a NUL, which leaves an empty tail.
                if data.last() == Some(&0) {
                    args.pop();
                }
                rec.argv = Some(args);
            }
            item::SOCKADDR => rec.sockaddr = Some(data.to_vec()),
            item::TUPLE => rec.tuple = read(data, 0),
            item::FORK => rec.fork = read(data, 0),
            item::OPEN_HOW => {
                if let (Some(f), Some(m), Some(r)) = (read(data, 0), read(data, 8), read(data, 16))
                {
                    rec.open_how = Some([f, m, r]);
                }
            }
            item::RAW => rec.raw = Some(data.to_vec()),
            item::ENFORCE => rec.enforce_rule = read(data, 0),
            item::EXEC_INFO => rec.exec_info = read(data, 0),
            _ => {}
        }
        at = start + usize::from(ih.len);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u16, items: &[(u16, &[u8])]) -> Vec<u8> {
        // SAFETY: all-zero is a valid RecordHeader.
        let mut h: RecordHeader = unsafe { std::mem::zeroed() };
        h.kind = kind;
        h.pid = 42;
        h.comm[..4].copy_from_slice(b"bash");
        h.nitems = items.len() as u16;
        let mut out = vec![0u8; HDR];
        // SAFETY: out has HDR bytes.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr() as *mut RecordHeader, h) };
        for (tag, data) in items {
            out.extend_from_slice(&tag.to_ne_bytes());
            out.extend_from_slice(&(data.len() as u16).to_ne_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn items_are_taken_apart() {
        let bytes = record(
            1,
            &[(item::PATH, b"/bin/ls"), (item::ARGV, b"ls\0-l\0/tmp\0")],
        );
        let r = decode(&bytes).expect("decodes");
        assert_eq!(r.hdr.pid, 42);
        assert_eq!(r.hdr.comm, "bash");
        assert_eq!(r.path.as_deref(), Some("/bin/ls"));
        assert_eq!(
            r.argv,
            Some(vec!["ls".to_string(), "-l".to_string(), "/tmp".to_string()])
        );
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let bytes = record(1, &[(item::PATH, b"/bin/ls")]);
        for cut in 0..bytes.len() {
            let r = decode(&bytes[..cut]);
            assert!(r.is_err(), "cut at {cut} should fail");
        }
        assert_eq!(decode(&[]).err(), Some(DecodeError::Short(0)));
    }
}
