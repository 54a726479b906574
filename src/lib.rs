//! Ensemble: the event-sourced backend of the orchestra and campus mini-programs.

pub mod api;
pub mod app;
pub mod audit;
pub mod bus;
pub mod campus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod jwt;
pub mod limits;
pub mod mailer;
pub mod metrics;
mod name_migration;
pub mod orchestra;
pub mod personal;
mod personal_migration;
pub mod projector;
pub mod store;
pub mod wechat;
pub mod worker;

pub use app::App;
pub use config::Config;
