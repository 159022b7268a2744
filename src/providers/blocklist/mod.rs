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
//! The owners file is a journal: a write appends the records of its changes
//! and fdatasyncs them, so its cost follows the batch, not the list; it is
//! compacted now and then. A list is replaced atomically, and only when its
//! indicators changed: written to a temporary file, fsynced, renamed over the
//! old one, and the directory fsynced. The journal is durable before the list
//! is replaced, and a change is acknowledged only after both. Concurrent
//! changes to one file are combined into one write; an advisory lock on
//! `.lock` keeps two processes sharing the directory from interleaving.
//!
//! This module is the provider; `list_file` writes one list, and `owners` is
//! the owners file's format.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, join_all};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{CODE_PROVIDER_ERROR, Job, Provider, ProviderError, Reference};
use crate::domain::time::to_micros;
use list_file::{Change, ListFile};
use owners::owner_files;

mod list_file;
mod owners;

/// Jobs one batch may carry: a list whose indicators changed is replaced
/// whole whatever the number of changes, so the larger the batch the fewer
/// replacements; 500 is what one bulk `invokeActions` call stores.
const BATCH_LIMIT: usize = 500;

/// The blocklist provider.
pub(crate) struct Blocklist {
    root: PathBuf,
    lists: Mutex<HashMap<PathBuf, Arc<ListFile>>>,
}

/// What `execute` returns: where the indicator was written.
#[derive(Debug, Serialize, Deserialize)]
struct BlocklistReference {
    file: String,
    indicator: String,
}

impl Blocklist {
    pub(crate) fn new(root: PathBuf) -> Blocklist {
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
            .or_insert_with(|| Arc::new(ListFile::new(dir, file)))
            .clone()
    }

    async fn change(&self, tenant: &str, file: &str, change: Change) -> Result<(), ProviderError> {
        self.change_all(tenant, file, vec![change]).await
    }

    /// Writes `changes` to one list in one write.
    async fn change_all(
        &self,
        tenant: &str,
        file: &str,
        changes: Vec<Change>,
    ) -> Result<(), ProviderError> {
        let list = self.list(tenant, file);
        list.apply_all(changes).await.map_err(|e| {
            ProviderError::transient(CODE_PROVIDER_ERROR, format!("writing {file}: {e}"))
        })
    }

    /// Applies `changes` (one per job, with the tenant and list it goes to)
    /// with one write per list, the lists written concurrently.
    /// Returns one result per change, in order: a list that could not be
    /// written fails the changes that went to it.
    async fn change_batch(
        &self,
        changes: Vec<(String, String, Change)>,
    ) -> Vec<Result<(), ProviderError>> {
        let mut by_list: HashMap<(String, String), (Vec<usize>, Vec<Change>)> = HashMap::new();
        let count = changes.len();
        for (index, (tenant, file, change)) in changes.into_iter().enumerate() {
            let (indexes, list) = by_list.entry((tenant, file)).or_default();
            indexes.push(index);
            list.push(change);
        }
        let written = join_all(by_list.into_iter().map(
            |((tenant, file), (indexes, changes))| async move {
                let result = self.change_all(&tenant, &file, changes).await;
                (indexes, result)
            },
        ))
        .await;
        let mut results = vec![Ok(()); count];
        for (indexes, result) in written {
            for index in indexes {
                results[index] = result.clone();
            }
        }
        results
    }
}

/// The change that applies `job`, and its reference.
fn addition(job: &Job) -> (String, Change, BlocklistReference) {
    let file = file_name(job);
    let indicator = job.indicator.to_string();
    let change = Change::Add {
        indicator: indicator.clone(),
        owner: job.action.id,
        expires_at: job.expires_at.map(to_micros),
    };
    (file.clone(), change, BlocklistReference { file, indicator })
}

/// The change that lifts `job`, applied with `reference` (what `execute`
/// returned, if known).
fn removal(job: &Job, reference: Option<&str>) -> (String, Change) {
    let (file, indicator) =
        match reference.and_then(|r| serde_json::from_str::<BlocklistReference>(r).ok()) {
            Some(r) => (r.file, r.indicator),
            None => (file_name(job), job.indicator.to_string()),
        };
    let change = Change::Remove {
        indicator,
        owner: job.action.id,
    };
    (file, change)
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
            let (file, change, reference) = addition(job);
            self.change(&job.action.tenant_id, &file, change).await?;
            Ok(serde_json::to_string(&reference).ok())
        })
    }

    fn revert<'a>(
        &'a self,
        job: &'a Job,
        reference: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let (file, change) = removal(job, reference);
            self.change(&job.action.tenant_id, &file, change).await
        })
    }

    /// A whole feed's worth: one write per list.
    fn batch_limit(&self) -> usize {
        BATCH_LIMIT
    }

    fn execute_batch<'a>(
        &'a self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Vec<Result<Reference, ProviderError>>> {
        Box::pin(async move {
            let mut changes = Vec::with_capacity(jobs.len());
            let mut references = Vec::with_capacity(jobs.len());
            for job in jobs {
                let (file, change, reference) = addition(job);
                changes.push((job.action.tenant_id.clone(), file, change));
                references.push(serde_json::to_string(&reference).ok());
            }
            let written = self.change_batch(changes).await;
            written
                .into_iter()
                .zip(references)
                .map(|(result, reference)| result.map(|()| reference))
                .collect()
        })
    }

    fn revert_batch<'a>(
        &'a self,
        jobs: &'a [(Job, Option<String>)],
    ) -> BoxFuture<'a, Vec<Result<(), ProviderError>>> {
        Box::pin(async move {
            let changes = jobs
                .iter()
                .map(|(job, reference)| {
                    let (file, change) = removal(job, reference.as_deref());
                    (job.action.tenant_id.clone(), file, change)
                })
                .collect();
            self.change_batch(changes).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_escape_the_directory() {
        assert_eq!(tenant_dir("contoso-01"), "contoso-01");
        assert_eq!(tenant_dir("../etc"), "%2E%2E%2Fetc");
        assert_eq!(tenant_dir(""), "%");
    }
}
