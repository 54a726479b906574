//! The campus bounded context. So far: superusers (管理端), who log in with a username and a
//! password and may read the audit views.

pub mod superusers;
