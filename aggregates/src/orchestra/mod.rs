//! The orchestra bounded context: the roster and members' absences.

pub mod absences;
pub mod roster;
mod services;
mod values;

pub use services::{OrchestraServices, ServiceError};
pub use values::{AbsenceType, EmailAddress, MemberName, Role, Section, ValueError};
