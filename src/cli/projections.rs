//! `ensemble projections`: the read models.

use anyhow::bail;
use clap::Subcommand;

use super::progress_bar;
use crate::app::App;

#[derive(Subcommand)]
pub(super) enum ProjectionsCmd {
    /// Apply whatever the log holds that the read models have not seen yet
    CatchUp,
    /// Rebuild read models from the event log beside the live ones and swap them in (the
    /// server keeps serving)
    Rebuild {
        /// The projections to rebuild (see `projections list`); none: all of them
        names: Vec<String>,
        /// All rebuildable projections
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Each projection: the position it has applied, its lag behind the log, its row counts
    List,
}

pub(super) async fn projections(app: &App, command: ProjectionsCmd) -> anyhow::Result<()> {
    match command {
        ProjectionsCmd::CatchUp => {
            println!("{} events applied", app.rt.catch_up().await?);
            Ok(())
        }
        ProjectionsCmd::Rebuild { names, all: _ } => {
            let chosen = match runtime::runner::rebuildable(&app.rt.projections, &names) {
                Ok(chosen) => chosen,
                Err(refused) => bail!(refused),
            };
            let bar = progress_bar();
            let n = runtime::runner::rebuild(&app.rt.tx_pool, &chosen, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await;
            bar.finish_and_clear();
            let n = n?;
            for p in &chosen {
                println!("{}: rebuilt from {n} events", p.name());
            }
            Ok(())
        }
        ProjectionsCmd::List => {
            println!(
                "{:<20} {:>22} {:>8}  rows",
                "projection", "applied (tx/position)", "lag"
            );
            let standings = runtime::audit::standings(&app.rt.pool, &app.rt.projections).await?;
            for s in standings {
                let rows: Vec<String> = s.rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
                println!(
                    "{:<20} {:>22} {:>8}  {}",
                    s.name,
                    format!("{}/{}", s.applied.transaction_id, s.applied.position),
                    s.lag,
                    rows.join(" ")
                );
            }
            let mut conn = app.rt.pool.acquire().await?;
            if let Some(h) = runtime::runner::horizon_holder(&mut conn, 5.0).await? {
                println!(
                    "held back by: pid {} ({}, {}) in a transaction for {} s; nothing \
                     committed after it began is projected until it ends",
                    h.pid, h.application_name, h.state, h.age as u64
                );
            }
            Ok(())
        }
    }
}
