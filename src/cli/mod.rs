//! The command line: the server, migrations, and the operators' tools. Every change made here
//! is a command that becomes events, exactly like a request, with the operator as actor.
//!
//! By area: `serve` runs the server, `admin` the campus superusers, `roster` the
//! orchestra roster and seasons, `projections` the read models, `mail` the outbox,
//! `events` the event log, `views` the time machine and `erasures` the list of erased
//! people a restore needs. This module holds the command line itself and what they share.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{App, Config};

mod admin;
mod erasures;
mod events;
mod mail;
mod projections;
mod roster;
mod serve;
mod subscriptions;
mod views;

use admin::AdminCmd;
use erasures::ErasuresCmd;
use events::EventsCmd;
use mail::MailCmd;
use projections::ProjectionsCmd;
use roster::{RosterCmd, SeasonCmd};
use subscriptions::SubscriptionsCmd;
use views::ViewsCmd;

pub use roster::{import_roster, parse_roster_csv, read_roster_csv, ImportRow};

#[derive(Parser)]
#[command(
    name = "ensemble",
    version,
    about = "Event-sourced backend of the orchestra and campus mini-programs"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve the REST API on ENSEMBLE_LISTEN
    Serve {
        /// FOR TRYING IT LOCALLY, NEVER IN PRODUCTION: answer WeChat logins in-process
        /// instead of asking WeChat. Any login code `X` logs in as the WeChat account
        /// `fake-X` (`bad-code` is refused). Refused unless ENSEMBLE_LISTEN is a loopback
        /// address.
        #[arg(long, env = "ENSEMBLE_FAKE_WECHAT", value_parser = switch)]
        fake_wechat: bool,
    },
    /// Create the database if missing and apply the migrations
    Migrate,
    /// The orchestra roster
    Roster {
        #[command(subcommand)]
        command: RosterCmd,
    },
    /// Campus superusers (管理端)
    Admin {
        #[command(subcommand)]
        command: AdminCmd,
    },
    /// Orchestra seasons
    Season {
        #[command(subcommand)]
        command: SeasonCmd,
    },
    /// Read models
    Projections {
        #[command(subcommand)]
        command: ProjectionsCmd,
    },
    /// The notification mail outbox
    Mail {
        #[command(subcommand)]
        command: MailCmd,
    },
    /// The event log, for auditors
    Events {
        #[command(subcommand)]
        command: EventsCmd,
    },
    /// The time machine, for auditors: what an endpoint answered at a past moment
    Views {
        #[command(subcommand)]
        command: ViewsCmd,
    },
    /// Erased people: the list to keep outside the database, and its replay after a restore
    Erasures {
        #[command(subcommand)]
        command: ErasuresCmd,
    },
    /// Outside systems that follow the log over HTTP
    Subscriptions {
        #[command(subcommand)]
        command: SubscriptionsCmd,
    },
}

/// `ENSEMBLE_FAKE_WECHAT`: on or off in the usual words; blank is off (unset).
fn switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(format!(
            "ENSEMBLE_FAKE_WECHAT: {value:?} is neither 1/true/yes/on nor 0/false/no/off"
        )),
    }
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    if let Command::Serve { fake_wechat: true } = cli.command {
        config.wechat_api = serve::fake_wechat(&config).await?;
    }
    if let Command::Migrate = cli.command {
        runtime::db::create_database(&config.database_url).await?;
        runtime::db::migrate(&config.database_url).await?;
        println!("database is up to date");
        return Ok(());
    }
    if let Command::Erasures { .. } = cli.command {
        // Where a database was lost, a refreshed list must not come out empty (replacing the
        // kept one) nor a reapply run on a new, empty database.
        if !runtime::db::database_exists(&config.database_url).await? {
            anyhow::bail!(
                "the database DATABASE_URL names does not exist: nothing was listed or erased"
            );
        }
    }
    let app = App::start(config).await?;
    match cli.command {
        Command::Migrate => unreachable!(),
        Command::Mail { command } => mail::mail(&app, command).await,
        Command::Serve { .. } => serve::serve(app).await,
        Command::Roster { command } => roster::roster(&app, command).await,
        Command::Admin { command } => admin::admin(&app, command).await,
        Command::Season { command } => roster::season(&app, command).await,
        Command::Views { command } => views::views(&app, command).await,
        Command::Projections { command } => projections::projections(&app, command).await,
        Command::Events { command } => events::events(&app, command).await,
        Command::Erasures { command } => erasures::erasures(&app, command).await,
        Command::Subscriptions { command } => subscriptions::subscriptions(&app, command).await,
    }
}

/// Wait until the read models hold what a command committed (the CLI's own projector does the
/// work when no server is running), however long another transaction holds them back: when an
/// operator's command returns, what it did is in force (an unbound or erased member's tokens no
/// longer work).
pub(super) async fn settle(app: &App, position: Option<::runtime::runner::LogPosition>) {
    let Some(position) = position else { return };
    let mut told = false;
    while !app
        .rt
        .projector
        .wait_for(position, std::time::Duration::from_secs(5))
        .await
    {
        if !told {
            eprintln!(
                "waiting for the read models to apply it (`ensemble projections list` shows what holds them back)..."
            );
            told = true;
        }
    }
}

/// A progress bar with rate and ETA on a terminal; plain lines (at most one every 2 s, on
/// stderr) otherwise.
pub(super) fn progress_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}",
            )
            .expect("a valid template"),
        );
        bar
    } else {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::hidden(),
        );
        let start = std::time::Instant::now();
        let last = std::sync::Mutex::new(std::time::Instant::now());
        let shown = bar.clone();
        // Plain lines from a ticker: indicatif draws nothing without a terminal.
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if shown.is_finished() {
                return;
            }
            let mut last = last.lock().unwrap();
            if last.elapsed() >= std::time::Duration::from_secs(2) {
                *last = std::time::Instant::now();
                let (done, total) = (shown.position(), shown.length().unwrap_or(0));
                let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001);
                let eta = (total.saturating_sub(done)) as f64 / rate.max(1.0);
                eprintln!("rebuild: {done}/{total} events, {rate:.0} events/s, ETA {eta:.0} s");
            }
        });
        bar
    }
}
