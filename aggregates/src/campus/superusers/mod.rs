//! A superuser: one stream each (id: a UUID). The username is unique (reserved by keyed hash
//! in the append's statement) and sealed with the superuser's key, as is the email; the
//! password's hash is never in an event: the registration carries it in memory to the store,
//! which writes it to `credentials` in the same statement.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::Superuser;
pub use commands::SuperuserCommand;
pub use error::SuperuserError;
pub use events::{superuser_subject, SuperuserEvent, USERNAME_SCOPE};
