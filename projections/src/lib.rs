//! Read models: each projection is a function of the event log, applied in global-position
//! order, idempotent thanks to a checkpoint that moves in the same transaction as its rows
//! (the machinery is `runtime::runner`). The same [`runtime::Projection::apply`] serves live
//! catch-up and full rebuilds. Each read model's writer and the queries that read it live
//! together, one module per read model.

pub mod campus;
pub mod orchestra;

use runtime::Projection;

/// Every projection of the system, in the order they are caught up: the read models, then the
/// hash chain over the log.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(orchestra::RosterProjection),
        Box::new(orchestra::AbsenceProjection),
        Box::new(orchestra::MailOutbox),
        Box::new(campus::SuperuserProjection),
        Box::new(campus::CampusProjection),
        Box::new(runtime::chain::EventChain::default()),
    ]
}
