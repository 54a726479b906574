//! `ensemble erasures`: the list of erased people, kept outside the database, and its
//! replay after a restore. A backup holds the keys of everyone erased after it was taken: a
//! restore brings their personal data back. The list (subjects and times only: no personal
//! data) is what lets an operator erase them again (docs/operators.md, "Restoring a backup").

use std::io::BufRead;
use std::path::PathBuf;

use aggregates::campus::users::{user_of_subject, user_subject, UserCommand, UserError};
use aggregates::orchestra::roster::{
    member_of_subject, member_subject, RosterCommand, RosterError,
};
use anyhow::{bail, Context};
use clap::Subcommand;
use runtime::bus::{Actor, CommandError};

use super::settle;
use crate::app::App;
use crate::orchestra::service::Refused;

#[derive(Subcommand)]
pub(super) enum ErasuresCmd {
    /// Every erasure this database holds, oldest first, one `SUBJECT<TAB>TIME` line each
    /// (orchestra-member:ID, campus-user:ID; no personal data). Keep its output outside the
    /// database, refreshed often: it is what `erasures reapply` needs after a restore
    List,
    /// Erase again everyone a list names who is not erased in this database (after restoring
    /// a backup taken before their erasure). Subjects this database never had are marked
    /// erased, and their ids are never given out again
    Reapply {
        /// A file written by `erasures list` (`-` for standard input)
        file: PathBuf,
    },
}

pub(super) async fn erasures(app: &App, command: ErasuresCmd) -> anyhow::Result<()> {
    let mut out = Output::default();
    match command {
        ErasuresCmd::List => {
            let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                "SELECT subject, forgotten_at FROM personal_keys \
                 WHERE forgotten_at IS NOT NULL ORDER BY forgotten_at, subject",
            )
            .fetch_all(&app.rt.pool)
            .await?;
            for (subject, at) in rows {
                out.line(format_args!("{subject}\t{}", at.to_rfc3339()));
            }
        }
        ErasuresCmd::Reapply { file } => {
            let subjects = read_list(&file)?;
            let mut counts = [0usize; 4];
            for subject in &subjects {
                let outcome = reapply(app, subject).await?;
                counts[outcome as usize] += 1;
                match outcome {
                    Outcome::Erased => out.line(format_args!("{}\terased again", subject.text)),
                    Outcome::Wiped => out.line(format_args!(
                        "{}\tkey destroyed (this database has its key but no record: a backup taken \
                         while it was being created)",
                        subject.text
                    )),
                    Outcome::Unknown => out.line(format_args!(
                        "{}\tnot in this database: marked erased, its id never given out again",
                        subject.text
                    )),
                    Outcome::Already => {}
                }
            }
            let [erased, already, unknown, wiped] = counts;
            out.line(format_args!(
                "{erased} erased again, {already} already erased, {unknown} not in this database, \
                 {wiped} keys without a record destroyed"
            ));
        }
    }
    out.finish()
}

/// Standard output that never panics: a reader that went away (`| head`) does not stop the
/// work half-way; the command still ends with an error saying the output was cut.
#[derive(Default)]
struct Output {
    broken: Option<std::io::Error>,
}

impl Output {
    fn line(&mut self, line: std::fmt::Arguments) {
        use std::io::Write;
        if self.broken.is_none() {
            if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
                self.broken = Some(e);
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        use std::io::Write;
        let flushed = std::io::stdout().lock().flush();
        match self.broken.map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => {
                bail!("the output could not be written whole ({e}); the work itself was done")
            }
        }
    }
}

/// One subject of a list, as `erasures list` writes it.
struct Subject {
    text: String,
    kind: Kind,
    /// When it was erased, as the list says (a list made by hand may not).
    erased_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Member(u64),
    User(u64),
}

/// The whole list, or an error naming the first bad line (by number only: a wrong file may
/// hold names); nothing is erased before the whole list has been read.
fn read_list(file: &std::path::Path) -> anyhow::Result<Vec<Subject>> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
        ))
    };
    let mut subjects = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("line {}", number + 1))?;
        let line = if number == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        let mut columns = line.split('\t');
        let text = columns.next().unwrap_or("").trim();
        let erased_at = columns
            .next()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        // Only the exact form `erasures list` writes (no sign, no leading zeros).
        let kind = member_of_subject(text)
            .filter(|id| member_subject(*id) == text)
            .map(Kind::Member)
            .or_else(|| {
                user_of_subject(text)
                    .filter(|id| user_subject(*id) == text)
                    .map(Kind::User)
            });
        let Some(kind) = kind else {
            bail!(
                "line {} is not a subject as `erasures list` writes them \
                 (orchestra-member:ID or campus-user:ID): nothing was erased",
                number + 1
            );
        };
        subjects.push(Subject {
            text: text.to_string(),
            kind,
            erased_at,
        });
    }
    Ok(subjects)
}

#[derive(Clone, Copy)]
enum Outcome {
    Erased = 0,
    Already = 1,
    Unknown = 2,
    Wiped = 3,
}

/// Where `subject`'s key stands: None (no key row), Some(true) erased, Some(false) live.
async fn key_state(app: &App, subject: &str) -> anyhow::Result<Option<bool>> {
    Ok(
        sqlx::query_scalar("SELECT forgotten_at IS NOT NULL FROM personal_keys WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&app.rt.pool)
            .await?,
    )
}

/// Whether `subject`'s live key was made after the erasure the list records: then it is not
/// the erased person's but a newcomer's who was given the same id (a server served the
/// restored database before the list was reapplied).
async fn made_after(app: &App, subject: &Subject) -> anyhow::Result<bool> {
    let Some(erased_at) = subject.erased_at else {
        return Ok(false);
    };
    let created: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT created_at FROM personal_keys WHERE subject = $1")
            .bind(&subject.text)
            .fetch_optional(&app.rt.pool)
            .await?;
    Ok(created.is_some_and(|created| created > erased_at))
}

async fn reapply(app: &App, subject: &Subject) -> anyhow::Result<Outcome> {
    let text = subject.text.as_str();
    match key_state(app, text).await? {
        Some(true) => return Ok(Outcome::Already),
        None => {
            // Created after the backup and erased before the loss: this database never had
            // them, and its id counters are as they were at the backup. Mark the subject
            // erased (a tombstone: no key is ever made for it again) and move the counter
            // past its id, so that nobody new is given the id of the erased person (a later
            // run of the same list would otherwise erase the newcomer).
            let (sequence, id) = match subject.kind {
                Kind::Member(id) => ("member_id_seq", id),
                Kind::User(id) => ("campus_user_id_seq", id),
            };
            sqlx::query(
                "INSERT INTO personal_keys (subject, key, forgotten_at) VALUES ($1, NULL, now()) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(text)
            .execute(&app.rt.pool)
            .await?;
            sqlx::query(&format!(
                "SELECT CASE WHEN nextval('{sequence}') < $1 THEN setval('{sequence}', $1) END"
            ))
            .bind(i64::try_from(id).unwrap_or(i64::MAX))
            .execute(&app.rt.pool)
            .await?;
            return Ok(Outcome::Unknown);
        }
        Some(false) => {}
    }
    if made_after(app, subject).await? {
        bail!(
            "{text}: its key was made after the erasure the list records, so it belongs to \
             someone given the same id since (a server served this database before the list \
             was reapplied). Nothing of it was erased; the subjects before it were done. \
             Take the line out (and see the runbook) to go on"
        );
    }
    let actor = Actor::operator();
    let done = match subject.kind {
        Kind::Member(member_id) => crate::orchestra::service::roster_command(
            &app.orchestra,
            RosterCommand::Forget { member_id },
            &actor,
        )
        .await
        .map(|c| c.position)
        .map_err(|e| {
            (
                e.to_string(),
                matches!(e, Refused::Roster(RosterError::NotInRoster)),
            )
        }),
        Kind::User(user_id) => {
            let done = app
                .campus
                .users
                .execute(&user_id.to_string(), UserCommand::Delete, &actor)
                .await;
            if done.is_ok() {
                crate::campus::withdraw_orphaned(&app.campus, Some(user_id as i64)).await;
            }
            done.map(|c| c.position).map_err(|e| {
                let unknown = matches!(e, CommandError::Rejected(UserError::Unknown));
                (e.to_string(), unknown)
            })
        }
    };
    match done {
        Ok(position) => {
            settle(app, position).await;
            Ok(Outcome::Erased)
        }
        // Erased meanwhile by someone else (a concurrent run, the user themself).
        Err(_) if key_state(app, text).await? == Some(true) => Ok(Outcome::Already),
        // A key with no record behind it: a backup taken between a key's creation and the
        // record's first event (each a commit of its own). Nothing but the key can name them.
        Err((_, true)) => {
            sqlx::query(
                "WITH wiped AS (UPDATE personal_keys SET key = NULL, forgotten_at = now() \
                     WHERE subject = $1 AND forgotten_at IS NULL RETURNING subject) \
                 DELETE FROM reservations WHERE owner IN (SELECT subject FROM wiped)",
            )
            .bind(text)
            .execute(&app.rt.pool)
            .await?;
            Ok(Outcome::Wiped)
        }
        Err((e, false)) => bail!("{text}: {e} (the subjects before it were done; run it again)"),
    }
}
