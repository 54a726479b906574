//! Feedback from a user (`POST /feedbacks/`): one stream each (id: its number). The text and
//! the contact are the user's own words, sealed with their key.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::Feedback;
pub use commands::SubmitFeedback;
pub use error::FeedbackError;
pub use events::FeedbackEvent;
