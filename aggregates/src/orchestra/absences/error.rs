use crate::orchestra::ServiceError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AbsenceError {
    #[error("You have used up all of your chances.")]
    QuotaExhausted,
    #[error("You have already applied for an absence on this date.")]
    DuplicateDate,
    #[error("The date of absence must be after today.")]
    DateNotInFuture,
    #[error("An absence dated today or earlier can no longer be changed or cancelled.")]
    AbsencePast,
    #[error("Absence not found.")]
    NotFound,
    #[error("service unavailable: {0}")]
    Service(#[from] ServiceError),
}
