use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{FeedbackError, FeedbackEvent, SubmitFeedback};

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
