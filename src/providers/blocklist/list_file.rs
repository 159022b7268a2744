//! Writing one list file: its changes are queued and written together (a
//! group commit), under an advisory lock on the directory's `.lock`, by
//! replacing the list and its owners file atomically (a temporary file,
//! fsync, rename, then the directory fsynced).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tokio::sync::oneshot;
use tracing::{debug, warn};
use uuid::Uuid;

use super::owners::{Owners, owners_path};
use crate::domain::time::{self, to_micros};

/// One list file and the changes waiting for it.
pub(super) struct ListFile {
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

/// Changes and who waits for them to be written.
type Pending = (Vec<Change>, oneshot::Sender<Result<(), String>>);

#[derive(Debug, Clone)]
pub(super) enum Change {
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

impl ListFile {
    /// The list `name` in `dir`, nothing pending.
    pub(super) fn new(dir: PathBuf, name: &str) -> ListFile {
        ListFile {
            dir,
            name: name.to_owned(),
            writing: tokio::sync::Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
        }
    }

    /// Queues `changes` (one, or a batch of the executor's) and waits until
    /// the one write that includes them all is durable.
    pub(super) async fn apply_all(&self, changes: Vec<Change>) -> Result<(), String> {
        let (done, written) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending changes")
            .push((changes, done));
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
    pub(super) async fn flush(&self, sweep: bool) -> Result<(), String> {
        let mut cached = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock().expect("pending changes"));
        if batch.is_empty() && !sweep {
            return Ok(());
        }
        let (changes, waiting): (Vec<Vec<Change>>, Vec<_>) = batch.into_iter().unzip();
        let changes: Vec<Change> = changes.into_iter().flatten().collect();
        let dir = self.dir.clone();
        let name = self.name.clone();
        let previous = cached.take();
        let written =
            tokio::task::spawn_blocking(move || write_changes(&dir, &name, &changes, previous))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let idle = sweep && waiting.is_empty() && !self.changed.swap(false, Ordering::Relaxed);
        let result = written.map(|mut now| {
            if idle {
                now.owners = None;
            }
            *cached = Some(now);
        });
        if let Err(err) = &result {
            warn!(file = %self.name, error = %err, "blocklist write failed");
        }
        for done in waiting {
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
    let owners_path = owners_path(dir, name);
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

    #[tokio::test]
    async fn a_sweep_lets_go_of_the_owners_of_a_list_no_longer_written() {
        let dir = tempfile::tempdir().unwrap();
        let list = ListFile::new(dir.path().join("contoso"), "blocked-ip.txt");
        let add = Change::Add {
            indicator: "10.0.0.1".into(),
            owner: Uuid::now_v7(),
            expires_at: None,
        };
        list.apply_all(vec![add]).await.unwrap();
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
        list.apply_all(vec![remove_other]).await.unwrap();
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
