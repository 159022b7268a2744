//! Which providers are configured and which actions each serves: what
//! validation needs to know of providers, without their machinery.

use super::catalog::ActionDefinition;
use crate::error::AppError;

/// One configured provider, as validation sees it.
#[derive(Debug, Clone)]
pub(crate) struct ProviderEntry {
    /// The name callers pass as `vendorInformation.provider`.
    pub name: String,
    /// Reported as `vendorInformation.vendor` when the caller gives none.
    pub vendor: String,
    /// Reported as `vendorInformation.providerVersion` when the caller gives none.
    pub version: Option<String>,
    /// Canonical names of the catalog actions it serves.
    pub serves: Vec<&'static str>,
    /// Chosen when a request names no provider.
    pub default: bool,
    /// The tenants that may use it; every tenant when `None`.
    pub tenants: Option<Vec<String>>,
}

impl ProviderEntry {
    /// The provider configured when there is no configuration file: a
    /// blocklist serving every action.
    pub(crate) fn blocklist_default() -> ProviderEntry {
        ProviderEntry {
            name: "blocklist".to_owned(),
            vendor: "actiongate".to_owned(),
            version: None,
            serves: super::catalog::CATALOG.iter().map(|a| a.name).collect(),
            default: true,
            tenants: None,
        }
    }

    /// Whether `tenant` may use this provider.
    pub(crate) fn available_to(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|tenants| tenants.iter().any(|t| t == tenant))
    }
}

/// Every configured provider.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderDirectory {
    entries: Vec<ProviderEntry>,
}

impl ProviderDirectory {
    pub(crate) fn new(entries: Vec<ProviderEntry>) -> ProviderDirectory {
        ProviderDirectory { entries }
    }

    /// The providers `tenant` may use.
    pub(crate) fn available_to<'a, 't>(
        &'a self,
        tenant: &'t str,
    ) -> impl Iterator<Item = &'a ProviderEntry> + use<'a, 't> {
        self.entries.iter().filter(move |e| e.available_to(tenant))
    }

    /// The provider that is to execute `action` for `tenant`: the one named, or
    /// else the default one (the only one, when a single provider is configured).
    /// A provider the tenant may not use is treated as one that does not exist.
    pub(crate) fn resolve(
        &self,
        requested: Option<&str>,
        action: &ActionDefinition,
        tenant: &str,
    ) -> Result<&ProviderEntry, AppError> {
        const FIELD: &str = "input.vendorInformation.provider";
        let entry = match requested {
            Some(name) => self
                .available_to(tenant)
                .find(|e| e.name == name)
                .ok_or_else(|| {
                    AppError::bad_input(
                        FIELD,
                        format!(
                            "no provider named '{}' is configured (configured: {})",
                            super::indicator::shorten(name),
                            self.names(tenant)
                        ),
                    )
                })?,
            None => self.default_entry(tenant).ok_or_else(|| {
                AppError::bad_input(
                    FIELD,
                    format!(
                        "several providers are configured and none is the default: name one of {}",
                        self.names(tenant)
                    ),
                )
            })?,
        };
        if !entry.serves.contains(&action.name) {
            return Err(AppError::bad_input(
                FIELD,
                format!("provider '{}' does not serve {}", entry.name, action.name),
            ));
        }
        Ok(entry)
    }

    fn default_entry(&self, tenant: &str) -> Option<&ProviderEntry> {
        let available: Vec<_> = self.available_to(tenant).collect();
        match available.as_slice() {
            [only] => Some(*only),
            entries => entries.iter().copied().find(|e| e.default),
        }
    }

    fn names(&self, tenant: &str) -> String {
        let names: Vec<_> = self.available_to(tenant).map(|e| e.name.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::find_action;

    fn entry(name: &str, serves: &[&'static str], default: bool) -> ProviderEntry {
        ProviderEntry {
            name: name.to_owned(),
            vendor: "v".to_owned(),
            version: None,
            serves: serves.to_vec(),
            default,
            tenants: None,
        }
    }

    #[test]
    fn a_single_provider_is_the_default() {
        let dir = ProviderDirectory::new(vec![entry("hook", &["blockIp"], false)]);
        assert_eq!(
            dir.resolve(None, find_action("blockIp").unwrap(), "t")
                .unwrap()
                .name,
            "hook"
        );
    }

    #[test]
    fn with_several_providers_the_marked_default_is_chosen_or_the_caller_must_name_one() {
        let action = find_action("blockIp").unwrap();
        let none_default = ProviderDirectory::new(vec![
            entry("a", &["blockIp"], false),
            entry("b", &["blockIp"], false),
        ]);
        assert!(none_default.resolve(None, action, "t").is_err());
        assert_eq!(
            none_default.resolve(Some("b"), action, "t").unwrap().name,
            "b"
        );
        let with_default = ProviderDirectory::new(vec![
            entry("a", &["blockIp"], false),
            entry("b", &["blockIp"], true),
        ]);
        assert_eq!(with_default.resolve(None, action, "t").unwrap().name, "b");
    }

    #[test]
    fn a_provider_that_does_not_serve_the_action_is_refused() {
        let dir = ProviderDirectory::new(vec![entry("hook", &["blockIp"], false)]);
        assert!(
            dir.resolve(Some("hook"), find_action("blockUrl").unwrap(), "t")
                .is_err()
        );
    }

    #[test]
    fn a_provider_reserved_for_other_tenants_does_not_exist_for_this_one() {
        let mut reserved = entry("mde", &["blockIp"], false);
        reserved.tenants = Some(vec!["t1".into()]);
        let dir = ProviderDirectory::new(vec![reserved, entry("hook", &["blockIp"], false)]);
        let action = find_action("blockIp").unwrap();
        assert!(dir.resolve(Some("mde"), action, "t1").is_ok());
        assert!(dir.resolve(Some("mde"), action, "t2").is_err());
        assert_eq!(dir.resolve(None, action, "t2").unwrap().name, "hook");
    }
}
