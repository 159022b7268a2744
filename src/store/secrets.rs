//! Secrets the gateway keeps in its database, so that every replica on it
//! holds the same ones.

use sea_orm::{ActiveValue::Set, EntityTrait};

use super::Store;
use super::entities::secret;
use crate::error::AppError;

impl Store {
    /// The secret `name`: `len` random bytes, made by the first replica that
    /// asks and read by every one after it.
    pub(crate) async fn secret(&self, name: &str, len: usize) -> Result<Vec<u8>, AppError> {
        let mut fresh = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut fresh)
            .map_err(|_| AppError::internal("the system gave no random bytes"))?;
        secret::Entity::insert(secret::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(fresh),
        })
        .on_conflict_do_nothing_on([secret::Column::Name])
        .exec(self.connection())
        .await?;
        let kept = secret::Entity::find_by_id(name.to_owned())
            .one(self.connection())
            .await?
            .ok_or_else(|| AppError::internal(format!("the secret '{name}' was not kept")))?;
        if kept.value.len() != len {
            return Err(AppError::internal(format!(
                "the secret '{name}' has {} bytes, not {len}",
                kept.value.len()
            )));
        }
        Ok(kept.value)
    }
}
