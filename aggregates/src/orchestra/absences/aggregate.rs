use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{AbsenceChange, AbsenceCommand, AbsenceError, AbsenceEvent, AbsenceRequest, Verdict};
use crate::orchestra::{AbsenceType, OrchestraServices, Section};
use crate::personal::Sealed;

/// An absence that has not been cancelled: everything its events say of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAbsence {
    /// The applier's member id.
    pub applier: u64,
    pub section: Section,
    pub applied_on: NaiveDate,
    pub date: NaiveDate,
    pub kind: AbsenceType,
    pub reason: Sealed,
    pub cost: u32,
    /// The season whose quota it is charged to.
    pub season: u64,
    /// The latest decision since the last application or change, if any.
    pub decision: Option<Decision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The manager's member id.
    pub processor: u64,
    pub result: Sealed,
    pub permission: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemberAbsences {
    active: BTreeMap<u64, ActiveAbsence>,
}

type Sink = EventSink<MemberAbsences>;

impl Aggregate for MemberAbsences {
    const TYPE: &'static str = "MemberAbsences";
    type Command = AbsenceCommand;
    type Event = AbsenceEvent;
    type Error = AbsenceError;
    type Services = Arc<dyn OrchestraServices>;

    async fn handle(
        &mut self,
        command: AbsenceCommand,
        services: &Self::Services,
        sink: &Sink,
    ) -> Result<(), AbsenceError> {
        let today = services.today();
        match command {
            AbsenceCommand::Apply {
                applier,
                section,
                season,
                request,
            } => {
                self.apply_for(applier, section, season, request, today, services, sink)
                    .await
            }
            AbsenceCommand::Change {
                absence_id,
                section,
                change,
            } => self.change(absence_id, section, change, today, sink).await,
            AbsenceCommand::Cancel { absence_id } => {
                self.changeable(absence_id, today)?;
                sink.write(AbsenceEvent::AbsenceCancelled { absence_id }, self)
                    .await;
                Ok(())
            }
            AbsenceCommand::Process {
                absence_id,
                processor,
                result,
                permission,
            } => {
                self.active.get(&absence_id).ok_or(AbsenceError::NotFound)?;
                let event = AbsenceEvent::AbsenceProcessed {
                    absence_id,
                    processor,
                    result,
                    verdict: Verdict::of(permission),
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: AbsenceEvent) {
        match event {
            AbsenceEvent::AbsenceApplied {
                absence_id,
                applier,
                section,
                date,
                kind,
                reason,
                applied_on,
                cost,
                season,
            } => {
                let absence = ActiveAbsence {
                    applier,
                    section,
                    applied_on,
                    date,
                    kind,
                    reason,
                    cost,
                    season,
                    decision: None,
                };
                self.active.insert(absence_id, absence);
            }
            AbsenceEvent::AbsenceChanged {
                absence_id,
                date,
                kind,
                reason,
                cost,
                season,
            } => {
                if let Some(absence) = self.active.get_mut(&absence_id) {
                    absence.date = date;
                    absence.kind = kind;
                    absence.reason = reason;
                    absence.cost = cost;
                    absence.season = season;
                    absence.decision = None;
                }
            }
            AbsenceEvent::AbsenceCancelled { absence_id } => {
                self.active.remove(&absence_id);
            }
            AbsenceEvent::AbsenceProcessed {
                absence_id,
                processor,
                result,
                verdict,
            } => {
                if let Some(absence) = self.active.get_mut(&absence_id) {
                    absence.decision = Some(Decision {
                        processor,
                        result,
                        permission: verdict.permits(),
                    });
                }
            }
        }
    }
}

impl MemberAbsences {
    /// An absence of this member that has not been cancelled.
    pub fn absence(&self, absence_id: u64) -> Option<&ActiveAbsence> {
        self.active.get(&absence_id)
    }

    /// What this member has used of `season`'s quota, leaving out `except`.
    fn used(&self, season: u64, except: Option<u64>) -> u32 {
        self.active
            .iter()
            .filter(|(id, a)| a.season == season && Some(**id) != except)
            .map(|(_, a)| a.cost)
            .sum()
    }

    /// The date rules every request must pass, for a new absence (`except` None) or a change.
    fn check_date(
        &self,
        request: &AbsenceRequest,
        today: NaiveDate,
        except: Option<u64>,
    ) -> Result<(), AbsenceError> {
        if request.date <= today {
            return Err(AbsenceError::DateNotInFuture);
        }
        if self
            .active
            .iter()
            .any(|(id, a)| a.date == request.date && Some(*id) != except)
        {
            return Err(AbsenceError::DuplicateDate);
        }
        Ok(())
    }

    /// An absence of this member that is still ahead of us.
    fn changeable(
        &self,
        absence_id: u64,
        today: NaiveDate,
    ) -> Result<&ActiveAbsence, AbsenceError> {
        let absence = self.active.get(&absence_id).ok_or(AbsenceError::NotFound)?;
        if absence.date <= today {
            return Err(AbsenceError::AbsencePast);
        }
        Ok(absence)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_for(
        &mut self,
        applier: u64,
        section: Section,
        season: u64,
        request: AbsenceRequest,
        today: NaiveDate,
        services: &Arc<dyn OrchestraServices>,
        sink: &Sink,
    ) -> Result<(), AbsenceError> {
        self.check_date(&request, today, None)?;
        if self.used(season, None) + request.kind.cost() > section.quota() {
            return Err(AbsenceError::QuotaExhausted);
        }
        // Only a request that passed every rule takes an id.
        let absence_id = services.next_absence_id().await?;
        let event = AbsenceEvent::AbsenceApplied {
            absence_id,
            applier,
            section,
            date: request.date,
            kind: request.kind,
            reason: request.reason,
            applied_on: today,
            cost: request.kind.cost(),
            season,
        };
        sink.write(event, self).await;
        Ok(())
    }

    /// A change stays charged to the season the absence was made in: that season's count moves
    /// by the difference in cost, an increase must fit in what that season has left, and a
    /// change that keeps the cost charges nothing.
    async fn change(
        &mut self,
        absence_id: u64,
        section: Section,
        change: AbsenceChange,
        today: NaiveDate,
        sink: &Sink,
    ) -> Result<(), AbsenceError> {
        let current = self.changeable(absence_id, today)?.clone();
        let request = AbsenceRequest {
            date: change.date.unwrap_or(current.date),
            kind: change.kind.unwrap_or(current.kind),
            reason: change.reason.unwrap_or_else(|| current.reason.clone()),
        };
        if current.date == request.date
            && current.kind == request.kind
            && current.reason == request.reason
        {
            return Ok(());
        }
        self.check_date(&request, today, Some(absence_id))?;
        let cost = request.kind.cost();
        if cost > current.cost
            && self.used(current.season, Some(absence_id)) + cost > section.quota()
        {
            return Err(AbsenceError::QuotaExhausted);
        }
        let event = AbsenceEvent::AbsenceChanged {
            absence_id,
            date: request.date,
            kind: request.kind,
            reason: request.reason,
            cost,
            season: current.season,
        };
        sink.write(event, self).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::orchestra::ServiceError;

    /// Today is 2026-03-10; ids count up from `next`.
    struct FakeServices {
        next: AtomicU64,
    }

    #[async_trait]
    impl OrchestraServices for FakeServices {
        fn today(&self) -> NaiveDate {
            date("2026-03-10")
        }
        async fn next_absence_id(&self) -> Result<u64, ServiceError> {
            Ok(self.next.fetch_add(1, Ordering::SeqCst))
        }
    }

    fn given() -> TestFramework<MemberAbsences> {
        let services: Arc<dyn OrchestraServices> = Arc::new(FakeServices {
            next: AtomicU64::new(7),
        });
        TestFramework::with(services)
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// David's member id.
    const DAVID: u64 = 3;
    const ALICE: u64 = 4;

    fn david() -> u64 {
        DAVID
    }

    /// A stand-in for a value sealed with David's key: equal for equal text.
    fn text(clear: &str) -> Sealed {
        Sealed {
            key: format!("orchestra-member:{DAVID}"),
            sealed: format!("<{clear}>"),
            digest: clear.to_string(),
            blind: None,
        }
    }

    fn request(d: &str, kind: AbsenceType) -> AbsenceRequest {
        AbsenceRequest {
            date: date(d),
            kind,
            reason: text("exam"),
        }
    }

    fn apply(section: Section, d: &str, kind: AbsenceType) -> AbsenceCommand {
        AbsenceCommand::Apply {
            applier: david(),
            section,
            season: 1,
            request: request(d, kind),
        }
    }

    fn applied(id: u64, section: Section, d: &str, kind: AbsenceType, season: u64) -> AbsenceEvent {
        AbsenceEvent::AbsenceApplied {
            absence_id: id,
            applier: david(),
            section,
            date: date(d),
            kind,
            reason: text("exam"),
            applied_on: date("2026-03-10"),
            cost: kind.cost(),
            season,
        }
    }

    /// The change of absence `id` to `d`, `kind` and `reason`, charged to `season`.
    fn changed(id: u64, d: &str, kind: AbsenceType, reason: &str, season: u64) -> AbsenceEvent {
        AbsenceEvent::AbsenceChanged {
            absence_id: id,
            date: date(d),
            kind,
            reason: text(reason),
            cost: kind.cost(),
            season,
        }
    }

    use AbsenceType::{Tutti, TuttiAndStringsSectional as Combined, WindsSectional};
    use Section::{Percussion, Stringed, Wind};

    #[test]
    fn applying_for_a_future_date_records_id_cost_and_season() {
        given()
            .given_no_previous_events()
            .when(apply(Stringed, "2026-03-12", Combined))
            .then_expect_events(vec![applied(7, Stringed, "2026-03-12", Combined, 1)]);
    }

    #[test]
    fn applying_for_today_or_earlier_is_refused() {
        for d in ["2026-03-10", "2026-03-09"] {
            given()
                .given_no_previous_events()
                .when(apply(Stringed, d, Tutti))
                .then_expect_error(AbsenceError::DateNotInFuture);
        }
    }

    #[test]
    fn a_second_absence_on_the_same_date_is_refused() {
        given()
            .given(vec![applied(1, Stringed, "2026-03-12", Tutti, 1)])
            .when(apply(Stringed, "2026-03-12", WindsSectional))
            .then_expect_error(AbsenceError::DuplicateDate);
    }

    #[test]
    fn stringed_members_have_three_per_season() {
        let two_used = vec![
            applied(1, Stringed, "2026-03-12", Tutti, 1),
            applied(2, Stringed, "2026-03-13", Tutti, 1),
        ];
        given()
            .given(two_used.clone())
            .when(apply(Stringed, "2026-03-14", Tutti))
            .then_expect_events(vec![applied(7, Stringed, "2026-03-14", Tutti, 1)]);
        // A combined rehearsal costs two: one left is not enough.
        given()
            .given(two_used)
            .when(apply(Stringed, "2026-03-14", Combined))
            .then_expect_error(AbsenceError::QuotaExhausted);
    }

    #[test]
    fn wind_members_have_two_and_percussion_one() {
        given()
            .given(vec![applied(1, Wind, "2026-03-12", Combined, 1)])
            .when(apply(Wind, "2026-03-14", Tutti))
            .then_expect_error(AbsenceError::QuotaExhausted);
        given()
            .given(vec![applied(1, Percussion, "2026-03-12", Tutti, 1)])
            .when(apply(Percussion, "2026-03-14", Tutti))
            .then_expect_error(AbsenceError::QuotaExhausted);
        given()
            .given_no_previous_events()
            .when(apply(Percussion, "2026-03-14", Combined))
            .then_expect_error(AbsenceError::QuotaExhausted);
    }

    #[test]
    fn cancelling_gives_the_cost_back() {
        given()
            .given(vec![
                applied(1, Percussion, "2026-03-12", Tutti, 1),
                AbsenceEvent::AbsenceCancelled { absence_id: 1 },
            ])
            .when(apply(Percussion, "2026-03-14", Tutti))
            .then_expect_events(vec![applied(7, Percussion, "2026-03-14", Tutti, 1)]);
    }

    #[test]
    fn a_new_season_has_a_full_quota() {
        given()
            .given(vec![applied(1, Percussion, "2026-03-12", Tutti, 1)])
            .when(AbsenceCommand::Apply {
                applier: david(),
                section: Percussion,
                season: 2,
                request: request("2026-03-14", Tutti),
            })
            .then_expect_events(vec![applied(7, Percussion, "2026-03-14", Tutti, 2)]);
    }

    #[test]
    fn changing_adjusts_the_quota_by_the_cost_difference() {
        // Wind: 2. One absence of cost 1 may become a combined one only if nothing else is used.
        let change = |id| AbsenceCommand::Change {
            absence_id: id,
            section: Wind,
            change: (request("2026-03-20", Combined)).into(),
        };
        given()
            .given(vec![applied(1, Wind, "2026-03-12", Tutti, 1)])
            .when(change(1))
            .then_expect_events(vec![changed(1, "2026-03-20", Combined, "exam", 1)]);
        given()
            .given(vec![
                applied(1, Wind, "2026-03-12", Tutti, 1),
                applied(2, Wind, "2026-03-13", Tutti, 1),
            ])
            .when(change(1))
            .then_expect_error(AbsenceError::QuotaExhausted);
    }

    #[test]
    fn a_change_stays_charged_to_the_season_the_absence_was_made_in() {
        // Percussion: 1. Applied in season 0; season 1 has started.
        let season0 = vec![applied(1, Percussion, "2026-03-12", Tutti, 0)];
        // Only the fields sent: the date is left out.
        let change = |kind| AbsenceCommand::Change {
            absence_id: 1,
            section: Percussion,
            change: AbsenceChange {
                date: None,
                kind: Some(kind),
                reason: Some(text("concert")),
            },
        };
        // Only the reason changes: the cost stays, the season stays.
        given()
            .given(season0.clone())
            .when(change(Tutti))
            .then_expect_events(vec![changed(1, "2026-03-12", Tutti, "concert", 0)]);
        // ...so season 1 still has its whole quota.
        let mut history = season0.clone();
        history.push(changed(1, "2026-03-12", Tutti, "concert", 0));
        given()
            .given(history)
            .when(AbsenceCommand::Apply {
                applier: david(),
                section: Percussion,
                season: 1,
                request: request("2026-03-14", Tutti),
            })
            .then_expect_events(vec![applied(7, Percussion, "2026-03-14", Tutti, 1)]);
        // An increase must fit in what the absence's own season has left.
        given()
            .given(season0)
            .when(change(Combined))
            .then_expect_error(AbsenceError::QuotaExhausted);
    }

    #[test]
    fn a_cheaper_change_fits_even_when_the_season_is_full() {
        // Wind: 2, all used by one combined absence; making it a cost-1 one is always allowed.
        given()
            .given(vec![applied(1, Wind, "2026-03-12", Combined, 1)])
            .when(AbsenceCommand::Change {
                absence_id: 1,
                section: Wind,
                change: (request("2026-03-12", Tutti)).into(),
            })
            .then_expect_events(vec![changed(1, "2026-03-12", Tutti, "exam", 1)]);
    }

    #[test]
    fn changing_to_a_date_already_taken_or_past_is_refused() {
        let events = vec![
            applied(1, Stringed, "2026-03-12", Tutti, 1),
            applied(2, Stringed, "2026-03-13", Tutti, 1),
        ];
        let change = |d: &str| AbsenceCommand::Change {
            absence_id: 1,
            section: Stringed,
            change: (request(d, Tutti)).into(),
        };
        given()
            .given(events.clone())
            .when(change("2026-03-13"))
            .then_expect_error(AbsenceError::DuplicateDate);
        given()
            .given(events)
            .when(change("2026-03-10"))
            .then_expect_error(AbsenceError::DateNotInFuture);
    }

    #[test]
    fn fields_left_out_of_a_change_keep_what_the_stream_holds() {
        // An earlier change moved the date; a later one sends only a reason.
        given()
            .given(vec![
                applied(1, Stringed, "2026-03-12", Tutti, 1),
                changed(1, "2026-03-20", Tutti, "exam", 1),
            ])
            .when(AbsenceCommand::Change {
                absence_id: 1,
                section: Stringed,
                change: AbsenceChange {
                    reason: Some(text("only the reason")),
                    ..Default::default()
                },
            })
            .then_expect_events(vec![changed(1, "2026-03-20", Tutti, "only the reason", 1)]);
    }

    #[test]
    fn a_change_that_changes_nothing_emits_nothing() {
        given()
            .given(vec![applied(1, Stringed, "2026-03-12", Tutti, 1)])
            .when(AbsenceCommand::Change {
                absence_id: 1,
                section: Stringed,
                change: (request("2026-03-12", Tutti)).into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn absences_of_today_or_earlier_can_no_longer_be_changed_or_cancelled() {
        given()
            .given(vec![applied(1, Stringed, "2026-03-10", Tutti, 1)])
            .when(AbsenceCommand::Cancel { absence_id: 1 })
            .then_expect_error(AbsenceError::AbsencePast);
    }

    #[test]
    fn unknown_or_cancelled_absences_are_not_found() {
        given()
            .given_no_previous_events()
            .when(AbsenceCommand::Cancel { absence_id: 3 })
            .then_expect_error(AbsenceError::NotFound);
        given()
            .given(vec![
                applied(1, Stringed, "2026-03-12", Tutti, 1),
                AbsenceEvent::AbsenceCancelled { absence_id: 1 },
            ])
            .when(AbsenceCommand::Process {
                absence_id: 1,
                processor: ALICE,
                result: text("ok"),
                permission: true,
            })
            .then_expect_error(AbsenceError::NotFound);
    }

    #[test]
    fn a_manager_may_process_an_absence_again() {
        let decision = |permission| AbsenceEvent::AbsenceProcessed {
            absence_id: 1,
            processor: ALICE,
            result: text("fine"),
            verdict: Verdict::of(permission),
        };
        given()
            .given(vec![
                applied(1, Stringed, "2026-03-12", Tutti, 1),
                decision(false),
            ])
            .when(AbsenceCommand::Process {
                absence_id: 1,
                processor: ALICE,
                result: text("fine"),
                permission: true,
            })
            .then_expect_events(vec![decision(true)]);
    }
}
