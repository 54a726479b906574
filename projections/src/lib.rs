//! Read models: each projection is a function of the event log, applied in global-position
//! order, idempotent thanks to a checkpoint that moves in the same transaction as its rows.
//! The same [`Projection::apply`] serves live catch-up and full rebuilds.

pub mod campus;
pub mod chain;
pub mod orchestra;
pub mod personal;
mod runner;
mod stored;

pub use runner::{
    applied_position, catch_up_all, ensure_checkpoints, events_after, horizon, horizon_holder,
    rebuild, CatchUp, HorizonHolder, LogPosition, Projection, ProjectionError,
};
pub use stored::StoredEvent;

/// Every projection of the system, in the order they are caught up.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(orchestra::RosterProjection),
        Box::new(orchestra::AbsenceProjection),
        Box::new(orchestra::MailOutbox),
        Box::new(campus::SuperuserProjection),
        Box::new(campus::CampusProjection),
        Box::new(chain::EventChain),
    ]
}
