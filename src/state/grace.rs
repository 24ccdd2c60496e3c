//! Grace periods for two-phase deletion: a key is first deactivated (reversible), and may be
//! deleted only once a grace period has passed since lapse deactivated it.
//!
//! The store remembers when lapse deactivated each credential; `apply` records it, `undo` (a
//! reactivation) clears it, and a later plan asks whether a credential is eligible for deletion.
//! The deactivation time is lapse's own: a key someone else switched off has no entry, and so
//! is never deleted on lapse's clock.

use lapse_sdk::{CredentialId, PrincipalId, Timestamp};
use rusqlite::{OptionalExtension, params};

use super::StateStore;
use crate::error::Result;
use crate::policy::Duration;

/// When lapse deactivated a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deactivation {
    /// The credential.
    pub credential: CredentialId,
    /// Its principal.
    pub principal: PrincipalId,
    /// When lapse deactivated it.
    pub deactivated_at: Timestamp,
}

impl Deactivation {
    /// The first instant at which deletion is allowed after `grace`.
    #[must_use]
    pub fn eligible_for_delete_after(&self, grace: Duration) -> Timestamp {
        self.deactivated_at.plus_seconds(grace.seconds())
    }

    /// True when `grace` has fully passed at `now`.
    #[must_use]
    pub fn is_eligible_for_delete(&self, grace: Duration, now: Timestamp) -> bool {
        now >= self.eligible_for_delete_after(grace)
    }
}

impl StateStore {
    /// Records that lapse deactivated `credential` at `at`. Recording it again keeps the first
    /// time: a repeated apply must not restart the grace period.
    ///
    /// # Errors
    /// [`crate::Error::State`] when the write fails.
    pub fn record_deactivation(
        &mut self,
        credential: &CredentialId,
        principal: &PrincipalId,
        at: Timestamp,
    ) -> Result<Deactivation> {
        self.connection
            .execute(
                "INSERT INTO deactivations (credential_id, principal, deactivated_at)
                 VALUES (?1, ?2, ?3) ON CONFLICT (credential_id) DO NOTHING",
                params![credential.as_str(), principal.as_str(), at.unix_seconds()],
            )
            .map_err(|source| self.error("record a deactivation", source))?;
        Ok(self
            .deactivation(credential)?
            .unwrap_or_else(|| Deactivation {
                credential: credential.clone(),
                principal: principal.clone(),
                deactivated_at: at,
            }))
    }

    /// Forgets a deactivation (the credential was reactivated): a later deactivation starts a
    /// new grace period. Returns whether there was one.
    ///
    /// # Errors
    /// [`crate::Error::State`] when the write fails.
    pub fn clear_deactivation(&mut self, credential: &CredentialId) -> Result<bool> {
        let changed = self
            .connection
            .execute(
                "DELETE FROM deactivations WHERE credential_id = ?1",
                [credential.as_str()],
            )
            .map_err(|source| self.error("clear a deactivation", source))?;
        Ok(changed > 0)
    }

    /// Forgets the deactivations of credentials a snapshot shows active again (someone switched
    /// them back on): their grace period is broken, and a later deactivation starts a new one.
    /// Returns how many were forgotten.
    ///
    /// # Errors
    /// [`crate::Error::State`] when the write fails.
    pub fn forget_reactivated(&mut self, snapshot: &lapse_sdk::Snapshot) -> Result<usize> {
        let mut forgotten = 0;
        for credential in snapshot
            .credentials
            .iter()
            .filter(|credential| credential.status == lapse_sdk::CredentialStatus::Active)
        {
            if self.clear_deactivation(&credential.id)? {
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// When lapse deactivated `credential`, if it did.
    ///
    /// # Errors
    /// [`crate::Error::State`] when the file cannot be read.
    pub fn deactivation(&self, credential: &CredentialId) -> Result<Option<Deactivation>> {
        let found: Option<(String, i64)> = self
            .connection
            .query_row(
                "SELECT principal, deactivated_at FROM deactivations WHERE credential_id = ?1",
                [credential.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|source| self.error("read a deactivation", source))?;
        Ok(found.and_then(|(principal, at)| {
            Timestamp::from_unix_seconds(at).map(|deactivated_at| Deactivation {
                credential: credential.clone(),
                principal: PrincipalId(principal),
                deactivated_at,
            })
        }))
    }
}
