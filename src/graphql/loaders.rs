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
use crate::store::{Parts, PartsWanted, Store};

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
