use crate::orchestra::{EmailAddress, MemberName, Role, Section};

#[derive(Debug, Clone, PartialEq)]
pub struct RosterEntry {
    pub name: MemberName,
    pub section: Section,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RosterCommand {
    /// Enrol new names and reassign changed ones; unchanged entries emit nothing.
    Import {
        entries: Vec<RosterEntry>,
    },
    /// Bind a name to a WeChat openid on first login.
    BindWechat {
        name: MemberName,
        openid: String,
    },
    /// Forget a name's WeChat binding (operator).
    UnbindWechat {
        name: MemberName,
    },
    AddNotifyAddress {
        email: EmailAddress,
    },
    RemoveNotifyAddress {
        email: EmailAddress,
    },
    /// Every quota is full again.
    StartSeason,
}
