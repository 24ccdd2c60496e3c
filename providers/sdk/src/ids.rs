//! Newtypes for the clouds' own identifiers, so a grant id is never passed where a principal id
//! was meant.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as the cloud spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(value)
            }
        }
    };
}

id_type!(
    /// A principal's native id: an ARN, an Entra object id, or a Google IAM member
    /// (`serviceAccount:ci@acme-prod.iam.gserviceaccount.com`, `user:ana@acme.example`).
    PrincipalId
);
id_type!(
    /// A credential's native id: an AWS access key id, an Entra `keyId`, a Google key name.
    /// Never the secret itself.
    CredentialId
);
id_type!(
    /// A grant's id: the cloud's own where it has one (an ARM role assignment id), else composed
    /// by the provider from principal, entitlement, resource and condition so that it is stable
    /// across runs.
    GrantId
);
id_type!(
    /// A scanned scope, prefixed by its cloud: `aws:111122223333`,
    /// `azure:/subscriptions/<id>`, `gcp:projects/acme-prod`.
    ScopeId
);
