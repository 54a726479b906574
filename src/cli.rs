//! The command line: the server, migrations, and the operators' tools. Every change made here
//! is a command that becomes events, exactly like a request, with the operator as actor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aggregates::orchestra::roster::{
    member_of_subject, member_subject, RosterCommand, RosterEntry, RosterError, NAME_SCOPE,
    ROSTER_ID,
};
use aggregates::orchestra::{EmailAddress, MemberName, Role, Section};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::bus::{Actor, CommandError};
use crate::orchestra::read;
use crate::{App, Config};

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
    Serve,
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
}

#[derive(Subcommand)]
enum EventsCmd {
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
        #[arg(long, value_parser = crate::audit::parse_time)]
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
enum Format {
    Json,
    Table,
}

#[derive(Subcommand)]
enum MailCmd {
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

#[derive(Subcommand)]
enum AdminCmd {
    /// Create a superuser. The password comes from --password, else ENSEMBLE_ADMIN_PASSWORD,
    /// else a prompt on a terminal; it is stored as an argon2id hash, never in the log
    Create {
        username: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        email: String,
    },
    /// List the superusers
    List,
    /// Disable a superuser: their tokens stop working once the command returns
    Disable { username: String },
}

#[derive(Subcommand)]
enum RosterCmd {
    /// Enrol or update members from a CSV file with the header `name,section,role`
    /// (section: stringed|wind|percussion; role: member|manager). Unchanged rows emit
    /// nothing; a bad row is reported with its line number and nothing of the file is applied.
    Import {
        /// The CSV file
        file: PathBuf,
    },
    /// List the roster
    List,
    /// Forget a member's WeChat binding, so the next login binds the name anew
    Unbind {
        /// The member's name as on the roster
        name: String,
    },
    /// Erase a member (the right to be forgotten): off the roster, their key destroyed, so
    /// their name, WeChat id, reasons and the results about them become unreadable in the log,
    /// the read models, the outbox and every later rebuild; they show as `former member #ID`.
    /// Cannot be undone.
    Forget {
        /// The member's name as on the roster
        name: String,
    },
    /// Who is mailed about new absences
    Notify {
        #[command(subcommand)]
        command: NotifyCmd,
    },
}

#[derive(Subcommand)]
enum NotifyCmd {
    /// Mail new absences to EMAIL too
    Add { email: String },
    /// Stop mailing EMAIL
    Remove { email: String },
    /// List the addresses
    List,
}

#[derive(Subcommand)]
enum SeasonCmd {
    /// Start a new season: every member's quota is full again
    Start,
}

#[derive(Subcommand)]
enum ProjectionsCmd {
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
    let config = Config::from_env()?;
    if let Command::Migrate = cli.command {
        crate::db::create_database(&config.database_url).await?;
        crate::db::migrate(&config.database_url).await?;
        println!("database is up to date");
        return Ok(());
    }
    let app = App::start(config).await?;
    match cli.command {
        Command::Migrate => unreachable!(),
        Command::Mail { command } => mail(&app, command).await,
        Command::Serve => serve(app).await,
        Command::Roster { command } => roster(&app, command).await,
        Command::Admin { command } => admin(&app, command).await,
        Command::Season {
            command: SeasonCmd::Start,
        } => {
            app.orchestra
                .roster
                .execute(ROSTER_ID, RosterCommand::StartSeason, &Actor::operator())
                .await
                .map_err(operator_error)?;
            println!("season {} started", read::season(&app.pool).await?);
            Ok(())
        }
        Command::Projections { command } => match command {
            ProjectionsCmd::CatchUp => {
                println!("{} events applied", app.catch_up().await?);
                Ok(())
            }
            ProjectionsCmd::Rebuild { names, all: _ } => {
                let rebuildable: Vec<&dyn projections::Projection> = app
                    .projections
                    .iter()
                    .filter(|p| !p.tables().is_empty())
                    .map(|p| p.as_ref())
                    .collect();
                let chosen: Vec<&dyn projections::Projection> = if names.is_empty() {
                    rebuildable
                } else {
                    let mut chosen: Vec<&dyn projections::Projection> = Vec::new();
                    for name in &names {
                        if chosen.iter().any(|p| p.name() == name) {
                            continue;
                        }
                        match rebuildable.iter().find(|p| p.name() == name) {
                            Some(p) => chosen.push(*p),
                            None => bail!(
                                "{name:?} is not a projection that can be rebuilt (these can: {})",
                                rebuildable
                                    .iter()
                                    .map(|p| p.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    }
                    chosen
                };
                let bar = progress_bar();
                let n = projections::rebuild(&app.tx_pool, &chosen, &|done, total| {
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
                let standings = crate::audit::standings(&app.pool, &app.projections).await?;
                for s in standings {
                    let rows: Vec<String> =
                        s.rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
                    println!(
                        "{:<20} {:>22} {:>8}  {}",
                        s.name,
                        format!("{}/{}", s.applied.transaction_id, s.applied.position),
                        s.lag,
                        rows.join(" ")
                    );
                }
                let mut conn = app.pool.acquire().await?;
                if let Some(h) = projections::horizon_holder(&mut conn, 5.0).await? {
                    println!(
                        "held back by: pid {} ({}, {}) in a transaction for {} s; nothing \
                         committed after it began is projected until it ends",
                        h.pid, h.application_name, h.state, h.age as u64
                    );
                }
                Ok(())
            }
        },
        Command::Events { command } => events(&app, command).await,
    }
}

async fn serve(app: Arc<App>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.config.listen))?;
    if app.config.jwt_secret.is_none() {
        tracing::warn!(
            "ENSEMBLE_JWT_SECRET is not set: using a random secret, so every token dies with \
             this process. Set it in production."
        );
    }
    tracing::info!(address = %listener.local_addr()?, "serving");
    let workers = crate::worker::spawn(app.clone());
    let admin = match app.config.admin_listen {
        Some(address) => {
            let admin = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (ENSEMBLE_ADMIN_LISTEN)"))?;
            tracing::info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");
            let (router, _) = crate::metrics::routes(true).split_for_parts();
            let router = router.with_state(app.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(admin, router).await {
                    tracing::error!(error = %e, "admin listener failed");
                }
            }))
        }
        None => None,
    };
    crate::api::serve(app.clone(), listener, shutdown_signal()).await?;
    if let Some(admin) = admin {
        admin.abort();
    }
    workers.stop(&app).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

fn operator_error(e: CommandError<RosterError>) -> anyhow::Error {
    match e {
        CommandError::Rejected(e) => anyhow::anyhow!("{e}"),
        e @ (CommandError::Duplicate
        | CommandError::Busy
        | CommandError::Unavailable
        | CommandError::Internal(_)) => {
            anyhow::anyhow!("{e}")
        }
    }
}

/// Wait until the read models hold what a command committed (the CLI's own projector does the
/// work when no server is running), however long another transaction holds them back: when an
/// operator's command returns, what it did is in force (an unbound or erased member's tokens no
/// longer work).
async fn settle(app: &App, position: Option<projections::LogPosition>) {
    let Some(position) = position else { return };
    let mut told = false;
    while !app
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

async fn admin(app: &App, command: AdminCmd) -> anyhow::Result<()> {
    let actor = Actor::operator();
    match command {
        AdminCmd::Create {
            username,
            password,
            email,
        } => {
            let password = match password.or_else(|| std::env::var("ENSEMBLE_ADMIN_PASSWORD").ok()) {
                Some(p) => p,
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    let first = rpassword::prompt_password("password: ")?;
                    let again = rpassword::prompt_password("again: ")?;
                    if first != again {
                        bail!("the two passwords differ");
                    }
                    first
                }
                None => bail!("no password: give --password, set ENSEMBLE_ADMIN_PASSWORD, or run on a terminal to be asked"),
            };
            let id = crate::campus::register(app, &username, &email, &password, &actor)
                .await
                .map_err(|e| match e {
                    crate::campus::RegisterError::Fields(fields) => {
                        anyhow::anyhow!("refused: {fields}")
                    }
                    crate::campus::RegisterError::Other(e) => e,
                })?;
            println!("superuser {} created (id {id})", username.trim());
        }
        AdminCmd::List => {
            println!(
                "{:<36}  {:<20} {:<30} {:<8} registered",
                "id", "username", "email", "state"
            );
            for s in crate::campus::list(app).await? {
                println!(
                    "{:<36}  {:<20} {:<30} {:<8} {}",
                    s.id,
                    s.username,
                    s.email,
                    if s.active { "active" } else { "disabled" },
                    s.registered_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        AdminCmd::Disable { username } => {
            let Some(id) = crate::campus::superuser_named(app, &username).await? else {
                bail!("no superuser called {}", username.trim());
            };
            let position = crate::campus::disable(app, &id, &actor).await?;
            settle(app, position).await;
            println!("superuser {} is disabled", username.trim());
        }
    }
    Ok(())
}

async fn roster(app: &App, command: RosterCmd) -> anyhow::Result<()> {
    let bus = &app.orchestra.roster;
    let actor = Actor::operator();
    match command {
        RosterCmd::Import { file } => {
            let rows = read_roster_csv(&file)?;
            let count = rows.len();
            let changes = import_roster(app, rows, &actor).await?;
            println!("{count} rows read, {changes} changes recorded");
        }
        RosterCmd::List => {
            println!(
                "{:>4}  {:<24} {:<11} {:<8} wechat",
                "id", "name", "section", "role"
            );
            for m in read::members(&app.pool).await? {
                let bound = if m.binding.is_some() { "bound" } else { "-" };
                println!(
                    "{:>4}  {:<24} {:<11} {:<8} {bound}",
                    m.id, m.name, m.section, m.role
                );
            }
        }
        RosterCmd::Unbind { name } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed = bus
                .execute(ROSTER_ID, RosterCommand::UnbindWechat { member_id }, &actor)
                .await
                .map_err(operator_error)?;
            settle(app, committed.position).await;
            println!("{name} is no longer bound to a WeChat account");
        }
        RosterCmd::Forget { name } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed = bus
                .execute(ROSTER_ID, RosterCommand::Forget { member_id }, &actor)
                .await
                .map_err(operator_error)?;
            settle(app, committed.position).await;
            println!(
                "{name} was erased: from now on {}",
                aggregates::orchestra::roster::former_member(member_id)
            );
        }
        RosterCmd::Notify { command } => match command {
            NotifyCmd::Add { email } => {
                // The mailer's own check: an address it could never deliver to is refused here.
                crate::mailer::recipient(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                bus.execute(
                    ROSTER_ID,
                    RosterCommand::AddNotifyAddress {
                        email: email.clone(),
                    },
                    &actor,
                )
                .await
                .map_err(operator_error)?;
                println!("{email} is notified of new absences");
            }
            NotifyCmd::Remove { email } => {
                let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                bus.execute(
                    ROSTER_ID,
                    RosterCommand::RemoveNotifyAddress {
                        email: email.clone(),
                    },
                    &actor,
                )
                .await
                .map_err(operator_error)?;
                println!("{email} is no longer notified");
            }
            NotifyCmd::List => {
                for email in read::notify_addresses(&app.pool).await? {
                    println!("{email}");
                }
            }
        },
    }
    Ok(())
}

/// A progress bar with rate and ETA on a terminal; plain lines (at most one every 2 s, on
/// stderr) otherwise.
fn progress_bar() -> indicatif::ProgressBar {
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

async fn events(app: &App, command: EventsCmd) -> anyhow::Result<()> {
    match command {
        EventsCmd::List {
            aggregate_type,
            aggregate_id,
            after,
            limit,
            format,
        } => {
            let filter = crate::audit::Filter {
                aggregate_type,
                aggregate_id,
                after,
                limit: limit.clamp(1, 100_000),
            };
            let events = crate::audit::events(&app.pool, &filter).await?;
            match format {
                Format::Json => {
                    for e in &events {
                        println!("{}", crate::audit::event_json(e));
                    }
                }
                Format::Table => print!("{}", crate::audit::event_table(&events)),
            }
            Ok(())
        }
        EventsCmd::Show {
            aggregate_type,
            aggregate_id,
            as_of,
        } => {
            let (state, history) =
                crate::audit::record(&app.pool, &aggregate_type, &aggregate_id, as_of).await?;
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
            print!("{}", crate::audit::event_table(&history));
            let actors = crate::audit::actor_names(&app.pool, &history).await?;
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
            app.catch_up().await?;
            match crate::audit::verify(&app.tx_pool).await? {
                projections::chain::Verdict::Intact {
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
                projections::chain::Verdict::Broken { position, reason } => {
                    bail!("the log does not match its hash chain at position {position}: {reason}")
                }
            }
        }
    }
}

async fn mail(app: &App, command: MailCmd) -> anyhow::Result<()> {
    match command {
        MailCmd::List { failed, limit } => {
            println!(
                "{:>6}  {:<8} {:>8}  {:<32} {:<25} subject / last error",
                "id", "state", "attempts", "recipient", "created"
            );
            for m in crate::mailer::list(&app.pool, failed, limit.clamp(1, 10_000)).await? {
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
            if !crate::mailer::retry(&app.pool, id).await? {
                bail!("mail {id} is not a failed mail (see `ensemble mail list --failed`)");
            }
            println!("mail {id} is queued again");
        }
    }
    Ok(())
}

/// The member id of the active member called `name`, by the reservation of the name.
async fn member_named(app: &App, name: &str) -> anyhow::Result<(MemberName, u64)> {
    let name = MemberName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let owner = app
        .keys
        .owner(NAME_SCOPE, app.keys.blind(NAME_SCOPE, name.as_str()))
        .await?;
    let Some(id) = owner.as_deref().and_then(member_of_subject) else {
        bail!("{name} is not on the roster");
    };
    Ok((name, id))
}

/// One row of a roster file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub name: MemberName,
    pub section: Section,
    pub role: Role,
}

/// Import `rows`: names already reserved are updated, new ones get an id and a key and are
/// enrolled with their name sealed. Returns how many changes were recorded.
pub async fn import_roster(
    app: &App,
    rows: Vec<ImportRow>,
    actor: &Actor,
) -> anyhow::Result<usize> {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let blind = app.keys.blind(NAME_SCOPE, row.name.as_str());
        let owner = app.keys.owner(NAME_SCOPE, blind).await?;
        let entry = match owner.as_deref().and_then(member_of_subject) {
            Some(member_id) => RosterEntry::Known {
                member_id,
                section: row.section,
                role: row.role,
            },
            None => {
                let member_id: i64 = sqlx::query_scalar("SELECT nextval('member_id_seq')")
                    .fetch_one(&app.pool)
                    .await?;
                let member_id = member_id as u64;
                let subject = member_subject(member_id);
                let key = app.keys.create(&subject).await?;
                let name = app
                    .keys
                    .seal_unique_with(&subject, &key, NAME_SCOPE, row.name.as_str());
                RosterEntry::New {
                    member_id,
                    name,
                    section: row.section,
                    role: row.role,
                }
            }
        };
        entries.push(entry);
    }
    let committed = app
        .orchestra
        .roster
        .execute(ROSTER_ID, RosterCommand::Import { entries }, actor)
        .await
        .map_err(|e| match e {
            CommandError::Duplicate => anyhow::anyhow!(
                "a name of this file was enrolled meanwhile by someone else: nothing was imported; run the import again"
            ),
            e => operator_error(e),
        })?;
    Ok(committed.events.len())
}

/// Parse a roster CSV whole: every bad row is reported with its line number, and any error
/// means nothing is applied.
pub fn read_roster_csv(path: &Path) -> anyhow::Result<Vec<ImportRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_roster_csv(&text)
}

pub fn parse_roster_csv(text: &str) -> anyhow::Result<Vec<ImportRow>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .context("cannot read the header line")?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    if header != ["name", "section", "role"] {
        bail!(
            "line 1: the header must be `name,section,role` (found `{}`)",
            header.join(",")
        );
    }
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != 3 {
            errors.push(format!(
                "line {line}: expected 3 fields, found {}",
                record.len()
            ));
            continue;
        }
        let parsed = (|| -> Result<ImportRow, String> {
            Ok(ImportRow {
                name: MemberName::parse(&record[0]).map_err(|e| e.to_string())?,
                section: Section::parse(&record[1]).map_err(|e| e.to_string())?,
                role: Role::parse(&record[2]).map_err(|e| e.to_string())?,
            })
        })();
        match parsed {
            Ok(entry) => {
                if let Some(first) = seen.insert(entry.name.clone(), line) {
                    errors.push(format!(
                        "line {line}: {} is already on line {first}",
                        entry.name
                    ));
                } else {
                    entries.push(entry);
                }
            }
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("nothing was imported:\n  {}", errors.join("\n  "));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_csv_parses_with_a_bom_and_blank_lines() {
        let entries = parse_roster_csv(
            "\u{feff}name,section,role\nDavid,stringed,member\n\nAlice, wind ,manager\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].name.as_str(), "Alice");
        assert_eq!(entries[1].section, Section::Wind);
        assert_eq!(entries[1].role, Role::Manager);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_number() {
        let err = parse_roster_csv(
            "name,section,role\nDavid,stringed,member\nEve,brass,member\nBob,wind\nDavid,wind,member\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3: section must be one of"), "{err}");
        assert!(err.contains("line 4: expected 3 fields"), "{err}");
        assert!(err.contains("line 5: David is already on line 2"), "{err}");
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let err = parse_roster_csv("name,role,section\nDavid,member,stringed\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
