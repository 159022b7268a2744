//! What the bench reads from Linux's `/proc`: a process's resident memory and
//! its open-file limit. Reading text files keeps the bench free of libc
//! bindings; the limit itself is raised with `ulimit -n` before the run.

/// The resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    parse_vm_rss(&text).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// The open-file limit of a process: (soft, hard), `None` meaning unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl FileLimit {
    /// Whether at least `needed` files may be open.
    pub fn allows(&self, needed: u64) -> bool {
        self.soft.is_none_or(|soft| soft >= needed)
    }
}

impl std::fmt::Display for FileLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |n| n.to_string());
        write!(f, "soft {}, hard {}", show(self.soft), show(self.hard))
    }
}

/// The open-file limit of `pid`, or of this process when `None`.
pub fn file_limit(pid: Option<u32>) -> Result<FileLimit, String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/limits"),
        None => "/proc/self/limits".to_owned(),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    parse_file_limit(&text).ok_or_else(|| format!("{path} has no 'Max open files' line"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_file_limit(limits: &str) -> Option<FileLimit> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace();
    let parse = |v: &str| -> Option<Option<u64>> {
        if v == "unlimited" {
            Some(None)
        } else {
            v.parse().ok().map(Some)
        }
    };
    Some(FileLimit {
        soft: parse(values.next()?)?,
        hard: parse(values.next()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_status() {
        let status = "Name:\tactiongate\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(51234));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        let own = resident_kib(std::process::id()).unwrap();
        assert!(own > 0);
    }

    #[test]
    fn file_limits_are_read_with_unlimited() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        let limit = parse_file_limit(limits).unwrap();
        assert_eq!(limit.soft, Some(1024));
        assert_eq!(limit.hard, Some(524288));
        assert!(limit.allows(1024));
        assert!(!limit.allows(1025));
        let open = FileLimit {
            soft: None,
            hard: None,
        };
        assert!(open.allows(u64::MAX));
        assert!(file_limit(None).is_ok());
    }
}
