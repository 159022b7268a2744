//! The owners file beside each list: which actions hold each indicator, and
//! until when, so that an indicator stays while any action holds it and lapses
//! at its expiry.
//!
//! The list `blocked-ip.txt` has its owners in `.blocked-ip.owners`, a journal
//! only actiongate reads. Each write appends the records of its changes, so a
//! write costs what its batch holds, not what the list holds:
//!
//! ```text
//! # actiongate blocklist owners v2
//! +<TAB>indicator<TAB>action-id<TAB>expiry      the action holds the indicator
//! -<TAB>indicator<TAB>action-id                 the action no longer holds it
//! ```
//!
//! The expiry is in microseconds since the epoch, or `-` for none. Records are
//! replayed in order: an add sets the holder (a later add changes its expiry),
//! a removal takes it away; an entry dropped at its expiry is a removal. The
//! journal is compacted (rewritten whole, holders only, and renamed into
//! place) once it holds many more records than holders, so its size follows
//! the list's.
//!
//! A record without its newline is the tail of an append a crash cut short:
//! it is ignored, and the next write compacts the journal rather than append
//! after it. The first write to a file of the earlier format — the header
//! `# actiongate blocklist owners v1` and one holder a line,
//! `indicator TAB action-id TAB expiry` — rewrites it as a journal.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// How a list file's name ends.
const LIST_SUFFIX: &str = ".txt";
/// How an owners file's name ends.
const OWNERS_SUFFIX: &str = ".owners";
/// The first line of a journal.
const HEADER: &str = "# actiongate blocklist owners v2";

/// Who holds each indicator: indicator → action id → expiry (microseconds)
/// or none.
#[derive(Debug, Default)]
pub(super) struct Owners {
    entries: BTreeMap<String, BTreeMap<Uuid, Option<i64>>>,
    /// Holders over all indicators.
    holders: usize,
    /// No holder expires before this (an entry removed since may have set
    /// it early; a sweep then finds nothing and sets it right).
    next_expiry: Option<i64>,
}

/// What a change did to the owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Nothing: the holder was already there with that expiry, or was not
    /// there to remove.
    None,
    /// The holders changed, not the indicators listed.
    Holders,
    /// An indicator joined or left the list.
    Listed,
}

impl Owners {
    /// Makes `owner` hold `indicator` until `expiry`.
    pub(super) fn add(&mut self, indicator: &str, owner: Uuid, expiry: Option<i64>) -> Effect {
        let effect = match self.entries.get_mut(indicator) {
            Some(holders) => match holders.insert(owner, expiry) {
                Some(before) if before == expiry => return Effect::None,
                Some(_) => Effect::Holders,
                None => {
                    self.holders += 1;
                    Effect::Holders
                }
            },
            None => {
                self.entries
                    .insert(indicator.to_owned(), BTreeMap::from([(owner, expiry)]));
                self.holders += 1;
                Effect::Listed
            }
        };
        if let Some(at) = expiry {
            self.next_expiry = Some(self.next_expiry.map_or(at, |next| next.min(at)));
        }
        effect
    }

    /// Lets go of `owner`'s hold on `indicator`.
    pub(super) fn remove(&mut self, indicator: &str, owner: Uuid) -> Effect {
        let Some(holders) = self.entries.get_mut(indicator) else {
            return Effect::None;
        };
        if holders.remove(&owner).is_none() {
            return Effect::None;
        }
        self.holders -= 1;
        if holders.is_empty() {
            self.entries.remove(indicator);
            Effect::Listed
        } else {
            Effect::Holders
        }
    }

    /// Drops every holder whose expiry is at or before `now`, calling
    /// `dropped` for each. Whether an indicator left the list. Looks at the
    /// holders only when one may be due.
    pub(super) fn drop_expired(&mut self, now: i64, mut dropped: impl FnMut(&str, Uuid)) -> bool {
        if self.next_expiry.is_none_or(|at| at > now) {
            return false;
        }
        let mut next_expiry: Option<i64> = None;
        let mut holders_left = 0;
        let before = self.entries.len();
        self.entries.retain(|indicator, holders| {
            holders.retain(|owner, expires| {
                let keep = expires.is_none_or(|at| at > now);
                if !keep {
                    dropped(indicator, *owner);
                }
                keep
            });
            for at in holders.values().flatten() {
                next_expiry = Some(next_expiry.map_or(*at, |next| next.min(*at)));
            }
            holders_left += holders.len();
            !holders.is_empty()
        });
        self.holders = holders_left;
        self.next_expiry = next_expiry;
        self.entries.len() != before
    }

    /// The indicators held, sorted.
    pub(super) fn indicators(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many indicators are held.
    pub(super) fn listed(&self) -> usize {
        self.entries.len()
    }

    /// How many (indicator, action) holds there are.
    pub(super) fn holders(&self) -> usize {
        self.holders
    }

    /// No holder expires before this.
    pub(super) fn next_expiry(&self) -> Option<i64> {
        self.next_expiry
    }

    /// The journal holding just the holders: a compacted owners file.
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(self.holders * 64 + HEADER.len() + 1);
        out.push_str(HEADER);
        out.push('\n');
        for (indicator, holders) in &self.entries {
            for (owner, expiry) in holders {
                push_added(&mut out, indicator, *owner, *expiry);
            }
        }
        out
    }
}

/// An owners file as read.
#[derive(Debug, Default)]
pub(super) struct Journal {
    pub(super) owners: Owners,
    /// Records in the file: what a compaction would bring down to
    /// `owners.holders()`.
    pub(super) records: usize,
    /// Whether a record may be appended: the file is a journal that ends
    /// with a whole record. Otherwise (no file, the earlier format, a torn
    /// last record) the next write rewrites it.
    pub(super) appendable: bool,
}

impl Journal {
    /// Reads the owners file at `path`; none there is an empty journal.
    pub(super) fn read(path: &Path) -> io::Result<Journal> {
        match fs::read(path) {
            Ok(bytes) => Journal::parse(&bytes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Journal::default()),
            Err(err) => Err(err),
        }
    }

    pub(super) fn parse(bytes: &[u8]) -> io::Result<Journal> {
        // Whatever follows the last newline is a record an append did not
        // finish; it may even end inside a character.
        let whole = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let text = std::str::from_utf8(&bytes[..whole]).map_err(io::Error::other)?;
        let torn = whole < bytes.len();
        let mut lines = text.lines();
        let header = lines.clone().next();
        let bad = || io::Error::other("malformed owners file");
        let mut journal = Journal::default();
        if header == Some(HEADER) {
            lines.next();
            for line in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let mut fields = line.split('\t');
                match (fields.next(), fields.next(), fields.next(), fields.next()) {
                    (Some("+"), Some(indicator), Some(owner), Some(expiry))
                        if fields.next().is_none() =>
                    {
                        let expiry = parse_expiry(expiry).ok_or_else(bad)?;
                        let owner = owner.parse().map_err(|_| bad())?;
                        journal.owners.add(indicator, owner, expiry);
                    }
                    (Some("-"), Some(indicator), Some(owner), None) => {
                        let owner = owner.parse().map_err(|_| bad())?;
                        journal.owners.remove(indicator, owner);
                    }
                    _ => return Err(bad()),
                }
                journal.records += 1;
            }
            journal.appendable = !torn;
        } else {
            // The earlier format (a whole file, renamed into place: never
            // torn), with `HEADER_V1` or no header at all; or a journal whose
            // header is all a crash left.
            if torn && !text.is_empty() {
                return Err(bad());
            }
            for line in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let mut fields = line.split('\t');
                let (Some(indicator), Some(owner), Some(expiry), None) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(bad());
                };
                let owner = owner.parse().map_err(|_| bad())?;
                let expiry = parse_expiry(expiry).ok_or_else(bad)?;
                journal.owners.add(indicator, owner, expiry);
                journal.records += 1;
            }
        }
        Ok(journal)
    }
}

/// `-` or a number of microseconds; `None` when it is neither.
fn parse_expiry(field: &str) -> Option<Option<i64>> {
    match field {
        "-" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// Appends the record of `owner` holding `indicator` until `expiry`.
pub(super) fn push_added(out: &mut String, indicator: &str, owner: Uuid, expiry: Option<i64>) {
    push_head(out, '+', indicator, owner);
    out.push('\t');
    match expiry {
        Some(at) => out.push_str(&at.to_string()),
        None => out.push('-'),
    }
    out.push('\n');
}

/// Appends the record of `owner` no longer holding `indicator`.
pub(super) fn push_removed(out: &mut String, indicator: &str, owner: Uuid) {
    push_head(out, '-', indicator, owner);
    out.push('\n');
}

/// The fields every record starts with: `op TAB indicator TAB owner`.
fn push_head(out: &mut String, op: char, indicator: &str, owner: Uuid) {
    out.push(op);
    out.push('\t');
    out.push_str(indicator);
    out.push('\t');
    out.push_str(
        owner
            .as_hyphenated()
            .encode_lower(&mut Uuid::encode_buffer()),
    );
}

/// The owners file of the list `name` in `dir`.
pub(super) fn owners_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(
        ".{}{OWNERS_SUFFIX}",
        name.trim_end_matches(LIST_SUFFIX)
    ))
}

/// `(tenant directory, list file name)` of every owners file under `root`.
pub(super) fn owner_files(root: &Path) -> Vec<(String, String)> {
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
                .and_then(|n| n.strip_suffix(OWNERS_SUFFIX))
            {
                found.push((
                    tenant.file_name().to_string_lossy().to_string(),
                    format!("{list}{LIST_SUFFIX}"),
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first line of an owners file of the earlier format.
    const HEADER_V1: &str = "# actiongate blocklist owners v1";

    fn holders(owners: &Owners) -> Vec<(String, Uuid, Option<i64>)> {
        owners
            .entries
            .iter()
            .flat_map(|(indicator, holders)| {
                holders
                    .iter()
                    .map(|(owner, expiry)| (indicator.clone(), *owner, *expiry))
            })
            .collect()
    }

    #[test]
    fn a_compacted_journal_round_trips() {
        let mut owners = Owners::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        owners.add("10.0.0.1", a, None);
        owners.add("10.0.0.1", b, Some(42));
        owners.add("https://x.example/a?b", a, None);
        let back = Journal::parse(owners.render().as_bytes()).unwrap();
        assert_eq!(back.owners.entries, owners.entries);
        assert_eq!((back.records, back.owners.holders()), (3, 3));
        assert_eq!(back.owners.next_expiry(), Some(42));
        assert!(back.appendable);
        let malformed = format!("{HEADER}\n+\t10.0.0.1\tnot-a-uuid\t-\n");
        assert!(Journal::parse(malformed.as_bytes()).is_err());
        let unknown = format!("{HEADER}\n*\t10.0.0.1\t{a}\n");
        assert!(Journal::parse(unknown.as_bytes()).is_err());
    }

    #[test]
    fn records_replay_in_order_with_removals_and_new_expiries() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut text = format!("{HEADER}\n");
        push_added(&mut text, "10.0.0.1", a, None);
        push_added(&mut text, "10.0.0.1", b, Some(7));
        push_added(&mut text, "10.0.0.2", a, Some(9));
        push_removed(&mut text, "10.0.0.1", a);
        push_added(&mut text, "10.0.0.2", a, None);
        push_removed(&mut text, "10.0.0.3", a);
        let journal = Journal::parse(text.as_bytes()).unwrap();
        assert_eq!(
            holders(&journal.owners),
            [
                ("10.0.0.1".to_owned(), b, Some(7)),
                ("10.0.0.2".to_owned(), a, None),
            ]
        );
        assert_eq!((journal.records, journal.owners.holders()), (6, 2));
        assert!(journal.appendable);

        let mut owners = journal.owners;
        let mut dropped = Vec::new();
        assert!(owners.drop_expired(7, |indicator, owner| {
            dropped.push((indicator.to_owned(), owner));
        }));
        assert_eq!(dropped, [("10.0.0.1".to_owned(), b)]);
        assert_eq!(holders(&owners), [("10.0.0.2".to_owned(), a, None)]);
        assert_eq!((owners.holders(), owners.next_expiry()), (1, None));
    }

    #[test]
    fn changes_say_whether_the_list_or_only_its_holders_changed() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut owners = Owners::default();
        assert_eq!(owners.add("10.0.0.1", a, None), Effect::Listed);
        assert_eq!(owners.add("10.0.0.1", a, None), Effect::None);
        assert_eq!(owners.add("10.0.0.1", a, Some(5)), Effect::Holders);
        assert_eq!(owners.add("10.0.0.1", b, None), Effect::Holders);
        assert_eq!(owners.remove("10.0.0.1", a), Effect::Holders);
        assert_eq!(owners.remove("10.0.0.1", a), Effect::None);
        assert_eq!(owners.remove("10.0.0.9", a), Effect::None);
        assert_eq!(owners.remove("10.0.0.1", b), Effect::Listed);
        assert_eq!(owners.holders(), 0);
        assert_eq!(owners.indicators().count(), 0);
    }

    #[test]
    fn an_owners_file_of_the_earlier_format_is_read_and_not_appended_to() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let v1 = format!("{HEADER_V1}\n10.0.0.1\t{a}\t-\n10.0.0.1\t{b}\t42\n10.0.0.2\t{a}\t-\n");
        let journal = Journal::parse(v1.as_bytes()).unwrap();
        assert_eq!(
            holders(&journal.owners),
            [
                ("10.0.0.1".to_owned(), a, None),
                ("10.0.0.1".to_owned(), b, Some(42)),
                ("10.0.0.2".to_owned(), a, None),
            ]
        );
        assert!(!journal.appendable, "rewritten as a journal first");
        assert!(Journal::parse(format!("{HEADER_V1}\n10.0.0.1\t{a}\n").as_bytes()).is_err());
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_not_appended_after() {
        let a = Uuid::now_v7();
        let mut text = format!("{HEADER}\n");
        push_added(&mut text, "10.0.0.1", a, None);
        let whole = text.len();
        push_added(&mut text, "10.0.0.2", a, None);
        for cut in [text.len() - 1, whole + 3, whole + 1] {
            let journal = Journal::parse(&text.as_bytes()[..cut]).unwrap();
            assert_eq!(holders(&journal.owners), [("10.0.0.1".to_owned(), a, None)]);
            assert_eq!(journal.records, 1);
            assert!(!journal.appendable, "cut at {cut}");
        }
        assert!(
            Journal::parse(&text.as_bytes()[..whole])
                .unwrap()
                .appendable
        );
        // A cut inside a character is a torn record too.
        let mut text = format!("{HEADER}\n");
        push_added(&mut text, "xn--bcher-kva.example", a, None);
        let cut = [text.as_bytes(), "+\tbüch".as_bytes()].concat();
        let journal = Journal::parse(&cut[..cut.len() - 1]).unwrap();
        assert_eq!(journal.records, 1);
        assert!(!journal.appendable);
    }

    #[test]
    fn an_owners_file_is_named_after_its_list() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = dir.path().join("contoso");
        fs::create_dir_all(&tenant).unwrap();
        let path = owners_path(&tenant, "blocked-ip.txt");
        assert_eq!(path, tenant.join(".blocked-ip.owners"));
        fs::write(&path, Owners::default().render()).unwrap();
        assert_eq!(
            owner_files(dir.path()),
            [("contoso".to_owned(), "blocked-ip.txt".to_owned())]
        );
        assert_eq!(
            Journal::read(&tenant.join(".none.owners")).unwrap().records,
            0
        );
    }
}
