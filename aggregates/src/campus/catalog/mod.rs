//! The superusers' catalogues: blocks (版块), activity categories and activity addresses. One
//! stream per entry (id: its number). Names are unique per catalogue, and an address's
//! coordinates too: each is reserved by keyed hash in the append's statement (a second claim
//! fails the append), released by a rename or a deletion in the same statement.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Addresses, Blocks, Catalog, Categories, Entry};
pub use commands::{CatalogCommand, Unique};
pub use error::CatalogError;
pub use events::{entry_owner, CatalogEvent, EntryEvent, Place, PLACE_SCOPE};
