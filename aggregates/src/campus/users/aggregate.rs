use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{UserCommand, UserError, UserEvent, CODE_VALIDITY, MAX_FAILURES};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PendingCode {
    email_digest: String,
    code_digest: String,
    expires_at: DateTime<Utc>,
    failures: u8,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CampusUser {
    id: Option<u64>,
    deleted: bool,
    code: Option<PendingCode>,
    /// organisation id → follow id
    follows: std::collections::BTreeMap<u64, u64>,
}

impl CampusUser {
    fn live(&self) -> Result<u64, UserError> {
        match self.id {
            Some(id) if !self.deleted => Ok(id),
            _ => Err(UserError::Unknown),
        }
    }
}

impl Aggregate for CampusUser {
    const TYPE: &'static str = "CampusUser";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), UserError> {
        let event = match command {
            UserCommand::Register {
                user_id,
                openid,
                name,
                avatar,
            } => {
                if self.id.is_some() {
                    return Err(UserError::Exists);
                }
                UserEvent::UserRegistered {
                    user_id,
                    openid,
                    name,
                    avatar,
                }
            }
            UserCommand::EditProfile { name, sign } => UserEvent::ProfileEdited {
                user_id: self.live()?,
                name,
                sign,
            },
            UserCommand::IssueCode { email, code, at } => UserEvent::VerificationCodeIssued {
                user_id: self.live()?,
                email,
                code,
                expires_at: at + CODE_VALIDITY,
            },
            UserCommand::TryCode { email, code, at } => {
                let user_id = self.live()?;
                let pending = self.code.as_ref().ok_or(UserError::NoCode)?;
                if pending.expires_at <= at {
                    return Err(UserError::NoCode);
                }
                if pending.email_digest == email.digest && pending.code_digest == code.digest {
                    UserEvent::EmailVerified { user_id, email }
                } else {
                    UserEvent::VerificationFailed {
                        user_id,
                        failures: pending.failures + 1,
                    }
                }
            }
            UserCommand::Follow {
                follow_id,
                organization_id,
            } => {
                let user_id = self.live()?;
                if self.follows.contains_key(&organization_id) {
                    return Err(UserError::AlreadyFollowing);
                }
                UserEvent::FollowStarted {
                    user_id,
                    follow_id,
                    organization_id,
                }
            }
            UserCommand::Unfollow { organization_id } => {
                let user_id = self.live()?;
                // Not following: nothing to do (the document's DELETE has no error).
                let Some(&follow_id) = self.follows.get(&organization_id) else {
                    return Ok(());
                };
                UserEvent::FollowEnded {
                    user_id,
                    follow_id,
                    organization_id,
                }
            }
            UserCommand::Delete => UserEvent::UserDeleted {
                user_id: self.live()?,
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserRegistered { user_id, .. } => self.id = Some(user_id),
            UserEvent::ProfileEdited { .. } => {}
            UserEvent::VerificationCodeIssued {
                email,
                code,
                expires_at,
                ..
            } => {
                self.code = Some(PendingCode {
                    email_digest: email.digest,
                    code_digest: code.digest,
                    expires_at,
                    failures: 0,
                })
            }
            UserEvent::VerificationFailed { failures, .. } => {
                if failures >= MAX_FAILURES {
                    self.code = None;
                } else if let Some(code) = &mut self.code {
                    code.failures = failures;
                }
            }
            UserEvent::EmailVerified { .. } => self.code = None,
            UserEvent::FollowStarted {
                follow_id,
                organization_id,
                ..
            } => {
                self.follows.insert(organization_id, follow_id);
            }
            UserEvent::FollowEnded {
                organization_id, ..
            } => {
                self.follows.remove(&organization_id);
            }
            UserEvent::UserDeleted { .. } => {
                self.deleted = true;
                self.code = None;
                self.follows.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::campus::users::{user_subject, OPENID_SCOPE};
    use crate::personal::{Blind, HasStoreEffects, Sealed, StoreEffect};

    fn sealed(clear: &str) -> Sealed {
        Sealed {
            key: user_subject(7),
            sealed: format!("<{clear}>"),
            digest: format!("#{clear}"),
            blind: None,
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 8, minute, 0).unwrap()
    }

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user_id: 7,
            openid: Sealed {
                blind: Some(Blind([3; 32])),
                ..sealed("o-7")
            },
            name: sealed("用户1"),
            avatar: None,
        }
    }

    fn issued() -> UserEvent {
        UserEvent::VerificationCodeIssued {
            user_id: 7,
            email: sealed("a@buaa.edu.cn"),
            code: sealed("123456"),
            expires_at: at(10),
        }
    }

    fn try_code(email: &str, code: &str, minute: u32) -> UserCommand {
        UserCommand::TryCode {
            email: sealed(email),
            code: sealed(code),
            at: at(minute),
        }
    }

    #[test]
    fn registering_claims_the_openid_and_deleting_shreds_the_key() {
        assert!(matches!(
            &registered().store_effects()[..],
            [StoreEffect::Claim { scope: OPENID_SCOPE, owner, .. }] if owner == "campus-user:7"
        ));
        let effects = UserEvent::UserDeleted { user_id: 7 }.store_effects();
        assert!(effects.contains(&StoreEffect::Shred {
            subject: "campus-user:7".into()
        }));
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), UserEvent::UserDeleted { user_id: 7 }])
            .when(UserCommand::Delete)
            .then_expect_error(UserError::Unknown);
    }

    #[test]
    fn the_right_code_for_the_right_address_in_time_verifies_it() {
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), issued()])
            .when(try_code("a@buaa.edu.cn", "123456", 9))
            .then_expect_events(vec![UserEvent::EmailVerified {
                user_id: 7,
                email: sealed("a@buaa.edu.cn"),
            }]);
        // Too late, or never sent.
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), issued()])
            .when(try_code("a@buaa.edu.cn", "123456", 10))
            .then_expect_error(UserError::NoCode);
        TestFramework::<CampusUser>::with(())
            .given(vec![registered()])
            .when(try_code("a@buaa.edu.cn", "123456", 1))
            .then_expect_error(UserError::NoCode);
    }

    #[test]
    fn wrong_tries_are_recorded_and_the_fifth_burns_the_code() {
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), issued()])
            .when(try_code("b@buaa.edu.cn", "123456", 1))
            .then_expect_events(vec![UserEvent::VerificationFailed {
                user_id: 7,
                failures: 1,
            }]);
        let mut given = vec![registered(), issued()];
        given.extend(
            (1..MAX_FAILURES).map(|failures| UserEvent::VerificationFailed {
                user_id: 7,
                failures,
            }),
        );
        TestFramework::<CampusUser>::with(())
            .given(given.clone())
            .when(try_code("a@buaa.edu.cn", "000000", 2))
            .then_expect_events(vec![UserEvent::VerificationFailed {
                user_id: 7,
                failures: MAX_FAILURES,
            }]);
        given.push(UserEvent::VerificationFailed {
            user_id: 7,
            failures: MAX_FAILURES,
        });
        TestFramework::<CampusUser>::with(())
            .given(given)
            .when(try_code("a@buaa.edu.cn", "123456", 3))
            .then_expect_error(UserError::NoCode);
    }

    #[test]
    fn one_follow_per_organisation_and_unfollowing_twice_changes_nothing() {
        let started = UserEvent::FollowStarted {
            user_id: 7,
            follow_id: 1,
            organization_id: 3,
        };
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), started.clone()])
            .when(UserCommand::Follow {
                follow_id: 2,
                organization_id: 3,
            })
            .then_expect_error(UserError::AlreadyFollowing);
        TestFramework::<CampusUser>::with(())
            .given(vec![registered(), started.clone()])
            .when(UserCommand::Unfollow { organization_id: 3 })
            .then_expect_events(vec![UserEvent::FollowEnded {
                user_id: 7,
                follow_id: 1,
                organization_id: 3,
            }]);
        TestFramework::<CampusUser>::with(())
            .given(vec![registered()])
            .when(UserCommand::Unfollow { organization_id: 3 })
            .then_expect_events(vec![]);
    }
}
