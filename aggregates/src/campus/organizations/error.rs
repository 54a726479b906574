#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationError {
    #[error("no such application or organisation")]
    Unknown,
    #[error("the application was decided already")]
    AlreadyDecided,
    #[error("only the owner or a superuser may do this")]
    Forbidden,
    #[error("this user manages this organisation already")]
    AlreadyManager,
    #[error("the owner is always a manager")]
    OwnerStays,
    #[error("the application exists already")]
    Exists,
}
