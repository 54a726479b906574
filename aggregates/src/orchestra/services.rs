use async_trait::async_trait;
use chrono::NaiveDate;

/// What the orchestra aggregates need from the outside world.
#[async_trait]
pub trait OrchestraServices: Send + Sync {
    /// "Today" in the orchestra's time zone.
    fn today(&self) -> NaiveDate;
    /// The next absence id (positive, increasing in creation order).
    async fn next_absence_id(&self) -> Result<u64, ServiceError>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);
