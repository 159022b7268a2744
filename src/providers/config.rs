//! The provider configuration file (`--config`, TOML).
//!
//! ```toml
//! [[providers]]
//! name = "edge"            # what callers pass as vendorInformation.provider
//! kind = "blocklist"       # blocklist | webhook | defender
//! default = true           # chosen when a request names no provider
//! actions = ["blockIp"]    # optional: the catalog actions it serves (default: all)
//! tenants = ["contoso"]    # optional: the tenants that may use it (default: all)
//! directory = "/var/lib/actiongate/blocklists"
//! ```
//!
//! `examples/providers.toml` shows every kind with every key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::defender;
use crate::domain::catalog::{CATALOG, find_action};
use crate::domain::providers::{ProviderDirectory, ProviderEntry};
use crate::domain::time::parse_duration;
use crate::store::BudgetLimits;

/// A secret from the configuration; never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The configured providers.
#[derive(Debug, Clone)]
pub struct ProvidersFile {
    pub(crate) providers: Vec<ProviderConfig>,
}

/// One configured provider.
#[derive(Debug, Clone)]
pub(crate) struct ProviderConfig {
    pub entry: ProviderEntry,
    pub spec: ProviderSpec,
}

/// What a provider is, with the settings of its kind.
#[derive(Debug, Clone)]
pub(crate) enum ProviderSpec {
    Blocklist {
        directory: PathBuf,
    },
    Webhook {
        url: String,
        secret: Secret,
        timeout: Option<Duration>,
    },
    Defender(DefenderSettings),
}

/// Settings of a Microsoft Defender for Endpoint provider.
#[derive(Debug, Clone)]
pub(crate) struct DefenderSettings {
    pub api_base: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
    pub severity: String,
    pub timeout: Option<Duration>,
    /// The call budget, shared by the replicas (defaults: Defender's
    /// documented limits).
    pub budget: BudgetLimits,
    /// Most indicators the Defender tenant holds at once.
    pub max_active_indicators: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: Vec<toml::Spanned<RawProvider>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    kind: String,
    #[serde(default)]
    default: bool,
    actions: Option<Vec<String>>,
    tenants: Option<Vec<String>>,
    vendor: Option<String>,
    version: Option<String>,
    timeout: Option<String>,
    // blocklist
    directory: Option<PathBuf>,
    // webhook
    url: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    // defender
    api_base: Option<String>,
    token_url: Option<String>,
    azure_tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    scope: Option<String>,
    severity: Option<String>,
    calls_per_minute: Option<u32>,
    calls_per_hour: Option<u32>,
    imports_per_minute: Option<u32>,
    budget_minute: Option<String>,
    budget_hour: Option<String>,
    max_active_indicators: Option<u64>,
}

/// The blocklist provider's directory under the data directory, unless set.
const BLOCKLISTS_DIR: &str = "blocklists";
const DEFENDER_API: &str = "https://api.securitycenter.microsoft.com";
const DEFENDER_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

impl ProvidersFile {
    /// One blocklist provider under `<data_dir>/blocklists`: what runs without
    /// a configuration file.
    pub(crate) fn default_blocklist(data_dir: &Path) -> ProvidersFile {
        ProvidersFile {
            providers: vec![ProviderConfig {
                entry: ProviderEntry::blocklist_default(),
                spec: ProviderSpec::Blocklist {
                    directory: data_dir.join(BLOCKLISTS_DIR),
                },
            }],
        }
    }

    /// Reads and checks a configuration file.
    pub(crate) fn load(path: &Path, data_dir: &Path) -> Result<ProvidersFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        ProvidersFile::parse(&text, data_dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks configuration text. An error names the line and,
    /// when one key is at fault, the key.
    pub fn parse(text: &str, data_dir: &Path) -> Result<ProvidersFile, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
            None => e.message().to_owned(),
        })?;
        if raw.providers.is_empty() {
            return Err("no [[providers]] are configured".into());
        }
        let mut providers: Vec<ProviderConfig> = Vec::new();
        for provider in raw.providers {
            let span = provider.span();
            let provider = provider.into_inner();
            let name = provider.name.clone();
            let at_fault = |key: &str, message: String| {
                let line = line_of(text, key_offset(text, span.start, key));
                format!("line {line}: provider '{name}', key '{key}': {message}")
            };
            let parsed = parse_provider(provider, data_dir)
                .map_err(|(key, message)| at_fault(key, message))?;
            if providers.iter().any(|p| p.entry.name == parsed.entry.name) {
                return Err(at_fault("name", "is configured twice".into()));
            }
            if parsed.entry.default && providers.iter().any(|p| p.entry.default) {
                return Err(at_fault(
                    "default",
                    "more than one provider is marked default".into(),
                ));
            }
            providers.push(parsed);
        }
        Ok(ProvidersFile { providers })
    }

    /// What validation needs to know of the providers.
    pub(crate) fn directory(&self) -> ProviderDirectory {
        ProviderDirectory::new(self.providers.iter().map(|p| p.entry.clone()).collect())
    }
}

/// What is wrong with one provider: the key at fault and why.
type KeyError = (&'static str, String);

fn parse_provider(raw: RawProvider, data_dir: &Path) -> Result<ProviderConfig, KeyError> {
    if raw.name.is_empty()
        || raw.name.len() > 64
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err((
            "name",
            "a name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let serves = match &raw.actions {
        None => CATALOG.iter().map(|a| a.name).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                find_action(n)
                    .map(|a| a.name)
                    .ok_or_else(|| ("actions", format!("unknown action '{n}'")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let timeout = raw
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| ("timeout", e))?;
    let not_for = |kind: &str, keys: &[(&'static str, bool)]| -> Result<(), KeyError> {
        match keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err((key, format!("'{key}' does not apply to a {kind} provider"))),
            None => Ok(()),
        }
    };
    let (spec, vendor) = match raw.kind.as_str() {
        "blocklist" => {
            not_for(
                "blocklist",
                &[
                    ("url", raw.url.is_some()),
                    ("secret", raw.secret.is_some() || raw.secret_env.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("api_base", raw.api_base.is_some()),
                    ("timeout", raw.timeout.is_some()),
                    ("calls_per_minute", raw.calls_per_minute.is_some()),
                    ("max_active_indicators", raw.max_active_indicators.is_some()),
                ],
            )?;
            let directory = raw
                .directory
                .unwrap_or_else(|| data_dir.join(BLOCKLISTS_DIR));
            (ProviderSpec::Blocklist { directory }, "actiongate")
        }
        "webhook" => {
            not_for(
                "webhook",
                &[
                    ("directory", raw.directory.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("api_base", raw.api_base.is_some()),
                    ("calls_per_minute", raw.calls_per_minute.is_some()),
                    ("max_active_indicators", raw.max_active_indicators.is_some()),
                ],
            )?;
            let url = raw.url.ok_or(("url", "'url' is required".into()))?;
            check_http_url(&url).map_err(|e| ("url", e))?;
            let secret = secret_from(raw.secret, raw.secret_env, "secret")?;
            (
                ProviderSpec::Webhook {
                    url,
                    secret,
                    timeout,
                },
                "webhook",
            )
        }
        "defender" => {
            not_for(
                "defender",
                &[
                    ("directory", raw.directory.is_some()),
                    ("url", raw.url.is_some()),
                    ("secret", raw.secret.is_some() || raw.secret_env.is_some()),
                ],
            )?;
            let budget = defender_budget(&raw)?;
            let api_base = raw.api_base.unwrap_or_else(|| DEFENDER_API.to_owned());
            check_http_url(&api_base).map_err(|e| ("api_base", e))?;
            let token_url = match (raw.token_url, raw.azure_tenant_id) {
                (Some(url), _) => url,
                (None, Some(tenant)) => {
                    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
                }
                (None, None) => {
                    return Err((
                        "token_url",
                        "'token_url' or 'azure_tenant_id' is required".into(),
                    ));
                }
            };
            check_http_url(&token_url).map_err(|e| ("token_url", e))?;
            let settings = DefenderSettings {
                api_base: api_base.trim_end_matches('/').to_owned(),
                token_url,
                client_id: raw
                    .client_id
                    .ok_or(("client_id", "'client_id' is required".into()))?,
                client_secret: secret_from(
                    raw.client_secret,
                    raw.client_secret_env,
                    "client_secret",
                )?,
                scope: raw.scope.unwrap_or_else(|| DEFENDER_SCOPE.to_owned()),
                severity: raw.severity.unwrap_or_else(|| "High".to_owned()),
                timeout,
                budget,
                max_active_indicators: at_least_one(
                    "max_active_indicators",
                    raw.max_active_indicators
                        .unwrap_or(defender::MAX_ACTIVE_INDICATORS),
                )?,
            };
            (ProviderSpec::Defender(settings), "Microsoft")
        }
        other => {
            return Err((
                "kind",
                format!("unknown kind '{other}' (blocklist, webhook or defender)"),
            ));
        }
    };
    Ok(ProviderConfig {
        entry: ProviderEntry {
            name: raw.name,
            vendor: raw.vendor.unwrap_or_else(|| vendor.to_owned()),
            version: raw.version,
            serves,
            default: raw.default,
            tenants: raw.tenants,
        },
        spec,
    })
}

/// The Defender budget: the documented limits unless the file sets others.
fn defender_budget(raw: &RawProvider) -> Result<BudgetLimits, KeyError> {
    let documented = defender::DOCUMENTED_BUDGET;
    let window = |key: &'static str, value: &Option<String>, default: Duration| match value
        .as_deref()
        .map(parse_duration)
        .transpose()
    {
        Ok(Some(window)) if window.is_zero() => Err((key, "must be longer than 0s".into())),
        Ok(window) => Ok(window.unwrap_or(default)),
        Err(e) => Err((key, e)),
    };
    Ok(BudgetLimits {
        calls_per_minute: at_least_one(
            "calls_per_minute",
            raw.calls_per_minute.unwrap_or(documented.calls_per_minute),
        )?,
        calls_per_hour: at_least_one(
            "calls_per_hour",
            raw.calls_per_hour.unwrap_or(documented.calls_per_hour),
        )?,
        batch_calls_per_minute: at_least_one(
            "imports_per_minute",
            raw.imports_per_minute
                .unwrap_or(documented.batch_calls_per_minute),
        )?,
        minute: window("budget_minute", &raw.budget_minute, documented.minute)?,
        hour: window("budget_hour", &raw.budget_hour, documented.hour)?,
    })
}

fn at_least_one<N: PartialOrd + From<u8>>(key: &'static str, n: N) -> Result<N, KeyError> {
    if n >= N::from(1) {
        Ok(n)
    } else {
        Err((key, "must be at least 1".into()))
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("'{url}' is not an http(s) URL")),
    }
}

/// A secret given inline or, better, by the name of an environment variable.
fn secret_from(
    inline: Option<String>,
    env: Option<String>,
    key: &'static str,
) -> Result<Secret, KeyError> {
    match (inline, env) {
        (Some(_), Some(_)) => Err((key, format!("give '{key}' or '{key}_env', not both"))),
        (Some(value), None) => Ok(Secret(value)),
        (None, Some(var)) => std::env::var(&var).map(Secret).map_err(|_| {
            (
                key,
                format!("environment variable {var} (from '{key}_env') is not set"),
            )
        }),
        (None, None) => Err((key, format!("'{key}' or '{key}_env' is required"))),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Where `key` (or `<key>_env`) is set in the table that starts at `start`
/// (its header, `[[providers]]`); the header when it is not set there (a key
/// that is missing).
fn key_offset(text: &str, start: usize, key: &str) -> usize {
    let mut offset = start;
    for (i, line) in text[start.min(text.len())..]
        .split_inclusive('\n')
        .enumerate()
    {
        let line_text = line.trim_start();
        if i > 0 && line_text.starts_with('[') {
            break;
        }
        let set = line_text
            .strip_prefix(key)
            .map(|rest| rest.trim_start_matches("_env").trim_start());
        if set.is_some_and(|rest| rest.starts_with('=')) {
            return offset;
        }
        offset += line.len();
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_with_its_keys() {
        let text = r#"
            [[providers]]
            name = "edge"
            kind = "blocklist"
            default = true

            [[providers]]
            name = "soar"
            kind = "webhook"
            url = "https://soar.example/hook"
            secret = "s3cret"
            actions = ["BlockIp", "blockUrl"]
            timeout = "5s"

            [[providers]]
            name = "mde"
            kind = "defender"
            azure_tenant_id = "contoso"
            client_id = "id"
            client_secret = "cs"
            tenants = ["contoso"]
        "#;
        let file = ProvidersFile::parse(text, Path::new("data")).unwrap();
        assert_eq!(file.providers.len(), 3);
        assert_eq!(file.providers[1].entry.serves, vec!["blockIp", "blockUrl"]);
        match &file.providers[2].spec {
            ProviderSpec::Defender(d) => {
                assert_eq!(
                    d.token_url,
                    "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
                );
                assert_eq!(d.api_base, DEFENDER_API);
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{:?}", file.providers[1].spec).contains("s3cret"));
    }

    #[test]
    fn mistakes_are_reported_by_provider_and_key() {
        let cases = [
            (
                "[[providers]]\nname='a'\nkind='webhook'\nsecret='x'",
                "'url' is required",
            ),
            (
                "[[providers]]\nname='a'\nkind='blocklist'\n\n[[providers]]\nname='b'\nkind='webhook'\nsecret='x'\nurl='ftp://x'",
                "line 9: provider 'b', key 'url': 'ftp://x' is not an http(s) URL",
            ),
            (
                "[[providers]]\nname='a'\nkind='blocklist'\nurl='http://x'",
                "'url' does not apply",
            ),
            ("[[providers]]\nname='a'\nkind='mail'", "unknown kind"),
            (
                "[[providers]]\nname='a'\nkind='blocklist'\nactions=['blockFoo']",
                "unknown action",
            ),
            (
                "[[providers]]\nname='a'\nkind='blocklist'\n[[providers]]\nname='a'\nkind='blocklist'",
                "configured twice",
            ),
            (
                "[[providers]]\nname='a'\nkind='blocklist'\ncolour='red'",
                "line 4: unknown field `colour`",
            ),
            ("", "no [[providers]]"),
        ];
        for (text, expected) in cases {
            let err = ProvidersFile::parse(text, Path::new("data")).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_example_file_parses() {
        // The example reads its secrets from the environment; inline stand-ins here.
        let text = include_str!("../../examples/providers.toml");
        let with_env = text
            .replace("secret_env = \"ACTIONGATE_SOAR_SECRET\"", "secret = \"x\"")
            .replace(
                "client_secret_env = \"ACTIONGATE_MDE_CLIENT_SECRET\"",
                "client_secret = \"y\"",
            );
        let file = ProvidersFile::parse(&with_env, Path::new("data")).unwrap();
        let names: Vec<_> = file
            .providers
            .iter()
            .map(|p| p.entry.name.as_str())
            .collect();
        assert_eq!(names, ["edge", "soar", "mde"]);
    }
}
