#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("You are not in the member list!")]
    NotInRoster,
    #[error("Name and wechat id doesn't match!")]
    WechatMismatch,
    #[error("{0} appears more than once")]
    DuplicateEntry(String),
    #[error("{0} is not bound to a WeChat account")]
    NotBound(String),
    #[error("{0} is not a notification address")]
    UnknownNotifyAddress(String),
}
