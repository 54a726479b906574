//! Feedback from a user (`POST /feedbacks/`): one stream each (id: its number). The text and
//! the contact are the user's own words, sealed with their key.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::personal::{HasStoreEffects, Sealed};

#[derive(Debug, Clone, PartialEq)]
pub struct SubmitFeedback {
    pub feedback_id: u64,
    pub user_id: u64,
    pub feedback: Sealed,
    pub contact: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FeedbackEvent {
    FeedbackSubmitted {
        feedback_id: u64,
        user_id: u64,
        feedback: Sealed,
        contact: Sealed,
    },
}

impl DomainEvent for FeedbackEvent {
    fn event_type(&self) -> String {
        "FeedbackSubmitted".to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl HasStoreEffects for FeedbackEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("this feedback exists already")]
    Exists,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Feedback {
    submitted: bool,
}

impl Aggregate for Feedback {
    const TYPE: &'static str = "Feedback";
    type Command = SubmitFeedback;
    type Event = FeedbackEvent;
    type Error = FeedbackError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SubmitFeedback,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), FeedbackError> {
        if self.submitted {
            return Err(FeedbackError::Exists);
        }
        let SubmitFeedback {
            feedback_id,
            user_id,
            feedback,
            contact,
        } = command;
        sink.write(
            FeedbackEvent::FeedbackSubmitted {
                feedback_id,
                user_id,
                feedback,
                contact,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, _: FeedbackEvent) {
        self.submitted = true;
    }
}
