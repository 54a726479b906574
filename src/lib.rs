//! Ensemble: the event-sourced backend of the orchestra and campus mini-programs. The lower
//! floors are the `runtime` crate (event store, bus, projections machinery, workers, clients),
//! the domain is `aggregates`, the read models are `projections`. Here: the HTTP plumbing
//! ([`http`], which knows no context), the two bounded contexts ([`orchestra`], [`campus`]),
//! and at the top their assembly ([`app`], [`api`]), the time machine over both ([`views`]),
//! the browser console for auditors and operators ([`console`]) and the command line ([`cli`]).

pub mod api;
pub mod app;
pub mod campus;
pub mod cli;
pub mod console;
pub mod http;
pub mod orchestra;
pub mod views;

pub use app::App;
pub use runtime::Config;
