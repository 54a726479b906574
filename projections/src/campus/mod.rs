//! Read models of the campus context.

mod superusers;

pub use superusers::SuperuserProjection;
