#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("this entry exists already")]
    Exists,
    #[error("no such entry")]
    Unknown,
    /// A rename to the name it has.
    #[error("the name is unchanged")]
    SameName,
}
