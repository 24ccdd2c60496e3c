//! The fault matrix: each fault put between lapse and each provider's server (moto behind a
//! fault proxy for AWS, the Azure and Google Cloud fakes' own fault injection) must end the scope
//! as incomplete (exit 3), within the time bound, with nothing written to the cloud.

mod aws;
mod azure;
mod gcp;
