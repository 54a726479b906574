//! `ensemble roster` and `ensemble season`: the orchestra roster, who is notified of absences,
//! and the seasons; the roster import (a CSV file) that the tests use too.

use std::path::{Path, PathBuf};

use aggregates::orchestra::roster::{former_member, RosterCommand};
use aggregates::orchestra::{EmailAddress, MemberName, Role, Section};
use anyhow::{bail, Context};
use clap::Subcommand;
use projections::orchestra::roster as read;

use super::settle;
use crate::app::App;
use crate::orchestra::service::{self, Refused, RosterLine};
use runtime::bus::Actor;

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
    let orchestra = &app.orchestra;
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
            let committed =
                service::approve_binding(orchestra, member_id, request.as_deref(), &actor)
                    .await
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            settle(app, committed.position).await;
            println!("{name} is bound to the WeChat account of that request");
        }
        RosterCmd::Unbind { name } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed = service::roster_command(
                orchestra,
                RosterCommand::UnbindWechat { member_id },
                &actor,
            )
            .await
            .map_err(operator_error)?;
            settle(app, committed.position).await;
            println!("{name} is no longer bound to a WeChat account (nor waiting for one)");
        }
        RosterCmd::Forget { name } => {
            let (name, member_id) = member_named(app, &name).await?;
            let committed =
                service::roster_command(orchestra, RosterCommand::Forget { member_id }, &actor)
                    .await
                    .map_err(operator_error)?;
            settle(app, committed.position).await;
            println!(
                "{name} was erased: from now on {}",
                former_member(member_id)
            );
        }
        RosterCmd::Notify { command } => match command {
            NotifyCmd::Add { email } => {
                let email = service::add_notify_address(orchestra, &email, &actor)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("{email} is notified of new absences");
            }
            NotifyCmd::Remove { email } => {
                let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
                service::roster_command(
                    orchestra,
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
            service::roster_command(
                &app.orchestra,
                RosterCommand::StartSeason,
                &Actor::operator(),
            )
            .await
            .map_err(operator_error)?;
            println!("season {} started", read::season(&app.rt.pool).await?);
            Ok(())
        }
    }
}

fn operator_error(e: Refused) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The member id of the active member called `name`, by the reservation of the name.
async fn member_named(app: &App, name: &str) -> anyhow::Result<(MemberName, u64)> {
    let name = MemberName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    match service::member_named(&app.orchestra, &name).await {
        Ok(id) => Ok((name, id)),
        Err(Refused::Roster(_)) => bail!("{name} is not on the roster"),
        Err(e) => Err(operator_error(e)),
    }
}

/// One row of a roster file.
pub type ImportRow = RosterLine;

/// Import `rows` (`service::import_roster`): how many changes were recorded.
pub async fn import_roster(
    app: &App,
    rows: Vec<ImportRow>,
    actor: &Actor,
) -> anyhow::Result<usize> {
    let committed = service::import_roster(&app.orchestra, rows, actor)
        .await
        .map_err(|e| match e {
            Refused::Taken => anyhow::anyhow!(
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
