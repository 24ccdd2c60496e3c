//! Faults between lapse and the gcp provider's server.
