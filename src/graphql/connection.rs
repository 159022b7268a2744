//! The Relay connection of `actions`: keyset pages, with `totalCount` and the
//! far side of `pageInfo` computed only when asked for.

use async_graphql::{Context, ErrorExtensions, Object};

use super::context::{principal, services};
use super::types::SecurityAction;
use crate::domain::action::Action;
use crate::domain::filter::ActionFilter;
use crate::domain::page::{ActionOrder, Cursor, PageDirection, PageRequest};
use crate::store::{ActionPage, Side};

/// A page of actions.
pub(crate) struct SecurityActionConnection {
    filter: ActionFilter,
    order: ActionOrder,
    request: PageRequest,
    page: ActionPage,
}

impl SecurityActionConnection {
    pub(crate) fn new(
        filter: ActionFilter,
        order: ActionOrder,
        request: PageRequest,
        page: ActionPage,
    ) -> Self {
        SecurityActionConnection {
            filter,
            order,
            request,
            page,
        }
    }

    fn cursor_of(&self, action: &Action) -> Cursor {
        Cursor::of(action, self.order.field)
    }
}

#[Object]
impl SecurityActionConnection {
    async fn edges(&self) -> Vec<SecurityActionEdge> {
        self.page
            .actions
            .iter()
            .map(|a| SecurityActionEdge {
                cursor: self.cursor_of(a).encode(),
                node: a.clone(),
            })
            .collect()
    }

    /// The actions of the page, without cursors.
    // Their parameters and states, when selected, were read with the page
    // (see `Query::actions`).
    async fn nodes(&self) -> Vec<SecurityAction> {
        self.page
            .actions
            .iter()
            .cloned()
            .map(SecurityAction::new)
            .collect()
    }

    async fn page_info(&self, ctx: &Context<'_>) -> async_graphql::Result<PageInfo> {
        let start = self.page.actions.first().map(|a| self.cursor_of(a));
        let end = self.page.actions.last().map(|a| self.cursor_of(a));
        // The side the page was read toward is known from the extra row read;
        // the side it came from needs a look past the cursor, made only when
        // the field is selected.
        let wants_far_side = {
            let field = ctx.look_ahead();
            match self.request.direction {
                PageDirection::Forward => field.field("hasPreviousPage").exists(),
                PageDirection::Backward => field.field("hasNextPage").exists(),
            }
        };
        let far_side = match (wants_far_side, &self.request.cursor) {
            (true, Some(cursor)) => {
                let side = match self.request.direction {
                    PageDirection::Forward => Side::AtOrBefore,
                    PageDirection::Backward => Side::AtOrAfter,
                };
                let tenant = &principal(ctx).tenant_id;
                services(ctx)
                    .store
                    .any_beside(tenant, &self.filter, self.order, cursor, side)
                    .await
                    .map_err(|e| e.extend())?
            }
            _ => false,
        };
        let (has_next_page, has_previous_page) = match self.request.direction {
            PageDirection::Forward => (self.page.has_more, far_side),
            PageDirection::Backward => (far_side, self.page.has_more),
        };
        Ok(PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: start.map(|c| c.encode()),
            end_cursor: end.map(|c| c.encode()),
        })
    }

    /// How many actions pass the filter, on every page together.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        // Read with the page when the counters answer the filter; a real
        // count is a statement of its own, bounded by the statement timeout.
        let count = match self.page.total {
            Some(count) => count,
            None => {
                let tenant = &principal(ctx).tenant_id;
                services(ctx)
                    .store
                    .count_actions(tenant, &self.filter)
                    .await
                    .map_err(|e| e.extend())?
            }
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }
}

/// An action and its cursor.
pub(crate) struct SecurityActionEdge {
    cursor: String,
    node: Action,
}

#[Object]
impl SecurityActionEdge {
    /// Pass as `after` (or `before`) to continue from this action.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    async fn node(&self) -> SecurityAction {
        SecurityAction::new(self.node.clone())
    }
}

/// Relay's page information.
#[derive(async_graphql::SimpleObject)]
pub(crate) struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}
