//! Operation limits: what a document may ask before anything executes.
//!
//! Checked by the request pipeline (`graphql::execute`) on the parsed document
//! of every operation, over HTTP or WebSocket: text size, depth, complexity
//! (list fields weighted by their `first` / `last`), aliases, root fields and
//! directives per field. Each has its own `extensions.code`.
//!
//! Introspection (`__schema`, `__type`) counts for complexity, aliases and
//! directives, but not for depth, so GraphiQL's own introspection query
//! (about 250 fields, nested about 15 deep by `ofType`) passes. What bounds
//! it instead is what makes it expensive: the schema's cycles. A path may
//! pass through at most [`MAX_INTROSPECTION_LISTS`] of the lists that lead
//! from a type to many others (`fields`, `inputFields`, `interfaces`,
//! `possibleTypes`), as graphql-js's `MaxIntrospectionDepthRule` allows, and
//! fragments spread many times count once per spread for complexity, so a
//! chain of fragments that doubles at each link is refused.

use std::collections::{HashMap, HashSet};

use async_graphql::Variables;
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Value};

use crate::domain::page::DEFAULT_PAGE_SIZE;
use crate::error::codes;

/// Most lists from a type to other types one path through introspection
/// may pass through: `__type { fields { type { fields { … } } } }` fans out
/// once per level, and the schema's cycles let it do so without end.
pub(crate) const MAX_INTROSPECTION_LISTS: usize = 2;

/// The introspection fields that lead from one type to many others.
const TYPE_LISTS: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];

/// The limits, each a setting.
#[derive(Debug, Clone)]
pub struct OperationLimits {
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Deepest field nesting; a root field is at depth 1.
    pub max_depth: usize,
    /// Most fields an operation may resolve, a list field's children counted
    /// once per item it may return (its `first` / `last`).
    pub max_complexity: u64,
    /// Most aliased fields.
    pub max_aliases: usize,
    /// Most fields at the root of an operation.
    pub max_root_fields: usize,
    /// Most directives on one field.
    pub max_directives_per_field: usize,
}

impl OperationLimits {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: OperationLimits = OperationLimits {
        max_query_bytes: 16 * 1024,
        max_depth: 12,
        max_complexity: 5_000,
        max_aliases: 30,
        max_root_fields: 20,
        max_directives_per_field: 5,
    };
}

impl Default for OperationLimits {
    fn default() -> Self {
        OperationLimits::DEFAULT
    }
}

/// A limit a document broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitExceeded {
    pub code: &'static str,
    pub message: String,
}

impl LimitExceeded {
    fn new(code: &'static str, message: String) -> LimitExceeded {
        LimitExceeded { code, message }
    }
}

/// Refuses query text over the size limit, before it is parsed.
pub(crate) fn check_size(query: &str, limits: &OperationLimits) -> Result<(), LimitExceeded> {
    if query.len() > limits.max_query_bytes {
        return Err(LimitExceeded::new(
            codes::QUERY_TOO_LARGE,
            format!(
                "the query is {} bytes; at most {} are accepted",
                query.len(),
                limits.max_query_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks every operation of `document` against `limits`.
pub(crate) fn check_document(
    document: &ExecutableDocument,
    variables: &Variables,
    limits: &OperationLimits,
) -> Result<(), LimitExceeded> {
    for (_, operation) in document.operations.iter() {
        let root = &operation.node.selection_set.node;
        let defaults = operation
            .node
            .variable_definitions
            .iter()
            .filter_map(|definition| {
                let default = definition.node.default_value.as_ref()?;
                Some((definition.node.name.node.clone(), default.node.clone()))
            })
            .collect();
        let mut walk = Walk {
            document,
            variables,
            defaults,
            limits,
            aliases: 0,
            expanding: HashSet::new(),
            costs: HashMap::new(),
            root_counts: HashMap::new(),
        };
        let root_fields = walk.count_root_fields(root);
        if root_fields > limits.max_root_fields {
            return Err(LimitExceeded::new(
                codes::TOO_MANY_ROOT_FIELDS,
                format!(
                    "the operation has {root_fields} root fields; at most {} are accepted",
                    limits.max_root_fields
                ),
            ));
        }
        let measured = walk.measure(root, 1, 1)?;
        if measured.depth > limits.max_depth {
            return Err(LimitExceeded::new(
                codes::QUERY_TOO_DEEP,
                format!(
                    "the operation nests {} deep; at most {} is accepted",
                    measured.depth, limits.max_depth
                ),
            ));
        }
        if measured.lists > MAX_INTROSPECTION_LISTS {
            return Err(LimitExceeded::new(
                codes::QUERY_TOO_DEEP,
                format!(
                    "the introspection passes through {} of fields / inputFields / interfaces / possibleTypes on one path; at most {MAX_INTROSPECTION_LISTS} are accepted",
                    measured.lists
                ),
            ));
        }
        if measured.complexity > limits.max_complexity {
            return Err(LimitExceeded::new(
                codes::QUERY_TOO_COMPLEX,
                format!(
                    "the operation's complexity is {}; at most {} is accepted (list fields count once per item their first/last allows)",
                    measured.complexity, limits.max_complexity
                ),
            ));
        }
    }
    Ok(())
}

/// Whether an operation of `document` asks for `__schema` or `__type` (which
/// only the query root offers).
pub(crate) fn asks_for_introspection(document: &ExecutableDocument) -> bool {
    fn in_set(document: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<Name>) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
            }
            Selection::InlineFragment(inline) => {
                in_set(document, &inline.node.selection_set.node, seen)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name.clone()) => {
                        in_set(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => false,
                }
            }
        })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| in_set(document, &op.node.selection_set.node, &mut HashSet::new()))
}

#[derive(Clone, Copy)]
struct Measured {
    depth: usize,
    complexity: u64,
    /// The most of [`TYPE_LISTS`] on one path.
    lists: usize,
}

/// What one fragment costs, measured once: its depth counted from 1 at its
/// own fields, its complexity per resolution, its aliases, and the most of
/// [`TYPE_LISTS`] on one path through it.
#[derive(Clone, Copy)]
struct FragmentCost {
    depth: usize,
    complexity: u64,
    aliases: usize,
    lists: usize,
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// The operation's variable defaults, for variables the request omits.
    defaults: HashMap<Name, Value>,
    limits: &'a OperationLimits,
    aliases: usize,
    /// Fragments being expanded, to stop at a cycle (validation refuses it later).
    expanding: HashSet<Name>,
    /// Each fragment is measured once however often it is spread, so a
    /// fragment spread twice in a chain of fragments costs a walk per
    /// fragment, not one per path.
    costs: HashMap<Name, FragmentCost>,
    root_counts: HashMap<Name, usize>,
}

impl Walk<'_> {
    fn count_root_fields(&mut self, set: &SelectionSet) -> usize {
        let mut count = 0usize;
        for item in &set.items {
            match &item.node {
                Selection::Field(_) => count += 1,
                Selection::InlineFragment(inline) => {
                    count = count
                        .saturating_add(self.count_root_fields(&inline.node.selection_set.node))
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let known = self.root_counts.get(name).copied();
                    let fields = match (known, self.document.fragments.get(name)) {
                        (Some(fields), _) => fields,
                        (None, Some(fragment)) if self.expanding.insert(name.clone()) => {
                            let fields = self.count_root_fields(&fragment.node.selection_set.node);
                            self.expanding.remove(name);
                            self.root_counts.insert(name.clone(), fields);
                            fields
                        }
                        _ => 0,
                    };
                    count = count.saturating_add(fields);
                }
            }
        }
        count
    }

    /// The depth and complexity of `set`, found at `depth`, each of its fields
    /// resolved `multiplier` times.
    fn measure(
        &mut self,
        set: &SelectionSet,
        depth: usize,
        multiplier: u64,
    ) -> Result<Measured, LimitExceeded> {
        let mut measured = Measured {
            depth: depth.saturating_sub(1),
            complexity: 0,
            lists: 0,
        };
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => self.measure_field(&field.node, depth, multiplier)?,
                Selection::InlineFragment(inline) => {
                    self.measure(&inline.node.selection_set.node, depth, multiplier)?
                }
                Selection::FragmentSpread(spread) => {
                    let Some(cost) = self.fragment_cost(&spread.node.fragment_name.node)? else {
                        continue;
                    };
                    self.count_aliases(cost.aliases)?;
                    Measured {
                        depth: depth.saturating_sub(1) + cost.depth,
                        complexity: multiplier.saturating_mul(cost.complexity),
                        lists: cost.lists,
                    }
                }
            };
            measured.depth = measured.depth.max(inner.depth);
            measured.complexity = measured.complexity.saturating_add(inner.complexity);
            measured.lists = measured.lists.max(inner.lists);
        }
        Ok(measured)
    }

    /// The cost of fragment `name`, measured on first use; `None` for an
    /// unknown fragment or a cycle.
    fn fragment_cost(&mut self, name: &Name) -> Result<Option<FragmentCost>, LimitExceeded> {
        if let Some(cost) = self.costs.get(name) {
            return Ok(Some(*cost));
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(None);
        };
        if !self.expanding.insert(name.clone()) {
            return Ok(None);
        }
        let aliases_before = self.aliases;
        let measured = self.measure(&fragment.node.selection_set.node, 1, 1)?;
        let cost = FragmentCost {
            depth: measured.depth,
            complexity: measured.complexity,
            aliases: self.aliases - aliases_before,
            lists: measured.lists,
        };
        // Its aliases are counted where it is spread.
        self.aliases = aliases_before;
        self.expanding.remove(name);
        self.costs.insert(name.clone(), cost);
        Ok(Some(cost))
    }

    fn count_aliases(&mut self, more: usize) -> Result<(), LimitExceeded> {
        self.aliases = self.aliases.saturating_add(more);
        if self.aliases > self.limits.max_aliases {
            return Err(LimitExceeded::new(
                codes::TOO_MANY_ALIASES,
                format!(
                    "the operation has more than {} aliases",
                    self.limits.max_aliases
                ),
            ));
        }
        Ok(())
    }

    fn measure_field(
        &mut self,
        field: &Field,
        depth: usize,
        multiplier: u64,
    ) -> Result<Measured, LimitExceeded> {
        if field.alias.is_some() {
            self.count_aliases(1)?;
        }
        if field.directives.len() > self.limits.max_directives_per_field {
            return Err(LimitExceeded::new(
                codes::TOO_MANY_DIRECTIVES,
                format!(
                    "field '{}' has {} directives; at most {} are accepted",
                    field.name.node,
                    field.directives.len(),
                    self.limits.max_directives_per_field
                ),
            ));
        }
        let name = field.name.node.as_str();
        let items = self.page_size(field).max(1);
        let children = self.measure(
            &field.selection_set.node,
            depth + 1,
            multiplier.saturating_mul(items),
        )?;
        let introspection = name == "__schema" || name == "__type";
        Ok(Measured {
            // Introspection's depth is bounded by its lists instead.
            depth: if introspection {
                depth
            } else {
                children.depth.max(depth)
            },
            complexity: multiplier.saturating_add(children.complexity),
            lists: children.lists + usize::from(TYPE_LISTS.contains(&name)),
        })
    }

    /// How many items a list field may return: its `first` or `last` (a
    /// variable resolved with the request's value or the operation's
    /// default), or the default page size for a connection without either;
    /// 1 for other fields.
    fn page_size(&self, field: &Field) -> u64 {
        let argument = |wanted: &str| {
            field
                .arguments
                .iter()
                .find(|(name, _)| name.node.as_str() == wanted)
                .map(|(_, value)| value.node.clone())
        };
        let is_connection = field.name.node.as_str() == "actions";
        let fallback = if is_connection { DEFAULT_PAGE_SIZE } else { 1 };
        let Some(value) = argument("first").or_else(|| argument("last")) else {
            return fallback;
        };
        let resolved = value.into_const_with(|name| {
            self.variables
                .get(&name)
                .or_else(|| self.defaults.get(&name))
                .cloned()
                .ok_or(())
        });
        match resolved {
            Ok(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn check(query: &str) -> Result<(), LimitExceeded> {
        let document = parse_query(query).unwrap();
        check_document(
            &document,
            &Variables::default(),
            &OperationLimits::default(),
        )
    }

    fn code(query: &str) -> &'static str {
        check(query).unwrap_err().code
    }

    #[test]
    fn depth_counts_nesting_and_fragments() {
        let nested = |n: usize| format!("{{ {}x{} }}", "a { ".repeat(n - 1), " }".repeat(n - 1));
        assert!(check(&nested(12)).is_ok());
        assert_eq!(code(&nested(13)), "QUERY_TOO_DEEP");
        let via_fragment = format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            &nested(13)[2..nested(13).len() - 2]
        );
        assert_eq!(code(&via_fragment), "QUERY_TOO_DEEP");
    }

    #[test]
    fn list_fields_weigh_their_children_by_first_or_last() {
        let page = |n: u64, fields: usize| {
            let selection = (0..fields)
                .map(|i| format!("f{i}"))
                .collect::<Vec<_>>()
                .join(" ");
            format!("{{ actions(first: {n}) {{ nodes {{ {selection} }} }} }}")
        };
        // 1 (actions) + 100 × (1 nodes + 48 fields) = 4,901
        assert!(check(&page(100, 48)).is_ok());
        // 1 + 100 × (1 + 50) = 5,101
        assert_eq!(code(&page(100, 50)), "QUERY_TOO_COMPLEX");
        let variables = Variables::from_json(serde_json::json!({"n": 100}));
        let document = parse_query("query($n: Int) { actions(first: $n) { nodes { a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd ee ff gg hh ii jj kk ll mm nn oo pp qq rr ss tt uu vv ww xx } } }").unwrap();
        assert_eq!(
            check_document(&document, &variables, &OperationLimits::default())
                .unwrap_err()
                .code,
            "QUERY_TOO_COMPLEX"
        );
    }

    #[test]
    fn aliases_root_fields_and_directives_are_counted() {
        let aliases = |n: usize| {
            let fields: Vec<String> = (0..n).map(|i| format!("a{i}: y")).collect();
            format!("{{ x {{ {} }} }}", fields.join(" "))
        };
        assert!(check(&aliases(30)).is_ok());
        assert_eq!(code(&aliases(31)), "TOO_MANY_ALIASES");
        let roots = |n: usize| {
            format!(
                "{{ {} }}",
                (0..n)
                    .map(|i| format!("f{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        assert!(check(&roots(20)).is_ok());
        assert_eq!(code(&roots(21)), "TOO_MANY_ROOT_FIELDS");
        let typenames = format!("{{ {} }}", "__typename ".repeat(500));
        assert_eq!(code(&typenames), "TOO_MANY_ROOT_FIELDS");
        let directives = |n: usize| format!("{{ x {} }}", "@skip(if: false) ".repeat(n));
        assert!(check(&directives(5)).is_ok());
        assert_eq!(code(&directives(6)), "TOO_MANY_DIRECTIVES");
    }

    #[test]
    fn introspection_is_held_to_its_lists_not_to_depth() {
        let deep = format!(
            "{{ __schema {{ types {{ {}name{} }} }} }}",
            "ofType { ".repeat(15),
            " }".repeat(15)
        );
        assert!(check(&deep).is_ok());
        let two = "{ __type(name: \"Query\") { fields { type { inputFields { name } } } } }";
        assert!(check(two).is_ok());
        let three = "{ __type(name: \"Query\") { fields { type { fields { type { interfaces { name } } } } } } }";
        assert_eq!(code(three), "QUERY_TOO_DEEP");
        let through_fragments = "{ __type(name: \"Query\") { ...A } } \
            fragment A on __Type { fields { type { ...B } } } \
            fragment B on __Type { possibleTypes { ...C } } \
            fragment C on __Type { fields { name } }";
        assert_eq!(code(through_fragments), "QUERY_TOO_DEEP");
    }

    #[test]
    fn introspection_counts_for_complexity() {
        let mut doubling = String::from("{ __type(name: \"Query\") { ...F0 } }");
        for i in 0..18 {
            let next = i + 1;
            doubling.push_str(&format!(
                " fragment F{i} on __Type {{ ofType {{ ...F{next} }} ...F{next} }}"
            ));
        }
        doubling.push_str(" fragment F18 on __Type { name }");
        assert_eq!(code(&doubling), "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn a_chain_of_doubly_spread_fragments_is_measured_once_per_fragment() {
        // 2^40 paths; each fragment is measured once.
        let mut query = String::from("query { ...F0 }");
        for i in 0..40 {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
                next = i + 1
            ));
        }
        query.push_str(" fragment F40 on Query { actionCounts { count } }");
        assert_eq!(check(&query).unwrap_err().code, "TOO_MANY_ROOT_FIELDS");
        let mut nested = String::from("query { actionCounts { ...G0 } }");
        for i in 0..40 {
            nested.push_str(&format!(
                " fragment G{i} on StatusCount {{ ...G{next} ...G{next} }}",
                next = i + 1
            ));
        }
        nested.push_str(" fragment G40 on StatusCount { count }");
        assert_eq!(check(&nested).unwrap_err().code, "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn variable_defaults_count_as_page_sizes() {
        let query = "query($n: Int = 100) { actions(first: $n) { nodes { a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd ee ff gg hh ii jj kk ll mm nn oo pp qq rr ss tt uu vv ww xx } } }";
        assert_eq!(code(query), "QUERY_TOO_COMPLEX");
        let null = "query($n: Int) { actions(first: $n) { nodes { id } } }";
        let document = parse_query(null).unwrap();
        let variables = Variables::from_json(serde_json::json!({"n": null}));
        assert!(check_document(&document, &variables, &OperationLimits::default()).is_ok());
    }

    #[test]
    fn a_fragment_cycle_does_not_loop() {
        assert!(
            check("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").is_ok()
        );
    }

    #[test]
    fn text_size_is_checked_in_bytes() {
        let limits = OperationLimits::default();
        assert!(check_size(&"x".repeat(16 * 1024), &limits).is_ok());
        assert_eq!(
            check_size(&"x".repeat(16 * 1024 + 1), &limits)
                .unwrap_err()
                .code,
            "QUERY_TOO_LARGE"
        );
    }
}
