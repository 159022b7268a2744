//! Batch loaders for the parts of an action that live in other tables, so a
//! page of 100 actions with their parameters and states costs three queries,
//! not 201. Loaders are made per request and carry the caller's tenant.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::domain::action::{Parameter, StateChange};
use crate::error::AppError;
use crate::store::Store;

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

    /// Loads, in one query each, the parameters and states of the actions
    /// `ids` that the selection of `field` asks for.
    pub(crate) async fn prime(
        &self,
        field: async_graphql::SelectionField<'_>,
        ids: &[Uuid],
    ) -> Result<(), Arc<AppError>> {
        if ids.is_empty() {
            return Ok(());
        }
        let wants = |name: &str| field.selection_set().any(|f| f.name() == name);
        if wants("parameters") {
            self.parameters.load_many(ids.iter().copied()).await?;
        }
        if wants("states") {
            self.states.load_many(ids.iter().copied()).await?;
        }
        Ok(())
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
