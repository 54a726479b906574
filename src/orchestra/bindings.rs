//! WeChat bindings that wait for an operator (`ENSEMBLE_MANAGER_BINDING=approve`): the
//! approval of a manager's pending request, shared by the CLI (and any later surface).

use aggregates::orchestra::roster::{
    RosterCommand, RosterError, RosterEvent, OPENID_SCOPE, ROSTER_ID,
};
use aggregates::personal::Sealed;

use super::Orchestra;
use runtime::bus::{Actor, CommandError, Committed};

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("member #{0} has no WeChat binding waiting for approval")]
    NothingPending(u64),
    #[error("several requests wait ({}): say which with --request", .0.join(", "))]
    Several(Vec<String>),
    #[error("no request {0} waits for approval")]
    NoSuchRequest(String),
    #[error("member #{0} has been erased")]
    Erased(u64),
    #[error("that WeChat account is bound to another member already")]
    AccountTaken,
    #[error(transparent)]
    Rejected(RosterError),
    #[error("{0}")]
    Failed(String),
}

/// Bind member `member_id` to the WeChat account of a request that waits for approval: the
/// one with id `request` (its `x-request-id`), or the only one. The request's openid is read
/// from the log, opened with the member's key and sealed again with the blind that reserves it
/// (the log never holds a blind).
pub async fn approve(
    app: &Orchestra,
    member_id: u64,
    request: Option<&str>,
    actor: &Actor,
) -> Result<Committed<aggregates::orchestra::roster::Roster>, ApproveError> {
    // The member's requests since their last binding, unbinding or enrolment.
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
    .map_err(|e| ApproveError::Failed(e.to_string()))?;
    let payload = match (request, waiting.as_slice()) {
        (_, []) => return Err(ApproveError::NothingPending(member_id)),
        (None, [(_, payload)]) => payload.clone(),
        (None, several) => {
            return Err(ApproveError::Several(
                several.iter().map(|(id, _)| id.clone()).collect(),
            ))
        }
        (Some(wanted), all) => all
            .iter()
            .find(|(id, _)| id == wanted)
            .map(|(_, payload)| payload.clone())
            .ok_or_else(|| ApproveError::NoSuchRequest(wanted.to_string()))?,
    };
    let RosterEvent::WechatBindingRequested { openid, .. } =
        serde_json::from_value::<RosterEvent>(payload)
            .map_err(|e| ApproveError::Failed(format!("an unreadable request: {e}")))?
    else {
        return Err(ApproveError::Failed("not a binding request".into()));
    };
    let clear = app
        .rt
        .keys
        .open(&openid)
        .await
        .map_err(|e| ApproveError::Failed(e.to_string()))?
        .ok_or(ApproveError::Erased(member_id))?;
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
                ApproveError::NothingPending(id)
            }
            CommandError::Rejected(e) => ApproveError::Rejected(e),
            CommandError::Duplicate => ApproveError::AccountTaken,
            CommandError::Gone => ApproveError::Erased(member_id),
            e => ApproveError::Failed(e.to_string()),
        })
}
