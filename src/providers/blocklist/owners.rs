//! The owners file beside each list: which actions hold each indicator, and
//! until when, so that an indicator stays while any action holds it and lapses
//! at its expiry.
//!
//! The list `blocked-ip.txt` has its owners in `.blocked-ip.owners`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// How a list file's name ends.
const LIST_SUFFIX: &str = ".txt";
/// How an owners file's name ends.
const OWNERS_SUFFIX: &str = ".owners";

/// The owners file: indicator → action id → expiry (microseconds) or none.
/// Stored as one line per holder, `indicator TAB action-id TAB expiry-or--`,
/// which writes and reads several times faster than JSON for lists of
/// tens of thousands.
#[derive(Debug, Default)]
pub(super) struct Owners {
    pub(super) entries: BTreeMap<String, BTreeMap<Uuid, Option<i64>>>,
}

impl Owners {
    const HEADER: &'static str = "# actiongate blocklist owners v1";

    pub(super) fn parse(bytes: &[u8]) -> io::Result<Owners> {
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

    pub(super) fn render(&self) -> String {
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
    }
}
