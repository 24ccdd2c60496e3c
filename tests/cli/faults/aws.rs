//! Faults between lapse and the aws provider's server.
