use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

/// "Today" in the configured time zone, or a pinned date (tests and demos).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    tz: Tz,
    pinned: Option<NaiveDate>,
}

impl Clock {
    pub fn new(tz: Tz, pinned: Option<NaiveDate>) -> Self {
        Self { tz, pinned }
    }

    pub fn today(&self) -> NaiveDate {
        self.pinned
            .unwrap_or_else(|| Utc::now().with_timezone(&self.tz).date_naive())
    }
}
