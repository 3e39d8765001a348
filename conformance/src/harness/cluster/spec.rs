//! The cluster spec file (`converge certify --cluster FILE.toml`): how to start each node of a
//! deployed system, which of its ports the harness proxies, and how the harness speaks to it as
//! a client. docs/certify.md documents the format; this module parses it, validates it, and
//! expands its command templates.
//!
//! Invariants: a spec that parses is usable — at least one node, every named port unique, every
//! proxied port and the client port among the named ports, a command for every node, an adapter
//! exactly when the protocol is `adapter`; expanding a template never fails at run time for a
//! spec that validated (an unknown variable is refused when the file is loaded, with its place).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the harness speaks to a node as a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The harness's built-in RESP client.
    Resp,
    /// A program per node that reads the harness's client messages as JSON lines and answers
    /// them (docs/certify.md, "Adapters").
    Adapter,
}

/// Which RESP commands a `resp` subject understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// converge's node: Redis's commands plus `TOKEN`, `WITH LEVEL`, `MVGET`/`MVSET`, `CAS.*`.
    Converge,
    /// Plain Redis: no session tokens, no levels, no multi-value registers, no consensus.
    Redis,
}

/// The `[client]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// `resp` or `adapter`.
    pub protocol: Protocol,
    /// For `resp`: the command set [default: converge].
    #[serde(default)]
    pub dialect: Option<Dialect>,
    /// The named port the client or adapter talks to [default: `client`].
    #[serde(default)]
    pub port: Option<String>,
    /// For `resp`: send every write to this node's client port (a primary that replicates to
    /// the others), reads to the node the workload chose.
    #[serde(default)]
    pub writes_to: Option<usize>,
    /// For `adapter`: the adapter's command template, run once per node.
    #[serde(default)]
    pub adapter: Option<Vec<String>>,
}

/// The `[node]` table, and the entries of `[[nodes]]` (which may override `command`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Named ports the harness allocates per node.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Ports other nodes reach through the harness's per-link proxies.
    #[serde(default)]
    pub proxied: Vec<String>,
    /// The command template.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Spliced once per other node where `{peers...}` stands.
    #[serde(default)]
    pub peer_args: Vec<String>,
    /// The command template of the other build, for the rolling-upgrade nemesis (`[node]`
    /// only; `--upgrade-bin` is the other way to name it).
    #[serde(default)]
    pub upgrade_command: Option<Vec<String>>,
}

/// A whole spec file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// How many nodes the subject runs.
    pub nodes: usize,
    /// How long a started node may take to answer on its client port, ms [default: 20000].
    #[serde(default)]
    pub ready_timeout_ms: Option<u64>,
    /// The client side.
    pub client: ClientSpec,
    /// What every node runs.
    pub node: NodeSpec,
    /// Per-node overrides, by index (only `command` may be set).
    #[serde(default, rename = "nodes_override")]
    pub overrides: Vec<NodeSpec>,
    /// Where the file was (for `{spec_dir}`); not in the file.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A spec file that cannot be used, with what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// It parses but makes no sense.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Longest wait for a node to be ready when the spec names none.
pub const READY_TIMEOUT_MS_DEFAULT: u64 = 20_000;
/// Most nodes a spec may run: each directed link and proxied port gets a listening socket.
pub const NODES_MAX: usize = 16;

impl ClusterSpec {
    /// Reads and validates the spec at `path`.
    pub fn load(path: &Path) -> Result<ClusterSpec, SpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        ClusterSpec::parse(&text, dir).map_err(|e| match e {
            SpecError::Parse { message, .. } => SpecError::Parse {
                path: shown.clone(),
                message,
            },
            SpecError::Invalid { message, .. } => SpecError::Invalid {
                path: shown.clone(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates spec text; `dir` is what `{spec_dir}` expands to.
    pub fn parse(text: &str, dir: PathBuf) -> Result<ClusterSpec, SpecError> {
        let mut spec: ClusterSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        spec.dir = dir;
        spec.validate().map_err(|message| SpecError::Invalid {
            path: String::new(),
            message,
        })?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(format!(
                "nodes = {}: a cluster runs 1 to {NODES_MAX} nodes",
                self.nodes
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.node.ports {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "port name {p:?}: use letters, digits and underscores"
                ));
            }
            if !seen.insert(p) {
                return Err(format!("port {p:?} is named twice in [node] ports"));
            }
        }
        for p in &self.node.proxied {
            if !seen.contains(p) {
                return Err(format!(
                    "[node] proxied names {p:?}, which is not in [node] ports"
                ));
            }
        }
        let client_port = self.client_port();
        if !seen.contains(&client_port.to_string()) {
            return Err(format!(
                "the client port {client_port:?} is not in [node] ports"
            ));
        }
        if self.overrides.len() > self.nodes {
            return Err(format!(
                "{} [[nodes_override]] entries for {} nodes",
                self.overrides.len(),
                self.nodes
            ));
        }
        for (i, o) in self.overrides.iter().enumerate() {
            if !o.ports.is_empty()
                || !o.proxied.is_empty()
                || !o.peer_args.is_empty()
                || o.upgrade_command.is_some()
            {
                return Err(format!(
                    "[[nodes_override]] entry {i}: only `command` may be overridden per node"
                ));
            }
        }
        match (self.client.protocol, &self.client.adapter) {
            (Protocol::Adapter, None) => {
                return Err("[client] protocol = \"adapter\" needs `adapter`, its command".into());
            }
            (Protocol::Resp, Some(_)) => {
                return Err("[client] `adapter` is only for protocol = \"adapter\"".into());
            }
            _ => {}
        }
        if self.client.protocol == Protocol::Adapter
            && (self.client.dialect.is_some() || self.client.writes_to.is_some())
        {
            return Err("[client] `dialect` and `writes_to` are for protocol = \"resp\"".into());
        }
        if let Some(w) = self.client.writes_to
            && w >= self.nodes
        {
            return Err(format!(
                "[client] writes_to = {w}, but nodes are 0 to {}",
                self.nodes - 1
            ));
        }
        // Every template expands for every node, so a typo is found now, not mid-run.
        let ports = Ports::placeholder(self.nodes, &self.node.ports);
        for id in 0..self.nodes {
            let vars = self.vars(
                id,
                &ports,
                Path::new("/data"),
                Path::new("/logs"),
                "converge",
            );
            let command = self.command(id).ok_or_else(|| {
                format!("node {id} has no command: set [node] command or its [[nodes_override]]")
            })?;
            if command.is_empty() {
                return Err(format!("node {id}'s command is empty"));
            }
            self.expand_command(command, &vars, &ports)
                .map_err(|e| format!("node {id}'s command: {e}"))?;
            if let Some(upgrade) = &self.node.upgrade_command {
                if upgrade.is_empty() {
                    return Err("[node] upgrade_command is empty".into());
                }
                self.expand_command(upgrade, &vars, &ports)
                    .map_err(|e| format!("node {id}'s upgrade_command: {e}"))?;
            }
            if let Some(adapter) = &self.client.adapter {
                if adapter.is_empty() {
                    return Err("[client] adapter is empty".into());
                }
                self.expand_command(adapter, &vars, &ports)
                    .map_err(|e| format!("[client] adapter: {e}"))?;
            }
        }
        Ok(())
    }

    /// The client port's name.
    pub fn client_port(&self) -> &str {
        self.client.port.as_deref().unwrap_or("client")
    }

    /// The RESP dialect (converge's by default).
    pub fn dialect(&self) -> Dialect {
        self.client.dialect.unwrap_or(Dialect::Converge)
    }

    /// How long a node may take to be ready.
    pub fn ready_timeout_ms(&self) -> u64 {
        self.ready_timeout_ms.unwrap_or(READY_TIMEOUT_MS_DEFAULT)
    }

    /// Node `id`'s command template.
    pub fn command(&self, id: usize) -> Option<&Vec<String>> {
        self.overrides
            .get(id)
            .and_then(|o| o.command.as_ref())
            .or(self.node.command.as_ref())
    }

    /// The variables node `id`'s templates see.
    pub fn vars(
        &self,
        id: usize,
        ports: &Ports,
        data: &Path,
        log_dir: &Path,
        converge: &str,
    ) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("id".into(), id.to_string());
        v.insert("name".into(), format!("n{id}"));
        v.insert("nodes".into(), self.nodes.to_string());
        v.insert("data".into(), data.display().to_string());
        v.insert("log_dir".into(), log_dir.display().to_string());
        v.insert("spec_dir".into(), self.dir.display().to_string());
        v.insert("converge".into(), converge.to_string());
        for name in &self.node.ports {
            let own = ports.port(id, name);
            v.insert(format!("port.{name}"), own.to_string());
            v.insert(format!("addr.{name}"), format!("127.0.0.1:{own}"));
            for k in 0..self.nodes {
                let via = self.via(ports, id, k, name);
                v.insert(format!("to.{k}.port.{name}"), via.to_string());
                v.insert(format!("to.{k}.addr.{name}"), format!("127.0.0.1:{via}"));
            }
        }
        v
    }

    /// The port node `from` uses to reach node `to`'s port `name`: the link's proxy when the
    /// port is proxied (and the nodes differ), else the port itself.
    pub fn via(&self, ports: &Ports, from: usize, to: usize, name: &str) -> u16 {
        if from != to && self.node.proxied.iter().any(|p| p == name) {
            ports.proxy(from, to, name)
        } else {
            ports.port(to, name)
        }
    }

    /// Expands a command template for one node: every `{var}` replaced, and a `{peers...}`
    /// argument replaced by `peer_args` once per other node.
    pub fn expand_command(
        &self,
        template: &[String],
        vars: &BTreeMap<String, String>,
        ports: &Ports,
    ) -> Result<Vec<String>, String> {
        let me: usize = vars.get("id").and_then(|s| s.parse().ok()).ok_or("no id")?;
        let mut out = Vec::new();
        for arg in template {
            if arg == "{peers...}" {
                for peer in (0..self.nodes).filter(|&p| p != me) {
                    let mut pv = vars.clone();
                    pv.insert("peer.id".into(), peer.to_string());
                    pv.insert("peer.name".into(), format!("n{peer}"));
                    for name in &self.node.ports {
                        let via = self.via(ports, me, peer, name);
                        pv.insert(
                            format!("peer.port.{name}"),
                            ports.port(peer, name).to_string(),
                        );
                        pv.insert(format!("peer.via_port.{name}"), via.to_string());
                        pv.insert(format!("peer.via.{name}"), format!("127.0.0.1:{via}"));
                    }
                    for p in &self.node.peer_args {
                        out.push(expand(p, &pv)?);
                    }
                }
            } else {
                out.push(expand(arg, vars)?);
            }
        }
        Ok(out)
    }
}

/// Replaces every `{name}` in `template` by its value; `{{` and `}}` are literal braces.
pub fn expand(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{') {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
            let name = &t[..end];
            let value = vars.get(name).ok_or_else(|| {
                format!("unknown variable {{{name}}} in {template:?} (docs/certify.md lists them)")
            })?;
            out.push_str(value);
            rest = &t[end + 1..];
        } else {
            return Err(format!("a lone '}}' in {template:?} (write '}}}}')"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The ports of a run: each node's named ports, and each directed link's proxy per proxied
/// port.
#[derive(Clone, Debug, Default)]
pub struct Ports {
    own: BTreeMap<(usize, String), u16>,
    proxies: BTreeMap<(usize, usize, String), u16>,
}

impl Ports {
    /// Distinct made-up ports, to check templates expand.
    fn placeholder(nodes: usize, names: &[String]) -> Ports {
        let mut p = Ports::default();
        let mut next = 20_000u16;
        for n in 0..nodes {
            for name in names {
                p.own.insert((n, name.clone()), next);
                next += 1;
                for m in 0..nodes {
                    p.proxies.insert((n, m, name.clone()), next);
                    next += 1;
                }
            }
        }
        p
    }

    /// Every port, as JSON: `{"nodes": {"n0": {"client": 20001, ...}}, "proxies": {"n0->n1":
    /// {"peer": 40123}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut nodes = serde_json::Map::new();
        for ((n, name), port) in &self.own {
            let entry = nodes
                .entry(format!("n{n}"))
                .or_insert_with(|| serde_json::json!({}));
            entry[name] = serde_json::json!(port);
        }
        let mut proxies = serde_json::Map::new();
        for ((a, b, name), port) in &self.proxies {
            let entry = proxies
                .entry(format!("n{a}->n{b}"))
                .or_insert_with(|| serde_json::json!({}));
            entry[name] = serde_json::json!(port);
        }
        serde_json::json!({ "nodes": nodes, "proxies": proxies })
    }

    /// Records node `node`'s port `name`.
    pub fn set_port(&mut self, node: usize, name: &str, port: u16) {
        self.own.insert((node, name.to_string()), port);
    }

    /// Records the proxy port of link `from → to` for port `name`.
    pub fn set_proxy(&mut self, from: usize, to: usize, name: &str, port: u16) {
        self.proxies.insert((from, to, name.to_string()), port);
    }

    /// Node `node`'s port `name` (0 if unknown, which validation rules out).
    pub fn port(&self, node: usize, name: &str) -> u16 {
        self.own
            .get(&(node, name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The proxy port of link `from → to` for port `name`.
    pub fn proxy(&self, from: usize, to: usize, name: &str) -> u16 {
        self.proxies
            .get(&(from, to, name.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = r#"
nodes = 3
[client]
protocol = "resp"
[node]
ports = ["client", "peer"]
proxied = ["peer"]
command = ["{converge}", "node", "--id", "{id}", "--listen", "{addr.client}", "{peers...}"]
peer_args = ["--peer", "{peer.id}=r{peer.id}@{peer.via.peer}"]
"#;

    #[test]
    fn templates_expand_with_each_link_through_its_proxy() {
        let spec = ClusterSpec::parse(REFERENCE, PathBuf::from("/specs")).unwrap();
        let mut ports = Ports::default();
        for n in 0..3 {
            ports.set_port(n, "client", 7000 + n as u16);
            ports.set_port(n, "peer", 7100 + n as u16);
            for m in 0..3 {
                ports.set_proxy(n, m, "peer", 7200 + (10 * n + m) as u16);
            }
        }
        let vars = spec.vars(1, &ports, Path::new("/d"), Path::new("/l"), "/bin/converge");
        let cmd = spec
            .expand_command(spec.command(1).unwrap(), &vars, &ports)
            .unwrap();
        assert_eq!(
            cmd,
            [
                "/bin/converge",
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--peer",
                "0=r0@127.0.0.1:7210",
                "--peer",
                "2=r2@127.0.0.1:7212",
            ]
        );
    }

    #[test]
    fn mistakes_are_refused_when_the_file_is_loaded() {
        let bad = |text: &str| {
            ClusterSpec::parse(text, PathBuf::new())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(&REFERENCE.replace("{addr.client}", "{addr.cleint}")).contains("{addr.cleint}")
        );
        assert!(bad(&REFERENCE.replace("nodes = 3", "nodes = 0")).contains("1 to 16"));
        assert!(
            bad(&REFERENCE.replace("proxied = [\"peer\"]", "proxied = [\"gossip\"]"))
                .contains("gossip")
        );
        assert!(
            bad(&REFERENCE.replace("protocol = \"resp\"", "protocol = \"grpc\"")).contains("grpc")
        );
        assert!(bad(&format!("{REFERENCE}\nextra = 1")).contains("extra"));
        assert!(
            bad(&REFERENCE.replace("[client]", "[client]\nwrites_to = 3")).contains("writes_to")
        );
    }

    #[test]
    fn braces_escape_and_lone_braces_are_errors() {
        let mut vars = BTreeMap::new();
        vars.insert("id".to_string(), "2".to_string());
        assert_eq!(expand("{{x}} {id}", &vars).unwrap(), "{x} 2");
        assert!(expand("{id", &vars).is_err());
        assert!(expand("a}b", &vars).is_err());
    }
}
