//! The pure domain of Ensemble: aggregates, their commands, events and errors.
//!
//! Nothing here talks to a database, the network or the clock except through the
//! `Services` traits, which the tests replace.

pub mod orchestra;
pub mod personal;
