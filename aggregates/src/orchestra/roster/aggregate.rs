use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{RosterCommand, RosterEntry, RosterError, RosterEvent};
use crate::orchestra::{EmailAddress, MemberName, Role, Section};

/// The id of the one roster stream.
pub const ROSTER_ID: &str = "orchestra";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterMember {
    pub id: u64,
    pub section: Section,
    pub role: Role,
    pub openid: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Roster {
    members: BTreeMap<MemberName, RosterMember>,
    openids: HashMap<String, MemberName>,
    notify: BTreeSet<EmailAddress>,
    /// 0 until the first explicit season start: season 0 is the one before any.
    season: u64,
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
            RosterCommand::BindWechat { name, openid } => self.bind(name, openid, sink).await,
            RosterCommand::UnbindWechat { name } => self.unbind(name, sink).await,
            RosterCommand::AddNotifyAddress { email } => self.add_notify(email, sink).await,
            RosterCommand::RemoveNotifyAddress { email } => self.remove_notify(email, sink).await,
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
                name,
                section,
                role,
            } => {
                self.members.insert(
                    name,
                    RosterMember {
                        id: member_id,
                        section,
                        role,
                        openid: None,
                    },
                );
            }
            RosterEvent::MemberReassigned {
                name,
                section,
                role,
            } => {
                if let Some(m) = self.members.get_mut(&name) {
                    m.section = section;
                    m.role = role;
                }
            }
            RosterEvent::WechatBound { name, openid } => {
                if let Some(m) = self.members.get_mut(&name) {
                    m.openid = Some(openid.clone());
                }
                self.openids.insert(openid, name);
            }
            RosterEvent::WechatUnbound { name } => {
                if let Some(openid) = self.members.get_mut(&name).and_then(|m| m.openid.take()) {
                    self.openids.remove(&openid);
                }
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
    async fn import(&mut self, entries: Vec<RosterEntry>, sink: &Sink) -> Result<(), RosterError> {
        let mut seen = HashSet::new();
        for e in &entries {
            if !seen.insert(&e.name) {
                return Err(RosterError::DuplicateEntry(e.name.to_string()));
            }
        }
        for RosterEntry {
            name,
            section,
            role,
        } in entries
        {
            let event = match self.members.get(&name) {
                None => RosterEvent::MemberEnrolled {
                    member_id: self.members.len() as u64 + 1,
                    name,
                    section,
                    role,
                },
                Some(m) if m.section == section && m.role == role => continue,
                Some(_) => RosterEvent::MemberReassigned {
                    name,
                    section,
                    role,
                },
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    async fn bind(
        &mut self,
        name: MemberName,
        openid: String,
        sink: &Sink,
    ) -> Result<(), RosterError> {
        let member = self.members.get(&name).ok_or(RosterError::NotInRoster)?;
        match (&member.openid, self.openids.get(&openid)) {
            (Some(bound), _) if *bound == openid => Ok(()),
            (Some(_), _) => Err(RosterError::WechatMismatch),
            // This WeChat account already speaks for another name.
            (None, Some(_)) => Err(RosterError::WechatMismatch),
            (None, None) => {
                sink.write(RosterEvent::WechatBound { name, openid }, self)
                    .await;
                Ok(())
            }
        }
    }

    async fn unbind(&mut self, name: MemberName, sink: &Sink) -> Result<(), RosterError> {
        let member = self.members.get(&name).ok_or(RosterError::NotInRoster)?;
        if member.openid.is_none() {
            return Err(RosterError::NotBound(name.to_string()));
        }
        sink.write(RosterEvent::WechatUnbound { name }, self).await;
        Ok(())
    }

    async fn add_notify(&mut self, email: EmailAddress, sink: &Sink) -> Result<(), RosterError> {
        if !self.notify.contains(&email) {
            sink.write(RosterEvent::NotifyAddressAdded { email }, self)
                .await;
        }
        Ok(())
    }

    async fn remove_notify(&mut self, email: EmailAddress, sink: &Sink) -> Result<(), RosterError> {
        if !self.notify.contains(&email) {
            return Err(RosterError::UnknownNotifyAddress(email.to_string()));
        }
        sink.write(RosterEvent::NotifyAddressRemoved { email }, self)
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<Roster>;

    fn name(s: &str) -> MemberName {
        MemberName::parse(s).unwrap()
    }

    fn entry(n: &str, section: Section, role: Role) -> RosterEntry {
        RosterEntry {
            name: name(n),
            section,
            role,
        }
    }

    fn enrolled(id: u64, n: &str, section: Section, role: Role) -> RosterEvent {
        RosterEvent::MemberEnrolled {
            member_id: id,
            name: name(n),
            section,
            role,
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
                    entry("David", Section::Stringed, Role::Member),
                    entry("Alice", Section::Wind, Role::Manager),
                ],
            })
            .then_expect_events(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                enrolled(2, "Alice", Section::Wind, Role::Manager),
            ]);
    }

    #[test]
    fn importing_the_same_roster_again_emits_nothing() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::Import {
                entries: vec![entry("David", Section::Stringed, Role::Member)],
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn importing_a_changed_entry_reassigns_it() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::Import {
                entries: vec![
                    entry("David", Section::Wind, Role::Manager),
                    entry("Eve", Section::Percussion, Role::Member),
                ],
            })
            .then_expect_events(vec![
                RosterEvent::MemberReassigned {
                    name: name("David"),
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
                    entry("David", Section::Stringed, Role::Member),
                    entry("David", Section::Wind, Role::Member),
                ],
            })
            .then_expect_error(RosterError::DuplicateEntry("David".into()));
    }

    #[test]
    fn the_first_login_binds_the_name_to_the_wechat_account() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::BindWechat {
                name: name("David"),
                openid: "o-1".into(),
            })
            .then_expect_events(vec![RosterEvent::WechatBound {
                name: name("David"),
                openid: "o-1".into(),
            }]);
    }

    #[test]
    fn a_later_login_with_the_same_account_emits_nothing() {
        Given::with(())
            .given(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                RosterEvent::WechatBound {
                    name: name("David"),
                    openid: "o-1".into(),
                },
            ])
            .when(RosterCommand::BindWechat {
                name: name("David"),
                openid: "o-1".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_login_with_another_account_is_a_mismatch() {
        Given::with(())
            .given(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                RosterEvent::WechatBound {
                    name: name("David"),
                    openid: "o-1".into(),
                },
            ])
            .when(RosterCommand::BindWechat {
                name: name("David"),
                openid: "o-2".into(),
            })
            .then_expect_error(RosterError::WechatMismatch);
    }

    #[test]
    fn one_wechat_account_cannot_speak_for_two_names() {
        Given::with(())
            .given(vec![
                enrolled(1, "David", Section::Stringed, Role::Member),
                enrolled(2, "Eve", Section::Wind, Role::Member),
                RosterEvent::WechatBound {
                    name: name("David"),
                    openid: "o-1".into(),
                },
            ])
            .when(RosterCommand::BindWechat {
                name: name("Eve"),
                openid: "o-1".into(),
            })
            .then_expect_error(RosterError::WechatMismatch);
    }

    #[test]
    fn a_name_not_on_the_roster_cannot_log_in() {
        Given::with(())
            .given_no_previous_events()
            .when(RosterCommand::BindWechat {
                name: name("Mallory"),
                openid: "o-9".into(),
            })
            .then_expect_error(RosterError::NotInRoster);
    }

    #[test]
    fn unbinding_frees_the_name_for_another_account() {
        let given = vec![
            enrolled(1, "David", Section::Stringed, Role::Member),
            RosterEvent::WechatBound {
                name: name("David"),
                openid: "o-1".into(),
            },
        ];
        Given::with(())
            .given(given.clone())
            .when(RosterCommand::UnbindWechat {
                name: name("David"),
            })
            .then_expect_events(vec![RosterEvent::WechatUnbound {
                name: name("David"),
            }]);
        Given::with(())
            .given(given)
            .and(vec![RosterEvent::WechatUnbound {
                name: name("David"),
            }])
            .when(RosterCommand::BindWechat {
                name: name("David"),
                openid: "o-2".into(),
            })
            .then_expect_events(vec![RosterEvent::WechatBound {
                name: name("David"),
                openid: "o-2".into(),
            }]);
    }

    #[test]
    fn unbinding_an_unbound_name_is_refused() {
        Given::with(())
            .given(vec![enrolled(1, "David", Section::Stringed, Role::Member)])
            .when(RosterCommand::UnbindWechat {
                name: name("David"),
            })
            .then_expect_error(RosterError::NotBound("David".into()));
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
