use std::collections::{BTreeMap, BTreeSet, HashSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{RosterCommand, RosterEntry, RosterError, RosterEvent};
use crate::orchestra::{EmailAddress, Role, Section};
use crate::personal::Sealed;

/// Requests to be bound that may wait for one manager at once: past it, more accounts trying
/// the name are told to wait and recorded nowhere (they are counted as failed logins).
pub const PENDING_REQUESTS: usize = 10;

/// The id of the one roster stream.
pub const ROSTER_ID: &str = "orchestra";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterMember {
    pub section: Section,
    pub role: Role,
    /// The number of the member's current WeChat binding, if bound.
    pub binding: Option<u64>,
    /// The accounts whose first login as this manager asked to be bound, while they wait for
    /// an operator's approval (at most [`PENDING_REQUESTS`]).
    #[serde(default)]
    pub pending: Vec<Sealed>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Roster {
    members: BTreeMap<u64, RosterMember>,
    notify: BTreeSet<EmailAddress>,
    /// 0 until the first explicit season start: season 0 is the one before any.
    season: u64,
    /// WeChat bindings made so far (the last binding's number).
    bindings: u64,
}

type Sink = EventSink<Roster>;

impl Aggregate for Roster {
    const TYPE: &'static str = "Roster";
    type Command = RosterCommand;
    type Event = RosterEvent;
    type Error = RosterError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RosterCommand,
        _services: &(),
        sink: &Sink,
    ) -> Result<(), RosterError> {
        match command {
            RosterCommand::Import { entries } => self.import(entries, sink).await,
            RosterCommand::BindWechat {
                member_id,
                openid,
                managers_wait,
            } => self.bind(member_id, openid, managers_wait, sink).await,
            RosterCommand::ApproveBinding { member_id, openid } => {
                let member = self.member(member_id)?;
                if let Some(binding) = member.binding {
                    return Err(RosterError::AlreadyBound { member_id, binding });
                }
                if !member.pending.contains(&openid) {
                    return Err(RosterError::NoPendingBinding(member_id));
                }
                self.write_binding(member_id, openid, sink).await;
                Ok(())
            }
            RosterCommand::UnbindWechat { member_id } => {
                let member = self.member(member_id)?;
                if member.binding.is_none() && member.pending.is_empty() {
                    return Err(RosterError::NotBound(member_id));
                }
                sink.write(RosterEvent::WechatUnbound { member_id }, self)
                    .await;
                Ok(())
            }
            RosterCommand::Forget { member_id } => {
                self.member(member_id)?;
                sink.write(RosterEvent::MemberForgotten { member_id }, self)
                    .await;
                Ok(())
            }
            RosterCommand::AddNotifyAddress { email } => {
                if !self.notify.contains(&email) {
                    sink.write(RosterEvent::NotifyAddressAdded { email }, self)
                        .await;
                }
                Ok(())
            }
            RosterCommand::RemoveNotifyAddress { email } => {
                if !self.notify.contains(&email) {
                    return Err(RosterError::UnknownNotifyAddress(email.to_string()));
                }
                sink.write(RosterEvent::NotifyAddressRemoved { email }, self)
                    .await;
                Ok(())
            }
            RosterCommand::StartSeason => {
                let season = self.season + 1;
                sink.write(RosterEvent::SeasonStarted { season }, self)
                    .await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: RosterEvent) {
        match event {
            RosterEvent::MemberEnrolled {
                member_id,
                section,
                role,
                ..
            } => {
                self.members.insert(
                    member_id,
                    RosterMember {
                        section,
                        role,
                        binding: None,
                        pending: Vec::new(),
                    },
                );
            }
            RosterEvent::MemberReassigned {
                member_id,
                section,
                role,
            } => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.section = section;
                    m.role = role;
                }
            }
            RosterEvent::WechatBound {
                member_id, binding, ..
            } => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.binding = Some(binding);
                    m.pending.clear();
                }
                self.bindings = self.bindings.max(binding);
            }
            RosterEvent::WechatUnbound { member_id } => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.binding = None;
                    m.pending.clear();
                }
            }
            RosterEvent::WechatBindingRequested { member_id, openid } => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    if !m.pending.contains(&openid) {
                        m.pending.push(openid);
                    }
                }
            }
            RosterEvent::MemberForgotten { member_id } => {
                self.members.remove(&member_id);
            }
            RosterEvent::NotifyAddressAdded { email } => {
                self.notify.insert(email);
            }
            RosterEvent::NotifyAddressRemoved { email } => {
                self.notify.remove(&email);
            }
            RosterEvent::SeasonStarted { season } => self.season = season,
        }
    }
}

impl Roster {
    fn member(&self, member_id: u64) -> Result<&RosterMember, RosterError> {
        self.members.get(&member_id).ok_or(RosterError::NotInRoster)
    }

    async fn import(&mut self, entries: Vec<RosterEntry>, sink: &Sink) -> Result<(), RosterError> {
        let mut ids = HashSet::new();
        let mut blinds = HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            let fresh = match e {
                RosterEntry::Known { member_id, .. } => ids.insert(*member_id),
                RosterEntry::New {
                    member_id, name, ..
                } => ids.insert(*member_id) && name.blind.is_none_or(|b| blinds.insert(b)),
            };
            if !fresh {
                return Err(RosterError::DuplicateEntry(i + 1));
            }
            match e {
                RosterEntry::Known { member_id, .. } if !self.members.contains_key(member_id) => {
                    return Err(RosterError::Gone(*member_id));
                }
                // Ids are drawn from a sequence: one on the roster already is a caller's bug.
                RosterEntry::New { member_id, .. } if self.members.contains_key(member_id) => {
                    return Err(RosterError::DuplicateEntry(i + 1));
                }
                _ => {}
            }
        }
        for entry in entries {
            let event = match entry {
                RosterEntry::New {
                    member_id,
                    name,
                    section,
                    role,
                } => RosterEvent::MemberEnrolled {
                    member_id,
                    name,
                    section,
                    role,
                },
                RosterEntry::Known {
                    member_id,
                    section,
                    role,
                } => {
                    let m = &self.members[&member_id];
                    if m.section == section && m.role == role {
                        continue;
                    }
                    RosterEvent::MemberReassigned {
                        member_id,
                        section,
                        role,
                    }
                }
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    /// Binds an unbound member. A member bound already is refused with the binding's number:
    /// whether it is this account (a repeated login) or another, the caller tells by the
    /// openid's reservation, since the roster never holds an openid. With `managers_wait`, a
    /// manager's first login records a request instead; while any request waits, every other
    /// account's first login is recorded as a request too (so the operator sees every account
    /// that tried the name), and each waits for an approval of its own.
    async fn bind(
        &mut self,
        member_id: u64,
        openid: Sealed,
        managers_wait: bool,
        sink: &Sink,
    ) -> Result<(), RosterError> {
        let member = self.member(member_id)?;
        if let Some(binding) = member.binding {
            return Err(RosterError::AlreadyBound { member_id, binding });
        }
        // Every account that asks is recorded (once), so an operator sees them all and
        // approves the right one; each is told to wait.
        if member.pending.contains(&openid) {
            return Err(RosterError::AwaitingApproval { same_account: true });
        }
        if !member.pending.is_empty() && member.pending.len() >= PENDING_REQUESTS {
            return Err(RosterError::AwaitingApproval {
                same_account: false,
            });
        }
        if !member.pending.is_empty() || (managers_wait && member.role == Role::Manager) {
            sink.write(
                RosterEvent::WechatBindingRequested { member_id, openid },
                self,
            )
            .await;
            return Ok(());
        }
        self.write_binding(member_id, openid, sink).await;
        Ok(())
    }

    /// The member's next binding (tokens carry its number).
    async fn write_binding(&mut self, member_id: u64, openid: Sealed, sink: &Sink) {
        let binding = self.bindings + 1;
        sink.write(
            RosterEvent::WechatBound {
                member_id,
                openid,
                binding,
            },
            self,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::orchestra::roster::{member_subject, NAME_SCOPE, OPENID_SCOPE};
    use crate::personal::{Blind, HasStoreEffects, StoreEffect};

    type Given = TestFramework<Roster>;

    /// A stand-in for a sealed value: equal for equal (subject, clear).
    fn sealed(id: u64, clear: &str) -> Sealed {
        let mut blind = [0u8; 32];
        for (b, c) in blind.iter_mut().zip(clear.bytes()) {
            *b = c;
        }
        Sealed {
            key: member_subject(id),
            sealed: format!("<{clear}>"),
            digest: clear.to_string(),
            blind: Some(Blind(blind)),
        }
    }

    fn new(id: u64, name: &str, section: Section, role: Role) -> RosterEntry {
        RosterEntry::New {
            member_id: id,
            name: sealed(id, name),
            section,
            role,
        }
    }

    fn known(id: u64, section: Section, role: Role) -> RosterEntry {
        RosterEntry::Known {
            member_id: id,
            section,
            role,
        }
    }

    fn enrolled(id: u64, n: &str, section: Section, role: Role) -> RosterEvent {
        RosterEvent::MemberEnrolled {
            member_id: id,
            name: sealed(id, n),
            section,
            role,
        }
    }

    fn bound(id: u64, openid: &str, binding: u64) -> RosterEvent {
        RosterEvent::WechatBound {
            member_id: id,
            openid: sealed(id, openid),
            binding,
        }
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn importing_new_names_enrols_them_in_file_order() {
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::Import {
                entries: vec![
                    new(7, "David", Section::Stringed, Role::Member),
                    new(8, "Alice", Section::Wind, Role::Manager),
                ],
            })
            .then_expect_events(vec![
                enrolled(7, "David", Section::Stringed, Role::Member),
                enrolled(8, "Alice", Section::Wind, Role::Manager),
            ]);
    }

    #[test]
    fn importing_the_same_roster_again_emits_nothing() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::Import {
                entries: vec![known(1, Section::Stringed, Role::Member)],
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn importing_a_changed_entry_reassigns_it() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::Import {
                entries: vec![
                    known(1, Section::Wind, Role::Manager),
                    new(2, "Eve", Section::Percussion, Role::Member),
                ],
            })
            .then_expect_events(vec![
                RosterEvent::MemberReassigned {
                    member_id: 1,
                    section: Section::Wind,
                    role: Role::Manager,
                },
                enrolled(2, "Eve", Section::Percussion, Role::Member),
            ]);
    }

    #[test]
    fn an_import_naming_someone_twice_is_refused_whole() {
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::Import {
                entries: vec![
                    new(1, "David", Section::Stringed, Role::Member),
                    new(2, "David", Section::Wind, Role::Member),
                ],
            })
            .then_expect_error(RosterError::DuplicateEntry(2));
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::Import {
                entries: vec![
                    known(1, Section::Stringed, Role::Member),
                    known(1, Section::Wind, Role::Member),
                ],
            })
            .then_expect_error(RosterError::DuplicateEntry(2));
    }

    #[test]
    fn an_import_of_a_member_forgotten_meanwhile_is_refused() {
        Given::with(())
            .given(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                RosterEvent::MemberForgotten { member_id: 1 },
            ])
            .when(RosterCommand::Import {
                entries: vec![known(1, Section::Wind, Role::Member)],
            })
            .then_expect_error(RosterError::Gone(1));
    }

    #[test]
    fn the_first_login_binds_the_member_to_the_wechat_account() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::BindWechat {
                member_id: 1,
                openid: sealed(1, "o-1"),
                managers_wait: false,
            })
            .then_expect_events(vec![bound(1, "o-1", 1)]);
    }

    #[test]
    fn a_bound_member_is_refused_with_the_number_of_the_binding() {
        Given::with(())
            .given(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                bound(1, "o-1", 1),
            ])
            .when(RosterCommand::BindWechat {
                member_id: 1,
                openid: sealed(1, "o-2"),
                managers_wait: false,
            })
            .then_expect_error(RosterError::AlreadyBound {
                member_id: 1,
                binding: 1,
            });
    }

    #[test]
    fn a_member_not_on_the_roster_cannot_log_in() {
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::BindWechat {
                member_id: 9,
                openid: sealed(9, "o-9"),
                managers_wait: false,
            })
            .then_expect_error(RosterError::NotInRoster);
    }

    #[test]
    fn unbinding_frees_the_member_for_another_account_with_a_new_binding_number() {
        let given = vec![
            enrolled(1, "David", Section::Stringed, Role::Member),
            bound(1, "o-1", 1),
        ];
        Given::with(())
            .given(given.clone())
            .when(RosterCommand::UnbindWechat { member_id: 1 })
            .then_expect_events(vec![RosterEvent::WechatUnbound { member_id: 1 }]);
        Given::with(())
            .given(given)
            .and(vec![RosterEvent::WechatUnbound { member_id: 1 }])
            .when(RosterCommand::BindWechat {
                member_id: 1,
                openid: sealed(1, "o-2"),
                managers_wait: false,
            })
            .then_expect_events(vec![bound(1, "o-2", 2)]);
    }

    #[test]
    fn where_managers_wait_a_managers_first_login_asks_and_an_operator_approves() {
        let alice = enrolled(2, "Alice", Section::Wind, Role::Manager);
        let asked = RosterEvent::WechatBindingRequested {
            member_id: 2,
            openid: sealed(2, "o-a"),
        };
        Given::with(())
            .given(vec![alice.clone()])
            .when(RosterCommand::BindWechat {
                member_id: 2,
                openid: sealed(2, "o-a"),
                managers_wait: true,
            })
            .then_expect_events(vec![asked.clone()]);
        // Members are bound at once, as ever.
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::BindWechat {
                member_id: 1,
                openid: sealed(1, "o-1"),
                managers_wait: true,
            })
            .then_expect_events(vec![bound(1, "o-1", 1)]);
        // Until the approval, the account that asked waits; another account asks too (it is
        // recorded beside the first), then waits as well.
        Given::with(())
            .given(vec![alice.clone(), asked.clone()])
            .when(RosterCommand::BindWechat {
                member_id: 2,
                openid: sealed(2, "o-a"),
                managers_wait: true,
            })
            .then_expect_error(RosterError::AwaitingApproval { same_account: true });
        let asked_too = RosterEvent::WechatBindingRequested {
            member_id: 2,
            openid: sealed(2, "o-x"),
        };
        Given::with(())
            .given(vec![alice.clone(), asked.clone()])
            .when(RosterCommand::BindWechat {
                member_id: 2,
                openid: sealed(2, "o-x"),
                managers_wait: true,
            })
            .then_expect_events(vec![asked_too.clone()]);
        // The operator approves either one; the other's request goes with the approval.
        Given::with(())
            .given(vec![alice.clone(), asked.clone(), asked_too.clone()])
            .when(RosterCommand::ApproveBinding {
                member_id: 2,
                openid: sealed(2, "o-x"),
            })
            .then_expect_events(vec![bound(2, "o-x", 1)]);
        Given::with(())
            .given(vec![alice.clone(), asked.clone()])
            .when(RosterCommand::ApproveBinding {
                member_id: 2,
                openid: sealed(2, "o-a"),
            })
            .then_expect_events(vec![bound(2, "o-a", 1)]);
        // Only an account that asked is approved; nothing is approved without a request.
        Given::with(())
            .given(vec![alice.clone(), asked.clone()])
            .when(RosterCommand::ApproveBinding {
                member_id: 2,
                openid: sealed(2, "o-y"),
            })
            .then_expect_error(RosterError::NoPendingBinding(2));
        Given::with(())
            .given(vec![alice.clone()])
            .when(RosterCommand::ApproveBinding {
                member_id: 2,
                openid: sealed(2, "o-a"),
            })
            .then_expect_error(RosterError::NoPendingBinding(2));
        // An operator may drop the request; then the next login asks again.
        Given::with(())
            .given(vec![alice.clone(), asked.clone()])
            .when(RosterCommand::UnbindWechat { member_id: 2 })
            .then_expect_events(vec![RosterEvent::WechatUnbound { member_id: 2 }]);
        Given::with(())
            .given(vec![alice, asked])
            .and(vec![RosterEvent::WechatUnbound { member_id: 2 }])
            .when(RosterCommand::BindWechat {
                member_id: 2,
                openid: sealed(2, "o-b"),
                managers_wait: true,
            })
            .then_expect_events(vec![RosterEvent::WechatBindingRequested {
                member_id: 2,
                openid: sealed(2, "o-b"),
            }]);
    }

    #[test]
    fn unbinding_an_unbound_member_is_refused() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::UnbindWechat { member_id: 1 })
            .then_expect_error(RosterError::NotBound(1));
    }

    #[test]
    fn forgetting_takes_the_member_off_the_roster() {
        let given = vec![
            enrolled(1, "David", Section::Stringed, Role::Member),
            bound(1, "o-1", 1),
        ];
        Given::with(())
            .given(given.clone())
            .when(RosterCommand::Forget { member_id: 1 })
            .then_expect_events(vec![RosterEvent::MemberForgotten { member_id: 1 }]);
        Given::with(())
            .given(given.clone())
            .and(vec![RosterEvent::MemberForgotten { member_id: 1 }])
            .when(RosterCommand::BindWechat {
                member_id: 1,
                openid: sealed(1, "o-1"),
                managers_wait: false,
            })
            .then_expect_error(RosterError::NotInRoster);
        Given::with(())
            .given(given)
            .and(vec![RosterEvent::MemberForgotten { member_id: 1 }])
            .when(RosterCommand::Forget { member_id: 1 })
            .then_expect_error(RosterError::NotInRoster);
    }

    #[test]
    fn events_claim_release_and_shred_what_the_store_keeps_beside_the_log() {
        let claim = |scope, id: u64, clear: &str| StoreEffect::Claim {
            scope,
            blind: sealed(id, clear).blind.unwrap(),
            owner: member_subject(id),
        };
        assert_eq!(
            enrolled(3, "Eve", Section::Wind, Role::Member).store_effects(),
            vec![claim(NAME_SCOPE, 3, "Eve")]
        );
        assert_eq!(
            bound(3, "o-3", 1).store_effects(),
            vec![claim(OPENID_SCOPE, 3, "o-3")]
        );
        assert_eq!(
            RosterEvent::WechatUnbound { member_id: 3 }.store_effects(),
            vec![StoreEffect::Release {
                scope: Some(OPENID_SCOPE),
                owner: member_subject(3)
            }]
        );
        assert_eq!(
            RosterEvent::MemberForgotten { member_id: 3 }.store_effects(),
            vec![
                StoreEffect::Release {
                    scope: None,
                    owner: member_subject(3)
                },
                StoreEffect::Shred {
                    subject: member_subject(3)
                }
            ]
        );
        // A sealed value read back from the log has no blind: replaying claims nothing.
        let mut replayed = enrolled(3, "Eve", Section::Wind, Role::Member);
        if let RosterEvent::MemberEnrolled { name, .. } = &mut replayed {
            name.blind = None;
        }
        assert!(replayed.store_effects().is_empty());
    }

    #[test]
    fn notify_addresses_are_added_once_and_removed_only_when_present() {
        let added = RosterEvent::NotifyAddressAdded {
            email: email("boss@orchestra.org"),
        };
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::AddNotifyAddress {
                email: email("boss@orchestra.org"),
            })
            .then_expect_events(vec![added.clone()]);
        Given::with(())
            .given(vec![added.clone()])
            .when(RosterCommand::AddNotifyAddress {
                email: email("boss@orchestra.org"),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![added])
            .when(RosterCommand::RemoveNotifyAddress {
                email: email("boss@orchestra.org"),
            })
            .then_expect_events(vec![RosterEvent::NotifyAddressRemoved {
                email: email("boss@orchestra.org"),
            }]);
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::RemoveNotifyAddress {
                email: email("x@y.org"),
            })
            .then_expect_error(RosterError::UnknownNotifyAddress("x@y.org".into()));
    }

    #[test]
    fn each_season_start_numbers_the_next_season() {
        Given::with(())
            .given(vec![RosterEvent::SeasonStarted { season: 1 }])
            .when(RosterCommand::StartSeason)
            .then_expect_events(vec![RosterEvent::SeasonStarted { season: 2 }]);
    }
}
