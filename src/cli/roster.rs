//! `ensemble roster` and `ensemble season`: the orchestra roster, who is notified of absences,
//! and the seasons; the roster import (a CSV file) that the tests use too.

use std::path::{Path, PathBuf};

use aggregates::orchestra::roster::{
    member_of_subject, member_subject, RosterCommand, RosterEntry, RosterError, NAME_SCOPE,
    ROSTER_ID,
};
use aggregates::orchestra::{EmailAddress, MemberName, Role, Section};
use anyhow::{bail, Context};
use clap::Subcommand;

use super::settle;
use crate::orchestra::read;
use crate::App;
use runtime::bus::{Actor, CommandError};

#[derive(Subcommand)]
pub(super) enum RosterCmd {
    /// Enrol or update members from a CSV file with the header `name,section,role`
    /// (section: stringed|wind|percussion; role: member|manager). Unchanged rows emit
    /// nothing; a bad row is reported with its line number and nothing of the file is applied.
    Import {
        /// The CSV file
        file: PathBuf,
    },
    /// List the roster, with each member's WeChat binding (when, through which request) or
    /// the request that waits for approval
    List,
    /// Bind a manager to a WeChat account whose first login waits for approval
    /// (ENSEMBLE_MANAGER_BINDING=approve). Confirm with them first which request was theirs
    /// (`roster list` and the mails say when each came)
    Approve {
        /// The member's name as on the roster
        name: String,
        /// The request to approve (its id, from `roster list`); needed when several wait
        #[arg(long)]
        request: Option<String>,
    },
    /// Forget a member's WeChat binding (or drop a request waiting for approval), so the
    /// next login binds the name anew
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
pub(super) enum NotifyCmd {
    /// Mail new absences to EMAIL too
    Add { email: String },
    /// Stop mailing EMAIL
    Remove { email: String },
    /// List the addresses
    List,
}

#[derive(Subcommand)]
pub(super) enum SeasonCmd {
    /// Start a new season: every member's quota is full again
    Start,
}

pub(super) async fn roster(app: &App, command: RosterCmd) -> anyhow::Result<()> {
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
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "(before this was recorded)".into())
            };
            let requests = read::binding_requests(&app.rt.pool).await?;
            for m in read::members(&app.rt.pool).await? {
                let waiting: Vec<String> = requests
                    .iter()
                    .filter(|(member, _, _)| *member == m.id)
                    .map(|(_, request, when)| format!("{} (request {request})", at(Some(*when))))
                    .collect();
                let wechat = match m.binding {
                    Some(_) => format!(
                        "bound {} (request {})",
                        at(m.bound_at),
                        m.bound_request.as_deref().unwrap_or("-")
                    ),
                    None if !waiting.is_empty() => {
                        format!("WAITING FOR APPROVAL: {}", waiting.join("; "))
                    }
                    None => "-".into(),
                };
                println!(
                    "{:>4}  {:<24} {:<11} {:<8} {wechat}",
                    m.id, m.name, m.section, m.role
                );
            }
        }
        RosterCmd::Approve { name, request } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed = crate::orchestra::bindings::approve(
                &app.orchestra,
                member_id,
                request.as_deref(),
                &actor,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            settle(app, committed.position).await;
            println!("{name} is bound to the WeChat account of that request");
        }
        RosterCmd::Unbind { name } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed = bus
                .execute(ROSTER_ID, RosterCommand::UnbindWechat { member_id }, &actor)
                .await
                .map_err(operator_error)?;
            settle(app, committed.position).await;
            println!("{name} is no longer bound to a WeChat account (nor waiting for one)");
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
                runtime::mailer::recipient(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
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
                for email in read::notify_addresses(&app.rt.pool).await? {
                    println!("{email}");
                }
            }
        },
    }
    Ok(())
}

pub(super) async fn season(app: &App, command: SeasonCmd) -> anyhow::Result<()> {
    match command {
        SeasonCmd::Start => {
            app.orchestra
                .roster
                .execute(ROSTER_ID, RosterCommand::StartSeason, &Actor::operator())
                .await
                .map_err(operator_error)?;
            println!("season {} started", read::season(&app.rt.pool).await?);
            Ok(())
        }
    }
}

fn operator_error(e: CommandError<RosterError>) -> anyhow::Error {
    match e {
        CommandError::Rejected(e) => anyhow::anyhow!("{e}"),
        e @ (CommandError::Duplicate
        | CommandError::Gone
        | CommandError::Busy
        | CommandError::Unavailable
        | CommandError::Internal(_)) => {
            anyhow::anyhow!("{e}")
        }
    }
}

/// The member id of the active member called `name`, by the reservation of the name.
async fn member_named(app: &App, name: &str) -> anyhow::Result<(MemberName, u64)> {
    let name = MemberName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let owner = app
        .rt
        .keys
        .owner(NAME_SCOPE, app.rt.keys.blind(NAME_SCOPE, name.as_str()))
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
        let blind = app.rt.keys.blind(NAME_SCOPE, row.name.as_str());
        let owner = app.rt.keys.owner(NAME_SCOPE, blind).await?;
        let entry = match owner.as_deref().and_then(member_of_subject) {
            Some(member_id) => RosterEntry::Known {
                member_id,
                section: row.section,
                role: row.role,
            },
            None => {
                let member_id: i64 = sqlx::query_scalar("SELECT nextval('member_id_seq')")
                    .fetch_one(&app.rt.pool)
                    .await?;
                let member_id = member_id as u64;
                let subject = member_subject(member_id);
                let key = app.rt.keys.create(&subject).await?;
                let name =
                    app.rt
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
