//! Read models of the campus context: the campus tables (one projection, `model.rs`, so that a
//! deletion reaches every row that names the deleted record in one transaction) and the
//! queries that read them (`read.rs`); the superusers (`superusers.rs`, projection and queries).

mod model;
pub mod read;
pub mod superusers;

pub use model::CampusProjection;
pub use superusers::SuperuserProjection;
