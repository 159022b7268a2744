//! The call budget of a rate-limited provider, shared by every replica on the
//! database: a sliding log of the calls made (`provider_calls`), read and
//! added to under the provider's row lock (`provider_budgets`).
//!
//! A provider asks before each call to its API. The answer is "go" (the call
//! is logged at once, so no other replica can spend the same room) or "wait
//! this long" (until the oldest call that fills a window leaves it). A sliding
//! log rather than a token bucket or fixed windows, because Defender counts
//! calls "per minute" without saying where a minute starts: a log never lets
//! more than the limit fall inside ANY window of that length, so the gateway
//! stays within the limit however the API counts. A call reaches the API a
//! moment after it is logged, and two calls one window apart in the log must
//! not arrive less than a window apart: once the API has answered, the call
//! is logged again at the time of the answer ([`Store::budget_call_answered`]),
//! which is never before the API counted it, however long it took to get
//! there on a loaded machine; and each call is held a little longer than its
//! window (see [`held`]) for what the clocks of replicas disagree.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tracing::instrument;

use super::Store;
use super::entities::{provider_budget, provider_call};
use crate::domain::time::{self, to_micros};
use crate::error::AppError;

/// How much longer than its window a call is held, as a fraction of the
/// window (1/20: 3 s of a minute), ...
const HOLD_MARGIN_DIVISOR: u32 = 20;
/// ... but no less than this (a loaded machine takes that long to send) ...
const HOLD_MARGIN_MIN: Duration = Duration::from_millis(250);
/// ... and no more (a call never takes longer to reach the API).
const HOLD_MARGIN_MAX: Duration = Duration::from_secs(5);

/// The limits of one provider's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetLimits {
    /// Calls of any kind per `minute`.
    pub calls_per_minute: u32,
    /// Calls of any kind per `hour`.
    pub calls_per_hour: u32,
    /// Calls to batch endpoints (import, batch delete) per `minute`.
    pub batch_calls_per_minute: u32,
    /// The short window (a minute, shorter in tests).
    pub minute: Duration,
    /// The long window (an hour, shorter in tests).
    pub hour: Duration,
}

/// What a call needs from the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// One call to an endpoint that takes one indicator.
    Single,
    /// One call to a batch endpoint: counts as a call and as a batch call.
    Batch,
}

/// The budget's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// `None`: the call may go (it is logged). `Some(wait)`: not before `wait`.
    pub wait: Option<Duration>,
    /// When there is room, if there is none now: the instant the call that
    /// fills the window leaves it. Every caller turned away until then is
    /// given the same instant, so their work comes back due together and
    /// goes in one call rather than one call per caller.
    pub room_at: Option<DateTime<Utc>>,
    /// The logged call, when it may go: pass it to
    /// [`Store::budget_call_answered`] once the API answered.
    pub call: Option<i64>,
    /// Calls left in the short window after this answer.
    pub left_minute: u32,
    /// Calls left in the long window after this answer.
    pub left_hour: u32,
}

impl Store {
    /// Takes one call of `kind` from `provider`'s budget, or says how long to
    /// wait for room. One transaction under the provider's row lock, so
    /// replicas never spend the same room twice.
    #[instrument(level = "debug", skip(self, limits), fields(db.system = self.db_system()))]
    pub(crate) async fn take_budget(
        &self,
        provider: &str,
        kind: CallKind,
        limits: &BudgetLimits,
    ) -> Result<Taken, AppError> {
        let txn = self.begin_write().await?;
        let now = to_micros(time::now());
        // The upsert takes the provider's row lock (PostgreSQL) until commit;
        // SQLite's write lock is already held.
        provider_budget::Entity::insert(provider_budget::ActiveModel {
            provider: Set(provider.to_owned()),
            taken_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(provider_budget::Column::Provider)
                .update_column(provider_budget::Column::TakenAt)
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let oldest_kept = now - micros(held(limits.hour.max(limits.minute)));
        provider_call::Entity::delete_many()
            .filter(provider_call::Column::Provider.eq(provider))
            .filter(provider_call::Column::At.lte(oldest_kept))
            .exec(&txn)
            .await?;
        let calls: Vec<(i64, bool)> = provider_call::Entity::find()
            .select_only()
            .column(provider_call::Column::At)
            .column(provider_call::Column::Batch)
            .filter(provider_call::Column::Provider.eq(provider))
            .order_by_asc(provider_call::Column::At)
            .into_tuple()
            .all(&txn)
            .await?;
        let mut taken = decide(&calls, now, kind, limits);
        taken.room_at = taken
            .wait
            .map(|wait| time::from_micros(now.saturating_add(micros(wait))));
        if taken.wait.is_none() {
            let logged = provider_call::Entity::insert(provider_call::ActiveModel {
                provider: Set(provider.to_owned()),
                at: Set(now),
                batch: Set(kind == CallKind::Batch),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            taken.call = Some(logged.last_insert_id);
        }
        txn.commit().await?;
        Ok(taken)
    }

    /// Logs `call` (of `provider`'s budget) again at the time the API
    /// answered it (or the call failed): the API counted it somewhere
    /// between its taking and now, so from now on it counts for a whole
    /// window whatever the transit took.
    #[instrument(level = "debug", skip(self), fields(db.system = self.db_system()))]
    pub(crate) async fn budget_call_answered(
        &self,
        provider: &str,
        call: i64,
    ) -> Result<(), AppError> {
        let now = to_micros(time::now());
        provider_call::Entity::update_many()
            .col_expr(provider_call::Column::At, Expr::value(now))
            .filter(provider_call::Column::Provider.eq(provider))
            .filter(provider_call::Column::Id.eq(call))
            .filter(provider_call::Column::At.lt(now))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// How long a call counts in a window of `window`: the window and a margin
/// for the time between taking the call and its reaching the API.
fn held(window: Duration) -> Duration {
    window + (window / HOLD_MARGIN_DIVISOR).clamp(HOLD_MARGIN_MIN, HOLD_MARGIN_MAX)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Whether a call of `kind` may go at `now`, given the calls logged (`at`,
/// `batch`; oldest first), and what is left.
fn decide(calls: &[(i64, bool)], now: i64, kind: CallKind, limits: &BudgetLimits) -> Taken {
    // For each limit: the calls that count in its window now, and the wait
    // until enough of them leave it for one more call.
    let check = |window: Duration, limit: u32, only_batch: bool| -> (u32, Option<Duration>) {
        let hold = micros(held(window));
        let counted: Vec<i64> = calls
            .iter()
            .filter(|(at, batch)| *at > now - hold && (!only_batch || *batch))
            .map(|(at, _)| *at)
            .collect();
        let used = counted.len();
        let limit = limit as usize;
        if used < limit {
            return ((limit - used) as u32, None);
        }
        // The call that must leave for one more to fit: `used - limit + 1`
        // calls have to go, the last of them is at this index.
        let leaving = counted[used - limit];
        let wait = (leaving + hold - now).max(1);
        (0, Some(Duration::from_micros(wait as u64)))
    };
    let (left_minute, wait_minute) = check(limits.minute, limits.calls_per_minute, false);
    let (left_hour, wait_hour) = check(limits.hour, limits.calls_per_hour, false);
    let wait_batch = match kind {
        CallKind::Batch => check(limits.minute, limits.batch_calls_per_minute, true).1,
        CallKind::Single => None,
    };
    let wait = [wait_minute, wait_hour, wait_batch]
        .into_iter()
        .flatten()
        .max();
    match wait {
        Some(wait) => Taken {
            wait: Some(wait),
            room_at: None,
            call: None,
            left_minute,
            left_hour,
        },
        None => Taken {
            wait: None,
            room_at: None,
            call: None,
            left_minute: left_minute - 1,
            left_hour: left_hour - 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn limits() -> BudgetLimits {
        BudgetLimits {
            calls_per_minute: 3,
            calls_per_hour: 5,
            batch_calls_per_minute: 2,
            minute: Duration::from_secs(60),
            hour: Duration::from_secs(3600),
        }
    }

    /// Takes calls at `times` (seconds) as `decide` allows, returning the
    /// times they went.
    fn run(kind: CallKind, times: &[i64]) -> Vec<i64> {
        let mut log = Vec::new();
        let mut went = Vec::new();
        for &t in times {
            let now = t * SECOND;
            if decide(&log, now, kind, &limits()).wait.is_none() {
                log.push((now, kind == CallKind::Batch));
                went.push(t);
            }
        }
        went
    }

    #[test]
    fn no_window_of_a_minute_holds_more_than_the_limit() {
        let went = run(CallKind::Single, &(0..400).collect::<Vec<_>>());
        for (i, &t) in went.iter().enumerate() {
            let in_minute = went[i..].iter().take_while(|&&u| u < t + 60).count();
            assert!(in_minute <= 3, "{went:?}");
            let in_hour = went[i..].iter().take_while(|&&u| u < t + 3600).count();
            assert!(in_hour <= 5, "{went:?}");
        }
        assert_eq!(went, [0, 1, 2, 63, 64]);
    }

    #[test]
    fn batch_calls_have_their_own_smaller_limit() {
        assert_eq!(
            run(CallKind::Batch, &[0, 1, 2, 3, 62, 63, 64]),
            [0, 1, 63, 64]
        );
    }

    #[test]
    fn the_wait_is_until_the_call_that_fills_the_window_leaves_it() {
        let log = [(0, false), (10 * SECOND, false), (20 * SECOND, false)];
        let taken = decide(&log, 30 * SECOND, CallKind::Single, &limits());
        // Held 63 s: the call at 0 leaves at 63 s, 33 s from now.
        assert_eq!(taken.wait, Some(Duration::from_secs(33)));
        assert_eq!((taken.left_minute, taken.left_hour), (0, 2));
        let taken = decide(&log[..1], 30 * SECOND, CallKind::Single, &limits());
        assert_eq!(taken.wait, None);
        assert_eq!((taken.left_minute, taken.left_hour), (1, 3));
    }
}
