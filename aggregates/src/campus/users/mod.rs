//! A campus user (用户端): one stream each (id: the user's number). Born at their first WeChat
//! login; their openid is reserved by keyed hash (one user per WeChat account), their name,
//! avatar, signature, email and the verification codes mailed to them are sealed with their
//! own key. Their follows live here too: one follow per organisation holds because a user's
//! commands take turns. Deleting a user destroys their key and frees their reservations in the
//! same statement (crypto-shredding, README "Personal data").

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::CampusUser;
pub use commands::UserCommand;
pub use error::UserError;
pub use events::{
    user_of_subject, user_subject, UserEvent, CODE_VALIDITY, ERASED_USER, MAX_FAILURES,
    OPENID_SCOPE,
};
