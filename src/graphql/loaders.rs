//! Batch loaders for the parts of an action that live in other tables. A list
//! or a lookup reads the parts its selection asks for with the actions (one
//! statement) and feeds them here; the loaders read only for actions that
//! came otherwise (a mutation's answer), one query per part for all of them.
//! Loaders are made per request and carry the caller's tenant.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Lookahead;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::domain::action::{Parameter, StateChange};
use crate::error::AppError;
use crate::store::{FieldsWanted, Parts, PartsWanted, Store};

/// The loaders of one request (over WebSocket, of one operation). Each caches
/// what it loaded for the request's lifetime, so a list can load the parts of
/// all its actions at once and each action then finds its own in the cache.
/// (A subscription event's action takes its parts from its event batch.)
pub(crate) struct RequestLoaders {
    pub parameters: DataLoader<ParametersLoader, HashMapCache>,
    pub states: DataLoader<StatesLoader, HashMapCache>,
}

impl RequestLoaders {
    pub(crate) fn new(store: &Store, tenant: &str) -> RequestLoaders {
        let scope = || TenantStore {
            store: store.clone(),
            tenant: tenant.to_owned(),
        };
        let cache = HashMapCache::default;
        RequestLoaders {
            parameters: DataLoader::with_cache(ParametersLoader(scope()), tokio::spawn, cache()),
            states: DataLoader::with_cache(StatesLoader(scope()), tokio::spawn, cache()),
        }
    }

    /// Puts parts read with their actions in the loaders' caches, so that each
    /// action's resolvers find them there and nothing more is read. (The
    /// loaders themselves wait a batching delay before they read: a timer
    /// worth its cost only when keys come from resolvers that run apart.)
    pub(crate) async fn feed(&self, parts: Parts) {
        if let Some(parameters) = parts.parameters {
            self.parameters.feed_many(parameters).await;
        }
        if let Some(states) = parts.states {
            self.states.feed_many(states).await;
        }
    }
}

/// Which parts of an action the selection `action` (a `SecurityAction`) asks for.
pub(crate) fn parts_wanted(action: &Lookahead<'_>) -> PartsWanted {
    PartsWanted {
        parameters: action.field("parameters").exists(),
        states: action.field("states").exists(),
    }
}

/// The fields of `SecurityAction` that every page reads, or reads from
/// other tables (see [`parts_wanted`]).
#[cfg(test)]
const READ_WITH_EVERY_PAGE: [&str; 8] = [
    "id",
    "name",
    "status",
    "azureTenantId",
    "createdDateTime",
    "lastActionDateTime",
    "parameters",
    "states",
];

/// Marks in [`FieldsWanted`] the part of an action one field is read from.
type MarkRead = fn(&mut FieldsWanted);

/// The fields of `SecurityAction` that a page reads only when asked for,
/// each with the part of the action it is read from.
const READ_WHEN_ASKED: [(&str, MarkRead); 8] = [
    ("appId", |wanted| wanted.app_id = true),
    ("user", |wanted| wanted.user = true),
    ("actionReason", |wanted| wanted.action_reason = true),
    ("vendorInformation", |wanted| wanted.vendor = true),
    ("clientContext", |wanted| wanted.client_context = true),
    ("errorInfo", |wanted| wanted.error = true),
    ("completedDateTime", |wanted| wanted.completed_at = true),
    ("cancelRequestedDateTime", |wanted| {
        wanted.cancel_requested_at = true
    }),
];

/// Which of an action's own fields, beyond those every page reads, the
/// selection `action` (a `SecurityAction`) asks for. (Its trace context is
/// no field: the executor's.)
pub(crate) fn fields_wanted(action: &Lookahead<'_>) -> FieldsWanted {
    let mut wanted = FieldsWanted::default();
    for (field, read) in READ_WHEN_ASKED {
        if action.field(field).exists() {
            read(&mut wanted);
        }
    }
    wanted
}

/// The store, scoped to one tenant.
pub(crate) struct TenantStore {
    store: Store,
    tenant: String,
}

/// Loads each action's parameters.
pub(crate) struct ParametersLoader(TenantStore);
/// Loads each action's state history.
pub(crate) struct StatesLoader(TenantStore);

impl Loader<Uuid> for ParametersLoader {
    type Value = Vec<Parameter>;
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Parameter>>, Self::Error> {
        Ok(self.0.store.parameters_of(&self.0.tenant, ids).await?)
    }
}

impl Loader<Uuid> for StatesLoader {
    type Value = Vec<StateChange>;
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<StateChange>>, Self::Error> {
        Ok(self.0.store.states_of(&self.0.tenant, ids).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{READ_WHEN_ASKED, READ_WITH_EVERY_PAGE};

    /// A field added to `SecurityAction` must be placed in one of the two
    /// lists, or a page would answer it from a column it did not read.
    #[test]
    fn every_field_of_an_action_is_read_by_every_page_or_when_asked() {
        let sdl = crate::graphql::sdl();
        let start = sdl.find("type SecurityAction {").expect("the type");
        let body = &sdl[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
        let mut fields: Vec<&str> = body
            .lines()
            .map(str::trim)
            // A field's line is its name, then its arguments or its type;
            // descriptions are prose.
            .filter_map(|line| {
                let end = line.find(|c: char| !c.is_ascii_alphanumeric() && c != '_')?;
                matches!(line[end..].chars().next(), Some(':' | '(')).then(|| &line[..end])
            })
            .collect();
        fields.sort_unstable();
        let mut known: Vec<&str> = READ_WITH_EVERY_PAGE
            .iter()
            .copied()
            .chain(READ_WHEN_ASKED.iter().map(|(field, _)| *field))
            .collect();
        known.sort_unstable();
        assert_eq!(fields, known);
    }
}
