//! `ensemble admin`: the campus superusers (管理端).

use anyhow::bail;
use clap::Subcommand;

use super::settle;
use crate::app::App;
use runtime::bus::Actor;

#[derive(Subcommand)]
pub(super) enum AdminCmd {
    /// Create a superuser. The password comes from --password, else ENSEMBLE_ADMIN_PASSWORD,
    /// else a prompt on a terminal; it is stored as an argon2id hash, never in the log
    Create {
        username: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        email: String,
    },
    /// List the superusers
    List,
    /// Disable a superuser: their tokens stop working once the command returns
    Disable { username: String },
}

pub(super) async fn admin(app: &App, command: AdminCmd) -> anyhow::Result<()> {
    let actor = Actor::operator();
    match command {
        AdminCmd::Create {
            username,
            password,
            email,
        } => {
            let password = match password.or_else(|| std::env::var("ENSEMBLE_ADMIN_PASSWORD").ok()) {
                Some(p) => p,
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    let first = rpassword::prompt_password("password: ")?;
                    let again = rpassword::prompt_password("again: ")?;
                    if first != again {
                        bail!("the two passwords differ");
                    }
                    first
                }
                None => bail!("no password: give --password, set ENSEMBLE_ADMIN_PASSWORD, or run on a terminal to be asked"),
            };
            let id = crate::campus::register(&app.campus, &username, &email, &password, &actor)
                .await
                .map_err(|e| match e {
                    crate::campus::RegisterError::Fields(fields) => {
                        anyhow::anyhow!("refused: {fields}")
                    }
                    crate::campus::RegisterError::Other(e) => e,
                })?;
            println!("superuser {} created (id {id})", username.trim());
        }
        AdminCmd::List => {
            println!(
                "{:<36}  {:<20} {:<30} {:<8} registered",
                "id", "username", "email", "state"
            );
            for s in crate::campus::list(&app.campus).await? {
                println!(
                    "{:<36}  {:<20} {:<30} {:<8} {}",
                    s.id,
                    s.username,
                    s.email,
                    if s.active { "active" } else { "disabled" },
                    s.registered_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        AdminCmd::Disable { username } => {
            let Some(id) = crate::campus::superuser_named(&app.campus, &username).await? else {
                bail!("no superuser called {}", username.trim());
            };
            let position = crate::campus::disable(&app.campus, &id, &actor).await?;
            settle(app, position).await;
            println!("superuser {} is disabled", username.trim());
        }
    }
    Ok(())
}
