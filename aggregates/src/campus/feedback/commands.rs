use crate::personal::Sealed;

#[derive(Debug, Clone, PartialEq)]
pub struct SubmitFeedback {
    pub feedback_id: u64,
    pub user_id: u64,
    pub feedback: Sealed,
    pub contact: Sealed,
}
