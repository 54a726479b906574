//! `ensemble erasures`: the list of erased people, kept outside the database, and its
//! replay after a restore. A backup holds the keys of everyone erased after it was taken: a
//! restore brings their personal data back. The list (subjects and times only: no personal
//! data) is what lets an operator erase them again (docs/operators.md, "Restoring a backup").

use std::io::BufRead;
use std::path::PathBuf;

use aggregates::campus::users::{user_of_subject, UserCommand};
use aggregates::orchestra::roster::{member_of_subject, RosterCommand};
use anyhow::{bail, Context};
use clap::Subcommand;
use runtime::bus::Actor;

use super::settle;
use crate::app::App;

#[derive(Subcommand)]
pub(super) enum ErasuresCmd {
    /// Every erasure this database holds, oldest first, one `SUBJECT<TAB>TIME` line each
    /// (orchestra-member:ID, campus-user:ID; no personal data). Keep its output outside the
    /// database, refreshed often: it is what `erasures reapply` needs after a restore
    List,
    /// Erase again everyone a list names who is not erased in this database (after restoring
    /// a backup taken before their erasure). Subjects this database never had are skipped
    Reapply {
        /// A file written by `erasures list` (`-` for standard input)
        file: PathBuf,
    },
}

pub(super) async fn erasures(app: &App, command: ErasuresCmd) -> anyhow::Result<()> {
    match command {
        ErasuresCmd::List => {
            let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                "SELECT subject, forgotten_at FROM personal_keys \
                 WHERE forgotten_at IS NOT NULL ORDER BY forgotten_at, subject",
            )
            .fetch_all(&app.rt.pool)
            .await?;
            for (subject, at) in rows {
                println!("{subject}\t{}", at.to_rfc3339());
            }
            Ok(())
        }
        ErasuresCmd::Reapply { file } => {
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                ))
            };
            let mut subjects = Vec::new();
            for (number, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("line {}", number + 1))?;
                let subject = line.split('\t').next().unwrap_or("").trim();
                if subject.is_empty() {
                    continue;
                }
                if member_of_subject(subject).is_none() && user_of_subject(subject).is_none() {
                    bail!(
                        "line {}: {subject:?} is not a subject `erasures list` writes \
                         (nothing was erased)",
                        number + 1
                    );
                }
                subjects.push(subject.to_string());
            }
            let (mut erased, mut already, mut unknown) = (0, 0, 0);
            for subject in subjects {
                match reapply(app, &subject).await? {
                    Outcome::Erased => {
                        erased += 1;
                        println!("{subject}\terased again");
                    }
                    Outcome::Already => already += 1,
                    Outcome::Unknown => {
                        unknown += 1;
                        println!("{subject}\tnot in this database (nothing to erase)");
                    }
                }
            }
            println!(
                "{erased} erased again, {already} already erased, {unknown} not in this database"
            );
            Ok(())
        }
    }
}

enum Outcome {
    Erased,
    Already,
    Unknown,
}

async fn reapply(app: &App, subject: &str) -> anyhow::Result<Outcome> {
    let key: Option<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("SELECT forgotten_at FROM personal_keys WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&app.rt.pool)
            .await?;
    match key {
        None => return Ok(Outcome::Unknown),
        Some(Some(_)) => return Ok(Outcome::Already),
        Some(None) => {}
    }
    let actor = Actor::operator();
    let position = if let Some(member_id) = member_of_subject(subject) {
        crate::orchestra::service::roster_command(
            &app.orchestra,
            RosterCommand::Forget { member_id },
            &actor,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{subject}: {e}"))?
        .position
    } else if let Some(user_id) = user_of_subject(subject) {
        let committed = app
            .campus
            .users
            .execute(&user_id.to_string(), UserCommand::Delete, &actor)
            .await
            .map_err(|e| anyhow::anyhow!("{subject}: {e}"))?;
        crate::campus::withdraw_orphaned(&app.campus, Some(user_id as i64)).await;
        committed.position
    } else {
        unreachable!("checked when the list was read")
    };
    settle(app, position).await;
    Ok(Outcome::Erased)
}
