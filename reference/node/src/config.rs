//! The TCP node's configuration: a TOML file (`--config node.toml`) and flags, flags winning.
//!
//! ```toml
//! id = 0                                # this replica's id, unique in the cluster
//! region = "us-east"
//! client_listen = "127.0.0.1:6380"      # RESP
//! peer_listen = "127.0.0.1:7380"        # replication frames
//! metrics_listen = "127.0.0.1:9380"     # GET /metrics (optional)
//! data_dir = "/var/lib/converge/us-east" # optional: in memory without it
//! consistency = "LOCAL_ONE"             # default level of connections
//!
//! [[peers]]
//! id = 1
//! region = "eu-west"
//! addr = "127.0.0.1:7381"
//!
//! [limits]                              # every field optional
//! connections_max = 1024
//!
//! [auth]                                # optional; see `crate::resp::Auth`
//! password_file = "/etc/converge/client.password"  # or `password = "..."` inline
//! admin_password_file = "/etc/converge/admin.password"  # enables CLUSTER.LINKS
//!
//! [tls]                                 # mutual TLS on peer links (see `crate::tls`)
//! ca = "ca.pem"                         # the cluster CA, the only one peers are trusted by
//! cert = "node.pem"                     # names this member: r<id>.<region>.member.converge
//! key = "node.key"
//! client_cert = "client-port.pem"       # optional: the client port speaks only TLS
//! client_key = "client-port.key"
//!
//! [[residency]]                         # keys starting with "eu:" stay in eu-west
//! prefix = "eu:"
//! regions = ["eu-west"]
//! ```
//!
//! A password comes, first found wins, from `--password-file`/`--admin-password-file`, the
//! `CONVERGE_PASSWORD`/`CONVERGE_ADMIN_PASSWORD` environment variables (which the CLI reads into
//! [`Flags`]), `[auth]`'s `*_file`, then `[auth]`'s inline value, so a password need appear
//! neither in `ps` nor in a world-readable file. A password file holds the password alone; one
//! trailing line break is not part of it. An empty password is an error, not "no password".
//!
//! Peer links are mutually authenticated with TLS, or, with `insecure_peers = true`
//! (`--insecure-peers`), run in plaintext with no authentication; a node given neither refuses
//! to start, so an unauthenticated cluster is always a choice someone wrote down.
//!
//! Every node of a cluster must list the same members (itself plus its peers, with the same
//! regions): region ids are assigned by sorting region names, and the [`NodeConfig::fingerprint`]
//! of the member list is checked on every peer link, so a node with a different view is refused
//! with a log line instead of silently mis-replicating.

use crate::resp::{self, Passwords, Secret};
use converge_core::ReplicaId;
use converge_core::replica::{
    Bug, Config as ReplicaConfig, Consistency, Pin, RegionId, UnknownConsistency,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A required setting is missing from both the file and the flags.
    #[error("missing setting `{0}` (give it in --config or as a flag)")]
    Missing(&'static str),
    /// A setting has a bad value.
    #[error("bad value for `{field}`: {message}")]
    Bad {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn bad(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Bad {
        field,
        message: message.into(),
    }
}

/// Another member of the cluster and where its peer port listens.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// Its replica id.
    pub id: u64,
    /// Its region's name.
    pub region: String,
    /// Its peer listen address (`IP:port`).
    pub addr: SocketAddr,
}

impl std::str::FromStr for PeerSpec {
    type Err = String;

    /// `ID=REGION@IP:PORT`, the form of `--peer`.
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("expected ID=REGION@IP:PORT, got {s:?}");
        let (id, rest) = s.split_once('=').ok_or_else(err)?;
        let (region, addr) = rest.split_once('@').ok_or_else(err)?;
        Ok(PeerSpec {
            id: id.parse().map_err(|_| err())?,
            region: region.to_string(),
            addr: addr.parse().map_err(|_| err())?,
        })
    }
}

/// A residency pin as the file gives it (`[[residency]]`): keys starting with `prefix` may be
/// held only in `regions` (names of member regions). See `converge_core::replica::Pin`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidencySpec {
    /// The keys pinned: every key starting with these bytes (UTF-8 in the file).
    pub prefix: String,
    /// The regions that may hold them.
    pub regions: Vec<String>,
}

/// The bounds of the node; every queue and wait has one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Client connections served at once; more are accepted and closed with an error.
    pub connections_max: usize,
    /// Client requests waiting for the replica at once, over all connections.
    pub waiters_max: usize,
    /// Inputs queued for the driver (requests and peer payloads).
    pub inbox_max: usize,
    /// Most inputs the driver handles before one group commit.
    pub batch_inputs_max: usize,
    /// Frames queued per peer link.
    pub outbox_frames_max: usize,
    /// Bytes queued per peer link.
    pub outbox_bytes_max: usize,
    /// Largest peer frame accepted.
    pub frame_bytes_max: usize,
    /// Longest a client request waits for its reply before `-TIMEOUT` (the replica's own
    /// deadlines are shorter; this catches a stuck driver).
    pub request_timeout_ms: u64,
    /// Longest bulk string in a RESP command.
    pub resp_bulk_bytes_max: usize,
    /// Most arguments in a RESP command.
    pub resp_args_max: usize,
    /// Longest RESP header or inline line.
    pub resp_line_bytes_max: usize,
    /// Most bytes of one RESP command, all arguments together.
    pub resp_command_bytes_max: usize,
    /// Commands of one connection in flight at once (a pipeline deeper than this is read in
    /// chunks).
    pub pipeline_max: usize,
    /// A client connection that sends nothing for this long is closed.
    pub client_idle_timeout_ms: u64,
    /// A client connection must have authenticated (with a client password) or sent one
    /// complete command (without) this long after it was accepted, or it is closed: a
    /// connection that only holds a slot, or drips bytes, does not keep it for the idle timeout.
    pub client_first_command_timeout_ms: u64,
    /// Bytes of unparsed client input (partial commands) held over all connections at once; the
    /// connection whose read would go beyond it is closed with an error.
    pub partial_commands_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let r = resp::Limits::default();
        Limits {
            connections_max: 1_024,
            waiters_max: 16_384,
            inbox_max: 8_192,
            batch_inputs_max: 1_024,
            outbox_frames_max: 4_096,
            outbox_bytes_max: 32 << 20,
            frame_bytes_max: (16 << 20) + 64,
            request_timeout_ms: 5_000,
            resp_bulk_bytes_max: r.bulk_bytes_max,
            resp_args_max: r.array_len_max,
            resp_line_bytes_max: r.line_bytes_max,
            resp_command_bytes_max: r.command_bytes_max,
            pipeline_max: 256,
            client_idle_timeout_ms: 300_000,
            client_first_command_timeout_ms: 10_000,
            partial_commands_bytes_max: 256 << 20,
        }
    }
}

impl Limits {
    /// The RESP decoder's limits.
    pub fn resp(&self) -> resp::Limits {
        resp::Limits {
            bulk_bytes_max: self.resp_bulk_bytes_max,
            array_len_max: self.resp_args_max,
            line_bytes_max: self.resp_line_bytes_max,
            command_bytes_max: self.resp_command_bytes_max,
        }
    }
}

/// TLS material, as PEM file paths (the `[tls]` table); each one may also come from a flag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster CA's certificate: peers are trusted if their certificate chains to it.
    pub ca: Option<PathBuf>,
    /// This node's certificate (chain), naming its member.
    pub cert: Option<PathBuf>,
    /// This node's private key.
    pub key: Option<PathBuf>,
    /// The client port's certificate (chain); with `client_key`, the port speaks only TLS.
    pub client_cert: Option<PathBuf>,
    /// The client port's private key.
    pub client_key: Option<PathBuf>,
}

/// How peer links are secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerSecurity {
    /// Mutual TLS with these PEM files.
    Tls {
        /// The cluster CA's certificate.
        ca: PathBuf,
        /// This node's certificate.
        cert: PathBuf,
        /// This node's key.
        key: PathBuf,
    },
    /// Plaintext, unauthenticated (`--insecure-peers`).
    Insecure,
}

/// The client port's certificate and key, when it speaks TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// The certificate (chain).
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The file's schema: everything optional, so flags can supply any of it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    region: Option<String>,
    client_listen: Option<SocketAddr>,
    peer_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    consistency: Option<String>,
    #[serde(default)]
    peers: Vec<PeerSpec>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    residency: Vec<ResidencySpec>,
    #[serde(default)]
    insecure_peers: bool,
    #[serde(default)]
    tls: TlsFiles,
    #[serde(default)]
    auth: FileAuth,
}

/// The file's `[auth]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    password: Option<String>,
    password_file: Option<PathBuf>,
    admin_password: Option<String>,
    admin_password_file: Option<PathBuf>,
}

/// The flags of `converge node` (TCP mode); each set one overrides the file.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--id`.
    pub id: Option<u64>,
    /// `--region`.
    pub region: Option<String>,
    /// `--peer` (repeatable); when given, replaces the file's list.
    pub peers: Vec<PeerSpec>,
    /// `--listen`.
    pub client_listen: Option<SocketAddr>,
    /// `--peer-listen`.
    pub peer_listen: Option<SocketAddr>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--consistency`.
    pub consistency: Option<String>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--admin-password-file`.
    pub admin_password_file: Option<PathBuf>,
    /// `CONVERGE_PASSWORD`, read by the CLI.
    pub password: Option<String>,
    /// `CONVERGE_ADMIN_PASSWORD`, read by the CLI.
    pub admin_password: Option<String>,
    /// `--tls-ca`, `--tls-cert`, `--tls-key`, `--client-tls-cert`, `--client-tls-key`; each set
    /// one overrides the file's.
    pub tls: TlsFiles,
    /// `--insecure-peers` (only ever turns it on).
    pub insecure_peers: bool,
    /// `--bug`: a deliberately broken replica, for testing the testers (never in a file).
    pub bug: Option<Bug>,
}

/// The resolved configuration of one TCP node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This replica's id.
    pub id: u64,
    /// This replica's region.
    pub region: String,
    /// The other members.
    pub peers: Vec<PeerSpec>,
    /// RESP listen address.
    pub client_listen: SocketAddr,
    /// Peer listen address.
    pub peer_listen: SocketAddr,
    /// `/metrics` listen address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the replica's durable state lives; in memory without it.
    pub data_dir: Option<PathBuf>,
    /// Connections' initial level.
    pub consistency: Consistency,
    /// Bounds.
    pub limits: Limits,
    /// The client and admin passwords.
    pub passwords: Passwords,
    /// Mutual TLS or plaintext on peer links.
    pub peer_security: PeerSecurity,
    /// TLS on the client port, if set.
    pub client_tls: Option<ClientTls>,
    /// Residency pins (file only); part of the fingerprint, so every member must agree.
    pub residency: Vec<ResidencySpec>,
    /// A deliberately broken replica (`--bug`), to show the testers catch it; logged loudly.
    pub bug: Option<Bug>,
}

impl NodeConfig {
    /// Reads the file named by `flags.config` (if any) and applies the flags over it.
    pub fn resolve(flags: Flags) -> Result<NodeConfig, ConfigError> {
        let file = match &flags.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let consistency = flags
            .consistency
            .or(file.consistency)
            .unwrap_or_else(|| "LOCAL_ONE".into());
        let config = NodeConfig {
            id: flags.id.or(file.id).ok_or(ConfigError::Missing("id"))?,
            region: flags
                .region
                .or(file.region)
                .ok_or(ConfigError::Missing("region"))?,
            peers: if flags.peers.is_empty() {
                file.peers
            } else {
                flags.peers
            },
            client_listen: flags
                .client_listen
                .or(file.client_listen)
                .ok_or(ConfigError::Missing("client_listen"))?,
            peer_listen: flags
                .peer_listen
                .or(file.peer_listen)
                .ok_or(ConfigError::Missing("peer_listen"))?,
            metrics_listen: flags.metrics_listen.or(file.metrics_listen),
            data_dir: flags.data_dir.or(file.data_dir),
            consistency: consistency
                .parse()
                .map_err(|e: UnknownConsistency| bad("consistency", e.to_string()))?,
            limits: file.limits,
            peer_security: peer_security(
                flags.insecure_peers || file.insecure_peers,
                flags.tls.ca.or(file.tls.ca),
                flags.tls.cert.or(file.tls.cert),
                flags.tls.key.or(file.tls.key),
            )?,
            client_tls: match (
                flags.tls.client_cert.or(file.tls.client_cert),
                flags.tls.client_key.or(file.tls.client_key),
            ) {
                (Some(cert), Some(key)) => Some(ClientTls { cert, key }),
                (None, None) => None,
                _ => {
                    return Err(bad(
                        "tls",
                        "the client port's TLS needs both client_cert and client_key (--client-tls-cert, --client-tls-key)",
                    ));
                }
            },
            passwords: Passwords {
                client: password(
                    "password",
                    flags.password_file,
                    flags.password,
                    file.auth.password_file,
                    file.auth.password,
                )?,
                admin: password(
                    "admin_password",
                    flags.admin_password_file,
                    flags.admin_password,
                    file.auth.admin_password_file,
                    file.auth.admin_password,
                )?,
            },
            residency: file.residency,
            bug: flags.bug,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let mut ids = BTreeSet::from([self.id]);
        for p in &self.peers {
            if !ids.insert(p.id) {
                return Err(bad("peers", format!("replica id {} is listed twice", p.id)));
            }
            if p.region.is_empty() {
                return Err(bad("peers", format!("peer {} has an empty region", p.id)));
            }
        }
        if self.region.is_empty() {
            return Err(bad("region", "empty"));
        }
        if matches!(self.peer_security, PeerSecurity::Tls { .. }) {
            // Certificates name members by region, so every region must fit in a DNS name.
            for (id, region) in self.members() {
                crate::tls::member_name(id, region).map_err(|e| bad("region", e.to_string()))?;
            }
        }
        let l = &self.limits;
        for (field, v) in [
            ("limits.connections_max", l.connections_max),
            ("limits.waiters_max", l.waiters_max),
            ("limits.inbox_max", l.inbox_max),
            ("limits.batch_inputs_max", l.batch_inputs_max),
            ("limits.outbox_frames_max", l.outbox_frames_max),
            ("limits.outbox_bytes_max", l.outbox_bytes_max),
            ("limits.frame_bytes_max", l.frame_bytes_max),
            ("limits.resp_bulk_bytes_max", l.resp_bulk_bytes_max),
            ("limits.resp_args_max", l.resp_args_max),
            ("limits.resp_line_bytes_max", l.resp_line_bytes_max),
            ("limits.resp_command_bytes_max", l.resp_command_bytes_max),
            ("limits.pipeline_max", l.pipeline_max),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.client_idle_timeout_ms", l.client_idle_timeout_ms),
            (
                "limits.client_first_command_timeout_ms",
                l.client_first_command_timeout_ms,
            ),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        // One command must fit the budget, or a client sending one legitimately large command
        // would always be closed.
        if l.partial_commands_bytes_max < l.resp_command_bytes_max {
            return Err(bad(
                "limits.partial_commands_bytes_max",
                "must be at least limits.resp_command_bytes_max",
            ));
        }
        let regions: BTreeSet<&str> = self.members().into_iter().map(|(_, r)| r).collect();
        for pin in &self.residency {
            if let Some(r) = pin.regions.iter().find(|r| !regions.contains(r.as_str())) {
                return Err(bad(
                    "residency",
                    format!(
                        "pin {:?} names region {r:?}, which no member is in",
                        pin.prefix
                    ),
                ));
            }
        }
        // Building a replica is how the core validates a configuration (cheap: nothing runs).
        converge_core::replica::Replica::new(self.replica_config(), 0).map_err(|e| {
            use converge_core::replica::ConfigError as Core;
            let field = match e {
                Core::PinPrefix { .. } | Core::PinNoRegion { .. } | Core::PinRouteLeaves { .. } => {
                    "residency"
                }
                _ => "peers",
            };
            bad(field, e.to_string())
        })?;
        Ok(())
    }

    /// Every member `(id, region)`, sorted by id.
    pub fn members(&self) -> Vec<(u64, &str)> {
        let mut m: Vec<(u64, &str)> = std::iter::once((self.id, self.region.as_str()))
            .chain(self.peers.iter().map(|p| (p.id, p.region.as_str())))
            .collect();
        m.sort_unstable();
        m
    }

    /// The replica's configuration: members with region ids by sorted region name, the
    /// default limits, and durable tracking when there is a data directory.
    pub fn replica_config(&self) -> ReplicaConfig {
        let members = self.members();
        let regions: BTreeSet<&str> = members.iter().map(|&(_, r)| r).collect();
        let region_id = |name: &str| {
            // Every member's region is in the set by construction.
            RegionId(regions.iter().position(|r| *r == name).unwrap_or(0) as u32)
        };
        let replicas = members
            .iter()
            .map(|&(id, r)| (ReplicaId(id), region_id(r)))
            .collect();
        let mut c = ReplicaConfig::new(ReplicaId(self.id), replicas);
        c.seed = self.id;
        c.track_durable = self.data_dir.is_some();
        c.bug = self.bug;
        c.residency = self
            .residency
            .iter()
            .map(|pin| Pin {
                prefix: pin.prefix.as_bytes().to_vec(),
                regions: pin.regions.iter().map(|r| region_id(r)).collect(),
            })
            .collect();
        c
    }

    /// FNV-1a over the sorted member list and the residency pins: equal on every node of a
    /// correctly configured cluster, and checked on every peer link, so that members that
    /// disagree on where a key may live never replicate. Without pins it is the member list's
    /// alone, as it always was.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (id, region) in self.members() {
            eat(&id.to_be_bytes());
            eat(region.as_bytes());
            eat(&[0]);
        }
        // Sorted: the order pins are listed in means nothing (they never overlap).
        let mut pins: Vec<&ResidencySpec> = self.residency.iter().collect();
        pins.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        for pin in pins {
            eat(b"residency\0");
            eat(pin.prefix.as_bytes());
            eat(&[0]);
            let regions: BTreeSet<&str> = pin.regions.iter().map(String::as_str).collect();
            for r in regions {
                eat(r.as_bytes());
                eat(&[0]);
            }
        }
        h
    }
}

/// A password from the first of its sources given (see the module documentation).
fn password(
    field: &'static str,
    flag_file: Option<PathBuf>,
    env: Option<String>,
    file_file: Option<PathBuf>,
    inline: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let text = match (flag_file, env, file_file, inline) {
        (Some(path), ..) | (None, None, Some(path), _) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read { path, source })?;
            let line = text.strip_suffix('\n').unwrap_or(&text);
            line.strip_suffix('\r').unwrap_or(line).to_string()
        }
        (None, Some(text), ..) | (None, None, None, Some(text)) => text,
        (None, None, None, None) => return Ok(None),
    };
    Secret::new(text)
        .map(Some)
        .ok_or_else(|| bad(field, "empty (leave it out for no password)"))
}

/// Mutual TLS when all three files are given, plaintext when `insecure` says so alone; anything
/// else is refused with what to give.
fn peer_security(
    insecure: bool,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<PeerSecurity, ConfigError> {
    match (insecure, ca, cert, key) {
        (false, Some(ca), Some(cert), Some(key)) => Ok(PeerSecurity::Tls { ca, cert, key }),
        (true, None, None, None) => Ok(PeerSecurity::Insecure),
        (true, ..) => Err(bad(
            "insecure_peers",
            "--insecure-peers turns peer TLS off: give it or the peer TLS files (--tls-ca, --tls-cert, --tls-key), not both",
        )),
        (false, None, None, None) => Err(bad(
            "tls",
            "peer links need mutual TLS: give --tls-ca, --tls-cert and --tls-key (or ca, cert and key in the [tls] table of --config), or run them unauthenticated in plaintext with --insecure-peers (insecure_peers = true)",
        )),
        (false, ..) => Err(bad(
            "tls",
            "peer TLS needs all three of --tls-ca, --tls-cert and --tls-key (ca, cert and key in [tls])",
        )),
    }
}

fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
