//! The `blocklist` provider: plain-text files that nginx, ipset, Suricata or a
//! DNS sinkhole read.
//!
//! Per tenant, one file per verdict and indicator kind under the directory:
//! `<dir>/<tenant>/blocked-ip.txt`, `allowed-domain.txt`, `blocked-sha256.txt`, …,
//! one indicator a line, sorted. Beside each, a hidden `.blocked-ip.owners`
//! records which actions hold each line, so that canceling one of two actions on
//! the same IP leaves it blocked, executing an action twice adds it once, and an
//! entry whose `expirationDateTime` passed is dropped.
//!
//! Files are replaced atomically: written to a temporary file, fsynced, renamed
//! over the old one, and the directory fsynced. Concurrent changes to one file
//! are combined into one write; an advisory lock on `.lock` keeps two processes
//! sharing the directory from interleaving.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{CODE_PROVIDER_ERROR, Job, Provider, ProviderError, Reference};
use crate::domain::time::{self, to_micros};

/// The blocklist provider.
pub struct Blocklist {
    root: PathBuf,
    lists: Mutex<HashMap<PathBuf, Arc<ListFile>>>,
}

/// One list file and the changes waiting for it.
struct ListFile {
    dir: PathBuf,
    name: String,
    /// One writer at a time in this process, holding the owners as last
    /// written (read again when another process changed the file).
    writing: tokio::sync::Mutex<Option<Cached>>,
    /// Changes not written yet; the next writer takes them all, so changes
    /// that arrive while a write is under way are written together after it
    /// (a group commit) rather than the whole list once per change.
    pending: Mutex<Vec<Pending>>,
    /// Whether a change arrived since the last sweep. A sweep of a list that
    /// had none lets go of its cached owners, so memory holds only the lists
    /// being written, not every list ever touched; it keeps their stamp and
    /// earliest expiry, so later sweeps read the list only when one is due.
    changed: AtomicBool,
}

/// What a writer knows of a list: the size and time of the owners file as
/// last read or written, its earliest expiry, and the owners themselves
/// while the list is being written (`None` once a sweep found it idle; the
/// next change reads them again).
struct Cached {
    owners: Option<Owners>,
    stamp: Option<(u64, SystemTime)>,
    next_expiry: Option<i64>,
}

/// A change and who waits for it to be written.
type Pending = (Change, oneshot::Sender<Result<(), String>>);

#[derive(Debug, Clone)]
enum Change {
    Add {
        indicator: String,
        owner: Uuid,
        expires_at: Option<i64>,
    },
    Remove {
        indicator: String,
        owner: Uuid,
    },
}

/// The owners file: indicator → action id → expiry (microseconds) or none.
/// Stored as one line per holder, `indicator TAB action-id TAB expiry-or--`,
/// which writes and reads several times faster than JSON for lists of
/// tens of thousands.
#[derive(Debug, Default)]
struct Owners {
    entries: BTreeMap<String, BTreeMap<Uuid, Option<i64>>>,
}

impl Owners {
    const HEADER: &'static str = "# actiongate blocklist owners v1";

    fn parse(bytes: &[u8]) -> io::Result<Owners> {
        let text = std::str::from_utf8(bytes).map_err(io::Error::other)?;
        let bad = || io::Error::other("malformed owners file");
        let mut owners = Owners::default();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut fields = line.split('\t');
            let (Some(indicator), Some(owner), Some(expiry), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let owner: Uuid = owner.parse().map_err(|_| bad())?;
            let expiry = match expiry {
                "-" => None,
                n => Some(n.parse::<i64>().map_err(|_| bad())?),
            };
            owners
                .entries
                .entry(indicator.to_owned())
                .or_default()
                .insert(owner, expiry);
        }
        Ok(owners)
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 64 + 40);
        out.push_str(Owners::HEADER);
        out.push('\n');
        for (indicator, holders) in &self.entries {
            for (owner, expiry) in holders {
                out.push_str(indicator);
                out.push('\t');
                out.push_str(
                    owner
                        .as_hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()),
                );
                out.push('\t');
                match expiry {
                    Some(at) => out.push_str(&at.to_string()),
                    None => out.push('-'),
                }
                out.push('\n');
            }
        }
        out
    }
}

/// What `execute` returns: where the indicator was written.
#[derive(Debug, Serialize, Deserialize)]
struct BlocklistReference {
    file: String,
    indicator: String,
}

impl Blocklist {
    pub fn new(root: PathBuf) -> Blocklist {
        Blocklist {
            root,
            lists: Mutex::new(HashMap::new()),
        }
    }

    fn list(&self, tenant: &str, file: &str) -> Arc<ListFile> {
        self.list_in(&tenant_dir(tenant), file)
    }

    /// The list `file` in the tenant directory `dir_name`.
    fn list_in(&self, dir_name: &str, file: &str) -> Arc<ListFile> {
        let dir = self.root.join(dir_name);
        let key = dir.join(file);
        let mut lists = self.lists.lock().expect("blocklist registry");
        lists
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ListFile {
                    dir,
                    name: file.to_owned(),
                    writing: tokio::sync::Mutex::new(None),
                    pending: Mutex::new(Vec::new()),
                    changed: AtomicBool::new(false),
                })
            })
            .clone()
    }

    async fn change(&self, tenant: &str, file: &str, change: Change) -> Result<(), ProviderError> {
        let list = self.list(tenant, file);
        list.apply(change).await.map_err(|e| {
            ProviderError::transient(CODE_PROVIDER_ERROR, format!("writing {file}: {e}"))
        })
    }
}

/// `blocked-ip.txt`, `allowed-sha256.txt`, …
fn file_name(job: &Job) -> String {
    format!(
        "{}-{}.txt",
        job.definition.verdict.past_tense(),
        job.indicator.label()
    )
}

/// A directory name for a tenant id: letters, digits, `-` and `_` as they are,
/// anything else percent-encoded, so no tenant id can name a path outside.
fn tenant_dir(tenant: &str) -> String {
    let mut out = String::with_capacity(tenant.len());
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() { "%".to_owned() } else { out }
}

impl Provider for Blocklist {
    fn execute<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Reference, ProviderError>> {
        Box::pin(async move {
            let file = file_name(job);
            let indicator = job.indicator.to_string();
            self.change(
                &job.action.tenant_id,
                &file,
                Change::Add {
                    indicator: indicator.clone(),
                    owner: job.action.id,
                    expires_at: job.expires_at.map(to_micros),
                },
            )
            .await?;
            let reference = BlocklistReference { file, indicator };
            Ok(serde_json::to_string(&reference).ok())
        })
    }

    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let (file, indicator) =
                match reference.and_then(|r| serde_json::from_str::<BlocklistReference>(r).ok()) {
                    Some(r) => (r.file, r.indicator),
                    None => (file_name(job), job.indicator.to_string()),
                };
            self.change(
                &job.action.tenant_id,
                &file,
                Change::Remove {
                    indicator,
                    owner: job.action.id,
                },
            )
            .await
        })
    }

    /// Rewrites every list that holds an expired entry.
    fn maintain(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let root = self.root.clone();
            let found = tokio::task::spawn_blocking(move || owner_files(&root))
                .await
                .unwrap_or_default();
            for (tenant_dir, file) in found {
                let list = self.list_in(&tenant_dir, &file);
                if let Err(err) = list.flush(true).await {
                    warn!(file = %file, error = %err, "dropping expired blocklist entries");
                }
            }
        })
    }
}

/// `(tenant directory, list file name)` of every owners file under `root`.
fn owner_files(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(tenants) = fs::read_dir(root) else {
        return found;
    };
    for tenant in tenants.flatten() {
        let Ok(files) = fs::read_dir(tenant.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            if let Some(list) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".owners"))
            {
                found.push((
                    tenant.file_name().to_string_lossy().to_string(),
                    format!("{list}.txt"),
                ));
            }
        }
    }
    found
}

impl ListFile {
    /// Queues `change` and waits until a write that includes it is durable.
    async fn apply(&self, change: Change) -> Result<(), String> {
        let (done, written) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending changes")
            .push((change, done));
        self.changed.store(true, Ordering::Relaxed);
        self.flush(false).await?;
        written
            .await
            .map_err(|_| "the write was abandoned".to_owned())?
    }

    /// Writes every pending change (and drops expired entries) in one go. A
    /// writer that finds the queue empty has nothing to do: the one before it
    /// wrote its change too. With `sweep` it rewrites the list anyway if an
    /// entry expired.
    async fn flush(&self, sweep: bool) -> Result<(), String> {
        let mut cached = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock().expect("pending changes"));
        if batch.is_empty() && !sweep {
            return Ok(());
        }
        let changes: Vec<Change> = batch.iter().map(|(c, _)| c.clone()).collect();
        let dir = self.dir.clone();
        let name = self.name.clone();
        let previous = cached.take();
        let written =
            tokio::task::spawn_blocking(move || write_changes(&dir, &name, &changes, previous))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let idle = sweep && batch.is_empty() && !self.changed.swap(false, Ordering::Relaxed);
        let result = written.map(|mut now| {
            if idle {
                now.owners = None;
            }
            *cached = Some(now);
        });
        if let Err(err) = &result {
            warn!(file = %self.name, error = %err, "blocklist write failed");
        }
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
        result
    }
}

/// Applies `changes` to the list `name` in `dir`, under the directory's lock,
/// starting from `cached` when the owners file is still the one it describes.
/// Returns the owners as written.
fn write_changes(
    dir: &Path,
    name: &str,
    changes: &[Change],
    cached: Option<Cached>,
) -> io::Result<Cached> {
    fs::create_dir_all(dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    lock.lock()?;
    let owners_path = dir.join(format!(".{}.owners", name.trim_end_matches(".txt")));
    let on_disk = stamp(&owners_path);
    let now = to_micros(time::now());
    let current = cached.filter(|c| c.stamp.is_some() && c.stamp == on_disk);
    if changes.is_empty()
        && let Some(known) = &current
        && known.next_expiry.is_none_or(|at| at > now)
    {
        // A sweep, and nothing is due: the files stay as they are.
        return Ok(current.expect("checked above"));
    }
    let mut owners: Owners = match current.and_then(|c| c.owners) {
        Some(owners) => owners,
        None => match fs::read(&owners_path) {
            Ok(bytes) => Owners::parse(&bytes)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Owners::default(),
            Err(err) => return Err(err),
        },
    };
    let entries_before = owners.entries.len();
    let mut holders_changed = !changes.is_empty();
    for change in changes {
        match change {
            Change::Add {
                indicator,
                owner,
                expires_at,
            } => {
                owners
                    .entries
                    .entry(indicator.clone())
                    .or_default()
                    .insert(*owner, *expires_at);
            }
            Change::Remove { indicator, owner } => {
                if let Some(holders) = owners.entries.get_mut(indicator) {
                    holders.remove(owner);
                }
            }
        }
    }
    let mut next_expiry: Option<i64> = None;
    for holders in owners.entries.values_mut() {
        let held = holders.len();
        holders.retain(|_, expires| expires.is_none_or(|at| at > now));
        holders_changed |= holders.len() != held;
        for at in holders.values().flatten() {
            next_expiry = Some(next_expiry.map_or(*at, |next| next.min(*at)));
        }
    }
    owners.entries.retain(|_, holders| !holders.is_empty());
    if !holders_changed && owners.entries.len() == entries_before {
        return Ok(Cached {
            owners: Some(owners),
            stamp: on_disk,
            next_expiry,
        });
    }
    replace_file(&owners_path, owners.render().as_bytes())?;
    let mut lines = String::with_capacity(owners.entries.keys().map(|k| k.len() + 1).sum());
    for indicator in owners.entries.keys() {
        lines.push_str(indicator);
        lines.push('\n');
    }
    replace_file(&dir.join(name), lines.as_bytes())?;
    File::open(dir)?.sync_all()?;
    debug!(file = %name, entries = owners.entries.len(), changes = changes.len(), "blocklist written");
    Ok(Cached {
        owners: Some(owners),
        stamp: stamp(&owners_path),
        next_expiry,
    })
}

/// The size and modification time of a file, to tell whether another process
/// rewrote it (each write renames a new file into place, which changes both
/// or at least the time).
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it
/// over `path`: readers see the old file or the new one, never a part.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owners_file_round_trips() {
        let mut owners = Owners::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        owners
            .entries
            .entry("10.0.0.1".into())
            .or_default()
            .insert(a, None);
        owners
            .entries
            .entry("10.0.0.1".into())
            .or_default()
            .insert(b, Some(42));
        owners
            .entries
            .entry("https://x.example/a?b".into())
            .or_default()
            .insert(a, None);
        let text = owners.render();
        let back = Owners::parse(text.as_bytes()).unwrap();
        assert_eq!(back.entries, owners.entries);
        assert!(Owners::parse(b"10.0.0.1\tnot-a-uuid\t-\n").is_err());
    }

    #[tokio::test]
    async fn a_sweep_lets_go_of_the_owners_of_a_list_no_longer_written() {
        let dir = tempfile::tempdir().unwrap();
        let blocklist = Blocklist::new(dir.path().to_owned());
        let list = blocklist.list("contoso", "blocked-ip.txt");
        let add = Change::Add {
            indicator: "10.0.0.1".into(),
            owner: Uuid::now_v7(),
            expires_at: None,
        };
        list.apply(add).await.unwrap();
        assert!(list.writing.lock().await.is_some(), "kept while written");
        list.flush(true).await.unwrap();
        assert!(
            list.writing.lock().await.is_some(),
            "changed since the last sweep"
        );
        list.flush(true).await.unwrap();
        assert!(
            list.writing
                .lock()
                .await
                .as_ref()
                .is_some_and(|c| c.owners.is_none()),
            "idle since the last sweep"
        );

        assert_eq!(
            lines(&dir.path().join("contoso"), "blocked-ip.txt"),
            ["10.0.0.1"]
        );
        // The next change reads the owners again and keeps the first holder.
        let remove_other = Change::Remove {
            indicator: "10.0.0.1".into(),
            owner: Uuid::now_v7(),
        };
        list.apply(remove_other).await.unwrap();
        assert_eq!(
            lines(&dir.path().join("contoso"), "blocked-ip.txt"),
            ["10.0.0.1"]
        );
    }

    #[test]
    fn a_sweep_reads_a_list_only_when_an_entry_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let past = to_micros(time::now()) - 1;
        // An owners file holding an entry that has expired, written behind
        // the summary's back but with the summary's stamp.
        let mut owners = Owners::default();
        owners
            .entries
            .entry("10.0.0.1".into())
            .or_default()
            .insert(Uuid::now_v7(), Some(past));
        let owners_path = dir.path().join(".blocked-ip.owners");
        fs::write(&owners_path, owners.render()).unwrap();
        fs::write(dir.path().join("blocked-ip.txt"), "10.0.0.1\n").unwrap();
        let summary = |next_expiry| Cached {
            owners: None,
            stamp: stamp(&owners_path),
            next_expiry,
        };
        let kept = write_changes(dir.path(), "blocked-ip.txt", &[], Some(summary(None))).unwrap();
        assert!(kept.owners.is_none(), "not read: nothing was due");
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.1"]);
        write_changes(dir.path(), "blocked-ip.txt", &[], Some(summary(Some(past)))).unwrap();
        assert!(
            lines(dir.path(), "blocked-ip.txt").is_empty(),
            "read and swept once an entry was due"
        );
    }

    #[test]
    fn tenant_ids_cannot_escape_the_directory() {
        assert_eq!(tenant_dir("contoso-01"), "contoso-01");
        assert_eq!(tenant_dir("../etc"), "%2E%2E%2Fetc");
        assert_eq!(tenant_dir(""), "%");
    }

    fn lines(dir: &Path, name: &str) -> Vec<String> {
        fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn entries_are_sorted_counted_by_owner_and_dropped_when_expired() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let add = |indicator: &str, owner, expires_at| Change::Add {
            indicator: indicator.into(),
            owner,
            expires_at,
        };
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.2", a, None), add("10.0.0.1", a, None)],
            None,
        )
        .unwrap();
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.1", a, None), add("10.0.0.1", b, None)],
            None,
        )
        .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.2"]
        );

        let remove = |indicator: &str, owner| Change::Remove {
            indicator: indicator.into(),
            owner,
        };
        write_changes(dir.path(), "blocked-ip.txt", &[remove("10.0.0.1", a)], None).unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.2"],
            "b still holds it"
        );
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[remove("10.0.0.1", b), remove("10.0.0.9", b)],
            None,
        )
        .unwrap();
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.2"]);

        let past = to_micros(time::now()) - 1;
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.3", b, Some(past))],
            None,
        )
        .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.2"],
            "an expired entry is not written"
        );
        // Starting from what the last write returned gives the same list as
        // reading the files, and a file changed behind its back is read again.
        let cached = write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.4", a, None)],
            None,
        )
        .unwrap();
        let cached = write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.5", a, None)],
            Some(cached),
        )
        .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.2", "10.0.0.4", "10.0.0.5"]
        );
        let other =
            write_changes(dir.path(), "blocked-ip.txt", &[remove("10.0.0.4", a)], None).unwrap();
        drop(other);
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.6", a, None)],
            Some(cached),
        )
        .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.2", "10.0.0.5", "10.0.0.6"]
        );

        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
