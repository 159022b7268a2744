//! The GraphQL schema: queries, mutations and (later) subscriptions over the
//! domain and the store. Independent of HTTP: the handlers in `http` attach the
//! caller and the loaders to each request and execute it here.

use std::sync::Arc;

use async_graphql::Schema;

pub mod connection;
pub mod context;
pub mod execute;
pub mod inputs;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

pub use context::Services;
pub use execute::Pipeline;

/// The schema type of the gateway.
pub type ActionSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema over the given services. Without `introspection`,
/// neither `__schema` / `__type` nor "did you mean" suggestions answer.
pub fn build_schema(services: Arc<Services>, introspection: bool) -> ActionSchema {
    let builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .data(services)
        .limit_recursive_depth(64);
    if introspection {
        builder.finish()
    } else {
        builder
            .disable_introspection()
            .disable_suggestions()
            .finish()
    }
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}
