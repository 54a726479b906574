//! `ensemble views at`: what an endpoint of either service answered at a past moment, as
//! `GET /audit/views/` answers it (the time machine, `crate::views`).

use clap::Subcommand;

use crate::app::App;
use crate::views::{answer, AsOf, Question, Refused};

#[derive(Subcommand)]
pub(super) enum ViewsCmd {
    /// Print what GET PATH answered at TIME: `{"as_of", "today", "status", "body"}`
    At {
        /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), a date (its end), or `position:N`
        time: String,
        /// The GET path with its own query, e.g. /manager/next/ or '/organizations/?org=Choir'
        path: String,
        /// Whose answer: orchestra-member:ID, campus-user:ID or campus-superuser:ID (default:
        /// a manager, or a superuser)
        #[arg(long = "as")]
        subject: Option<String>,
        /// "Today" of date-relative endpoints, YYYY-MM-DD (default: the moment's date)
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
}

pub(super) async fn views(app: &std::sync::Arc<App>, command: ViewsCmd) -> anyhow::Result<()> {
    match command {
        ViewsCmd::At {
            time,
            path,
            subject,
            today,
        } => {
            let question = Question {
                path,
                as_of: AsOf::parse(&time).map_err(|e| anyhow::anyhow!(e))?,
                subject,
                today,
            };
            // No deadline here: an operator waits for the replay.
            let answered = loop {
                match answer(app, crate::api::services, &question, None).await {
                    Err(Refused::Later(..)) => {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await
                    }
                    other => break other,
                }
            };
            let answered = answered.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&answered)?);
            Ok(())
        }
    }
}
