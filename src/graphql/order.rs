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
    if !matches!(value, Value::List(_) | Value::Object(_)) {
        return;
    }
    // Once for all the items of a list: they share their selections.
    let mut keys = ResponseKeys::new();
    for selection in selections {
        collect(selection, document, &mut keys, 0);
    }
    order_by_keys(value, &keys, document);
}

/// The response keys of merged selections, in order, each with the
/// selection sets of its sub-fields.
type ResponseKeys<'a> = IndexMap<&'a str, Vec<&'a SelectionSet>>;

/// Orders `value` like `keys`: each object's own fields, then, through
/// [`order`], what each field holds.
fn order_by_keys(value: &mut Value, keys: &ResponseKeys<'_>, document: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                order_by_keys(item, keys, document);
            }
        }
        Value::Object(map) => {
            // Most objects already come in order: only the others are rebuilt.
            if !in_order(map, keys) {
                let mut ordered = IndexMap::with_capacity(map.len());
                for key in keys.keys() {
                    if let Some((name, field)) = map.shift_remove_entry(*key) {
                        ordered.insert(name, field);
                    }
                }
                // Anything not found in the selection (none expected) keeps its place at the end.
                ordered.extend(map.drain(..));
                *map = ordered;
            }
            for (key, sub) in keys {
                if sub.is_empty() {
                    continue;
                }
                if let Some(field) = map.get_mut(*key) {
                    order(field, sub, document);
                }
            }
        }
        _ => {}
    }
}

/// Whether `map` is already as [`order_by_keys`] would rebuild it: the
/// fields of `keys` in their order, then any others.
fn in_order(map: &IndexMap<async_graphql::Name, Value>, keys: &ResponseKeys<'_>) -> bool {
    let mut last = 0;
    for name in map.keys() {
        let place = keys.get_index_of(name.as_str()).unwrap_or(usize::MAX);
        if place < last {
            return false;
        }
        last = place;
    }
    true
}

/// Fragments nest at most this deep here; the document limits refuse deeper
/// documents before they run, and a cycle is a validation error.
const MAX_FRAGMENT_NESTING: usize = 64;

/// Adds the response keys of `set` to `keys`, in order, with the selection
/// sets of their sub-fields.
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    keys: &mut ResponseKeys<'a>,
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

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use async_graphql::{Name, Value};

    use super::*;

    fn object(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (Name::new(name), value))
                .collect(),
        )
    }

    fn keys(value: &Value) -> Vec<&str> {
        match value {
            Value::Object(map) => map.keys().map(|name| name.as_str()).collect(),
            _ => panic!("not an object: {value:?}"),
        }
    }

    #[test]
    fn objects_out_of_order_are_reordered_at_every_level_and_in_every_item() {
        let document =
            parse_query("{ list { b a inner { y x } } first ...F } fragment F on Query { last }")
                .unwrap();
        let item = |inner_in_order: bool| {
            let inner = match inner_in_order {
                true => object(vec![("y", Value::Null), ("x", Value::Null)]),
                false => object(vec![("x", Value::Null), ("y", Value::Null)]),
            };
            // Every item's own fields come out of order.
            object(vec![
                ("inner", inner),
                ("a", Value::Null),
                ("b", Value::Null),
            ])
        };
        // The root is already in order: only what it holds is reordered.
        let mut data = object(vec![
            ("list", Value::List(vec![item(true), item(false)])),
            ("first", Value::Null),
            ("last", Value::Null),
        ]);
        in_selection_order(&mut data, &document, None);
        assert_eq!(keys(&data), ["list", "first", "last"]);
        let Value::Object(root) = &data else {
            unreachable!()
        };
        let Value::List(items) = &root["list"] else {
            panic!("list")
        };
        for item in items {
            assert_eq!(keys(item), ["b", "a", "inner"]);
            let Value::Object(fields) = item else {
                unreachable!()
            };
            assert_eq!(keys(&fields["inner"]), ["y", "x"]);
        }
    }

    #[test]
    fn fields_outside_the_selection_keep_their_place_at_the_end() {
        let document = parse_query("{ a b }").unwrap();
        let mut data = object(vec![
            ("extra", Value::Null),
            ("b", Value::Null),
            ("a", Value::Null),
        ]);
        in_selection_order(&mut data, &document, None);
        assert_eq!(keys(&data), ["a", "b", "extra"]);
        let mut already = object(vec![("a", Value::Null), ("b", Value::Null)]);
        in_selection_order(&mut already, &document, None);
        assert_eq!(keys(&already), ["a", "b"]);
    }
}
