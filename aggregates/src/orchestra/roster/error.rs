#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("You are not in the member list!")]
    NotInRoster,
    #[error("Name and wechat id doesn't match!")]
    WechatMismatch,
    /// The member is bound already (to this account or another: the caller tells by the
    /// reservation of the openid).
    #[error("member #{member_id} is already bound to a WeChat account")]
    AlreadyBound { member_id: u64, binding: u64 },
    #[error("entry {0} of the import names a member already named before it")]
    DuplicateEntry(usize),
    #[error("member #{0} is no longer on the roster")]
    Gone(u64),
    #[error("member #{0} is not bound to a WeChat account")]
    NotBound(u64),
    /// A manager's first binding waits for an operator's approval (`same_account`: the
    /// pending request is this account's).
    #[error("This manager's first login waits for an operator's approval; please ask them, then log in again.")]
    AwaitingApproval { same_account: bool },
    #[error("member #{0} has no WeChat binding waiting for approval")]
    NoPendingBinding(u64),
    #[error("{0} is not a notification address")]
    UnknownNotifyAddress(String),
}
