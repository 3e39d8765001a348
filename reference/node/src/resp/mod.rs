//! The RESP2 face, sans IO: a bounded incremental decoder, an encoder, and the per-connection
//! [`Session`] that maps Redis commands onto [`Request`]s and [`Reply`]s back onto RESP.
//!
//! Nothing here reads a socket or a clock: the TCP shell (`server`) feeds bytes in and writes the
//! bytes that come out, so every rule below is unit-tested without a network.
//!
//! - `decode`: bytes to [`Command`]s, within [`Limits`] (restartable, never
//!   panics, refuses an oversized length from its header alone).
//! - `encode`: [`Resp`] values to bytes.
//! - `session`: the connection's state ([`Session`]: level, token, MV read contexts) and the
//!   [`Step`]s it hands the shell.
//! - `command`: the command table, commands to steps, and which commands are barriers.
//! - `reply`: the replica's replies to RESP, the multi-step commands' next steps, and the
//!   replica's errors as RESP errors.
//! - `auth`: `AUTH` and the admin role ([`Auth`]), which the shell asks before the session
//!   sees a command.
//!
//! # Invariants
//! See each module; together they give the shell these rules:
//! - Decoding is bounded and restartable, and an error is final for the connection (RESP cannot
//!   be resynchronised): the shell replies `-ERR Protocol error: ...` and closes it.
//! - Replies come back in request order, and a barrier command runs only once every earlier
//!   reply is in hand.
//! - Every request carries the connection's session token and every reply's token is merged
//!   into it, so a connection never reads older than what it wrote or read before.
//!
//! # Module layout
//! `decode` and `encode` import nothing from their siblings; `auth` imports only `encode`;
//! `session` imports only `encode`; `command` and `reply` import `session` and `encode`,
//! never each other. So the modules have no import cycle.
//!
//! [`Request`]: converge_core::replica::Request
//! [`Reply`]: converge_core::replica::Reply

mod auth;
mod command;
mod decode;
mod encode;
mod reply;
mod session;

pub use auth::{AUTH_FAILURES_MAX, Auth, Gate, Outcome, Passwords, Role, Secret};
pub use command::is_barrier;
pub use decode::{Command, DecodeError, Limits, decode};
pub use encode::Resp;
pub use reply::client_error;
pub use session::{Pending, Session, Step};
