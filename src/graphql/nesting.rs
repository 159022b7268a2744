//! How deep a request may nest, measured without recursing.
//!
//! Parsing a document, validating it, measuring it against the operation
//! limits, parsing its input values and dropping them all recurse once per
//! level of nesting, on the stack of the task that runs the request. A few
//! kilobytes of `[[[[…]]]]` would overflow that stack and abort the process,
//! so the nesting is bounded before any of them runs: the brackets of the raw
//! text (before parsing), the variables' values, and the chains of fragment
//! spreads (after parsing, before anything walks them). Each is measured
//! here with loops, never recursion, and refused with `QUERY_TOO_DEEP`.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value, Variables};

use super::limits::LimitExceeded;
use crate::error::codes;

/// Deepest nesting of a request: brackets in its text, levels of its
/// variables' values, and selection sets through fragment spreads. Far above
/// what the operation limits let a useful document reach (a depth of 12 with
/// a filter 5 deep nests about 25), far below what the stack holds.
pub(crate) const MAX_NESTING: usize = 64;

/// Refuses `text` when its brackets (`{`, `[`, `(`) nest deeper than
/// `max`. Brackets inside strings, block strings and comments do not count;
/// an unterminated string counts as text, so its brackets do.
pub(crate) fn check_text(text: &str, max: usize) -> Result<(), LimitExceeded> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(too_deep(format!(
                        "the document nests brackets more than {max} deep"
                    )));
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'#' => {
                i = line_end(bytes, i);
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = block_string_end(bytes, i + 3).unwrap_or(i + 3);
            }
            b'"' => {
                i = string_end(bytes, i + 1).unwrap_or(i + 1);
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Where the comment starting at `start` ends: at the next line terminator.
fn line_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |offset| start + offset)
}

/// Just past the `"` closing a string whose content starts at `start`; `None`
/// when a line ends or the text ends first.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b'\n' | b'\r' => return None,
            _ => i += 1,
        }
    }
    None
}

/// Just past the `"""` closing a block string whose content starts at
/// `start` (`\"""` does not close it); `None` when the text ends first.
fn block_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// Refuses variables whose values nest lists and objects deeper than `max`.
pub(crate) fn check_variables(variables: &Variables, max: usize) -> Result<(), LimitExceeded> {
    for (name, value) in variables.iter() {
        let mut pending: Vec<(&Value, usize)> = vec![(value, 1)];
        while let Some((value, depth)) = pending.pop() {
            let children: Box<dyn Iterator<Item = &Value>> = match value {
                Value::List(items) => Box::new(items.iter()),
                Value::Object(fields) => Box::new(fields.values()),
                _ => continue,
            };
            if depth > max {
                return Err(too_deep(format!(
                    "variable ${name} nests lists and objects more than {max} deep"
                )));
            }
            pending.extend(children.map(|child| (child, depth + 1)));
        }
    }
    Ok(())
}

/// Refuses a document whose selection sets, followed through its fragment
/// spreads, nest deeper than `max` (each spread counts as a level, as it is
/// one more call for whatever walks the document), and one whose fragments
/// spread themselves.
///
/// Call it once `check_text` has passed: the walk within one selection set
/// recurses, but only as deep as the brackets of the text.
pub(crate) fn check_fragments(
    document: &ExecutableDocument,
    max: usize,
) -> Result<(), LimitExceeded> {
    let shapes: HashMap<&Name, Shape> = document
        .fragments
        .iter()
        .map(|(name, fragment)| (name, Shape::of(&fragment.node.selection_set.node)))
        .collect();
    let nesting = fragment_nesting(&shapes)?;
    for (_, operation) in document.operations.iter() {
        let shape = Shape::of(&operation.node.selection_set.node);
        if shape.nesting(&nesting) > max {
            return Err(too_deep(format!(
                "the operation nests more than {max} deep through its fragments"
            )));
        }
    }
    Ok(())
}

/// The selection sets of one fragment or operation, without following spreads.
struct Shape<'a> {
    /// Levels of selection sets, its own counted as 1.
    levels: usize,
    /// Each spread and the level of the selection set it is in.
    spreads: Vec<(&'a Name, usize)>,
}

impl<'a> Shape<'a> {
    fn of(set: &'a SelectionSet) -> Shape<'a> {
        let mut shape = Shape {
            levels: 0,
            spreads: Vec::new(),
        };
        shape.walk(set, 1);
        shape
    }

    fn walk(&mut self, set: &'a SelectionSet, level: usize) {
        self.levels = self.levels.max(level);
        for item in &set.items {
            match &item.node {
                Selection::Field(field) if !field.node.selection_set.node.items.is_empty() => {
                    self.walk(&field.node.selection_set.node, level + 1)
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(inline) => {
                    self.walk(&inline.node.selection_set.node, level + 1)
                }
                Selection::FragmentSpread(spread) => {
                    self.spreads.push((&spread.node.fragment_name.node, level))
                }
            }
        }
    }

    /// Its nesting with each spread replaced by the fragment's nesting, one
    /// level deeper (unknown fragments count as nothing: validation names them).
    fn nesting(&self, fragments: &HashMap<&Name, usize>) -> usize {
        self.spreads
            .iter()
            .map(|(name, level)| level + fragments.get(name).copied().unwrap_or(0))
            .fold(self.levels, usize::max)
    }
}

/// The nesting of every fragment through its spreads, worked out bottom-up
/// with an explicit stack. A cycle is refused: it nests without end.
fn fragment_nesting<'a>(
    shapes: &HashMap<&'a Name, Shape<'a>>,
) -> Result<HashMap<&'a Name, usize>, LimitExceeded> {
    let mut done: HashMap<&Name, usize> = HashMap::with_capacity(shapes.len());
    for &start in shapes.keys() {
        if done.contains_key(start) {
            continue;
        }
        // Fragments being worked out, each with the index of its next spread.
        let mut path: Vec<(&Name, usize)> = vec![(start, 0)];
        while let Some((name, next)) = path.last_mut() {
            let shape = &shapes[name];
            let Some(&(target, _)) = shape.spreads.get(*next) else {
                let nesting = shape.nesting(&done);
                done.insert(name, nesting);
                path.pop();
                continue;
            };
            *next += 1;
            if done.contains_key(target) || !shapes.contains_key(target) {
                continue;
            }
            if path.iter().any(|(on_path, _)| *on_path == target) {
                return Err(LimitExceeded {
                    code: codes::GRAPHQL_VALIDATION_FAILED,
                    message: format!("fragment \"{target}\" spreads itself"),
                });
            }
            path.push((target, 0));
        }
    }
    Ok(done)
}

fn too_deep(message: String) -> LimitExceeded {
    LimitExceeded {
        code: codes::QUERY_TOO_DEEP,
        message,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn text_depth_ok(text: &str, max: usize) -> bool {
        check_text(text, max).is_ok()
    }

    #[test]
    fn brackets_count_outside_strings_and_comments() {
        assert!(text_depth_ok("{ a { b } }", 2));
        assert!(!text_depth_ok("{ a { b(x: [1]) } }", 3));
        assert!(text_depth_ok("{ a(x: \"[[[[\") }", 2));
        assert!(text_depth_ok("{ a(x: \"\\\"[[[[\") }", 2));
        assert!(text_depth_ok("{ a(x: \"\"\"[[[\n[\\\"\"\"[[\"\"\") }", 2));
        assert!(text_depth_ok("# [[[[[\n{ a }", 1));
        assert!(text_depth_ok("#\r[\n{ a }", 2));
        assert!(!text_depth_ok("#\r[[\n{ a }", 2));
    }

    #[test]
    fn unterminated_strings_count_their_brackets() {
        assert!(!text_depth_ok("{ a(x: \"[[[[", 3));
        assert!(!text_depth_ok("{ a(x: \"[\n[[[\"", 3));
        assert!(!text_depth_ok("{ a(x: \"\"\"[[[[", 3));
        assert!(!text_depth_ok("{ a(x: \"\\", 0));
    }

    #[test]
    fn closing_brackets_never_make_room() {
        assert!(!text_depth_ok("]]]]]]{[(", 2));
    }

    #[test]
    fn variables_are_measured_by_their_deepest_value() {
        let nested = |levels: usize| {
            (0..levels).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]))
        };
        let variables = |value| Variables::from_json(serde_json::json!({"a": 1, "b": value}));
        assert!(check_variables(&variables(nested(3)), 3).is_ok());
        let refused = check_variables(&variables(nested(4)), 3).unwrap_err();
        assert_eq!(refused.code, codes::QUERY_TOO_DEEP);
        assert!(refused.message.contains("$b"), "{}", refused.message);
    }

    fn fragments(document: &str, max: usize) -> Result<(), LimitExceeded> {
        check_fragments(&parse_query(document).unwrap(), max)
    }

    #[test]
    fn spreads_count_as_levels_through_chains() {
        let chain = |n: usize| {
            let mut text = String::from("{ ...F0 }");
            for i in 0..n {
                text.push_str(&format!(" fragment F{i} on Q {{ ...F{} }}", i + 1));
            }
            text.push_str(&format!(" fragment F{n} on Q {{ a {{ b }} }}"));
            text
        };
        // The operation's set, one level per spread, and the last fragment's two.
        assert!(fragments(&chain(3), 1 + 4 + 1).is_ok());
        assert_eq!(
            fragments(&chain(3), 1 + 4).unwrap_err().code,
            codes::QUERY_TOO_DEEP
        );
        assert!(fragments(&chain(1000), MAX_NESTING).is_err());
    }

    #[test]
    fn a_fragment_spread_many_times_is_measured_once() {
        let mut text = String::from("{ ...F0 }");
        for i in 0..40 {
            let next = i + 1;
            text.push_str(&format!(
                " fragment F{i} on Q {{ ...F{next} a {{ ...F{next} }} }}"
            ));
        }
        text.push_str(" fragment F40 on Q { a }");
        assert_eq!(
            fragments(&text, 64).unwrap_err().code,
            codes::QUERY_TOO_DEEP
        );
    }

    #[test]
    fn cycles_are_refused_and_unknown_fragments_left_to_validation() {
        let cycle = "{ ...A } fragment A on Q { b { ...B } } fragment B on Q { ...A }";
        assert_eq!(
            fragments(cycle, 64).unwrap_err().code,
            codes::GRAPHQL_VALIDATION_FAILED
        );
        assert!(fragments("{ ...Missing a { ...Gone } }", 64).is_ok());
    }
}
