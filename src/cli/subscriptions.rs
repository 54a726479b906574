//! `ensemble subscriptions`: outside systems that follow the log over HTTP
//! (`GET /subscriptions/<name>/events`).

use anyhow::bail;
use clap::Subcommand;

use crate::app::App;

#[derive(Subcommand)]
pub(super) enum SubscriptionsCmd {
    /// Create a subscription and print its token (shown this once: keep it)
    Create {
        /// Its name: 1 to 64 of a-z, 0-9, - and _
        name: String,
        /// The record types it may read, comma-separated (MemberAbsences,Organization), or '*'
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// Open personal values for it (else they stay sealed, as the log holds them)
        #[arg(long)]
        personal: bool,
    },
    /// Each subscription: what it reads, where it stands, who reads it now
    List,
    /// Delete a subscription (its token stops working at once)
    Delete { name: String },
}

pub(super) async fn subscriptions(app: &App, command: SubscriptionsCmd) -> anyhow::Result<()> {
    let pool = &app.rt.pool;
    match command {
        SubscriptionsCmd::Create {
            name,
            types,
            personal,
        } => {
            let types: Vec<String> = types.into_iter().map(|t| t.trim().to_string()).collect();
            let known = runtime::audit::aggregate_types();
            let token =
                runtime::subscriptions::create(pool, &name, &types, &known, personal).await?;
            println!("subscription {name} created; its token (shown once):");
            println!("{token}");
        }
        SubscriptionsCmd::List => {
            let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
                .fetch_one(pool)
                .await?;
            println!(
                "{:<24} {:<8} {:>10} {:>10}  {:<36} types",
                "name", "personal", "acked", "head", "reader (lease until)"
            );
            for s in runtime::subscriptions::list(pool).await? {
                let reader = match (&s.reader, s.reader_until) {
                    (Some(r), Some(until)) if until > chrono::Utc::now() => {
                        format!("{r} ({})", until.format("%H:%M:%S"))
                    }
                    _ => "-".into(),
                };
                println!(
                    "{:<24} {:<8} {:>10} {:>10}  {:<36} {}",
                    s.name,
                    if s.personal { "yes" } else { "no" },
                    s.acked_position,
                    head,
                    reader,
                    s.record_types.join(",")
                );
            }
        }
        SubscriptionsCmd::Delete { name } => {
            if !runtime::subscriptions::delete(pool, &name).await? {
                bail!("there is no subscription named {name:?}");
            }
            println!("subscription {name} deleted");
        }
    }
    Ok(())
}
