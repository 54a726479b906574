//! The campus bounded context: users (用户端) who log in with WeChat, superusers (管理端) who
//! log in with a password, the catalogues superusers keep (blocks, activity categories and
//! addresses), organisations from application to deletion, and feedback.

pub mod catalog;
pub mod feedback;
pub mod organizations;
pub mod superusers;
pub mod users;
