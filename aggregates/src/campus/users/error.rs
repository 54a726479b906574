#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("this user exists already")]
    Exists,
    #[error("no such user")]
    Unknown,
    #[error("no code was sent to this address, or it expired")]
    NoCode,
    #[error("already following this organisation")]
    AlreadyFollowing,
}
