//! The three roles of a session (plain data: no networking).

use std::fmt::Display;

use crate::error::{CoreError, Result};

/// Who this side of a channel is. Any two different roles are complementary
/// (server/client, and either party with the dealer); equal roles are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Party 0: holds the model.
    Server,
    /// Party 1: holds the input, receives the output.
    Client,
    /// Produces correlated randomness for the two parties.
    Dealer,
}

impl Role {
    /// The byte that names this role in a Hello.
    pub fn code(self) -> u8 {
        match self {
            Role::Server => 1,
            Role::Client => 2,
            Role::Dealer => 3,
        }
    }

    /// The role a Hello byte names, if any.
    pub fn from_code(b: u8) -> Option<Role> {
        Some(match b {
            1 => Role::Server,
            2 => Role::Client,
            3 => Role::Dealer,
            _ => return None,
        })
    }

    /// The role's lowercase name ("server", "client", "dealer"), as parsed by
    /// `FromStr` and used in messages and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Dealer => "dealer",
        }
    }
}

impl Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Role> {
        match s {
            "server" => Ok(Role::Server),
            "client" => Ok(Role::Client),
            "dealer" => Ok(Role::Dealer),
            _ => Err(CoreError::Config(format!("unknown role {s:?} (expected server, client or dealer)"))),
        }
    }
}
