#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperuserError {
    #[error("this superuser exists already")]
    Exists,
    #[error("no such superuser")]
    Unknown,
    #[error("this superuser is disabled already")]
    Disabled,
}
