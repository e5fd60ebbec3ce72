//! Who is asking, and what they may do: the four roles of a named API token
//! ([`Role`]), the permissions a route or an action needs ([`Permission`]),
//! the caller a request was made by ([`Caller`]), and how a token is made
//! and hashed. Plain data and pure functions (no store, no HTTP): the API's
//! middleware (`api::auth`) resolves a bearer token to a [`Caller`], the
//! store keeps only [`hash_token`] of a named token, and the audit log
//! records the caller's name and role.
//!
//! The bootstrap token (the file `.cutover/api.token`, made on the daemon's
//! first start) is the caller named [`BOOTSTRAP_ADMIN`] with the admin role.
//! Local CLI commands that change a database without the daemon (`migrate
//! up/down/baseline`, `backup restore`) are recorded as `local:<OS user>`
//! ([`local_name`]) with the role [`LOCAL_ROLE`].

use sha2::{Digest, Sha256};

/// The name of the caller holding the bootstrap token file.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// The role the audit log records for a local CLI command (no token).
pub const LOCAL_ROLE: &str = "local";
/// Prefix of every named token, so secret scanners can find a leaked one.
pub const TOKEN_PREFIX: &str = "cutover_";
/// Bytes of randomness in a named token.
const TOKEN_BYTES: usize = 32;
/// Longest token name.
pub const MAX_NAME_LEN: usize = 64;

/// A named token's role. Each role can do what the one before it can,
/// except that approving is not deploying: an approver cannot deploy and a
/// deployer cannot approve (the admin can do both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything: status, history, logs, events, audit, releases.
    Viewer,
    /// Also deploys, rolls back and steers a rollout.
    Deployer,
    /// Also approves and rejects deployments waiting for a second person.
    Approver,
    /// Everything, plus tokens, locks, the daemon's life, restores and
    /// overrides.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Deployer, Role::Approver, Role::Admin];

    /// The string it is stored and sent as.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// The role named `text`, if there is one.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Deploy => matches!(self, Role::Deployer | Role::Admin),
            Permission::Approve => matches!(self, Role::Approver | Role::Admin),
            Permission::Admin => self == Role::Admin,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route or an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Reading anything (every role).
    Read,
    /// Deploy, rollback, pause, resume, promote, abort, switch.
    Deploy,
    /// Approve and reject.
    Approve,
    /// Tokens, locks, the daemon's upgrade/reload/down, restores, overrides.
    Admin,
}

impl Permission {
    /// What it is called in a refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Deploy => "deploy",
            Permission::Approve => "approve",
            Permission::Admin => "admin",
        }
    }

    /// The roles that have it, for a message.
    pub fn roles(self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|r| r.allows(self))
            .map(Role::as_str)
            .collect()
    }
}

/// Who made a request: a token's name and role. The only source of "who"
/// in the history, events and the audit log; never a value the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name ([`BOOTSTRAP_ADMIN`] for the token file).
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// The holder of the bootstrap token file.
    pub fn bootstrap_admin() -> Caller {
        Caller {
            name: BOOTSTRAP_ADMIN.to_owned(),
            role: Role::Admin,
        }
    }

    /// Whether the caller has `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }

    /// `Ok` when the caller has `permission`, else why not (the API answers
    /// 403 `forbidden` with it): for a check inside a handler, e.g.
    /// `caller.require(Permission::Admin, "skip the promotion check")?`.
    pub fn require(&self, permission: Permission, what: &str) -> Result<(), Denied> {
        if self.may(permission) {
            return Ok(());
        }
        Err(Denied {
            name: self.name.clone(),
            role: self.role,
            permission,
            what: what.to_owned(),
        })
    }
}

impl Caller {
    /// An audit entry saying this caller did `action` (add the environment,
    /// deployment, target and details with its setters).
    pub fn audit(&self, action: &str) -> crate::store::AuditEntry {
        crate::store::AuditEntry::new(&self.name, self.role.as_str(), action)
    }
}

/// A caller lacks a permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "token {name:?} (role {role}) may not {what}: that needs the {permission} permission, which {roles}; ask \
     an admin for such a token (`cutover token create NAME --role ROLE`)",
    permission = permission.as_str(),
    roles = match permission.roles().as_slice() {
        [one] => format!("only the {one} role has"),
        many => format!("the {} roles have", many.join(" and ")),
    }
)]
pub struct Denied {
    /// The caller's name.
    pub name: String,
    /// The caller's role.
    pub role: Role,
    /// What was needed.
    pub permission: Permission,
    /// What was asked, e.g. `POST /v1/deployments`.
    pub what: String,
}

/// A new named token: [`TOKEN_PREFIX`] and 32 random bytes as hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut raw)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&raw)))
}

/// The SHA-256 of `token`, as lower-case hex: what the store keeps of a
/// named token. (A token is 32 random bytes: no salt or slow hash needed.)
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a token name is refused, if it is: 1 to 64 letters, digits, `.`, `_`
/// or `-`, not starting with `-` or `.`, and not [`BOOTSTRAP_ADMIN`].
pub fn check_name(name: &str) -> Result<(), String> {
    let good_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !good_chars || name.starts_with(['-', '.']) {
        return Err(format!(
            "token name {:?} is not valid: use 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', \
             not starting with '-' or '.'",
            crate::label::printable(name)
        ));
    }
    if name == BOOTSTRAP_ADMIN {
        return Err(format!(
            "the name {BOOTSTRAP_ADMIN:?} belongs to the token file .cutover/api.token; choose another name"
        ));
    }
    Ok(())
}

/// The audit log's "who" for a local CLI command: `local:<OS user>`.
pub fn local_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("local:{}", crate::label::clean_text(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_exactly_its_permissions() {
        let table: Vec<(Role, [bool; 4])> = Role::ALL
            .into_iter()
            .map(|r| {
                (
                    r,
                    [
                        r.allows(Permission::Read),
                        r.allows(Permission::Deploy),
                        r.allows(Permission::Approve),
                        r.allows(Permission::Admin),
                    ],
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                (Role::Viewer, [true, false, false, false]),
                (Role::Deployer, [true, true, false, false]),
                (Role::Approver, [true, false, true, false]),
                (Role::Admin, [true, true, true, true]),
            ]
        );
    }

    #[test]
    fn roles_read_back_from_their_strings() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(
                serde_json::to_value(role).expect("json"),
                serde_json::json!(role.as_str())
            );
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_denial_says_who_what_and_which_roles_may() {
        let viewer = Caller {
            name: "grafana".into(),
            role: Role::Viewer,
        };
        assert!(viewer.require(Permission::Read, "GET /v1/status").is_ok());
        let denied = viewer
            .require(Permission::Deploy, "POST /v1/deployments")
            .expect_err("a viewer cannot deploy")
            .to_string();
        assert!(denied.contains("\"grafana\" (role viewer)"), "{denied}");
        assert!(denied.contains("POST /v1/deployments"), "{denied}");
        assert!(denied.contains("deployer and admin roles"), "{denied}");
        assert!(Caller::bootstrap_admin().may(Permission::Admin));
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed_to_hex() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_names_are_checked() {
        for good in ["ci", "grafana-scraper", "alice.smith", "a_1"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "-x", ".x", "a b", "a:b", "admin", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
