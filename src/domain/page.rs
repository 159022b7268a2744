//! Ordering and keyset pagination of action lists.
//!
//! A cursor encodes the sort key and the id of an action, not an offset: the next
//! page is "rows after (key, id)" in index order, so page 10,000 costs what page 1
//! costs, and pages stay stable while actions are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::action::Action;
use super::time::to_micros;
use crate::error::AppError;

/// Most rows one page may hold.
pub(crate) const MAX_PAGE_SIZE: u64 = 100;
/// Rows in a page when the caller asks for neither `first` nor `last`.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 20;
/// Most rows an offset may skip. Skipped rows are read and thrown away, so
/// offsets stay small; keyset cursors page any distance at the same cost.
pub(crate) const MAX_SKIP: u64 = 500;

/// The timestamp an action list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderField {
    CreatedAt,
    LastActionAt,
}

impl OrderField {
    fn tag(self) -> &'static str {
        match self {
            OrderField::CreatedAt => "c",
            OrderField::LastActionAt => "l",
        }
    }
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Asc,
    Desc,
}

/// How an action list is sorted; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActionOrder {
    pub field: OrderField,
    pub direction: Direction,
}

impl Default for ActionOrder {
    /// Newest first.
    fn default() -> Self {
        ActionOrder {
            field: OrderField::CreatedAt,
            direction: Direction::Desc,
        }
    }
}

/// A position in an ordered list: the sort key and id of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub field: OrderField,
    /// The sort key, in stored form (microseconds).
    pub key: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The position of `action` in a list sorted by `field`.
    pub(crate) fn of(action: &Action, field: OrderField) -> Cursor {
        let key = match field {
            OrderField::CreatedAt => action.created_at,
            OrderField::LastActionAt => action.last_action_at,
        };
        Cursor {
            field,
            key: to_micros(key),
            id: action.id,
        }
    }

    /// The opaque text clients pass back as `after` or `before`.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("a1:{}:{}:{}", self.field.tag(), self.key, self.id))
    }

    /// Decodes a cursor made by [`Cursor::encode`]; anything else is
    /// `BAD_USER_INPUT` on `field`.
    pub(crate) fn decode(field: &str, text: &str) -> Result<Cursor, AppError> {
        let invalid =
            || AppError::bad_input(field, format!("{field} is not a cursor of this list"));
        if text.len() > 128 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = plain.split(':');
        let (Some("a1"), Some(tag), Some(key), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let order_field = match tag {
            "c" => OrderField::CreatedAt,
            "l" => OrderField::LastActionAt,
            _ => return Err(invalid()),
        };
        Ok(Cursor {
            field: order_field,
            key: key.parse().map_err(|_| invalid())?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// Which way a page is read from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageDirection {
    /// `first` rows after `after` (or from the start).
    Forward,
    /// `last` rows before `before` (or up to the end).
    Backward,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub size: u64,
    pub direction: PageDirection,
    pub cursor: Option<Cursor>,
    /// Rows passed over (from the cursor, or the start) before the page; at
    /// most [`MAX_SKIP`].
    pub skip: u64,
}

/// Decodes the cursor at `field` and checks that it belongs to a list in `order`.
fn cursor_for(order: ActionOrder, field: &str, text: &str) -> Result<Cursor, AppError> {
    let cursor = Cursor::decode(field, text)?;
    if cursor.field != order.field {
        return Err(AppError::bad_input(
            field,
            format!("{field} is a cursor of a list in another order"),
        ));
    }
    Ok(cursor)
}

impl PageRequest {
    /// Validates Relay's `first`/`after`/`last`/`before` against `order`.
    pub(crate) fn new(
        order: ActionOrder,
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> Result<PageRequest, AppError> {
        let size = |field: &str, n: i32| -> Result<u64, AppError> {
            match u64::try_from(n) {
                Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
                _ => Err(AppError::bad_input(
                    field,
                    format!("{field} must be between 0 and {MAX_PAGE_SIZE}"),
                )),
            }
        };
        let cursor = |field: &str, text: &str| cursor_for(order, field, text);
        if first.is_some() && last.is_some() {
            return Err(AppError::bad_input(
                "last",
                "pass either first or last, not both",
            ));
        }
        if after.is_some() && before.is_some() {
            return Err(AppError::bad_input(
                "before",
                "pass either after or before, not both",
            ));
        }
        if let Some(n) = last {
            if after.is_some() {
                return Err(AppError::bad_input(
                    "after",
                    "after goes with first, before with last",
                ));
            }
            return Ok(PageRequest {
                size: size("last", n)?,
                direction: PageDirection::Backward,
                cursor: before.map(|b| cursor("before", b)).transpose()?,
                skip: 0,
            });
        }
        if let Some(b) = before {
            if first.is_some() {
                return Err(AppError::bad_input(
                    "before",
                    "after goes with first, before with last",
                ));
            }
            return Ok(PageRequest {
                size: DEFAULT_PAGE_SIZE,
                direction: PageDirection::Backward,
                cursor: Some(cursor("before", b)?),
                skip: 0,
            });
        }
        Ok(PageRequest {
            size: first
                .map(|n| size("first", n))
                .transpose()?
                .unwrap_or(DEFAULT_PAGE_SIZE),
            direction: PageDirection::Forward,
            cursor: after.map(|a| cursor("after", a)).transpose()?,
            skip: 0,
        })
    }

    /// A forward page in `order`: at most `size` rows (a larger size is
    /// served as [`MAX_PAGE_SIZE`], the caller reading on with the next
    /// cursor), after `skip` rows, from the cursor `after` when given.
    /// `after` is the field name and text of the cursor, for errors.
    pub(crate) fn forward(
        order: ActionOrder,
        size: u64,
        skip: u64,
        after: Option<(&str, &str)>,
    ) -> Result<PageRequest, AppError> {
        Ok(PageRequest {
            size: size.min(MAX_PAGE_SIZE),
            direction: PageDirection::Forward,
            cursor: after
                .map(|(field, text)| cursor_for(order, field, text))
                .transpose()?,
            skip: skip.min(MAX_SKIP),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: AppError) -> String {
        match err {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = Cursor {
            field: OrderField::LastActionAt,
            key: 1_764_000_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode("after", &cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn malformed_cursors_are_bad_user_input() {
        for bad in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("a1:c:12:not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("a1:z:1:00000000-0000-0000-0000-000000000000"),
            &"A".repeat(500),
        ] {
            assert_eq!(field_of(Cursor::decode("after", bad).unwrap_err()), "after");
        }
    }

    #[test]
    fn page_sizes_are_capped() {
        let order = ActionOrder::default();
        assert_eq!(
            PageRequest::new(order, Some(100), None, None, None)
                .unwrap()
                .size,
            100
        );
        assert_eq!(
            field_of(PageRequest::new(order, Some(101), None, None, None).unwrap_err()),
            "first"
        );
        assert_eq!(
            field_of(PageRequest::new(order, None, None, Some(-1), None).unwrap_err()),
            "last"
        );
        assert_eq!(
            PageRequest::new(order, None, None, None, None)
                .unwrap()
                .size,
            DEFAULT_PAGE_SIZE
        );
    }

    #[test]
    fn forward_pages_cap_their_size_and_offset() {
        let order = ActionOrder::default();
        let page = PageRequest::forward(order, 1000, 10_000, None).unwrap();
        assert_eq!((page.size, page.skip), (MAX_PAGE_SIZE, MAX_SKIP));
        let cursor = Cursor {
            field: OrderField::CreatedAt,
            key: 5,
            id: Uuid::nil(),
        };
        let page =
            PageRequest::forward(order, 7, 0, Some(("$skiptoken", &cursor.encode()))).unwrap();
        assert_eq!(page.cursor, Some(cursor));
        let err = PageRequest::forward(order, 7, 0, Some(("$skiptoken", "junk"))).unwrap_err();
        assert_eq!(field_of(err), "$skiptoken");
    }

    #[test]
    fn a_cursor_of_another_order_is_refused() {
        let cursor = Cursor {
            field: OrderField::LastActionAt,
            key: 1,
            id: Uuid::nil(),
        }
        .encode();
        let err = PageRequest::new(ActionOrder::default(), Some(10), Some(&cursor), None, None)
            .unwrap_err();
        assert_eq!(field_of(err), "after");
    }
}
