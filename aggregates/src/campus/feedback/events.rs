use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::{HasStoreEffects, Sealed};

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
