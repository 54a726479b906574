use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{SuperuserCommand, SuperuserError, SuperuserEvent};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Superuser {
    id: Option<String>,
    active: bool,
}

impl Superuser {
    pub fn active(&self) -> bool {
        self.active
    }
}

impl Aggregate for Superuser {
    const TYPE: &'static str = "Superuser";
    type Command = SuperuserCommand;
    type Event = SuperuserEvent;
    type Error = SuperuserError;
    /// The stream's id (a command does not otherwise know which superuser it is for).
    type Services = ();

    async fn handle(
        &mut self,
        command: SuperuserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SuperuserError> {
        match command {
            SuperuserCommand::Register {
                username,
                email,
                password_hash,
            } => {
                if self.id.is_some() {
                    return Err(SuperuserError::Exists);
                }
                // The id is the subject the caller sealed with.
                let superuser_id = username
                    .key
                    .strip_prefix("campus-superuser:")
                    .unwrap_or_default()
                    .to_string();
                sink.write(
                    SuperuserEvent::SuperuserRegistered {
                        superuser_id,
                        username,
                        email,
                        password_hash: Some(password_hash),
                    },
                    self,
                )
                .await;
                Ok(())
            }
            SuperuserCommand::Disable => {
                let id = self.id.clone().ok_or(SuperuserError::Unknown)?;
                if !self.active {
                    return Err(SuperuserError::Disabled);
                }
                sink.write(SuperuserEvent::SuperuserDisabled { superuser_id: id }, self)
                    .await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: SuperuserEvent) {
        match event {
            SuperuserEvent::SuperuserRegistered { superuser_id, .. } => {
                self.id = Some(superuser_id);
                self.active = true;
            }
            SuperuserEvent::SuperuserDisabled { .. } => self.active = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::campus::superusers::{superuser_subject, USERNAME_SCOPE};
    use crate::personal::{Blind, HasStoreEffects, Sealed, StoreEffect};

    fn sealed(clear: &str) -> Sealed {
        Sealed {
            key: superuser_subject("u-1"),
            sealed: format!("<{clear}>"),
            digest: clear.into(),
            blind: Some(Blind([7; 32])),
        }
    }

    fn registered() -> SuperuserEvent {
        SuperuserEvent::SuperuserRegistered {
            superuser_id: "u-1".into(),
            username: sealed("Jessica"),
            email: sealed("j@x.org"),
            password_hash: Some("$argon2id$...".into()),
        }
    }

    #[test]
    fn registering_reserves_the_name_and_keeps_the_hash_out_of_the_log() {
        TestFramework::<Superuser>::with(())
            .given_no_previous_events()
            .when(SuperuserCommand::Register {
                username: sealed("Jessica"),
                email: sealed("j@x.org"),
                password_hash: "$argon2id$...".into(),
            })
            .then_expect_events(vec![registered()]);
        let event = registered();
        let effects = event.store_effects();
        assert!(
            matches!(&effects[0], StoreEffect::Claim { scope, .. } if *scope == USERNAME_SCOPE)
        );
        assert!(
            matches!(&effects[1], StoreEffect::Credential { hash, .. } if hash == "$argon2id$...")
        );
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            !json.contains("argon2") && !json.contains("password"),
            "{json}"
        );
    }

    #[test]
    fn a_superuser_is_registered_once_and_disabled_once() {
        TestFramework::<Superuser>::with(())
            .given(vec![registered()])
            .when(SuperuserCommand::Register {
                username: sealed("Jessica"),
                email: sealed("j@x.org"),
                password_hash: "h".into(),
            })
            .then_expect_error(SuperuserError::Exists);
        TestFramework::<Superuser>::with(())
            .given(vec![registered()])
            .when(SuperuserCommand::Disable)
            .then_expect_events(vec![SuperuserEvent::SuperuserDisabled {
                superuser_id: "u-1".into(),
            }]);
        TestFramework::<Superuser>::with(())
            .given(vec![
                registered(),
                SuperuserEvent::SuperuserDisabled {
                    superuser_id: "u-1".into(),
                },
            ])
            .when(SuperuserCommand::Disable)
            .then_expect_error(SuperuserError::Disabled);
        TestFramework::<Superuser>::with(())
            .given_no_previous_events()
            .when(SuperuserCommand::Disable)
            .then_expect_error(SuperuserError::Unknown);
    }
}
