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
    /// Each subscription: what it reads, where it stands, who reads it now, its webhook
    List,
    /// Deliver a subscription by webhook: batches POSTed to URL, signed (prints the signing
    /// secret, shown this once); --off: readers come for them again
    Webhook {
        name: String,
        /// An http(s) URL
        #[arg(required_unless_present = "off", conflicts_with = "off")]
        url: Option<String>,
        #[arg(long)]
        off: bool,
    },
    /// Take up a webhook that was set aside after failing (or is waiting out its backoff) now
    Retry { name: String },
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
                "{:<24} {:<8} {:>10} {:>10}  {:<36} {:<40} types",
                "name", "personal", "acked", "head", "reader (lease until)", "webhook"
            );
            for s in runtime::subscriptions::list(pool).await? {
                let reader = match (&s.reader, s.reader_until) {
                    (Some(r), Some(until)) if until > chrono::Utc::now() => {
                        format!("{r} ({})", until.format("%H:%M:%S"))
                    }
                    _ => "-".into(),
                };
                println!(
                    "{:<24} {:<8} {:>10} {:>10}  {:<36} {:<40} {}",
                    s.name,
                    if s.personal { "yes" } else { "no" },
                    s.acked_position,
                    head,
                    reader,
                    webhook_state(&s),
                    s.record_types.join(",")
                );
            }
        }
        SubscriptionsCmd::Webhook { name, url, off } => {
            let url = if off { None } else { url };
            match runtime::subscriptions::set_webhook(pool, &name, url.as_deref()).await? {
                None => bail!("there is no subscription named {name:?}"),
                Some(None) => {
                    println!("subscription {name}: no webhook; readers come for its events")
                }
                Some(Some(secret)) => {
                    println!("subscription {name}: delivered by webhook from its last acknowledged event; the signing secret (shown once):");
                    println!("{secret}");
                }
            }
        }
        SubscriptionsCmd::Retry { name } => {
            if !runtime::subscriptions::retry_webhook(pool, &name).await? {
                bail!("there is no subscription named {name:?} with a webhook");
            }
            println!("subscription {name}: its webhook is taken up again now");
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

/// A webhook's state in a few words: `-`, `ok <url>`, `retrying (3): <error>`, `DEAD ...`.
fn webhook_state(s: &runtime::subscriptions::Subscription) -> String {
    let Some(url) = &s.webhook_url else {
        return "-".into();
    };
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let error = s.webhook_error.as_deref().unwrap_or("");
    match (s.webhook_dead_at, s.webhook_failures) {
        (Some(at), n) => format!(
            "DEAD since {} after {n} failures: {error} ({host})",
            at.format("%Y-%m-%d %H:%M:%S")
        ),
        (None, 0) => format!("ok ({host})"),
        (None, n) => format!("retrying ({n} failed): {error} ({host})"),
    }
}
