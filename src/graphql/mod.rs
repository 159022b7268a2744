//! The GraphQL API: the schema (queries, mutations and the subscription) over
//! the domain, the store and the event fan-out; its input and output types;
//! the document limits; and the one request pipeline (`execute`) that both
//! transports in `http` run every operation through, which attaches the caller
//! and the request's loaders. Nothing here knows of HTTP.

use std::sync::Arc;

use async_graphql::{Schema, SchemaBuilder};

pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod documents;
pub(crate) mod execute;
pub(crate) mod inputs;
pub(crate) mod limits;
pub(crate) mod loaders;
pub(crate) mod mutation;
pub(crate) mod nesting;
mod order;
pub(crate) mod query;
pub(crate) mod subscription;
pub(crate) mod types;

pub(crate) use execute::Pipeline;

use crate::service::Services;

/// The schema type of the gateway.
pub(crate) type ActionSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema over the given services. Without `introspection`,
/// neither `__schema` / `__type` nor "did you mean" suggestions answer.
pub(crate) fn build_schema(services: Arc<Services>, introspection: bool) -> ActionSchema {
    schema_builder(introspection).data(services).finish()
}

/// The schema's settings, before the services it serves are attached.
pub(crate) fn schema_builder(
    introspection: bool,
) -> SchemaBuilder<query::Query, mutation::Mutation, subscription::Subscription> {
    let builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .limit_recursive_depth(nesting::MAX_NESTING);
    if introspection {
        builder
    } else {
        builder.disable_introspection().disable_suggestions()
    }
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}
