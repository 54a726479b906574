//! `ensemble events`: the event log, for auditors.

use anyhow::bail;
use clap::Subcommand;

use crate::app::App;

#[derive(Subcommand)]
pub(super) enum EventsCmd {
    /// The history in global (log) order
    List {
        #[arg(long)]
        aggregate_type: Option<String>,
        #[arg(long)]
        aggregate_id: Option<String>,
        /// Only events after the one at this position (in log order)
        #[arg(long)]
        after: Option<i64>,
        /// At most this many events (1 to 100000)
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A record as it stands now (or stood at --as-of), rebuilt from its events, then its
    /// history: who did what, when, through which request
    Show {
        /// The aggregate type (Roster, MemberAbsences)
        aggregate_type: String,
        aggregate_id: String,
        /// RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) or a date (its end)
        #[arg(long, value_parser = runtime::audit::parse_time)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Recompute the hash chain over the log: exit 0 if intact, 1 naming the first position
    /// that does not match
    Verify {
        /// Print the chain's head (position and hash), to publish it elsewhere
        #[arg(long)]
        print_head: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Format {
    Json,
    Table,
}

pub(super) async fn events(app: &App, command: EventsCmd) -> anyhow::Result<()> {
    match command {
        EventsCmd::List {
            aggregate_type,
            aggregate_id,
            after,
            limit,
            format,
        } => {
            let filter = runtime::audit::Filter {
                aggregate_type,
                aggregate_id,
                after,
                limit: limit.clamp(1, 100_000),
            };
            let events = runtime::audit::events(&app.rt.pool, &filter).await?;
            match format {
                Format::Json => {
                    for e in &events {
                        println!("{}", runtime::audit::event_json(e));
                    }
                }
                Format::Table => print!("{}", runtime::audit::event_table(&events)),
            }
            Ok(())
        }
        EventsCmd::Show {
            aggregate_type,
            aggregate_id,
            as_of,
        } => {
            let (state, history) =
                runtime::audit::record(&app.rt.pool, &aggregate_type, &aggregate_id, as_of).await?;
            if history.is_empty() {
                bail!("no {aggregate_type} {aggregate_id:?} (at that time)");
            }
            match as_of {
                Some(t) => println!("{aggregate_type} {aggregate_id} as of {}:", t.to_rfc3339()),
                None => println!("{aggregate_type} {aggregate_id} now:"),
            }
            println!("{}", serde_json::to_string_pretty(&state)?);
            println!();
            println!("history:");
            print!("{}", runtime::audit::event_table(&history));
            let actors = runtime::audit::actor_names(&app.rt.pool, &history).await?;
            if !actors.is_empty() {
                println!();
                println!("actors:");
                for (subject, name) in actors {
                    println!("  {subject} = {name}");
                }
            }
            Ok(())
        }
        EventsCmd::Verify { print_head } => {
            // Chain what has been committed so far first, so that the verdict covers it.
            app.rt.catch_up().await?;
            match runtime::audit::verify(&app.rt.tx_pool, "cli", &|_, _| {}).await? {
                runtime::chain::Verdict::Intact {
                    checked,
                    head,
                    unchained,
                } => {
                    println!("intact: {checked} events chained, {unchained} not chained yet");
                    if print_head {
                        match head {
                            Some((at, link)) => println!("head: position {} {link}", at.position),
                            None => println!("head: none (empty log)"),
                        }
                    }
                    Ok(())
                }
                runtime::chain::Verdict::Broken { position, reason } => {
                    bail!("the log does not match its hash chain at position {position}: {reason}")
                }
            }
        }
    }
}
