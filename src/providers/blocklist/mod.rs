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
//!
//! This module is the provider; `list_file` writes one list, and `owners` is
//! the owners file's format.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{CODE_PROVIDER_ERROR, Job, Provider, ProviderError, Reference};
use crate::domain::time::to_micros;
use list_file::{Change, ListFile};
use owners::owner_files;

mod list_file;
mod owners;

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
