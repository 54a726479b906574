//! An organisation, from the application to found it to its deletion: one stream each (id:
//! the application's number). Approving the application founds the organisation in one event
//! that names its owner and first manager, so there is no moment in which it exists without
//! them; refusing it founds nothing. The name is reserved (keyed hash, in the append's
//! statement) from the application on: one scope for pending applications and organisations,
//! freed by a refusal, a withdrawal, a rename or a deletion. Who may do what (the owner, a
//! superuser) is decided here, on the state the command runs against, so a transfer of
//! ownership and an owner's command cannot race past each other.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Organization, Phase};
pub use commands::{Caller, OrganizationCommand};
pub use error::OrganizationError;
pub use events::{application_owner, OrganizationEvent, ORG_NAME_SCOPE};
