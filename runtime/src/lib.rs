//! The lower floors of Ensemble, shared by both bounded contexts and imported by none of them
//! in return: the event store and its guard ([`store`]), personal data ([`personal`]), the
//! command bus ([`bus`]), the projection machinery ([`runner`], [`projector`], [`chain`]),
//! database pools and migrations ([`db`]), configuration ([`config`]), background work
//! ([`worker`]), the clients of the outside world ([`mailer`], [`wechat`]), tokens ([`jwt`]),
//! rate limits ([`limits`]), metrics ([`metrics`]), the standbys that serve reads ([`replicas`]), the auditors' views ([`audit`]) and the
//! time machine's replays ([`views`]).
//!
//! [`Runtime`] is what a process holds of all of it; each context of the server builds its
//! command buses on it.

pub mod answers;
pub mod audit;
pub mod bus;
pub mod chain;
pub mod clock;
pub mod config;
pub mod db;
pub mod jwt;
pub mod limits;
pub mod mailer;
pub mod metrics;
mod migrations;
pub mod personal;
mod process;
pub mod projector;
pub mod replicas;
pub mod retries;
pub mod runner;
pub mod signals;
pub mod store;
pub mod stored;
pub mod subscriptions;
pub mod views;
pub mod webhooks;
pub mod wechat;
pub mod worker;

pub use config::Config;
pub use process::Runtime;
pub use runner::{LogPosition, Projection, ProjectionError, Projections};
pub use stored::StoredEvent;
