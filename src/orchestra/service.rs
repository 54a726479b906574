//! The orchestra's use cases, one function each, shared by the HTTP handlers and the CLI: each
//! authorises, seals personal values, draws ids, runs the command and returns what was
//! committed (from the aggregate's state: the truth, whether or not the read models hold it
//! yet). Rules live in the aggregates (`aggregates::orchestra`); what a client sees of a
//! refusal is the handlers' business (`http.rs`).

use aggregates::orchestra::absences::{
    AbsenceChange, AbsenceCommand, AbsenceError, AbsenceEvent, AbsenceRequest, MemberAbsences,
};
use aggregates::orchestra::roster::{
    former_member, member_of_subject, member_subject, Roster, RosterCommand, RosterEntry,
    RosterError, RosterEvent, NAME_SCOPE, OPENID_SCOPE, ROSTER_ID,
};
use aggregates::orchestra::{AbsenceType, EmailAddress, MemberName, Role, Section};
use aggregates::personal::Sealed;
use chrono::NaiveDate;
use projections::orchestra::absences::{self, AbsenceRow};
use projections::orchestra::roster;
use runtime::bus::{Actor, CommandError, Committed};
use runtime::config::ManagerBinding;
use runtime::personal::{self as crypto, Key, KeyError, ERASED_TEXT};

use super::auth::CurrentMember;
use super::context::Orchestra;

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A rule of the roster (also: not on the roster, another account's name, waiting for
    /// approval).
    #[error(transparent)]
    Roster(RosterError),
    /// A rule of the absences (quota, date, ...).
    #[error(transparent)]
    Absence(AbsenceError),
    /// No such absence (of the caller), or no such member.
    #[error("not found")]
    NotFound,
    /// The caller was erased (their token outlived them for a moment).
    #[error("the caller was erased")]
    CallerErased,
    /// The caller no longer holds what the command was decided on (unbound, erased, another
    /// role, section or season since their check): nothing was written.
    #[error("the caller changed")]
    CallerChanged,
    /// A value that must be unique is taken (a name enrolled meanwhile by someone else).
    #[error("a uniqueness rule refused the change")]
    Taken,
    /// The record was too busy; nothing was written.
    #[error("the record is busy")]
    Busy,
    /// The database went away during the command; it may or may not have been made.
    #[error("the database was unavailable")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        match CommandError::<RosterError>::from(e) {
            CommandError::Busy => Self::Busy,
            CommandError::Unavailable => Self::Unavailable,
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<KeyError> for Refused {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Forgotten => Self::NotFound,
            KeyError::Database(e) => e.into(),
        }
    }
}

fn refused<E>(e: CommandError<E>, rule: impl FnOnce(E) -> Refused) -> Refused
where
    E: std::error::Error,
{
    match e {
        CommandError::Rejected(e) => rule(e),
        CommandError::Duplicate => Refused::Taken,
        CommandError::Gone => Refused::NotFound,
        CommandError::CallerChanged => Refused::CallerChanged,
        CommandError::Busy => Refused::Busy,
        CommandError::Unavailable => Refused::Unavailable,
        CommandError::Internal(e) => Refused::Internal(e),
    }
}

impl From<CommandError<RosterError>> for Refused {
    fn from(e: CommandError<RosterError>) -> Self {
        refused(e, Refused::Roster)
    }
}

impl From<CommandError<AbsenceError>> for Refused {
    fn from(e: CommandError<AbsenceError>) -> Self {
        refused(e, |e| match e {
            AbsenceError::NotFound => Refused::NotFound,
            e => Refused::Absence(e),
        })
    }
}

// ---- logging in ---------------------------------------------------------------------------

/// A member logged in: their id and the number of the binding their token carries.
pub struct LoggedIn {
    pub member_id: i64,
    pub binding: u64,
}

/// Member `name` logs in with the WeChat account `openid` (asked of WeChat already): their
/// binding, binding them first if they are not bound yet (or, for a manager where managers
/// wait, recording the request). `actor_of` makes the actor of the binding once the member
/// is known.
pub async fn log_in(
    app: &Orchestra,
    name: &str,
    openid: &str,
    actor_of: impl FnOnce(Role, &str) -> Actor,
) -> Result<LoggedIn, Refused> {
    let keys = &app.rt.keys;
    let not_listed = || Refused::Roster(RosterError::NotInRoster);
    let mismatch = || Refused::Roster(RosterError::WechatMismatch);
    let name = MemberName::parse(name).map_err(|_| not_listed())?;
    let member = roster::member_by_name(&app.rt.pool, keys.blind(NAME_SCOPE, name.as_str()))
        .await?
        .ok_or_else(not_listed)?;
    let subject = member_subject(member.id as u64);
    let openid_blind = keys.blind(OPENID_SCOPE, openid);
    let owner = keys.owner(OPENID_SCOPE, openid_blind).await?;
    let logged_in = |binding| LoggedIn {
        member_id: member.id,
        binding,
    };
    match member.binding {
        Some(binding) if owner.as_deref() == Some(subject.as_str()) => {
            return Ok(logged_in(binding as u64))
        }
        // The account speaks for another member, or the member is bound to another account.
        _ if owner.is_some_and(|owner| owner != subject) => return Err(mismatch()),
        Some(_) => return Err(mismatch()),
        // Not bound (or bound so recently that the read model has not caught up): bind.
        None => {}
    }
    let key = keys.key(&subject).await.map_err(|e| match e {
        KeyError::Forgotten => not_listed(),
        e => e.into(),
    })?;
    let command = RosterCommand::BindWechat {
        member_id: member.id as u64,
        openid: keys.seal_unique_with(&subject, &key, OPENID_SCOPE, openid),
        managers_wait: app.rt.config.manager_binding == ManagerBinding::Approve,
    };
    let actor = actor_of(member.role(), &subject);
    match app.roster.execute(ROSTER_ID, command, &actor).await {
        Ok(committed) => committed
            .events
            .iter()
            .find_map(|e| match e {
                RosterEvent::WechatBound { binding, .. } => Some(logged_in(*binding)),
                _ => None,
            })
            // Asked, not bound: the manager waits for an operator's approval.
            .ok_or(Refused::Roster(RosterError::AwaitingApproval {
                same_account: true,
            })),
        // Bound meanwhile (a racing login): by this account, or another?
        Err(CommandError::Rejected(RosterError::AlreadyBound { binding, .. })) => {
            match keys.owner(OPENID_SCOPE, openid_blind).await? {
                Some(owner) if owner == subject => Ok(logged_in(binding)),
                _ => Err(mismatch()),
            }
        }
        // The openid is reserved by another member (who bound it meanwhile).
        Err(CommandError::Duplicate) => Err(mismatch()),
        Err(CommandError::Gone) => Err(not_listed()),
        Err(e) => Err(e.into()),
    }
}

// ---- a member's own absences --------------------------------------------------------------

/// What a member asks for.
#[derive(Clone)]
pub struct Application {
    pub date: NaiveDate,
    pub kind: AbsenceType,
    pub reason: String,
}

/// What a member changes (None: kept as the member's stream holds it when the command runs).
#[derive(Clone)]
pub struct Change {
    pub date: Option<NaiveDate>,
    pub kind: Option<AbsenceType>,
    pub reason: Option<String>,
}

/// The key of the calling member, as the token check read it: an erased member's token may
/// outlive the erasure until the read models catch up, but nothing of theirs is sealed after it.
fn my_key(me: &CurrentMember) -> Result<Key, Refused> {
    me.key.ok_or(Refused::CallerErased)
}

/// `me` asks to miss a rehearsal: the new absence.
pub async fn apply(
    app: &Orchestra,
    me: &CurrentMember,
    asked: Application,
) -> Result<AbsenceRow, Refused> {
    let key = my_key(me)?;
    let subject = member_subject(me.id as u64);
    let command = AbsenceCommand::Apply {
        applier: me.id as u64,
        section: me.section,
        season: me.season,
        request: AbsenceRequest {
            date: asked.date,
            kind: asked.kind,
            reason: crypto::seal(&subject, &key, &asked.reason),
        },
    };
    let committed = app
        .absences
        .execute(&me.id.to_string(), command, &me.actor)
        .await?;
    let Some(AbsenceEvent::AbsenceApplied { absence_id, .. }) = committed.events.first() else {
        return Err(Refused::Internal(
            "apply committed no AbsenceApplied".into(),
        ));
    };
    app.appliers.remember(*absence_id, me.id.to_string());
    as_committed(&committed, *absence_id, &key, me.name.clone(), None)
}

/// `me` changes one of their future absences (on their own stream: another member's absence
/// is not there, so it is not found). Any decision on it no longer holds.
pub async fn change(
    app: &Orchestra,
    me: &CurrentMember,
    absence_id: u64,
    change: Change,
) -> Result<AbsenceRow, Refused> {
    let key = my_key(me)?;
    let subject = member_subject(me.id as u64);
    let command = AbsenceCommand::Change {
        absence_id,
        section: me.section,
        change: AbsenceChange {
            date: change.date,
            kind: change.kind,
            reason: change.reason.map(|r| crypto::seal(&subject, &key, &r)),
        },
    };
    let committed = app
        .absences
        .execute(&me.id.to_string(), command, &me.actor)
        .await?;
    // The decision's processor, if the change kept it (a change that changes nothing).
    let processor = match committed
        .state
        .absence(absence_id)
        .and_then(|a| a.decision.as_ref())
    {
        Some(decision) => roster::member_name(&app.rt.pool, decision.processor as i64).await?,
        None => None,
    };
    as_committed(&committed, absence_id, &key, me.name.clone(), processor)
}

/// `me` cancels one of their future absences.
pub async fn cancel(app: &Orchestra, me: &CurrentMember, absence_id: u64) -> Result<(), Refused> {
    // An erased member writes nothing more, not even a cancellation.
    my_key(me)?;
    app.absences
        .execute(
            &me.id.to_string(),
            AbsenceCommand::Cancel { absence_id },
            &me.actor,
        )
        .await?;
    Ok(())
}

// ---- managers -----------------------------------------------------------------------------

/// Manager `me` approves or refuses absence `absence_id`: the processor is always the caller,
/// and the result is sealed with the applier's key (it is part of the applier's record).
pub async fn decide(
    app: &Orchestra,
    me: &CurrentMember,
    absence_id: u64,
    result: &str,
    permission: bool,
) -> Result<AbsenceRow, Refused> {
    let applier = match app.appliers.get(&absence_id) {
        Some(applier) => applier,
        None => {
            let applier = absences::applier_of(&app.rt.pool, absence_id as i64)
                .await?
                .ok_or(Refused::NotFound)?
                .to_string();
            app.appliers.remember(absence_id, applier.clone());
            applier
        }
    };
    let applier_id: i64 = applier
        .parse()
        .map_err(|e: std::num::ParseIntError| Refused::Internal(e.to_string()))?;
    // The applier's name (for the answer) and key: remembered from their own last check, or
    // read in one statement; no key: erased (404). The append requires the applier's key to
    // be there still, so a decision is wholly before their erasure or not made.
    let (applier_name, key) = match app.callers.get(&applier_id) {
        Some(known) => (Some(known.name), known.key),
        None => roster::name_and_key(&app.rt.pool, applier_id).await?,
    };
    let key = key.ok_or(Refused::NotFound)?;
    let subject = member_subject(applier_id as u64);
    let command = AbsenceCommand::Process {
        absence_id,
        processor: me.id as u64,
        result: crypto::seal(&subject, &key, result),
        permission,
    };
    let actor = runtime::bus::Actor {
        requires: Some(subject),
        ..me.actor.clone()
    };
    let committed = app.absences.execute(&applier, command, &actor).await?;
    let applier_name = applier_name.unwrap_or_else(|| former_member(applier_id as u64));
    as_committed(
        &committed,
        absence_id,
        &key,
        applier_name,
        Some(me.name.clone()),
    )
}

/// The absence as the command left it, from the aggregate's state after the commit: what was
/// committed, whether or not the read models have caught up yet (they have, unless the
/// projector was held up past its bound; then a GET may lag for a moment). Its texts are
/// opened with `key`, the applier's.
fn as_committed(
    committed: &Committed<MemberAbsences>,
    id: u64,
    key: &Key,
    applier: String,
    processor: Option<String>,
) -> Result<AbsenceRow, Refused> {
    let absence = committed
        .state
        .absence(id)
        .ok_or_else(|| Refused::Internal(format!("absence {id} is not in what was committed")))?;
    let open = |sealed| crypto::open(key, sealed).unwrap_or_else(|| ERASED_TEXT.to_string());
    let reason = open(&absence.reason);
    let result = absence.decision.as_ref().map(|d| open(&d.result));
    let processor = absence.decision.as_ref().and(processor);
    Ok(absences::absence_row(
        id, absence, applier, processor, reason, result,
    ))
}

// ---- the roster (operators) ---------------------------------------------------------------

/// One row of a roster file.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterLine {
    pub name: MemberName,
    pub section: Section,
    pub role: Role,
}

/// The member id of the active member called `name`, by the reservation of the name.
pub async fn member_named(app: &Orchestra, name: &MemberName) -> Result<u64, Refused> {
    let keys = &app.rt.keys;
    let owner = keys
        .owner(NAME_SCOPE, keys.blind(NAME_SCOPE, name.as_str()))
        .await?;
    owner
        .as_deref()
        .and_then(member_of_subject)
        .ok_or(Refused::Roster(RosterError::NotInRoster))
}

/// Import `lines`: names already reserved are updated, new ones get an id and a key and are
/// enrolled with their name sealed, all in one append. Returns what was committed (one event
/// per change).
pub async fn import_roster(
    app: &Orchestra,
    lines: Vec<RosterLine>,
    actor: &Actor,
) -> Result<Committed<Roster>, Refused> {
    let keys = &app.rt.keys;
    let mut entries = Vec::with_capacity(lines.len());
    for line in lines {
        let blind = keys.blind(NAME_SCOPE, line.name.as_str());
        let owner = keys.owner(NAME_SCOPE, blind).await?;
        let entry = match owner.as_deref().and_then(member_of_subject) {
            Some(member_id) => RosterEntry::Known {
                member_id,
                section: line.section,
                role: line.role,
            },
            None => {
                let member_id: i64 = sqlx::query_scalar("SELECT nextval('member_id_seq')")
                    .fetch_one(&app.rt.pool)
                    .await?;
                let member_id = member_id as u64;
                let subject = member_subject(member_id);
                let key = keys.create(&subject).await?;
                RosterEntry::New {
                    member_id,
                    name: keys.seal_unique_with(&subject, &key, NAME_SCOPE, line.name.as_str()),
                    section: line.section,
                    role: line.role,
                }
            }
        };
        entries.push(entry);
    }
    Ok(app
        .roster
        .execute(ROSTER_ID, RosterCommand::Import { entries }, actor)
        .await?)
}

/// A roster command of an operator (unbind, forget, notification addresses, seasons).
pub async fn roster_command(
    app: &Orchestra,
    command: RosterCommand,
    actor: &Actor,
) -> Result<Committed<Roster>, Refused> {
    Ok(app.roster.execute(ROSTER_ID, command, actor).await?)
}

/// Mail new absences (and bindings) to `email` too: refused for an address the mailer could
/// never deliver to.
pub async fn add_notify_address(
    app: &Orchestra,
    email: &str,
    actor: &Actor,
) -> Result<EmailAddress, String> {
    runtime::mailer::recipient(email).map_err(|e| e.to_string())?;
    let email = EmailAddress::parse(email).map_err(|e| e.to_string())?;
    roster_command(
        app,
        RosterCommand::AddNotifyAddress {
            email: email.clone(),
        },
        actor,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(email)
}

/// Why a request to be bound was not approved.
#[derive(Debug, thiserror::Error)]
pub enum NotApproved {
    #[error("member #{0} has no WeChat binding waiting for approval")]
    NothingPending(u64),
    #[error("several requests wait ({}): say which with --request", .0.join(", "))]
    Several(Vec<String>),
    #[error("no request {0} waits for approval")]
    NoSuchRequest(String),
    #[error("that WeChat account is bound to another member already")]
    AccountTaken,
    #[error(transparent)]
    Refused(Refused),
}

/// Bind member `member_id` to the WeChat account of a request that waits for approval
/// (`ENSEMBLE_MANAGER_BINDING=approve`): the one with id `request` (its `x-request-id`), or the
/// only one. The request's openid is read from the log, opened with the member's key and sealed
/// again with the blind that reserves it (the log never holds a blind).
pub async fn approve_binding(
    app: &Orchestra,
    member_id: u64,
    request: Option<&str>,
    actor: &Actor,
) -> Result<Committed<Roster>, NotApproved> {
    let failed = |e: sqlx::Error| NotApproved::Refused(e.into());
    // The member's requests since their last binding or unbinding.
    let waiting: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT metadata ->> 'request_id', payload FROM events \
         WHERE aggregate_type = 'Roster' AND aggregate_id = $1 \
           AND event_type = 'WechatBindingRequested' \
           AND (payload -> 'WechatBindingRequested' ->> 'member_id')::bigint = $2 \
           AND position > coalesce((SELECT max(position) FROM events \
               WHERE aggregate_type = 'Roster' AND aggregate_id = $1 \
                 AND event_type IN ('WechatBound', 'WechatUnbound') \
                 AND (payload -> event_type ->> 'member_id')::bigint = $2), 0) \
         ORDER BY position",
    )
    .bind(ROSTER_ID)
    .bind(member_id as i64)
    .fetch_all(&app.rt.pool)
    .await
    .map_err(failed)?;
    let payload = match (request, waiting.as_slice()) {
        (_, []) => return Err(NotApproved::NothingPending(member_id)),
        (None, [(_, payload)]) => payload.clone(),
        (None, several) => {
            return Err(NotApproved::Several(
                several.iter().map(|(id, _)| id.clone()).collect(),
            ))
        }
        (Some(wanted), all) => all
            .iter()
            .find(|(id, _)| id == wanted)
            .map(|(_, payload)| payload.clone())
            .ok_or_else(|| NotApproved::NoSuchRequest(wanted.to_string()))?,
    };
    let Ok(RosterEvent::WechatBindingRequested { openid, .. }) =
        serde_json::from_value::<RosterEvent>(payload)
    else {
        return Err(NotApproved::Refused(Refused::Internal(
            "an unreadable binding request".into(),
        )));
    };
    let clear = app
        .rt
        .keys
        .open(&openid)
        .await
        .map_err(|e| NotApproved::Refused(e.into()))?
        .ok_or(NotApproved::Refused(Refused::NotFound))?;
    let openid = Sealed {
        blind: Some(app.rt.keys.blind(OPENID_SCOPE, &clear)),
        ..openid
    };
    app.roster
        .execute(
            ROSTER_ID,
            RosterCommand::ApproveBinding { member_id, openid },
            actor,
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(RosterError::NoPendingBinding(id)) => {
                NotApproved::NothingPending(id)
            }
            CommandError::Duplicate => NotApproved::AccountTaken,
            e => NotApproved::Refused(e.into()),
        })
}
