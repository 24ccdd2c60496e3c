//! Faults between lapse and the azure provider's server.
