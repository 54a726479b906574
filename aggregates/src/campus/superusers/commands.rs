use crate::personal::Sealed;

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one registration per superuser: size is no concern
pub enum SuperuserCommand {
    Register {
        username: Sealed,
        email: Sealed,
        /// The password's argon2 hash (PHC string): to the credentials table, not the log.
        password_hash: String,
    },
    Disable,
}
