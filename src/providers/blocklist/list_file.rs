//! Writing one list file: its changes are queued and written together (a
//! group commit), under an advisory lock on the directory's `.lock`. A write
//! appends the records of its changes to the owners journal in one write and
//! fdatasyncs it, then, if the indicators listed changed, replaces the list
//! atomically (a temporary file, fsync, rename, then the directory fsynced).
//! The journal is compacted the same way once it has grown well past its
//! holders. A writer keeps the owners in memory while the journal's stamp
//! (size, time, inode) says no other process wrote it since.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tokio::sync::oneshot;
use tracing::{debug, warn};
use uuid::Uuid;

use super::owners::{Effect, Journal, owners_path, push_added, push_removed};
use crate::domain::time::{self, to_micros};

/// A journal is compacted once it holds more than this many records per
/// holder, plus [`COMPACT_FLOOR`]: its size stays within a small multiple of
/// the list's, and a compaction, which costs what the list holds, comes once
/// per that many records appended.
const COMPACT_FACTOR: usize = 2;
/// Records a journal may hold beyond [`COMPACT_FACTOR`] per holder, so that a
/// short list is not compacted at every write.
const COMPACT_FLOOR: usize = 4096;

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

/// What a writer knows of a list: the stamp of the owners file as last read
/// or written, its earliest expiry, and the owners themselves while the list
/// is being written (`None` once a sweep found it idle; the next change reads
/// them again).
struct Cached {
    journal: Option<Journal>,
    stamp: Option<Stamp>,
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
                now.journal = None;
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
///
/// The records of what changed are appended to the owners journal and made
/// durable first; the list is replaced after, and only when its indicators
/// changed. Owners read from disk may be ahead of the list (a crash, or a
/// write that failed, between the two): the list is then compared with them
/// and replaced if it differs, so the retried change, or the next sweep,
/// brings it back in line.
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
    let journal_path = owners_path(dir, name);
    let on_disk = stamp(&journal_path);
    let now = to_micros(time::now());
    let current = cached.filter(|c| c.stamp.is_some() && c.stamp == on_disk);
    if changes.is_empty()
        && let Some(known) = &current
        && known.next_expiry.is_none_or(|at| at > now)
    {
        // A sweep, and nothing is due: the files stay as they are.
        return Ok(current.expect("checked above"));
    }
    let (mut journal, from_disk) = match current.and_then(|c| c.journal) {
        Some(journal) => (journal, false),
        None => (Journal::read(&journal_path)?, true),
    };

    let mut records = String::new();
    let mut count = 0;
    let mut listed = false;
    for change in changes {
        let effect = match change {
            Change::Add {
                indicator,
                owner,
                expires_at,
            } => {
                let effect = journal.owners.add(indicator, *owner, *expires_at);
                if effect != Effect::None {
                    push_added(&mut records, indicator, *owner, *expires_at);
                }
                effect
            }
            Change::Remove { indicator, owner } => {
                let effect = journal.owners.remove(indicator, *owner);
                if effect != Effect::None {
                    push_removed(&mut records, indicator, *owner);
                }
                effect
            }
        };
        count += usize::from(effect != Effect::None);
        listed |= effect == Effect::Listed;
    }
    listed |= journal.owners.drop_expired(now, |indicator, owner| {
        push_removed(&mut records, indicator, owner);
        count += 1;
    });

    if count > 0 {
        let holders = journal.owners.holders();
        if journal.appendable && journal.records + count <= COMPACT_FACTOR * holders + COMPACT_FLOOR
        {
            append(&journal_path, records.as_bytes())?;
            journal.records += count;
        } else {
            replace_file(&journal_path, journal.owners.render().as_bytes())?;
            // Durable before the list that follows from it is replaced.
            sync_dir(dir)?;
            journal.records = holders;
            journal.appendable = true;
        }
    }
    if listed || from_disk {
        let list_path = dir.join(name);
        let mut lines =
            String::with_capacity(journal.owners.indicators().map(|i| i.len() + 1).sum());
        for indicator in journal.owners.indicators() {
            lines.push_str(indicator);
            lines.push('\n');
        }
        let stale = listed
            || match fs::read(&list_path) {
                Ok(bytes) => bytes != lines.as_bytes(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => true,
                Err(err) => return Err(err),
            };
        if stale {
            replace_file(&list_path, lines.as_bytes())?;
            sync_dir(dir)?;
        }
    }
    debug!(
        file = %name,
        entries = journal.owners.listed(),
        changes = changes.len(),
        records = count,
        "blocklist written"
    );
    Ok(Cached {
        next_expiry: journal.owners.next_expiry(),
        journal: Some(journal),
        stamp: stamp(&journal_path),
    })
}

/// What tells whether another process wrote a file since: its size (an
/// append grows it), modification time and, where there is one, inode (a
/// compaction renames a new file into place).
type Stamp = (u64, SystemTime, u64);

/// The [`Stamp`] of the file at `path`, if there is one.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.len(), meta.modified().ok()?, inode))
}

/// Appends `bytes` (whole records) to the journal at `path` in one write and
/// makes them durable. The file exists: a journal is created by
/// [`replace_file`].
fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().append(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
    use super::super::owners::Owners;
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
                .is_some_and(|c| c.journal.is_none()),
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
        owners.add("10.0.0.1", Uuid::now_v7(), Some(past));
        let owners_path = dir.path().join(".blocked-ip.owners");
        fs::write(&owners_path, owners.render()).unwrap();
        fs::write(dir.path().join("blocked-ip.txt"), "10.0.0.1\n").unwrap();
        let summary = |next_expiry| Cached {
            journal: None,
            stamp: stamp(&owners_path),
            next_expiry,
        };
        let kept = write_changes(dir.path(), "blocked-ip.txt", &[], Some(summary(None))).unwrap();
        assert!(kept.journal.is_none(), "not read: nothing was due");
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

    fn add(indicator: &str, owner: Uuid, expires_at: Option<i64>) -> Change {
        Change::Add {
            indicator: indicator.into(),
            owner,
            expires_at,
        }
    }

    fn remove(indicator: &str, owner: Uuid) -> Change {
        Change::Remove {
            indicator: indicator.into(),
            owner,
        }
    }

    fn journal(dir: &Path) -> String {
        fs::read_to_string(dir.join(".blocked-ip.owners")).unwrap()
    }

    /// The list's file as it is now: a replacement makes a new one.
    fn list_stamp(dir: &Path) -> Option<Stamp> {
        stamp(&dir.join("blocked-ip.txt"))
    }

    #[test]
    fn a_write_appends_the_records_of_its_changes_and_replaces_the_list_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let write = |changes: &[Change], cached| {
            write_changes(dir.path(), "blocked-ip.txt", changes, cached).unwrap()
        };
        let cached = write(&[add("10.0.0.1", a, None), add("10.0.0.2", a, None)], None);
        let first = journal(dir.path());
        let listed = list_stamp(dir.path());

        let cached = write(&[add("10.0.0.1", b, Some(i64::MAX))], Some(cached));
        let second = journal(dir.path());
        assert_eq!(
            second.strip_prefix(first.as_str()),
            Some(format!("+\t10.0.0.1\t{b}\t{}\n", i64::MAX).as_str()),
            "one record appended"
        );
        assert_eq!(list_stamp(dir.path()), listed, "the list did not change");

        let cached = write(
            &[remove("10.0.0.1", a), add("10.0.0.2", a, None)],
            Some(cached),
        );
        assert_eq!(
            journal(dir.path()).strip_prefix(second.as_str()),
            Some(format!("-\t10.0.0.1\t{a}\n").as_str()),
            "an add already held is not recorded again"
        );
        assert_eq!(list_stamp(dir.path()), listed, "b still holds 10.0.0.1");

        write(&[remove("10.0.0.1", b)], Some(cached));
        assert_ne!(list_stamp(dir.path()), listed);
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.2"]);
    }

    #[test]
    fn entries_dropped_at_their_expiry_are_recorded_as_removals() {
        let dir = tempfile::tempdir().unwrap();
        let a = Uuid::now_v7();
        let past = to_micros(time::now()) - 1;
        let mut text = "# actiongate blocklist owners v2\n".to_owned();
        push_added(&mut text, "10.0.0.1", a, Some(past));
        push_added(&mut text, "10.0.0.2", a, None);
        fs::write(dir.path().join(".blocked-ip.owners"), &text).unwrap();
        fs::write(dir.path().join("blocked-ip.txt"), "10.0.0.1\n10.0.0.2\n").unwrap();

        let swept = write_changes(dir.path(), "blocked-ip.txt", &[], None).unwrap();
        assert_eq!(swept.next_expiry, None);
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.2"]);
        assert_eq!(
            journal(dir.path()),
            format!("{text}-\t10.0.0.1\t{a}\n"),
            "the lapse appended as a removal"
        );
        let read = Journal::read(&dir.path().join(".blocked-ip.owners")).unwrap();
        assert_eq!(read.owners.indicators().collect::<Vec<_>>(), ["10.0.0.2"]);
        assert_eq!(read.records, 3);
    }

    #[test]
    fn an_owners_file_of_the_earlier_format_is_kept_and_rewritten_as_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        fs::write(
            dir.path().join(".blocked-ip.owners"),
            format!("# actiongate blocklist owners v1\n10.0.0.1\t{a}\t-\n10.0.0.2\t{a}\t-\n"),
        )
        .unwrap();
        fs::write(dir.path().join("blocked-ip.txt"), "10.0.0.1\n10.0.0.2\n").unwrap();
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[remove("10.0.0.1", a), add("10.0.0.3", b, None)],
            None,
        )
        .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.2", "10.0.0.3"]
        );
        let text = journal(dir.path());
        assert!(
            text.starts_with("# actiongate blocklist owners v2\n"),
            "{text}"
        );
        let read = Journal::read(&dir.path().join(".blocked-ip.owners")).unwrap();
        assert!(read.appendable);
        assert_eq!((read.records, read.owners.holders()), (2, 2));
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_the_journal_compacted_rather_than_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.1", a, None)],
            None,
        )
        .unwrap();
        // An append a crash cut short: its change was never acknowledged.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(".blocked-ip.owners"))
            .unwrap();
        file.write_all(format!("+\t10.0.0.2\t{a}").as_bytes())
            .unwrap();
        drop(file);

        write_changes(
            dir.path(),
            "blocked-ip.txt",
            &[add("10.0.0.3", b, None)],
            None,
        )
        .unwrap();
        let text = journal(dir.path());
        assert_eq!(
            text,
            format!("# actiongate blocklist owners v2\n+\t10.0.0.1\t{a}\t-\n+\t10.0.0.3\t{b}\t-\n"),
            "compacted: no torn record left in the middle"
        );
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.3"]
        );
        assert!(
            Journal::read(&dir.path().join(".blocked-ip.owners"))
                .unwrap()
                .appendable
        );
    }

    #[test]
    fn a_journal_far_longer_than_its_holders_is_compacted_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let keep: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut cached = Some(
            write_changes(
                dir.path(),
                "blocked-ip.txt",
                &keep
                    .iter()
                    .map(|k| add("10.0.0.1", *k, None))
                    .collect::<Vec<_>>(),
                None,
            )
            .unwrap(),
        );
        let churn = Uuid::now_v7();
        let mut longest = 0;
        let mut compactions = 0;
        for round in 0..40 {
            let batch: Vec<Change> = (0..250)
                .flat_map(|i| {
                    let indicator = format!("10.1.{round}.{i}");
                    [add(&indicator, churn, None), remove(&indicator, churn)]
                })
                .collect();
            let before = fs::metadata(dir.path().join(".blocked-ip.owners"))
                .unwrap()
                .len();
            cached = Some(write_changes(dir.path(), "blocked-ip.txt", &batch, cached).unwrap());
            let records = cached.as_ref().unwrap().journal.as_ref().unwrap().records;
            let after = fs::metadata(dir.path().join(".blocked-ip.owners"))
                .unwrap()
                .len();
            compactions += usize::from(after < before);
            longest = longest.max(records);
        }
        assert!(compactions >= 2, "{compactions} compactions");
        assert!(
            longest <= COMPACT_FACTOR * 3 + COMPACT_FLOOR + 500,
            "{longest} records"
        );
        let read = Journal::read(&dir.path().join(".blocked-ip.owners")).unwrap();
        assert_eq!(read.owners.holders(), 3);
        assert_eq!(read.owners.indicators().collect::<Vec<_>>(), ["10.0.0.1"]);
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.1"]);
    }

    #[tokio::test]
    async fn a_change_retried_after_a_crash_between_journal_and_list_brings_the_list_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let list = ListFile::new(dir.path().to_owned(), "blocked-ip.txt");
        list.apply_all(vec![add("10.0.0.1", a, None), add("10.0.0.2", b, None)])
            .await
            .unwrap();
        // The journal records an add and a removal, and the crash came before
        // the list was replaced: neither action was acknowledged.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(".blocked-ip.owners"))
            .unwrap();
        file.write_all(format!("+\t10.0.0.3\t{a}\t-\n-\t10.0.0.2\t{b}\n").as_bytes())
            .unwrap();
        drop(file);
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.2"]
        );

        // The writer that was running notices the journal changed; so does a
        // process started afterwards. Either way the retried change, already
        // in the journal, still brings the list in line.
        list.apply_all(vec![add("10.0.0.3", a, None)])
            .await
            .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.3"]
        );

        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(".blocked-ip.owners"))
            .unwrap();
        file.write_all(format!("+\t10.0.0.4\t{b}\t-\n").as_bytes())
            .unwrap();
        drop(file);
        let restarted = ListFile::new(dir.path().to_owned(), "blocked-ip.txt");
        restarted
            .apply_all(vec![add("10.0.0.4", b, None)])
            .await
            .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
        );
    }

    #[tokio::test]
    async fn two_processes_sharing_a_directory_see_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let first = ListFile::new(dir.path().to_owned(), "blocked-ip.txt");
        let second = ListFile::new(dir.path().to_owned(), "blocked-ip.txt");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        first
            .apply_all(vec![add("10.0.0.1", a, None)])
            .await
            .unwrap();
        second
            .apply_all(vec![add("10.0.0.2", b, None)])
            .await
            .unwrap();
        first
            .apply_all(vec![add("10.0.0.3", a, None)])
            .await
            .unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        // b's hold, written by the other process, keeps 10.0.0.2 listed.
        first
            .apply_all(vec![add("10.0.0.2", a, None)])
            .await
            .unwrap();
        second.apply_all(vec![remove("10.0.0.2", b)]).await.unwrap();
        assert_eq!(
            lines(dir.path(), "blocked-ip.txt"),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        first.apply_all(vec![remove("10.0.0.2", a)]).await.unwrap();
        second.apply_all(vec![remove("10.0.0.1", a)]).await.unwrap();
        assert_eq!(lines(dir.path(), "blocked-ip.txt"), ["10.0.0.3"]);
    }

    #[tokio::test]
    async fn the_list_always_holds_exactly_the_indicators_held() {
        let dir = tempfile::tempdir().unwrap();
        let writers = [
            ListFile::new(dir.path().to_owned(), "blocked-ip.txt"),
            ListFile::new(dir.path().to_owned(), "blocked-ip.txt"),
        ];
        let owners: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let mut held: std::collections::BTreeSet<(String, Uuid)> = Default::default();
        // A fixed pseudo-random walk (xorshift) over adds and removals of a
        // few indicators by a few owners, written by one process or the other.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..60 {
            let mut batch = Vec::new();
            for _ in 0..(1 + next(6)) {
                let indicator = format!("10.0.0.{}", next(8));
                let owner = owners[next(4) as usize];
                if next(2) == 0 {
                    held.insert((indicator.clone(), owner));
                    batch.push(add(&indicator, owner, None));
                } else {
                    held.remove(&(indicator.clone(), owner));
                    batch.push(remove(&indicator, owner));
                }
            }
            writers[next(2) as usize].apply_all(batch).await.unwrap();
            let expected: std::collections::BTreeSet<String> = held
                .iter()
                .map(|(indicator, _)| indicator.clone())
                .collect();
            assert_eq!(
                lines(dir.path(), "blocked-ip.txt"),
                expected.into_iter().collect::<Vec<_>>()
            );
        }
        let read = Journal::read(&dir.path().join(".blocked-ip.owners")).unwrap();
        assert_eq!(read.owners.holders(), held.len());
    }
}
