//! The IAM credential report: one CSV row per user with password and key state, parsed with
//! every sentinel value (`N/A`, `no_information`, `not_supported`) kept apart.

use std::collections::HashMap;

use lapse_sdk::{Timestamp, Usage};

/// One user's row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReportRow {
    pub(crate) password_enabled: bool,
    pub(crate) password_last_used: Usage,
    pub(crate) password_last_changed: Option<Timestamp>,
    pub(crate) access_keys: Vec<SlotCredential>,
    pub(crate) certificates: Vec<SlotCredential>,
}

/// A key or certificate slot (the report has two of each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotCredential {
    /// 1 or 2.
    pub(crate) slot: u8,
    pub(crate) active: bool,
    /// The key's creation (the report's "last rotated"), which tells the two slots apart.
    pub(crate) created_at: Timestamp,
    pub(crate) last_used: Usage,
}

/// Rows by user ARN.
pub(crate) type Report = HashMap<String, ReportRow>;

/// A report that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("credential report: {0}")]
pub(crate) struct ReportError(pub(crate) String);

fn timestamp(value: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(value).ok()
}

/// `N/A` is "never" where the column is about use; `no_information` and `not_supported` are
/// unknown.
fn usage(value: &str) -> Usage {
    match value {
        "N/A" => Usage::Never,
        other => timestamp(other).map_or(Usage::Unknown, Usage::At),
    }
}

/// The columns lapse reads (the report has a few more).
const COLUMNS: &[&str] = &[
    "user",
    "arn",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

pub(crate) fn parse(csv_bytes: &[u8]) -> Result<Report, ReportError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_bytes);
    let headers = reader
        .headers()
        .map_err(|error| ReportError(error.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|header| header == name);
    // A column lapse reads that is missing is an error, not a default: a missing
    // `password_last_used` read as `N/A` would say "never used" of a password in daily use.
    // The whole report is refused (the account is incomplete, naming iam:GetCredentialReport)
    // rather than some columns read as unknown, because a report whose shape changed cannot be
    // trusted column by column.
    if let Some(missing) = COLUMNS.iter().find(|name| column(name).is_none()) {
        return Err(ReportError(format!(
            "the report has no `{missing}` column, so what it says of passwords and keys cannot be read; nothing from it was used"
        )));
    }
    let arn_column = column("arn").ok_or_else(|| ReportError("no `arn` column".to_owned()))?;
    let mut report = Report::new();
    for record in reader.records() {
        let record = record.map_err(|error| ReportError(error.to_string()))?;
        let field = |name: &str| {
            // Every column was checked above, and the reader refuses rows of another length.
            column(name)
                .and_then(|index| record.get(index))
                .unwrap_or_default()
        };
        let arn = record.get(arn_column).unwrap_or_default();
        if field("user") == "<root_account>" || arn.is_empty() {
            continue;
        }
        let slots = |kind: &str, used: bool| -> Vec<SlotCredential> {
            (1..=2u8)
                .filter_map(|slot| {
                    let created_at = timestamp(field(&format!("{kind}_{slot}_last_rotated")))?;
                    Some(SlotCredential {
                        slot,
                        active: field(&format!("{kind}_{slot}_active")) == "true",
                        created_at,
                        last_used: if used {
                            usage(field(&format!("{kind}_{slot}_last_used_date")))
                        } else {
                            Usage::Unknown
                        },
                    })
                })
                .collect()
        };
        report.insert(
            arn.to_owned(),
            ReportRow {
                password_enabled: field("password_enabled") == "true",
                password_last_used: usage(field("password_last_used")),
                password_last_changed: timestamp(field("password_last_changed")),
                access_keys: slots("access_key", true),
                certificates: slots("cert", false),
            },
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    #[test]
    fn sentinels_are_kept_apart() {
        let csv = format!(
            "{HEADER}\n<root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,not_supported,no_information,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             bob,arn:aws:iam::1:user/bob,2024-01-01T00:00:00+00:00,true,no_information,2024-02-01T00:00:00+00:00,N/A,false,true,2024-03-01T10:00:00+00:00,2026-11-01T00:00:00+00:00,us-east-1,s3,false,2025-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let report = parse(csv.as_bytes()).expect("report");
        assert_eq!(report.len(), 1, "the root row is not a user");
        let bob = &report["arn:aws:iam::1:user/bob"];
        assert!(bob.password_enabled);
        assert_eq!(bob.password_last_used, Usage::Unknown);
        assert_eq!(bob.access_keys.len(), 2);
        assert!(bob.access_keys[0].active);
        assert!(matches!(bob.access_keys[0].last_used, Usage::At(_)));
        assert!(!bob.access_keys[1].active);
        assert_eq!(bob.access_keys[1].last_used, Usage::Never);
        assert!(bob.certificates.is_empty());
    }

    #[test]
    fn a_missing_column_is_an_error_not_never_used() {
        let header = HEADER.replace("password_last_used,", "");
        let csv = format!(
            "{header}\nbob,arn:aws:iam::1:user/bob,2024-01-01T00:00:00+00:00,true,2024-02-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let error = parse(csv.as_bytes()).expect_err("a missing column");
        assert!(
            error.to_string().contains("`password_last_used`"),
            "{error}"
        );
    }

    #[test]
    fn a_row_cut_short_is_an_error() {
        let csv = format!("{HEADER}\nbob,arn:aws:iam::1:user/bob,2024-01-01T00:00:00+00:00,true\n");
        assert!(parse(csv.as_bytes()).is_err());
    }
}
