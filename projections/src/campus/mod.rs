//! Read models of the campus context.

mod model;
mod superusers;

pub use model::CampusProjection;
pub use superusers::SuperuserProjection;
