use super::Place;
use crate::personal::Blind;

/// A unique value with its reservation key (computed outside the domain).
#[derive(Debug, Clone, PartialEq)]
pub struct Unique {
    pub value: String,
    pub blind: Blind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CatalogCommand {
    Create {
        id: u64,
        name: Unique,
        place: Option<(Place, Blind)>,
    },
    Rename {
        name: Unique,
    },
    Delete,
}
