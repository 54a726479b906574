use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{Caller, OrganizationCommand, OrganizationError, OrganizationEvent};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    New,
    Pending,
    Refused,
    /// Founded: the organisation exists.
    Active,
    /// An organisation that was deleted (its application may still be listed).
    Deleted,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Organization {
    application_id: u64,
    applicant: u64,
    phase: Phase,
    application_deleted: bool,
    organization_id: u64,
    block: u64,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    owner: u64,
    /// user → appointment id
    managers: std::collections::BTreeMap<u64, u64>,
}

impl Organization {
    pub fn organization_id(&self) -> u64 {
        self.organization_id
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The founded organisation's id, when `by` may act as its owner.
    fn as_owner(&self, by: Caller) -> Result<u64, OrganizationError> {
        if self.phase != Phase::Active {
            return Err(OrganizationError::Unknown);
        }
        match by {
            Caller::Superuser => Ok(self.organization_id),
            Caller::User(user) if user == self.owner => Ok(self.organization_id),
            Caller::User(_) => Err(OrganizationError::Forbidden),
        }
    }
}

impl Aggregate for Organization {
    const TYPE: &'static str = "Organization";
    type Command = OrganizationCommand;
    type Event = OrganizationEvent;
    type Error = OrganizationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: OrganizationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), OrganizationError> {
        use OrganizationEvent as E;
        let event = match command {
            OrganizationCommand::Submit {
                application_id,
                name,
                description,
                applicant,
                block,
                at,
            } => {
                if self.phase != Phase::New {
                    return Err(OrganizationError::Exists);
                }
                E::ApplicationSubmitted {
                    application_id,
                    name: name.value,
                    description,
                    applicant,
                    block,
                    submitted_at: at,
                    blind: Some(name.blind),
                }
            }
            OrganizationCommand::Decide {
                approve,
                organization_id,
                appointment_id,
                description,
                at,
            } => {
                match self.phase {
                    Phase::New => return Err(OrganizationError::Unknown),
                    Phase::Pending if self.application_deleted => {
                        return Err(OrganizationError::Unknown)
                    }
                    Phase::Pending => {}
                    _ => return Err(OrganizationError::AlreadyDecided),
                }
                if approve {
                    E::ApplicationApproved {
                        application_id: self.application_id,
                        organization_id,
                        name: self.name.clone(),
                        description,
                        owner: self.applicant,
                        block: self.block,
                        appointment_id,
                        founded_at: at,
                    }
                } else {
                    E::ApplicationRefused {
                        application_id: self.application_id,
                    }
                }
            }
            OrganizationCommand::DeleteApplication { by } => {
                if self.phase == Phase::New || self.application_deleted {
                    return Err(OrganizationError::Unknown);
                }
                if by != Caller::Superuser && by != Caller::User(self.applicant) {
                    return Err(OrganizationError::Forbidden);
                }
                E::ApplicationDeleted {
                    application_id: self.application_id,
                    was_pending: self.phase == Phase::Pending,
                }
            }
            OrganizationCommand::Edit {
                by,
                name,
                description,
                avatar,
            } => {
                let organization_id = self.as_owner(by)?;
                // A new reservation only when the name is another name (not another spelling).
                let blind = (crate::text::name_key(&name.value)
                    != crate::text::name_key(&self.name))
                .then_some(name.blind);
                let given = |value: Option<String>, kept: &Option<String>| match value {
                    None => kept.clone(),
                    Some(v) if v.is_empty() => None,
                    Some(v) => Some(v),
                };
                E::OrganizationEdited {
                    organization_id,
                    application_id: self.application_id,
                    name: name.value,
                    description: given(description, &self.description),
                    avatar: given(avatar, &self.avatar),
                    blind,
                }
            }
            OrganizationCommand::TransferOwnership {
                by,
                to,
                appointment_id,
            } => {
                let organization_id = self.as_owner(by)?;
                if to == self.owner {
                    return Ok(());
                }
                E::OwnershipTransferred {
                    organization_id,
                    from: self.owner,
                    to,
                    appointment_id: (!self.managers.contains_key(&to)).then_some(appointment_id),
                }
            }
            OrganizationCommand::AppointManager {
                by,
                user,
                appointment_id,
            } => {
                let organization_id = self.as_owner(by)?;
                if self.managers.contains_key(&user) {
                    return Err(OrganizationError::AlreadyManager);
                }
                E::ManagerAppointed {
                    organization_id,
                    appointment_id,
                    user,
                }
            }
            OrganizationCommand::DismissManager { by, user } => {
                let organization_id = self.as_owner(by)?;
                if user == self.owner {
                    return Err(OrganizationError::OwnerStays);
                }
                let Some(&appointment_id) = self.managers.get(&user) else {
                    return Ok(());
                };
                E::ManagerDismissed {
                    organization_id,
                    appointment_id,
                    user,
                }
            }
            OrganizationCommand::Delete { by } => E::OrganizationDeleted {
                organization_id: self.as_owner(by)?,
                application_id: self.application_id,
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: OrganizationEvent) {
        use OrganizationEvent as E;
        match event {
            E::ApplicationSubmitted {
                application_id,
                name,
                applicant,
                block,
                ..
            } => {
                self.application_id = application_id;
                self.applicant = applicant;
                self.name = name;
                self.phase = Phase::Pending;
                self.block = block;
            }
            E::ApplicationApproved {
                organization_id,
                owner,
                appointment_id,
                description,
                ..
            } => {
                self.phase = Phase::Active;
                self.organization_id = organization_id;
                self.description = description;
                self.owner = owner;
                self.managers.insert(owner, appointment_id);
            }
            E::ApplicationRefused { .. } => self.phase = Phase::Refused,
            E::ApplicationDeleted { .. } => self.application_deleted = true,
            E::OrganizationEdited {
                name,
                description,
                avatar,
                ..
            } => {
                self.name = name;
                self.description = description;
                self.avatar = avatar;
            }
            E::OwnershipTransferred {
                to, appointment_id, ..
            } => {
                self.owner = to;
                if let Some(id) = appointment_id {
                    self.managers.insert(to, id);
                }
            }
            E::ManagerAppointed {
                appointment_id,
                user,
                ..
            } => {
                self.managers.insert(user, appointment_id);
            }
            E::ManagerDismissed { user, .. } => {
                self.managers.remove(&user);
            }
            E::OrganizationDeleted { .. } => {
                self.phase = Phase::Deleted;
                self.managers.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::campus::catalog::Unique;
    use crate::campus::organizations::ORG_NAME_SCOPE;
    use crate::personal::{Blind, HasStoreEffects, Sealed, StoreEffect};
    use OrganizationCommand as C;
    use OrganizationEvent as E;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2021, 4, 15, 3, 26, 32).unwrap()
    }

    fn submitted() -> E {
        E::ApplicationSubmitted {
            application_id: 4,
            name: "test组织".into(),
            description: Sealed {
                key: "campus-user:7".into(),
                sealed: "<why>".into(),
                digest: "#why".into(),
                blind: None,
            },
            applicant: 7,
            block: 1,
            submitted_at: at(),
            blind: Some(Blind([9; 32])),
        }
    }

    fn approved() -> E {
        E::ApplicationApproved {
            application_id: 4,
            organization_id: 2,
            name: "test组织".into(),
            description: Some("我的申请理由".into()),
            owner: 7,
            block: 1,
            appointment_id: 5,
            founded_at: at(),
        }
    }

    fn decide(approve: bool) -> C {
        C::Decide {
            approve,
            organization_id: 2,
            appointment_id: 5,
            description: Some("我的申请理由".into()),
            at: at(),
        }
    }

    #[test]
    fn approval_founds_the_organisation_with_its_owner_as_first_manager() {
        TestFramework::<Organization>::with(())
            .given(vec![submitted()])
            .when(decide(true))
            .then_expect_events(vec![approved()]);
        TestFramework::<Organization>::with(())
            .given(vec![submitted()])
            .when(decide(false))
            .then_expect_events(vec![E::ApplicationRefused { application_id: 4 }]);
        for given in [
            vec![submitted(), approved()],
            vec![submitted(), E::ApplicationRefused { application_id: 4 }],
        ] {
            TestFramework::<Organization>::with(())
                .given(given)
                .when(decide(true))
                .then_expect_error(OrganizationError::AlreadyDecided);
        }
        // The owner is a manager from the founding on.
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved()])
            .when(C::AppointManager {
                by: Caller::User(7),
                user: 7,
                appointment_id: 6,
            })
            .then_expect_error(OrganizationError::AlreadyManager);
    }

    #[test]
    fn the_name_is_reserved_from_the_application_and_freed_by_refusal_or_deletion() {
        // Submitting claims the name, and needs the applicant not erased and the block there.
        let block = StoreEffect::RequireHeld {
            scope: "campus-block-name",
            owner: "campus-Block:1".into(),
        };
        assert!(matches!(
            &submitted().store_effects()[..],
            [StoreEffect::Require { subject }, held, StoreEffect::Claim { scope: ORG_NAME_SCOPE, owner, .. }]
                if owner == "campus-application:4" && subject == "campus-user:7" && *held == block
        ));
        // Founding keeps the name; it needs the owner not erased and the block there, as a
        // transfer and an appointment need the people they name.
        assert_eq!(
            approved().store_effects(),
            vec![
                StoreEffect::Require {
                    subject: "campus-user:7".into()
                },
                block
            ]
        );
        for naming in [
            E::OwnershipTransferred {
                organization_id: 2,
                from: 7,
                to: 8,
                appointment_id: None,
            },
            E::ManagerAppointed {
                organization_id: 2,
                appointment_id: 6,
                user: 8,
            },
        ] {
            assert_eq!(
                naming.store_effects(),
                vec![StoreEffect::Require {
                    subject: "campus-user:8".into()
                }]
            );
        }
        for freeing in [
            E::ApplicationRefused { application_id: 4 },
            E::ApplicationDeleted {
                application_id: 4,
                was_pending: true,
            },
            E::OrganizationDeleted {
                organization_id: 2,
                application_id: 4,
            },
        ] {
            assert!(matches!(
                &freeing.store_effects()[..],
                [StoreEffect::Release {
                    scope: Some(ORG_NAME_SCOPE),
                    ..
                }]
            ));
        }
        // Deleting a decided application leaves the organisation's name where it is.
        assert!(E::ApplicationDeleted {
            application_id: 4,
            was_pending: false
        }
        .store_effects()
        .is_empty());
    }

    #[test]
    fn only_the_owner_or_a_superuser_changes_an_organisation() {
        let edit = |by| C::Edit {
            by,
            name: Unique {
                value: "新名字".into(),
                blind: Blind([1; 32]),
            },
            description: Some("d".into()),
            avatar: None,
        };
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved()])
            .when(edit(Caller::User(8)))
            .then_expect_error(OrganizationError::Forbidden);
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved()])
            .when(edit(Caller::Superuser))
            .then_expect_events(vec![E::OrganizationEdited {
                organization_id: 2,
                application_id: 4,
                name: "新名字".into(),
                description: Some("d".into()),
                avatar: None,
                blind: Some(Blind([1; 32])),
            }]);
        // After a transfer the former owner is refused, the new one obeyed.
        let transferred = E::OwnershipTransferred {
            organization_id: 2,
            from: 7,
            to: 8,
            appointment_id: Some(6),
        };
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved()])
            .when(C::TransferOwnership {
                by: Caller::User(7),
                to: 8,
                appointment_id: 6,
            })
            .then_expect_events(vec![transferred.clone()]);
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved(), transferred.clone()])
            .when(C::Delete {
                by: Caller::User(7),
            })
            .then_expect_error(OrganizationError::Forbidden);
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved(), transferred])
            .when(C::DismissManager {
                by: Caller::User(8),
                user: 8,
            })
            .then_expect_error(OrganizationError::OwnerStays);
        // Nothing to own before the founding.
        TestFramework::<Organization>::with(())
            .given(vec![submitted()])
            .when(C::Delete {
                by: Caller::Superuser,
            })
            .then_expect_error(OrganizationError::Unknown);
    }

    #[test]
    fn an_edit_keeps_what_it_leaves_out_and_clears_what_it_blanks() {
        let edited = |description: Option<&str>, avatar: Option<&str>| E::OrganizationEdited {
            organization_id: 2,
            application_id: 4,
            name: "test组织".into(),
            description: description.map(Into::into),
            avatar: avatar.map(Into::into),
            blind: None,
        };
        let edit = |description: Option<&str>, avatar: Option<&str>| C::Edit {
            by: Caller::User(7),
            name: Unique {
                value: "test组织".into(),
                blind: Blind([9; 32]),
            },
            description: description.map(Into::into),
            avatar: avatar.map(Into::into),
        };
        // The first edit keeps the description the organisation was founded with.
        TestFramework::<Organization>::with(())
            .given(vec![submitted(), approved()])
            .when(edit(None, None))
            .then_expect_events(vec![edited(Some("我的申请理由"), None)]);
        let given = vec![submitted(), approved(), edited(Some("d"), Some("a"))];
        TestFramework::<Organization>::with(())
            .given(given.clone())
            .when(edit(None, None))
            .then_expect_events(vec![edited(Some("d"), Some("a"))]);
        TestFramework::<Organization>::with(())
            .given(given)
            .when(edit(Some(""), Some("b")))
            .then_expect_events(vec![edited(None, Some("b"))]);
    }

    #[test]
    fn an_application_is_deleted_by_its_applicant_or_a_superuser() {
        TestFramework::<Organization>::with(())
            .given(vec![submitted()])
            .when(C::DeleteApplication {
                by: Caller::User(8),
            })
            .then_expect_error(OrganizationError::Forbidden);
        TestFramework::<Organization>::with(())
            .given(vec![submitted()])
            .when(C::DeleteApplication {
                by: Caller::User(7),
            })
            .then_expect_events(vec![E::ApplicationDeleted {
                application_id: 4,
                was_pending: true,
            }]);
        TestFramework::<Organization>::with(())
            .given(vec![
                submitted(),
                E::ApplicationDeleted {
                    application_id: 4,
                    was_pending: true,
                },
            ])
            .when(decide(true))
            .then_expect_error(OrganizationError::Unknown);
    }
}
