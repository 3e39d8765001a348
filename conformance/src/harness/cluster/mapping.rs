//! The harness's workloads as RESP commands: what the built-in client sends for each request
//! body, and what it makes of the replies.
//!
//! One key (or key family) per workload, so workloads never share state; a request becomes a
//! list of *stages*, each stage one pipeline whose replies must all arrive before the next stage
//! is sent (a multi-value register write reads the siblings first; a session request installs
//! its token, runs, then reads the connection's new token), so nothing depends on how a subject
//! orders pipelined commands.
//!
//! Errors keep the definite/indefinite distinction the checkers rely on (docs/protocol.md,
//! Errors): a write refused for its consistency level may have applied (indefinite, code 0); a
//! consensus command refused `UNAVAILABLE` had no effect (definite, 11); an error word the
//! mapping does not know is indefinite (13, crash), never assumed harmless.
//!
//! Invariant: a reply whose shape does not fit the command (a set read that is not an array of
//! integers) is passed on as the value the subject gave, so the workload's checks judge it — the
//! mapping never repairs what a subject answered.

use super::resp::{Reply, command};
use super::spec::Dialect;
use crate::harness::body::{Body, Cas, Kind, Level};
use serde_json::Value;

/// Which workloads the RESP client maps, by name.
pub const RESP_WORKLOADS: [&str; 10] = [
    "echo",
    "g-counter",
    "pn-counter",
    "g-set",
    "or-set",
    "broadcast",
    "session",
    "lww-register",
    "mv-register",
    "lin-kv",
];

/// How one request runs: the stages, and what the replies become.
#[derive(Debug)]
pub struct Plan {
    /// Pipelines, sent one after the other on one connection.
    pub stages: Vec<Vec<Vec<Vec<u8>>>>,
    /// Whether it goes to the spec's `writes_to` node (an update) rather than the node chosen.
    pub update: bool,
    /// What to make of the last stage's replies (earlier stages must only succeed).
    decode: Decode,
}

#[derive(Debug, Clone, Copy)]
enum Decode {
    Echo,
    Ok(OkKind),
    CounterRead,
    SetRead { messages: bool },
    RegisterRead,
    MvRead,
    CasGet,
    Cas,
}

#[derive(Debug, Clone, Copy)]
enum OkKind {
    Add,
    Remove,
    Broadcast,
    Write,
}

/// Why a request has no RESP mapping: answered as Maelstrom's `not-supported` (10, definite).
#[derive(Debug)]
pub struct Unsupported(pub String);

/// The RESP mapping of one workload for one dialect.
#[derive(Clone, Debug)]
pub struct Mapping {
    workload: String,
    dialect: Dialect,
}

impl Mapping {
    /// The mapping for `workload`, or why there is none.
    pub fn new(workload: &str, dialect: Dialect) -> Result<Mapping, String> {
        if !RESP_WORKLOADS.contains(&workload) {
            return Err(format!(
                "the RESP client has no mapping for the {workload} workload (it maps {}); use an adapter",
                RESP_WORKLOADS.join(", ")
            ));
        }
        if dialect == Dialect::Redis && matches!(workload, "mv-register" | "lin-kv") {
            return Err(format!(
                "plain Redis has no {} to map the {workload} workload onto; use dialect = \"converge\" or an adapter",
                if workload == "lin-kv" {
                    "linearizable register"
                } else {
                    "multi-value register"
                }
            ));
        }
        Ok(Mapping {
            workload: workload.to_string(),
            dialect,
        })
    }

    fn key(&self, key: Option<&Value>) -> String {
        match key {
            Some(Value::String(s)) => format!("converge:{}:{s}", self.workload),
            Some(k) => format!("converge:{}:{k}", self.workload),
            None => format!("converge:{}", self.workload),
        }
    }

    /// The stages of `body`.
    pub fn plan(&self, body: &Body) -> Result<Plan, Unsupported> {
        let plain = |stage: Vec<Vec<u8>>, update: bool, decode: Decode| Plan {
            stages: vec![vec![stage]],
            update,
            decode,
        };
        let mut plan = match &body.kind {
            Kind::Echo { echo } => plain(
                command(["ECHO".into(), json_text(echo)]),
                false,
                Decode::Echo,
            ),
            Kind::Add { delta } => plain(
                command(["INCRBY".to_string(), self.key(None), delta.to_string()]),
                true,
                Decode::Ok(OkKind::Add),
            ),
            Kind::AddElement { element } => plain(
                command(["SADD".to_string(), self.key(None), element.to_string()]),
                true,
                Decode::Ok(OkKind::Add),
            ),
            Kind::Broadcast { message } => plain(
                command(["SADD".to_string(), self.key(None), message.to_string()]),
                true,
                Decode::Ok(OkKind::Broadcast),
            ),
            Kind::Remove { element } => plain(
                command(["SREM".to_string(), self.key(None), element.to_string()]),
                true,
                Decode::Ok(OkKind::Remove),
            ),
            Kind::Read { key } => match self.workload.as_str() {
                "g-counter" | "pn-counter" => plain(
                    command(["GET".to_string(), self.key(None)]),
                    false,
                    Decode::CounterRead,
                ),
                "g-set" | "or-set" | "session" | "broadcast" => plain(
                    command(["SMEMBERS".to_string(), self.key(None)]),
                    false,
                    Decode::SetRead {
                        messages: self.workload == "broadcast",
                    },
                ),
                "lww-register" => plain(
                    command(["GET".to_string(), self.key(key.as_ref())]),
                    false,
                    Decode::RegisterRead,
                ),
                "mv-register" => plain(
                    command(["MVGET".to_string(), self.key(key.as_ref())]),
                    false,
                    Decode::MvRead,
                ),
                "lin-kv" => plain(
                    command([
                        "WITH".to_string(),
                        "GLOBAL_QUORUM".into(),
                        "CAS.GET".into(),
                        self.key(key.as_ref()),
                    ]),
                    false,
                    Decode::CasGet,
                ),
                other => return Err(Unsupported(format!("a read in the {other} workload"))),
            },
            Kind::Write { key, value } => {
                let k = self.key(key.as_ref());
                match self.workload.as_str() {
                    "lww-register" => plain(
                        command(["SET".into(), k, json_text(value)]),
                        true,
                        Decode::Ok(OkKind::Write),
                    ),
                    // A write replaces every sibling the node has: read them first, on the same
                    // connection, so MVSET replaces exactly those.
                    "mv-register" => Plan {
                        stages: vec![
                            vec![command(["MVGET".to_string(), k.clone()])],
                            vec![command(["MVSET".into(), k, json_text(value)])],
                        ],
                        update: true,
                        decode: Decode::Ok(OkKind::Write),
                    },
                    "lin-kv" => plain(
                        command(["CAS.SET".into(), k, json_text(value)]),
                        true,
                        Decode::Ok(OkKind::Write),
                    ),
                    other => return Err(Unsupported(format!("a write in the {other} workload"))),
                }
            }
            Kind::Cas(cas) if self.workload == "lin-kv" => {
                let Cas { key, from, to } = cas.as_ref();
                plain(
                    command([
                        "CAS".into(),
                        self.key(Some(key)),
                        json_text(from),
                        json_text(to),
                    ]),
                    true,
                    Decode::Cas,
                )
            }
            other => {
                return Err(Unsupported(format!(
                    "{} requests in the {} workload",
                    Body::new(other.clone()).name(),
                    self.workload
                )));
            }
        };
        if let Some(level) = body.consistency {
            match self.dialect {
                Dialect::Converge => {
                    let last = plan.stages.last_mut().and_then(|s| s.last_mut());
                    if let Some(cmd) = last {
                        let mut with = command(["WITH", level.name()]);
                        with.append(cmd);
                        *cmd = with;
                    }
                }
                // Plain Redis has no levels: serving a stronger level as LOCAL_ONE would be a
                // silent downgrade the harness itself made, so it is refused, definitely.
                Dialect::Redis if level != Level::LocalOne => {
                    return Err(Unsupported(format!(
                        "consistency {level}: plain Redis has no consistency levels"
                    )));
                }
                Dialect::Redis => {}
            }
        }
        if self.dialect == Dialect::Converge && self.workload == "session" {
            // The session: install the client's latest token, run, read the connection's token.
            if let Some(token) = body.token.as_deref().and_then(Value::as_str) {
                plan.stages
                    .insert(0, vec![command(["TOKEN", "SET", token])]);
            } else {
                plan.stages.insert(0, vec![command(["TOKEN", "RESET"])]);
            }
            plan.stages.push(vec![command(["TOKEN"])]);
        }
        Ok(plan)
    }

    /// The reply body for `request`, from every stage's replies (in order).
    pub fn reply(&self, plan: &Plan, stages: &[Vec<Reply>]) -> Body {
        // A failed stage ends the request: its error is the answer.
        for r in stages.iter().flatten() {
            if let Some(word) = r.error_word() {
                return error(self.error_code(word, plan), r);
            }
        }
        let (main, token) = if self.has_token_stages() {
            let n = stages.len();
            (&stages[n - 2], stages[n - 1].first())
        } else {
            (&stages[stages.len() - 1], None)
        };
        let Some(reply) = main.last() else {
            return Body::new(Kind::Error {
                code: 13,
                text: Some("no reply".into()),
            });
        };
        let kind = match plan.decode {
            Decode::Echo => Kind::EchoOk {
                echo: from_json_text(reply),
            },
            Decode::Ok(OkKind::Add) => Kind::AddOk,
            Decode::Ok(OkKind::Remove) => Kind::RemoveOk,
            Decode::Ok(OkKind::Broadcast) => Kind::BroadcastOk,
            Decode::Ok(OkKind::Write) => Kind::WriteOk,
            Decode::CounterRead => Kind::ReadOk {
                value: Some(match reply {
                    Reply::Nil => Value::from(0),
                    other => integer(other),
                }),
            },
            Decode::SetRead { messages } => {
                let value = integers(reply);
                if messages {
                    Kind::ReadMessages { messages: value }
                } else {
                    Kind::ReadOk { value: Some(value) }
                }
            }
            Decode::RegisterRead => Kind::ReadOk {
                value: Some(match reply {
                    Reply::Nil => Value::Null,
                    other => from_json_text(other),
                }),
            },
            Decode::MvRead => Kind::ReadOk {
                value: Some(match reply {
                    Reply::Array(items) => items.iter().map(from_json_text).collect(),
                    other => shown(other),
                }),
            },
            Decode::CasGet => match reply {
                Reply::Nil => Kind::Error {
                    code: 20,
                    text: Some("key does not exist".into()),
                },
                other => Kind::ReadOk {
                    value: Some(from_json_text(other)),
                },
            },
            Decode::Cas => match reply {
                Reply::Int(1) => Kind::CasOk,
                // `:0`: a majority showed another value or none; either way nothing was set.
                Reply::Int(0) => Kind::Error {
                    code: 22,
                    text: Some("the register did not hold `from`".into()),
                },
                other => Kind::Error {
                    code: 13,
                    text: Some(format!("unexpected CAS reply {other:?}")),
                },
            },
        };
        let mut body = Body::new(kind);
        if let Some(t) = token {
            body.token = Some(Box::new(match t {
                Reply::Bulk(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
                other => shown(other),
            }));
        }
        body
    }

    fn has_token_stages(&self) -> bool {
        self.dialect == Dialect::Converge && self.workload == "session"
    }

    /// The Maelstrom code for an error word a subject answered.
    fn error_code(&self, word: &str, plan: &Plan) -> u64 {
        let consensus = matches!(plan.decode, Decode::Cas | Decode::CasGet)
            || (self.workload == "lin-kv" && plan.update);
        match word {
            // A level not met: a CRDT write may have applied locally and will replicate; a read
            // or a consensus command had no effect.
            "UNAVAILABLE" if plan.update && !consensus => 0,
            "UNAVAILABLE" => 11,
            // Refused before anything ran: a token not yet covered, a full queue, a node still
            // loading, a replica that refuses writes or cannot reach its primary.
            "TRYAGAIN" | "BUSY" | "LOADING" | "READONLY" | "MASTERDOWN" | "NOREPLICAS" => 11,
            "TIMEOUT" => 0,
            "RESIDENCY" => 10,
            "WRONGTYPE" | "NOAUTH" | "NOPERM" | "WRONGPASS" => 14,
            // Anything else: the mapping cannot know whether it applied.
            _ => 13,
        }
    }
}

fn error(code: u64, reply: &Reply) -> Body {
    let text = match reply {
        Reply::Error(line) => line.clone(),
        other => format!("{other:?}"),
    };
    Body::new(Kind::Error {
        code,
        text: Some(text),
    })
}

/// A JSON value as the text the harness stores: numbers and strings as their JSON text, so a
/// read gives back exactly what was written.
fn json_text(v: &Value) -> String {
    v.to_string()
}

/// A stored value back as JSON; text that is not JSON comes back as a string, for the checks to
/// judge.
fn from_json_text(r: &Reply) -> Value {
    match r {
        Reply::Bulk(b) => {
            let s = String::from_utf8_lossy(b);
            serde_json::from_str(&s).unwrap_or(Value::String(s.into_owned()))
        }
        Reply::Simple(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => shown(other),
    }
}

fn integer(r: &Reply) -> Value {
    match r {
        Reply::Int(i) => Value::from(*i),
        Reply::Bulk(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or_else(|| shown(r), Value::from),
        other => shown(other),
    }
}

/// A set reply as a list of integers, sorted; members that are not integers stay as strings (a
/// finding for the checks, not a parse error).
fn integers(r: &Reply) -> Value {
    match r {
        Reply::Array(items) => {
            let mut ints: Vec<i64> = Vec::new();
            let mut others = Vec::new();
            for item in items {
                match integer(item) {
                    Value::Number(n) if n.is_i64() => ints.push(n.as_i64().unwrap_or_default()),
                    v => others.push(v),
                }
            }
            ints.sort_unstable();
            ints.into_iter().map(Value::from).chain(others).collect()
        }
        Reply::Nil => Value::Array(Vec::new()),
        other => shown(other),
    }
}

/// Any reply as a JSON value a checker can show.
fn shown(r: &Reply) -> Value {
    match r {
        Reply::Simple(s) | Reply::Error(s) => Value::String(s.clone()),
        Reply::Int(i) => Value::from(*i),
        Reply::Bulk(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Reply::Nil => Value::Null,
        Reply::Array(items) => items.iter().map(shown).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &Mapping, body: Body, stages: Vec<Vec<Reply>>) -> Body {
        let plan = m.plan(&body).unwrap();
        assert_eq!(plan.stages.len(), stages.len(), "{plan:?}");
        m.reply(&plan, &stages)
    }

    #[test]
    fn sessions_carry_tokens_and_levels() {
        let m = Mapping::new("session", Dialect::Converge).unwrap();
        let mut add = Body::new(Kind::AddElement { element: 7 });
        add.token = Some(Box::new(Value::String("ab12".into())));
        add.consistency = Some(Level::GlobalQuorum);
        let plan = m.plan(&add).unwrap();
        assert_eq!(plan.stages[0][0], command(["TOKEN", "SET", "ab12"]));
        assert_eq!(
            plan.stages[1][0],
            command(["WITH", "GLOBAL_QUORUM", "SADD", "converge:session", "7"])
        );
        assert_eq!(plan.stages[2][0], command(["TOKEN"]));
        let ok = run(
            &m,
            add.clone(),
            vec![
                vec![Reply::Simple("OK".into())],
                vec![Reply::Int(1)],
                vec![Reply::Bulk(b"cd34".to_vec())],
            ],
        );
        assert_eq!(ok.kind, Kind::AddOk);
        assert_eq!(ok.token.as_deref(), Some(&Value::String("cd34".into())));
        // A level not met on a write: it may still apply, so the error is indefinite.
        let refused = run(
            &m,
            add,
            vec![
                vec![Reply::Simple("OK".into())],
                vec![Reply::Error("UNAVAILABLE consistency level not met".into())],
                vec![Reply::Bulk(b"cd34".to_vec())],
            ],
        );
        assert_eq!(refused.error_code(), Some(0));
    }

    #[test]
    fn reads_decode_what_the_subject_said() {
        let m = Mapping::new("g-set", Dialect::Redis).unwrap();
        let read = Body::new(Kind::Read { key: None });
        let r = run(
            &m,
            read.clone(),
            vec![vec![Reply::Array(vec![
                Reply::Bulk(b"3".to_vec()),
                Reply::Bulk(b"1".to_vec()),
                Reply::Bulk(b"x".to_vec()),
            ])]],
        );
        assert_eq!(r.read_value(), Some(&serde_json::json!([1, 3, "x"])));
        let c = Mapping::new("g-counter", Dialect::Redis).unwrap();
        let r = run(&c, read, vec![vec![Reply::Nil]]);
        assert_eq!(r.read_value(), Some(&serde_json::json!(0)));
    }

    #[test]
    fn consensus_outcomes_keep_their_definiteness() {
        let m = Mapping::new("lin-kv", Dialect::Converge).unwrap();
        let cas = Body::new(Kind::Cas(Box::new(Cas {
            key: Value::from(2),
            from: Value::from(1),
            to: Value::from(3),
        })));
        assert_eq!(
            run(&m, cas.clone(), vec![vec![Reply::Int(1)]]).kind,
            Kind::CasOk
        );
        assert_eq!(
            run(&m, cas.clone(), vec![vec![Reply::Int(0)]]).error_code(),
            Some(22)
        );
        let unavailable = Reply::Error("UNAVAILABLE consistency level GLOBAL_QUORUM".into());
        assert_eq!(
            run(&m, cas.clone(), vec![vec![unavailable]]).error_code(),
            Some(11)
        );
        let timeout = Reply::Error("TIMEOUT outcome unknown".into());
        assert_eq!(run(&m, cas, vec![vec![timeout]]).error_code(), Some(0));
        let read = Body::new(Kind::Read {
            key: Some(Value::from(2)),
        });
        assert_eq!(run(&m, read, vec![vec![Reply::Nil]]).error_code(), Some(20));
    }

    #[test]
    fn plain_redis_refuses_what_it_cannot_mean() {
        assert!(Mapping::new("lin-kv", Dialect::Redis).is_err());
        assert!(Mapping::new("bounded-counter", Dialect::Converge).is_err());
        let m = Mapping::new("session", Dialect::Redis).unwrap();
        let mut read = Body::new(Kind::Read { key: None });
        read.consistency = Some(Level::GlobalQuorum);
        assert!(m.plan(&read).is_err());
        read.consistency = None;
        assert_eq!(m.plan(&read).unwrap().stages.len(), 1, "no token commands");
    }
}
