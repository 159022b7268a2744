//! Response fields in the order the query asked for them.
//!
//! The GraphQL spec orders a response map like the selection set; async-graphql
//! resolves an object's fields concurrently and keeps them in the order they
//! finished, so `{ actions … actionCounts … actionCatalog … }` could come back
//! with `actionCatalog` first. This puts every object of the response back in
//! selection order: fields, fragment spreads and inline fragments merged by
//! response key (alias or name), first appearance first.

use async_graphql::Value;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};

/// Orders `data`, the result of the operation `operation_name` selects in
/// `document`, like its selection set.
pub(crate) fn in_selection_order(
    data: &mut Value,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    };
    if let Some(operation) = operation {
        order(data, &[&operation.node.selection_set.node], document);
    }
}

/// Orders `value` (an object, a list of them, or anything else, left as it
/// is) like the merged `selections`.
fn order(value: &mut Value, selections: &[&SelectionSet], document: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                order(item, selections, document);
            }
        }
        Value::Object(map) => {
            let mut keys: IndexMap<&str, Vec<&SelectionSet>> = IndexMap::new();
            for selection in selections {
                collect(selection, document, &mut keys, 0);
            }
            let mut ordered = IndexMap::with_capacity(map.len());
            for (key, sub) in &keys {
                if let Some((name, mut field)) = map.shift_remove_entry(*key) {
                    if !sub.is_empty() {
                        order(&mut field, sub, document);
                    }
                    ordered.insert(name, field);
                }
            }
            // Anything not found in the selection (none expected) keeps its place at the end.
            ordered.extend(map.drain(..));
            *map = ordered;
        }
        _ => {}
    }
}

/// Fragments nest at most this deep here; the document limits refuse deeper
/// documents before they run, and a cycle is a validation error.
const MAX_FRAGMENT_NESTING: usize = 64;

/// Adds the response keys of `set` to `keys`, in order, with the selection
/// sets of their sub-fields.
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    keys: &mut IndexMap<&'a str, Vec<&'a SelectionSet>>,
    depth: usize,
) {
    if depth > MAX_FRAGMENT_NESTING {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                let entry = keys.entry(field.response_key().node.as_str()).or_default();
                if !field.selection_set.node.items.is_empty() {
                    entry.push(&field.selection_set.node);
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(&fragment.node.selection_set.node, document, keys, depth + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(&inline.node.selection_set.node, document, keys, depth + 1);
            }
        }
    }
}
