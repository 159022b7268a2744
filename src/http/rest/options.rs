//! OData query options: `$filter`, `$top`, `$skip`, `$skiptoken`, `$orderby`,
//! `$count` and `$select`, read from the query string into the domain's
//! filter, order and page request.
//!
//! As on Graph's beta endpoint, the `$` is optional and names match in any
//! casing. An option an endpoint does not take, or one given twice, is a 400
//! that names it: nothing is silently ignored.

use crate::domain::filter::ActionFilter;
use crate::domain::page::{ActionOrder, DEFAULT_PAGE_SIZE, Direction, MAX_SKIP, OrderField};

use super::errors::RestError;
use super::representation::PROPERTIES;
use super::{filter, odata};

/// A query option of the face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryOption {
    Filter,
    Top,
    Skip,
    SkipToken,
    OrderBy,
    Count,
    Select,
}

impl QueryOption {
    pub(super) const ALL: [QueryOption; 7] = [
        QueryOption::Filter,
        QueryOption::Top,
        QueryOption::Skip,
        QueryOption::SkipToken,
        QueryOption::OrderBy,
        QueryOption::Count,
        QueryOption::Select,
    ];

    fn name(self) -> &'static str {
        match self {
            QueryOption::Filter => "$filter",
            QueryOption::Top => "$top",
            QueryOption::Skip => "$skip",
            QueryOption::SkipToken => "$skiptoken",
            QueryOption::OrderBy => "$orderby",
            QueryOption::Count => "$count",
            QueryOption::Select => "$select",
        }
    }
}

/// OData options that exist but that this face does not support.
const UNSUPPORTED: [&str; 10] = [
    "$expand",
    "$search",
    "$format",
    "$apply",
    "$compute",
    "$levels",
    "$deltatoken",
    "$index",
    "$schemaversion",
    "$id",
];

/// The query options of one request, read and checked.
#[derive(Debug, Default)]
pub(super) struct QueryOptions {
    /// The `$filter` as given, and its domain filter.
    pub filter: Option<(String, ActionFilter)>,
    pub top: Option<u64>,
    pub skip: u64,
    pub skiptoken: Option<String>,
    /// The `$orderby` as given, and its order.
    pub order_by: Option<(String, ActionOrder)>,
    pub count: bool,
    /// The `$select` as given, and the properties it names; `None` for all.
    pub select: Option<(String, Vec<&'static str>)>,
}

impl QueryOptions {
    /// Reads `query` (the raw query string), accepting only `allowed`.
    /// `max_bytes` bounds the whole query string.
    pub(super) fn parse(
        query: Option<&str>,
        allowed: &[QueryOption],
        max_bytes: usize,
    ) -> Result<QueryOptions, RestError> {
        let mut options = QueryOptions::default();
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return Ok(options);
        };
        if query.len() > max_bytes {
            return Err(RestError::new(
                axum::http::StatusCode::BAD_REQUEST,
                crate::error::codes::QUERY_TOO_LARGE,
                format!("the query string is at most {max_bytes} bytes"),
            ));
        }
        let mut seen = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let name = format!("${}", key.trim_start_matches('$').to_ascii_lowercase());
            let option = QueryOption::ALL.into_iter().find(|o| o.name() == name);
            let Some(option) = option.filter(|o| allowed.contains(o)) else {
                let shown = crate::domain::indicator::shorten(&key);
                return Err(RestError::bad_request(
                    if UNSUPPORTED.contains(&name.as_str()) || option.is_some() {
                        format!("the query option '{shown}' is not supported here")
                    } else {
                        format!("'{shown}' is not a query option of this resource")
                    },
                ));
            };
            if seen.contains(&option) {
                return Err(RestError::bad_request(format!(
                    "the query option '{}' is given twice",
                    option.name()
                )));
            }
            seen.push(option);
            options.read(option, value.into_owned())?;
        }
        Ok(options)
    }

    fn read(&mut self, option: QueryOption, value: String) -> Result<(), RestError> {
        match option {
            QueryOption::Filter => {
                let expr = odata::parse(&value)
                    .map_err(|e| RestError::bad_request(format!("invalid $filter: {}", e.0)))?;
                let domain = filter::to_domain(&expr, &value).map_err(RestError::from)?;
                self.filter = Some((value, domain));
            }
            QueryOption::Top => self.top = Some(count_option("$top", &value)?),
            QueryOption::Skip => {
                let skip = count_option("$skip", &value)?;
                if skip > MAX_SKIP {
                    return Err(RestError::bad_request(format!(
                        "$skip is at most {MAX_SKIP}; to read further, follow @odata.nextLink (its $skiptoken pages any distance)"
                    )));
                }
                self.skip = skip;
            }
            QueryOption::SkipToken => self.skiptoken = Some(value),
            QueryOption::OrderBy => {
                let order = order_by(&value)?;
                self.order_by = Some((value, order));
            }
            QueryOption::Count => {
                self.count = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(RestError::bad_request("$count is true or false".to_owned()));
                    }
                }
            }
            QueryOption::Select => {
                let selected = select(&value)?;
                self.select = selected.map(|s| (value, s));
            }
        }
        Ok(())
    }

    /// The filter, or the one that passes everything.
    pub(super) fn domain_filter(&self) -> ActionFilter {
        self.filter
            .as_ref()
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    }

    pub(super) fn order(&self) -> ActionOrder {
        self.order_by.as_ref().map(|(_, o)| *o).unwrap_or_default()
    }

    pub(super) fn page_size(&self) -> u64 {
        self.top.unwrap_or(DEFAULT_PAGE_SIZE)
    }

    pub(super) fn selected(&self) -> Option<&[&'static str]> {
        self.select.as_ref().map(|(_, s)| s.as_slice())
    }

    /// Whether the representation needs `name`.
    pub(super) fn wants(&self, name: &str) -> bool {
        self.selected().is_none_or(|s| s.contains(&name))
    }

    /// The query string of the next page: every option as given, but the
    /// offset, with `$skiptoken` set to `token`.
    pub(super) fn next_page_query(&self, token: &str) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some((text, _)) = &self.filter {
            pairs.push(("$filter", text.clone()));
        }
        if let Some((text, _)) = &self.order_by {
            pairs.push(("$orderby", text.clone()));
        }
        if let Some((text, _)) = &self.select {
            pairs.push(("$select", text.clone()));
        }
        if self.count {
            pairs.push(("$count", "true".into()));
        }
        if let Some(top) = self.top {
            pairs.push(("$top", top.to_string()));
        }
        pairs.push(("$skiptoken", token.to_owned()));
        pairs
            .into_iter()
            .map(|(name, value)| {
                let value: String =
                    url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
                format!("{name}={value}")
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A non-negative whole number.
fn count_option(name: &str, value: &str) -> Result<u64, RestError> {
    value.trim().parse::<u64>().map_err(|_| {
        RestError::bad_request(format!(
            "{name} is a whole number of 0 or more, not '{}'",
            crate::domain::indicator::shorten(value)
        ))
    })
}

/// `createdDateTime` or `lastActionDateTime`, then `asc` (the default) or `desc`.
fn order_by(value: &str) -> Result<ActionOrder, RestError> {
    let keys: Vec<&str> = value.split(',').map(str::trim).collect();
    if keys.len() > 1 {
        return Err(RestError::bad_request(
            "$orderby takes one property: createdDateTime or lastActionDateTime",
        ));
    }
    let mut words = keys[0].split_whitespace();
    let property = words.next().unwrap_or("");
    let field = if property.eq_ignore_ascii_case("createdDateTime") {
        OrderField::CreatedAt
    } else if property.eq_ignore_ascii_case("lastActionDateTime") {
        OrderField::LastActionAt
    } else {
        return Err(RestError::bad_request(format!(
            "ordering by '{}' is not supported; $orderby takes createdDateTime or lastActionDateTime",
            crate::domain::indicator::shorten(property)
        )));
    };
    let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(RestError::bad_request(format!(
                "'{}' is not a direction in $orderby; use asc or desc",
                crate::domain::indicator::shorten(other)
            )));
        }
    };
    if let Some(extra) = words.next() {
        return Err(RestError::bad_request(format!(
            "unexpected '{}' in $orderby",
            crate::domain::indicator::shorten(extra)
        )));
    }
    Ok(ActionOrder { field, direction })
}

/// The properties `$select` names; `None` for `*`.
fn select(value: &str) -> Result<Option<Vec<&'static str>>, RestError> {
    let mut selected = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name == "*" {
            return Ok(None);
        }
        let property = PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                RestError::bad_request(format!(
                    "'{}' is not a property of securityAction; $select takes {}",
                    crate::domain::indicator::shorten(name),
                    PROPERTIES.join(", ")
                ))
            })?;
        if !selected.contains(property) {
            selected.push(*property);
        }
    }
    Ok(Some(selected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[QueryOption] = &QueryOption::ALL;

    fn parse(query: &str) -> Result<QueryOptions, String> {
        QueryOptions::parse(Some(query), LIST, 16 * 1024).map_err(|e| e.message)
    }

    #[test]
    fn every_option_is_read_with_or_without_its_dollar() {
        let o = parse("$top=5&skip=3&$COUNT=true&$orderby=lastActionDateTime%20desc&$select=id,Status&$filter=status%20eq%20%27Running%27&$skiptoken=abc").unwrap();
        assert_eq!(o.top, Some(5));
        assert_eq!(o.skip, 3);
        assert!(o.count);
        assert_eq!(
            o.order(),
            ActionOrder {
                field: OrderField::LastActionAt,
                direction: Direction::Desc
            }
        );
        assert_eq!(o.selected(), Some(&["id", "status"][..]));
        assert!(o.filter.is_some());
        assert_eq!(o.skiptoken.as_deref(), Some("abc"));
    }

    #[test]
    fn unknown_unsupported_repeated_and_malformed_options_are_named() {
        for (query, named) in [
            ("$expand=states", "$expand"),
            ("$search=x", "$search"),
            ("color=red", "color"),
            ("$top=1&$top=2", "$top"),
            ("$top=-1", "$top"),
            ("$top=many", "$top"),
            ("$skip=501", "nextLink"),
            ("$count=yes", "$count"),
            ("$orderby=name", "name"),
            ("$orderby=createdDateTime%20up", "up"),
            (
                "$orderby=createdDateTime,lastActionDateTime",
                "one property",
            ),
            ("$select=id,colour", "colour"),
            ("$filter=name%20has%20%27x%27", "has"),
        ] {
            let message = parse(query).unwrap_err();
            assert!(message.contains(named), "{query}: {message}");
        }
        let count_only =
            QueryOptions::parse(Some("$top=1"), &[QueryOption::Filter], 1024).unwrap_err();
        assert!(
            count_only.message.contains("$top"),
            "{}",
            count_only.message
        );
        let long = QueryOptions::parse(Some(&"a".repeat(100)), LIST, 50).unwrap_err();
        assert_eq!(long.code, "QUERY_TOO_LARGE");
    }

    #[test]
    fn the_next_page_repeats_every_option_but_the_offset() {
        let o =
            parse("$top=2&$skip=4&$filter=user%20eq%20%27a%20b%27&$select=id&$count=true").unwrap();
        assert_eq!(
            o.next_page_query("tok"),
            "$filter=user+eq+%27a+b%27&$select=id&$count=true&$top=2&$skiptoken=tok"
        );
        assert!(o.wants("id") && !o.wants("states"));
    }
}
