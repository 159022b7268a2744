//! Rate limits per tenant and app: token buckets, one for every request of the
//! API and one for mutations.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second; a
//! request takes one, and finds none: `RATE_LIMITED`, HTTP 429, with
//! `Retry-After` saying when one is back. Buckets are per process: with N
//! replicas behind a balancer a client gets up to N times the rate.
//!
//! The mutation bucket counts items, not calls: a bulk invoke of n actions is
//! admitted like any change (one token) and then charged its other n − 1
//! items, which may take the bucket below zero. The calls after it wait until
//! it has refilled, so the rate holds over time while one bulk call larger
//! than the burst still goes through.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The rate and burst of one kind of bucket; a rate of 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn off() -> Rate {
        Rate {
            per_second: 0.0,
            burst: 0.0,
        }
    }

    fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

/// Settings of the rate limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Every request (and every WebSocket operation).
    pub requests: Rate,
    /// Requests that carry a mutation, on top.
    pub mutations: Rate,
}

impl RateLimits {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: RateLimits = RateLimits {
        requests: Rate {
            per_second: 200.0,
            burst: 400.0,
        },
        mutations: Rate {
            per_second: 100.0,
            burst: 200.0,
        },
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::DEFAULT
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Request,
    Mutation,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens there would be at `now`: refilled at the rate since the
    /// last look, at most the burst.
    fn tokens_at(&self, rate: Rate, now: Instant) -> f64 {
        let refilled = now.duration_since(self.at).as_secs_f64() * rate.per_second;
        (self.tokens + refilled).min(rate.burst)
    }
}

/// The buckets of every tenant and app seen.
pub(crate) struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(Kind, String, String), Bucket>>,
}

/// Buckets kept before full ones are dropped (a full bucket is the same as
/// no bucket).
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `tenant` and `app`, or says how long until one is there.
    pub(crate) fn take(&self, kind: Kind, tenant: &str, app: &str) -> Result<(), Duration> {
        let rate = self.rate(kind);
        if rate.is_off() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit buckets");
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|(kind, _, _), b| {
                let rate = self.rate(*kind);
                b.tokens_at(rate, now) < rate.burst
            });
        }
        let bucket = refilled(&mut buckets, (kind, tenant, app), rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate.per_second,
            ))
        }
    }
}

impl RateLimiter {
    /// Charges `items` more tokens of `kind` to `tenant` and `app` after a
    /// call that was admitted; the bucket may go below zero, and then the
    /// next call waits until it is back to one token.
    pub(crate) fn charge(&self, kind: Kind, tenant: &str, app: &str, items: usize) {
        let rate = self.rate(kind);
        if rate.is_off() || items == 0 {
            return;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit buckets");
        refilled(&mut buckets, (kind, tenant, app), rate, now).tokens -= items as f64;
    }

    fn rate(&self, kind: Kind) -> Rate {
        match kind {
            Kind::Request => self.limits.requests,
            Kind::Mutation => self.limits.mutations,
        }
    }
}

/// What a caller told to wait `wait` reads: "too many `what` …".
pub(crate) fn limited_message(wait: Duration, what: &str) -> String {
    format!(
        "too many {what} for this tenant and app; try again in {} s",
        wait.as_secs_f64().ceil().max(1.0)
    )
}

/// The bucket of `key`, full when new, refilled up to `now`.
fn refilled<'a>(
    buckets: &'a mut HashMap<(Kind, String, String), Bucket>,
    (kind, tenant, app): (Kind, &str, &str),
    rate: Rate,
    now: Instant,
) -> &'a mut Bucket {
    let bucket = buckets
        .entry((kind, tenant.to_owned(), app.to_owned()))
        .or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
    bucket.tokens = bucket.tokens_at(rate, now);
    bucket.at = now;
    bucket
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: f64) -> RateLimiter {
        let rate = Rate { per_second, burst };
        RateLimiter::new(RateLimits {
            requests: rate,
            mutations: rate,
        })
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let limiter = limiter(10.0, 3.0);
        for _ in 0..3 {
            assert!(limiter.take(Kind::Request, "t", "a").is_ok());
        }
        let wait = limiter.take(Kind::Request, "t", "a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
    }

    #[test]
    fn tenants_apps_and_kinds_have_their_own_buckets() {
        let limiter = limiter(1.0, 1.0);
        assert!(limiter.take(Kind::Request, "t", "a").is_ok());
        assert!(limiter.take(Kind::Request, "t", "a").is_err());
        assert!(limiter.take(Kind::Request, "t", "b").is_ok());
        assert!(limiter.take(Kind::Request, "u", "a").is_ok());
        assert!(limiter.take(Kind::Mutation, "t", "a").is_ok());
    }

    #[test]
    fn items_charged_after_a_call_make_the_next_calls_wait() {
        let limiter = limiter(10.0, 5.0);
        assert!(limiter.take(Kind::Mutation, "t", "a").is_ok());
        limiter.charge(Kind::Mutation, "t", "a", 499);
        let wait = limiter.take(Kind::Mutation, "t", "a").unwrap_err();
        // 4 tokens left less 499 charged: 496 short of one token at 10/s.
        assert!(wait >= Duration::from_secs(49), "{wait:?}");
        assert!(limiter.take(Kind::Mutation, "t", "b").is_ok());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limiter = RateLimiter::new(RateLimits {
            requests: Rate::off(),
            mutations: Rate::off(),
        });
        for _ in 0..10_000 {
            assert!(limiter.take(Kind::Request, "t", "a").is_ok());
        }
    }
}
