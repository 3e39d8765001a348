//! Who a connection is, sans IO: `AUTH` as Redis does it, and the admin role that alone may run
//! `CLUSTER.LINKS`.
//!
//! Two passwords, both optional ([`Passwords`]): the client password (Redis' `requirepass`, the
//! `default` user) and the admin password (the `admin` user). The shell hands every command to
//! [`Auth::gate`] before the [`Session`](super::Session) sees it.
//!
//! # Invariants
//! - With a client password configured, nothing but `AUTH`, `HELLO` and `QUIT` runs before the
//!   connection authenticated: every other command (`PING` too, as in Redis) is answered
//!   `-NOAUTH Authentication required.` and has no effect.
//! - `CLUSTER.LINKS` runs only on a connection authenticated as `admin`; with no admin password
//!   configured it is disabled for everyone. A fault-injection switch that can split the cluster
//!   is off unless the operator chose a secret for it.
//! - Passwords are compared in constant time ([`Secret::matches`]), never logged or printed
//!   (`Debug` shows no bytes).
//! - A connection gets at most [`AUTH_FAILURES_MAX`] wrong passwords; the last one closes it, so
//!   guessing costs a connection per few attempts, which the connection limit and the
//!   first-command deadline of the shell bound in turn.

use super::encode::Resp;

/// Failed `AUTH`s a connection may make; the last of them closes it.
pub const AUTH_FAILURES_MAX: u32 = 5;

/// Redis' reply to a wrong user name or password.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// Redis' reply to a command before `AUTH`.
const NOAUTH: &str = "NOAUTH Authentication required.";

/// A password: never empty, compared in constant time, never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret `bytes`, or `None` if they are empty (an empty password protects nothing).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Secret> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(Secret(bytes))
    }

    /// Whether `given` is this secret. The time taken depends on the lengths only, not on where
    /// the first differing byte is, so a client cannot find the password byte by byte.
    pub fn matches(&self, given: &[u8]) -> bool {
        let len = self.0.len().max(given.len());
        let mut diff = u8::from(self.0.len() != given.len());
        for i in 0..len {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = given.get(i).copied().unwrap_or(0);
            diff |= std::hint::black_box(a ^ b);
        }
        diff == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

/// The node's passwords.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passwords {
    /// The `default` user's password (`requirepass`); without it connections start
    /// authenticated as `default`.
    pub client: Option<Secret>,
    /// The `admin` user's password; without it `CLUSTER.LINKS` is disabled.
    pub admin: Option<Secret>,
}

/// Who a connection is authenticated as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The `default` user: every data command.
    Client,
    /// The `admin` user: every data command and `CLUSTER.LINKS`.
    Admin,
}

/// What the shell does with a command after the gate.
#[derive(Debug, PartialEq)]
pub enum Gate {
    /// Run it (the session, or the shell's own `CLUSTER.LINKS`).
    Pass,
    /// Answer this instead; the command has no effect.
    Reply(Resp),
    /// Answer this and close the connection (too many failed `AUTH`s).
    Close(Resp),
}

/// What a refused command was refused for, for the shell's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An `AUTH` that succeeded.
    Authenticated,
    /// An `AUTH` with a wrong user or password.
    Failed,
    /// A command refused for want of authentication or of the admin role.
    Refused,
}

/// One connection's authentication state.
#[derive(Debug)]
pub struct Auth {
    role: Option<Role>,
    failures: u32,
}

impl Auth {
    /// A new connection's state: authenticated as `default` if there is no client password.
    pub fn new(passwords: &Passwords) -> Auth {
        Auth {
            role: passwords.client.is_none().then_some(Role::Client),
            failures: 0,
        }
    }

    /// Whether the connection may run data commands.
    pub fn is_authenticated(&self) -> bool {
        self.role.is_some()
    }

    /// Decides what becomes of `cmd`; the [`Outcome`] says what to count, if anything.
    pub fn gate(&mut self, passwords: &Passwords, cmd: &[Vec<u8>]) -> (Gate, Option<Outcome>) {
        let Some(name) = cmd.first() else {
            return (Gate::Pass, None);
        };
        if name.eq_ignore_ascii_case(b"AUTH") {
            return self.auth(passwords, &cmd[1..]);
        }
        if name.eq_ignore_ascii_case(b"CLUSTER.LINKS") {
            let refusal = if passwords.admin.is_none() {
                Resp::err("CLUSTER.LINKS is disabled: the node has no admin password configured")
            } else if self.role.is_none() {
                Resp::Error(NOAUTH.into())
            } else if self.role != Some(Role::Admin) {
                Resp::Error(
                    "NOPERM this connection is not authenticated as admin (AUTH admin <password>)"
                        .into(),
                )
            } else {
                return (Gate::Pass, None);
            };
            return (Gate::Reply(refusal), Some(Outcome::Refused));
        }
        let before_auth_ok =
            name.eq_ignore_ascii_case(b"HELLO") || name.eq_ignore_ascii_case(b"QUIT");
        if self.role.is_none() && !before_auth_ok {
            return (
                Gate::Reply(Resp::Error(NOAUTH.into())),
                Some(Outcome::Refused),
            );
        }
        (Gate::Pass, None)
    }

    /// `AUTH <password>` (the `default` user) or `AUTH <user> <password>`.
    fn auth(&mut self, passwords: &Passwords, args: &[Vec<u8>]) -> (Gate, Option<Outcome>) {
        let (user, given): (&[u8], &[u8]) = match args {
            [p] => {
                if passwords.client.is_none() {
                    // Redis' answer: a client that sends a password the node does not ask for
                    // is probably misconfigured, and should hear it rather than succeed.
                    return (
                        Gate::Reply(Resp::err(
                            "AUTH <password> called without any password configured for the \
                             default user. Are you sure your configuration is correct?",
                        )),
                        None,
                    );
                }
                (b"default", p)
            }
            [u, p] => (u, p),
            _ => {
                return (
                    Gate::Reply(Resp::err("wrong number of arguments for 'auth' command")),
                    None,
                );
            }
        };
        let role = if user == b"default" {
            // With no client password the default user takes any password, as in Redis.
            passwords
                .client
                .as_ref()
                .is_none_or(|s| s.matches(given))
                .then_some(Role::Client)
        } else if user == b"admin" {
            passwords
                .admin
                .as_ref()
                .is_some_and(|s| s.matches(given))
                .then_some(Role::Admin)
        } else {
            None
        };
        match role {
            Some(r) => {
                self.role = Some(r);
                (
                    Gate::Reply(Resp::Simple("OK")),
                    Some(Outcome::Authenticated),
                )
            }
            None => {
                self.failures += 1;
                if self.failures >= AUTH_FAILURES_MAX {
                    (
                        Gate::Close(Resp::Error(format!(
                            "{WRONGPASS} Too many failed attempts ({AUTH_FAILURES_MAX}); closing \
                             the connection."
                        ))),
                        Some(Outcome::Failed),
                    )
                } else {
                    (
                        Gate::Reply(Resp::Error(WRONGPASS.into())),
                        Some(Outcome::Failed),
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn passwords(client: Option<&str>, admin: Option<&str>) -> Passwords {
        Passwords {
            client: client.and_then(Secret::new),
            admin: admin.and_then(Secret::new),
        }
    }

    fn reply(g: (Gate, Option<Outcome>)) -> String {
        match g.0 {
            Gate::Reply(Resp::Error(e)) | Gate::Close(Resp::Error(e)) => e,
            Gate::Reply(Resp::Simple(s)) => s.to_string(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn secrets_match_only_themselves() {
        let s = Secret::new("hunter2").unwrap();
        assert!(s.matches(b"hunter2"));
        for wrong in ["", "hunter", "hunter22", "Hunter2", "hunter3"] {
            assert!(!s.matches(wrong.as_bytes()), "{wrong}");
        }
        assert!(Secret::new("").is_none());
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }

    #[test]
    fn before_auth_only_auth_hello_and_quit_run() {
        let pw = passwords(Some("pw"), None);
        let mut a = Auth::new(&pw);
        assert!(!a.is_authenticated());
        for cmd in [
            &["GET", "k"][..],
            &["PING"],
            &["set", "k", "v"],
            &["WITH", "LOCAL_ONE", "GET", "k"],
        ] {
            assert_eq!(
                a.gate(&pw, &args(cmd)),
                (
                    Gate::Reply(Resp::Error(NOAUTH.into())),
                    Some(Outcome::Refused)
                ),
                "{cmd:?}"
            );
        }
        assert_eq!(a.gate(&pw, &args(&["HELLO", "3"])), (Gate::Pass, None));
        assert_eq!(a.gate(&pw, &args(&["quit"])), (Gate::Pass, None));
        assert_eq!(reply(a.gate(&pw, &args(&["AUTH", "nope"]))), WRONGPASS);
        assert_eq!(reply(a.gate(&pw, &args(&["auth", "pw"]))), "OK");
        assert!(a.is_authenticated());
        assert_eq!(a.gate(&pw, &args(&["GET", "k"])), (Gate::Pass, None));
    }

    #[test]
    fn without_a_client_password_data_commands_run_and_auth_says_so() {
        let pw = passwords(None, None);
        let mut a = Auth::new(&pw);
        assert_eq!(a.gate(&pw, &args(&["GET", "k"])), (Gate::Pass, None));
        assert!(reply(a.gate(&pw, &args(&["AUTH", "x"]))).contains("without any password"));
        assert_eq!(reply(a.gate(&pw, &args(&["AUTH", "default", "x"]))), "OK");
    }

    #[test]
    fn cluster_links_needs_the_admin_and_is_disabled_without_an_admin_password() {
        let none = passwords(None, None);
        let mut a = Auth::new(&none);
        assert!(reply(a.gate(&none, &args(&["CLUSTER.LINKS", "CUT", "1"]))).contains("disabled"));
        // No admin password: the admin user does not exist.
        assert_eq!(
            reply(a.gate(&none, &args(&["AUTH", "admin", ""]))),
            WRONGPASS
        );

        let pw = passwords(Some("pw"), Some("root"));
        let mut a = Auth::new(&pw);
        assert_eq!(
            reply(a.gate(&pw, &args(&["cluster.links", "HEAL"]))),
            NOAUTH
        );
        assert_eq!(reply(a.gate(&pw, &args(&["AUTH", "pw"]))), "OK");
        assert!(reply(a.gate(&pw, &args(&["CLUSTER.LINKS"]))).starts_with("NOPERM"));
        // The client password is not the admin's.
        assert_eq!(
            reply(a.gate(&pw, &args(&["AUTH", "admin", "pw"]))),
            WRONGPASS
        );
        assert_eq!(reply(a.gate(&pw, &args(&["AUTH", "admin", "root"]))), "OK");
        assert_eq!(a.gate(&pw, &args(&["CLUSTER.LINKS"])), (Gate::Pass, None));
        assert_eq!(a.gate(&pw, &args(&["GET", "k"])), (Gate::Pass, None));
    }

    #[test]
    fn the_last_allowed_failure_closes_the_connection() {
        let pw = passwords(Some("pw"), Some("root"));
        let mut a = Auth::new(&pw);
        for _ in 1..AUTH_FAILURES_MAX {
            let (g, o) = a.gate(&pw, &args(&["AUTH", "admin", "guess"]));
            assert!(matches!(g, Gate::Reply(_)));
            assert_eq!(o, Some(Outcome::Failed));
        }
        let (g, o) = a.gate(&pw, &args(&["AUTH", "guess"]));
        assert!(matches!(g, Gate::Close(Resp::Error(e)) if e.starts_with("WRONGPASS")));
        assert_eq!(o, Some(Outcome::Failed));
        assert_eq!(
            reply(a.gate(&pw, &args(&["AUTH"]))),
            "ERR wrong number of arguments for 'auth' command"
        );
    }
}
