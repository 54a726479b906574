//! Feedback: users send it (sealed with their key: their own words), superusers read it.

use aggregates::campus::feedback::SubmitFeedback;
use aggregates::campus::users::user_subject;
use runtime::personal::seal;

use super::{command_failed, key_of, next_id};
use crate::campus::auth::{forbidden, Caller};
use crate::campus::body::FeedbackBody;
use crate::campus::context::Campus;
use crate::campus::fields::{Fields, MAX_TEXT};
use crate::http::ApiError;

/// A user sends feedback and how to reach them.
pub async fn submit(app: &Campus, me: &Caller, body: &FeedbackBody) -> Result<(), ApiError> {
    let user = me.user().ok_or_else(forbidden)?;
    let mut fields = Fields::default();
    let feedback = fields.text(&body.feedback, "feedback", true, MAX_TEXT, false);
    let contact = fields.text(&body.contact, "contact", false, 200, true);
    fields.check()?;
    let subject = user_subject(user);
    // Erased, with a token that outlived them for a moment: 401 as for any dead token.
    let key = key_of(app, user).await?;
    let id = next_id(app, "campus_feedback_id_seq").await?;
    let command = SubmitFeedback {
        feedback_id: id,
        user_id: user,
        feedback: seal(&subject, &key, &feedback.unwrap_or_default()),
        contact: seal(&subject, &key, &contact.unwrap_or_default()),
    };
    app.feedback
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(command_failed)?;
    Ok(())
}
