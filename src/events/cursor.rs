//! Event cursors: the opaque text clients pass back as `after`.
//!
//! A cursor is the event's number, which counts the events of every tenant.
//! Shown as it is, the gaps between a tenant's own cursors would tell it how
//! busy the other tenants are. So the number is sealed with AES-256-GCM-SIV
//! under a key the replicas share (kept in the database), with the tenant as
//! associated data: a cursor reads as noise, is the same every time for the
//! same event and tenant (SIV: a fixed nonce reveals only that equality), and
//! one made for another tenant, or altered, does not open.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;

/// The name of the key among the gateway's secrets, and its length.
pub(crate) const KEY_NAME: &str = "event-cursor";
pub(crate) const KEY_BYTES: usize = 32;

/// Seals event numbers into cursors and opens them again.
pub struct CursorKey(LessSafeKey);

impl CursorKey {
    /// The key from its [`KEY_BYTES`] bytes.
    pub(crate) fn new(secret: &[u8]) -> Result<CursorKey, AppError> {
        let key = UnboundKey::new(&AES_256_GCM_SIV, secret)
            .map_err(|_| AppError::internal("the event cursor key is malformed"))?;
        Ok(CursorKey(LessSafeKey::new(key)))
    }

    /// The cursor of event `seq` for `tenant`.
    pub fn encode(&self, tenant: &str, seq: i64) -> String {
        let mut sealed = seq.to_be_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(fixed_nonce(), Aad::from(tenant.as_bytes()), &mut sealed)
            .expect("sealing eight bytes cannot fail");
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The event number of a cursor made by [`encode`](Self::encode) for
    /// `tenant`; anything else is `BAD_USER_INPUT` on `field`.
    pub(crate) fn decode(&self, tenant: &str, field: &str, text: &str) -> Result<i64, AppError> {
        let invalid = || AppError::bad_input(field, format!("{field} is not an event cursor"));
        if text.len() > 64 {
            return Err(invalid());
        }
        let mut sealed = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let plain = self
            .0
            .open_in_place(fixed_nonce(), Aad::from(tenant.as_bytes()), &mut sealed)
            .map_err(|_| invalid())?;
        let bytes: [u8; 8] = plain.try_into().map_err(|_| invalid())?;
        let seq = i64::from_be_bytes(bytes);
        if seq < 1 {
            return Err(invalid());
        }
        Ok(seq)
    }
}

/// Every cursor uses the same nonce, so the same event gives the same cursor;
/// AES-GCM-SIV stays safe with a repeated nonce, revealing only that two
/// sealed texts are equal.
fn fixed_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0; 12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> CursorKey {
        CursorKey::new(&[byte; KEY_BYTES]).unwrap()
    }

    #[test]
    fn cursors_round_trip_for_their_tenant_only() {
        let key = key(7);
        let cursor = key.encode("tenant-a", 42);
        assert_eq!(key.decode("tenant-a", "after", &cursor).unwrap(), 42);
        assert_eq!(cursor, key.encode("tenant-a", 42), "the same every time");
        assert!(key.decode("tenant-b", "after", &cursor).is_err());
        assert_ne!(key.encode("tenant-b", 42), cursor);
        assert!(self::key(8).decode("tenant-a", "after", &cursor).is_err());
    }

    #[test]
    fn neighbouring_numbers_give_unrelated_cursors() {
        let key = key(7);
        let (a, b) = (key.encode("t", 1000), key.encode("t", 1001));
        let (a, b) = (
            URL_SAFE_NO_PAD.decode(a).unwrap(),
            URL_SAFE_NO_PAD.decode(b).unwrap(),
        );
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(same < 8, "{same} of {} bytes alike", a.len());
    }

    #[test]
    fn garbage_and_altered_cursors_are_refused() {
        let key = key(7);
        let mut altered = URL_SAFE_NO_PAD.decode(key.encode("t", 5)).unwrap();
        altered[0] ^= 1;
        for bad in [
            "".to_owned(),
            "42".to_owned(),
            URL_SAFE_NO_PAD.encode("e1:5"),
            URL_SAFE_NO_PAD.encode(altered),
            "x".repeat(65),
        ] {
            assert!(key.decode("t", "after", &bad).is_err(), "{bad}");
        }
    }
}
