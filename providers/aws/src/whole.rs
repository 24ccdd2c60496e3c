//! Whether an answer is whole: IAM and STS answer in XML, and the SDK's parser reads what it
//! can, so an answer cut short by a proxy or a dropped connection (with a matching
//! `Content-Length`) would become a shorter list read as complete. Every successful answer must
//! be a well-formed document whose root is the operation's response, and a page of a list must
//! say whether more pages follow.

use std::collections::HashSet;

use lapse_sdk::{ProviderError, ProviderErrorKind};

use crate::AwsError;

/// More pages than any real account has (10 million items at IAM's largest page size): a
/// pager past it is not ending.
const MAX_PAGES: usize = 10_000;

/// Follows one list's markers and stops a pager that does not end: a marker seen before (a
/// loop), a page that says more follow without a marker, or more pages than any account has.
pub(crate) struct Pages {
    operation: &'static str,
    seen: HashSet<String>,
}

impl Pages {
    pub(crate) fn new(operation: &'static str) -> Self {
        Pages {
            operation,
            seen: HashSet::new(),
        }
    }

    /// The marker of the next page, or `None` after the last one.
    pub(crate) fn next(
        &mut self,
        truncated: bool,
        marker: Option<&str>,
    ) -> Result<Option<String>, ProviderError> {
        if !truncated {
            return Ok(None);
        }
        let reason = match marker {
            None | Some("") => {
                "a page said more follow (IsTruncated=true) but gave no Marker".to_owned()
            }
            Some(marker) if self.seen.contains(marker) => format!(
                "the marker of page {} was already followed (a loop)",
                self.seen.len() + 1
            ),
            Some(_) if self.seen.len() >= MAX_PAGES => {
                format!("more than {MAX_PAGES} pages")
            }
            Some(marker) => {
                self.seen.insert(marker.to_owned());
                return Ok(Some(marker.to_owned()));
            }
        };
        Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: format!("iam:{}", self.operation),
            message: AwsError::EndlessPaging {
                operation: self.operation.to_owned(),
                reason,
            }
            .to_string(),
            missing_permission: None,
        })
    }
}

/// Lists lapse pages through: each page must carry `IsTruncated`, and `Marker` when it is true.
/// (`ListAccessKeys` is not here: IAM caps a user at two keys, so it never pages, and moto
/// leaves the element out.)
const PAGED: &[&str] = &[
    "GetAccountAuthorizationDetails",
    "ListAttachedUserPolicies",
    "ListAttachedRolePolicies",
    "ListAttachedGroupPolicies",
    "ListGroupsForUser",
];

/// The error for a list that IAM never pages (a user's keys) answered as one page of several.
pub(crate) fn unexpected_page(operation: &'static str) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Other,
        operation: format!("iam:{operation}"),
        message: AwsError::NotWhole {
            operation: operation.to_owned(),
            reason: "the list says more pages follow, and IAM never pages it (a user has at most two keys)".to_owned(),
        }
        .to_string(),
        missing_permission: None,
    }
}

/// Checks one successful answer to `operation` (an empty name skips the operation checks).
pub(crate) fn check(operation: &str, body: Option<&[u8]>) -> Result<(), AwsError> {
    let not_whole = |reason: String| AwsError::NotWhole {
        operation: operation.to_owned(),
        reason,
    };
    let body = body.unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(not_whole("the answer was empty".to_owned()));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| not_whole("the answer is not UTF-8 text".to_owned()))?;
    let document = roxmltree::Document::parse(text)
        .map_err(|error| not_whole(format!("the answer is not a whole XML document ({error})")))?;
    let root = document.root_element();
    if operation.is_empty() {
        return Ok(());
    }
    let expected = format!("{operation}Response");
    if root.tag_name().name() != expected {
        return Err(not_whole(format!(
            "the answer's root element is <{}>, not <{expected}>",
            root.tag_name().name()
        )));
    }
    if PAGED.contains(&operation) {
        let result_name = format!("{operation}Result");
        let result = root
            .children()
            .find(|node| node.tag_name().name() == result_name)
            .ok_or_else(|| not_whole(format!("the answer has no <{result_name}>")))?;
        let child_text = |name: &str| {
            result
                .children()
                .find(|node| node.tag_name().name() == name)
                .map(|node| node.text().unwrap_or_default().trim().to_owned())
        };
        match child_text("IsTruncated").as_deref() {
            Some("false") => {}
            Some("true") => {
                if child_text("Marker").is_none_or(|marker| marker.is_empty()) {
                    return Err(not_whole(
                        "the page says more follow (IsTruncated=true) but gives no Marker"
                            .to_owned(),
                    ));
                }
            }
            Some(other) => {
                return Err(not_whole(format!(
                    "IsTruncated is `{other}`, neither true nor false"
                )));
            }
            None => {
                return Err(not_whole(
                    "the page does not say whether more follow (no IsTruncated)".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<GetAccountAuthorizationDetailsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetAccountAuthorizationDetailsResult><UserDetailList><member><UserName>a</UserName></member></UserDetailList><IsTruncated>false</IsTruncated></GetAccountAuthorizationDetailsResult></GetAccountAuthorizationDetailsResponse>"#;

    fn reason(operation: &str, body: &str) -> String {
        check(operation, Some(body.as_bytes()))
            .expect_err("not whole")
            .to_string()
    }

    #[test]
    fn a_pager_that_repeats_a_marker_or_loses_it_is_an_error() {
        let mut pages = Pages::new("ListGroupsForUser");
        assert_eq!(
            pages.next(true, Some("a")).expect("page"),
            Some("a".to_owned())
        );
        assert_eq!(
            pages.next(true, Some("b")).expect("page"),
            Some("b".to_owned())
        );
        let looped = pages.next(true, Some("a")).expect_err("loop");
        assert!(looped.message.contains("already followed"), "{looped:?}");
        assert_eq!(looped.operation, "iam:ListGroupsForUser");
        assert!(Pages::new("x").next(true, None).is_err());
        assert_eq!(Pages::new("x").next(false, Some("z")).expect("last"), None);
    }

    #[test]
    fn a_whole_page_passes_and_every_cut_of_it_fails() {
        check("GetAccountAuthorizationDetails", Some(PAGE.as_bytes())).expect("whole");
        for cut in 1..PAGE.len() {
            assert!(
                check(
                    "GetAccountAuthorizationDetails",
                    Some(&PAGE.as_bytes()[..cut])
                )
                .is_err(),
                "cut at {cut} read as whole"
            );
        }
    }

    #[test]
    fn empty_garbage_and_foreign_answers_fail_naming_the_operation() {
        assert!(reason("GetAccountAuthorizationDetails", "").contains("empty"));
        assert!(
            reason("GetAccountAuthorizationDetails", "")
                .contains("iam:GetAccountAuthorizationDetails")
        );
        assert!(reason("ListGroupsForUser", "<<garbage>>").contains("not a whole XML document"));
        assert!(reason("ListGroupsForUser", "<html><body>login</body></html>").contains("<html>"));
    }

    #[test]
    fn a_page_must_say_whether_more_follow() {
        let no_flag = PAGE.replace("<IsTruncated>false</IsTruncated>", "");
        assert!(reason("GetAccountAuthorizationDetails", &no_flag).contains("no IsTruncated"));
        let no_marker = PAGE.replace("false</IsTruncated>", "true</IsTruncated>");
        assert!(reason("GetAccountAuthorizationDetails", &no_marker).contains("no Marker"));
        let with_marker = PAGE.replace(
            "<IsTruncated>false</IsTruncated>",
            "<IsTruncated>true</IsTruncated><Marker>m</Marker>",
        );
        check(
            "GetAccountAuthorizationDetails",
            Some(with_marker.as_bytes()),
        )
        .expect("whole");
    }
}
