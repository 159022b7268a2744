//! Queries: one action, lists, counts and the catalog.

use async_graphql::{Context, ID, Object};

use super::connection::SecurityActionConnection;
use super::context::{principal, services};
use super::inputs::{ActionOrderInput, FilterArgument, parse_id};
use super::loaders::{RequestLoaders, fields_wanted, parts_wanted};
use super::types::{ActionDefinitionType, SecurityAction, StatusCount};
use crate::domain::catalog::CATALOG;
use crate::domain::page::{ActionOrder, PageRequest};
use crate::error::AppError;
use crate::store::PartsWanted;

pub(crate) struct Query;

#[Object]
impl Query {
    /// The action with this id; null when there is none in the caller's tenant.
    async fn action(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SecurityAction>, AppError> {
        let caller = principal(ctx);
        caller.require_read()?;
        let id = parse_id("id", &id)?;
        let wanted = parts_wanted(&ctx.look_ahead());
        let found = services(ctx)
            .store
            .action_with_parts(&caller.tenant_id, id, wanted)
            .await?;
        let Some((action, parts)) = found else {
            return Ok(None);
        };
        ctx.data_unchecked::<RequestLoaders>().feed(parts).await;
        Ok(Some(SecurityAction::new(action)))
    }

    /// The caller's tenant's actions that pass `filter`, as a Relay connection
    /// with keyset cursors. `first` / `last` are at most 100 (default 20 first).
    // The arguments are Relay's and the contract's; a struct would change the schema.
    #[allow(clippy::too_many_arguments)]
    async fn actions(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterArgument>,
        order_by: Option<ActionOrderInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<SecurityActionConnection, AppError> {
        let caller = principal(ctx);
        caller.require_read()?;
        let filter = FilterArgument::into_domain(filter)?;
        let order: ActionOrder = order_by.map(Into::into).unwrap_or_default();
        let request = PageRequest::new(order, first, after.as_deref(), last, before.as_deref())?;
        // The parts any node of the page asks for, read with the page.
        let connection = ctx.look_ahead();
        let (nodes, edges) = (connection.field("nodes"), connection.field("edges"));
        let (listed, edged) = (parts_wanted(&nodes), parts_wanted(&edges.field("node")));
        let wanted = PartsWanted {
            parameters: listed.parameters || edged.parameters,
            states: listed.states || edged.states,
        };
        // And of each action's own fields, those any node asks for.
        let fields = fields_wanted(&nodes).or(fields_wanted(&edges.field("node")));
        // And the total, when selected: with the page when the counters can
        // answer the filter (see `SecurityActionConnection::total_count`).
        let with_total = connection.field("totalCount").exists();
        let mut page = services(ctx)
            .store
            .list_actions(
                &caller.tenant_id,
                &filter,
                order,
                &request,
                fields,
                wanted,
                with_total,
            )
            .await?;
        let parts = std::mem::take(&mut page.parts);
        ctx.data_unchecked::<RequestLoaders>().feed(parts).await;
        Ok(SecurityActionConnection::new(filter, order, request, page))
    }

    /// How many of the caller's tenant's actions that pass `filter` are in each
    /// status: one row per status, zeros included.
    async fn action_counts(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterArgument>,
    ) -> Result<Vec<StatusCount>, AppError> {
        let caller = principal(ctx);
        caller.require_read()?;
        let filter = FilterArgument::into_domain(filter)?;
        let counts = services(ctx)
            .store
            .count_by_status(&caller.tenant_id, &filter)
            .await?;
        Ok(StatusCount::list(&counts))
    }

    /// The actions that can be invoked, their parameters and the providers
    /// (available to the caller's tenant) that serve them.
    async fn action_catalog(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<ActionDefinitionType>, AppError> {
        let caller = principal(ctx);
        caller.require_read()?;
        let providers = &services(ctx).providers;
        Ok(CATALOG
            .iter()
            .map(|definition| {
                let serving = providers
                    .available_to(&caller.tenant_id)
                    .filter(|p| p.serves.contains(&definition.name))
                    .map(|p| p.name.clone())
                    .collect();
                ActionDefinitionType::new(definition, serving)
            })
            .collect())
    }
}
