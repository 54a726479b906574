//! `ensemble mail`: the notification mail outbox.

use anyhow::bail;
use clap::Subcommand;

use crate::app::App;

#[derive(Subcommand)]
pub(super) enum MailCmd {
    /// The newest mails with their state (pending, sent, failed), attempts and last error
    List {
        /// Only the mails set aside after a permanent failure or too many attempts
        #[arg(long)]
        failed: bool,
        /// How many to show
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a failed mail again, with a fresh count of attempts
    Retry {
        /// The mail's id, as `mail list` shows it
        id: i64,
    },
}

pub(super) async fn mail(app: &App, command: MailCmd) -> anyhow::Result<()> {
    match command {
        MailCmd::List { failed, limit } => {
            println!(
                "{:>6}  {:<8} {:>8}  {:<32} {:<25} subject / last error",
                "id", "state", "attempts", "recipient", "created"
            );
            for m in runtime::mailer::list(&app.rt.pool, failed, limit.clamp(1, 10_000)).await? {
                println!(
                    "{:>6}  {:<8} {:>8}  {:<32} {:<25} {}",
                    m.id,
                    m.state,
                    m.attempts,
                    m.recipient,
                    m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    m.subject
                );
                if let Some(error) = m.last_error.filter(|_| m.state != "sent") {
                    println!("{:>6}  {:<8} {:>8}  last error: {error}", "", "", "");
                }
            }
        }
        MailCmd::Retry { id } => {
            if !runtime::mailer::retry(&app.rt.pool, id).await? {
                bail!("mail {id} is not a failed mail (see `ensemble mail list --failed`)");
            }
            println!("mail {id} is queued again");
        }
    }
    Ok(())
}
