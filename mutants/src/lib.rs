//! A tiny std-only runtime for nodes that speak converge's (Maelstrom's) JSON-lines protocol, as
//! described in `docs/protocol.md`, shared by the correct and the deliberately broken nodes in
//! `src/bin/`.
//!
//! Threads and invariants:
//! - The main thread reads stdin line by line, parses each line into a [`Message`] and hands it to
//!   the handler thread through one bounded channel, so a slow handler slows the reader down
//!   instead of letting input pile up in memory. A line that is not a message (or is longer than
//!   [`LINE_BYTES_MAX`]) is logged to stderr and skipped: bad input never panics the node.
//! - The handler thread owns the [`Handler`] and is the only code that touches node state, so
//!   handlers need no locks. Ticks from the timer thread arrive through the same channel, so a
//!   tick never runs concurrently with a message.
//! - The timer thread sleeps for its period and then offers a tick with `try_send`. When the
//!   channel is full the handler is busy anyway, and dropping the tick is harmless because every
//!   tick does the same idempotent work (gossip, retries, expiry).
//! - Every line written to stdout is one whole message and its `\n`, written with one call under
//!   stdout's lock, so lines never interleave.
//! - Nothing but `init` reaches the handler before `init` has arrived; the runtime answers `init`
//!   itself, after the handler has set itself up for its id and peers.
//! - When stdin closes, the main thread stops the handler thread, waits for it, and the process
//!   ends with success.
//!
//! Helpers the nodes share: [`bug_from_args`] (`--bug NAME`) and [`args_from_env`] (with other
//! options; [`Args::millis`] reads a period), [`incarnation`] (a name per process, for state one
//! writer owns across restarts), [`Flow`] (eager pushes that never flood a peer that stopped
//! reading, and gossip paced to match), [`Parked`] (requests waiting, boundedly, for a
//! condition), [`CatchUp`] (requests held until a restarted node has its peers' states) and
//! [`dots`] (the dot kernel of the OR-set and the multi-value register).

pub mod dots;

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest input line the node accepts; a longer one is logged and skipped. The harness never
/// sends anything close to this.
pub const LINE_BYTES_MAX: usize = 16 << 20;
/// Events buffered between the reader (and timer) and the handler before the reader blocks.
const QUEUE_EVENTS_MAX: usize = 4096;

/// Maelstrom's error codes, from the protocol's one table in `converge-conformance`: these nodes
/// are test subjects written against the protocol, like any node, so they speak its codes by name.
pub use converge_conformance::harness::message::ErrorCode;

/// One message: `{"src", "dest", "body"}`, with a string `body.type`.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The sender.
    pub src: String,
    /// The receiver.
    pub dest: String,
    /// The payload; it always holds a string `type`.
    pub body: Map<String, Value>,
}

impl Message {
    /// Parses one line, or says why it is not a message.
    pub fn parse(line: &str) -> Result<Message, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let Value::Object(mut map) = value else {
            return Err("not a JSON object".into());
        };
        let mut field = |name: &str| match map.remove(name) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(format!("no string `{name}`")),
        };
        let src = field("src")?;
        let dest = field("dest")?;
        let Some(Value::Object(body)) = map.remove("body") else {
            return Err("no object `body`".into());
        };
        if !body.get("type").is_some_and(Value::is_string) {
            return Err("no string `body.type`".into());
        }
        Ok(Message { src, dest, body })
    }

    /// `body.type`.
    pub fn kind(&self) -> &str {
        // `parse` only accepts bodies with a string type; a hand-built message without one has
        // the empty kind, which no handler matches.
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// `body.msg_id`, if the sender expects a reply.
    pub fn msg_id(&self) -> Option<u64> {
        self.body.get("msg_id").and_then(Value::as_u64)
    }

    /// A body field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.body.get(field)
    }
}

/// This node as `init` named it, and its way out: everything a handler needs to send.
#[derive(Debug)]
pub struct Node {
    id: String,
    ids: Vec<String>,
}

impl Node {
    /// A node with its id and the ids of every node (itself included), as `init` gives them.
    pub fn new(id: String, ids: Vec<String>) -> Self {
        Node { id, ids }
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every node's id, this one's included.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Every other node's id.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.ids
            .iter()
            .map(String::as_str)
            .filter(move |p| *p != self.id)
    }

    /// Sends `body` to `dest`.
    pub fn send(&self, dest: &str, body: Value) {
        let msg = json!({"src": self.id, "dest": dest, "body": body});
        write_line(&format!("{msg}\n"));
    }

    /// Answers `request` with `body`, adding `in_reply_to` when the request had a `msg_id`.
    pub fn reply(&self, request: &Message, mut body: Value) {
        if let (Some(id), Some(fields)) = (request.msg_id(), body.as_object_mut()) {
            fields.insert("in_reply_to".into(), json!(id));
        }
        self.send(&request.src, body);
    }

    /// Answers `request` with error `code`. A message that expects no reply (it has no `msg_id`)
    /// gets none; the error is logged instead.
    pub fn error(&self, request: &Message, code: ErrorCode, text: &str) {
        if request.msg_id().is_some() {
            self.reply(
                request,
                json!({"type": "error", "code": code.code(), "text": text}),
            );
        } else {
            eprintln!("{}: {text}: {:?}", self.id, request.body);
        }
    }

    /// Answers a request this node does not know with error 10 (not-supported), and only logs
    /// other unknown messages, so a stray node-to-node message never starts a reply loop.
    pub fn unknown(&self, request: &Message) {
        let text = format!("unknown message type {:?}", request.kind());
        self.error(request, ErrorCode::NotSupported, &text);
    }
}

/// Writes one whole line to stdout with a single call under stdout's lock.
fn write_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
        // The harness closed our output: it is gone or about to close stdin too, which ends us.
        eprintln!("cannot write to stdout: {e}");
    }
}

/// What a node does. The runtime calls every method on one thread, one event at a time.
pub trait Handler: Send + 'static {
    /// Starts from nothing as node `node`: called on `init`, before `init_ok` is sent.
    fn init(&mut self, node: &Node);
    /// Handles a message other than `init`.
    fn message(&mut self, node: &Node, msg: Message);
    /// Periodic work (gossip, retries, expiring waits), if [`run`] was given a period.
    fn tick(&mut self, _node: &Node, _now: Instant) {}
}

enum Event {
    Message(Message),
    Tick,
    Stop,
}

/// Runs `handler` until stdin closes, with a tick every `tick_every` if given.
pub fn run<H: Handler>(handler: H, tick_every: Option<Duration>) -> ExitCode {
    let (tx, rx) = sync_channel(QUEUE_EVENTS_MAX);
    let worker = match thread::Builder::new()
        .name("handler".into())
        .spawn(move || handle_events(handler, rx))
    {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("cannot start the handler thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(period) = tick_every
        && let Err(e) = spawn_timer(period, tx.clone())
    {
        eprintln!("cannot start the timer thread: {e}");
        return ExitCode::FAILURE;
    }
    read_stdin(&tx);
    // The handler thread only ends on Stop or when every sender is gone, and this one is still
    // alive, so the send can only fail if the handler thread has already died; join reports that.
    let _ = tx.send(Event::Stop);
    match worker.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => {
            eprintln!("the handler thread panicked");
            ExitCode::FAILURE
        }
    }
}

/// Reads stdin until it closes, passing every message to the handler thread.
fn read_stdin(tx: &SyncSender<Event>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    // True while skipping the rest of an overlong line.
    let mut skipping = false;
    loop {
        buf.clear();
        // Read at most one line plus one byte, so an endless line cannot exhaust memory.
        match (&mut stdin)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("cannot read stdin: {e}");
                return;
            }
        }
        let complete = buf.last() == Some(&b'\n');
        if skipping {
            skipping = !complete;
            continue;
        }
        if !complete && buf.len() > LINE_BYTES_MAX {
            eprintln!("skipping an input line longer than {LINE_BYTES_MAX} bytes");
            skipping = true;
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match Message::parse(line) {
            Ok(msg) => {
                if tx.send(Event::Message(msg)).is_err() {
                    // The handler thread is gone; `run` reports why.
                    return;
                }
            }
            Err(e) => {
                let cut: String = line.chars().take(200).collect();
                eprintln!("skipping a malformed line ({e}): {cut}");
            }
        }
    }
}

/// Starts a thread that offers the handler a tick every `period`.
fn spawn_timer(period: Duration, tx: SyncSender<Event>) -> std::io::Result<()> {
    thread::Builder::new().name("timer".into()).spawn(move || {
        loop {
            thread::sleep(period);
            match tx.try_send(Event::Tick) {
                // A full queue means the handler is busy; the next tick does the same work.
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    })?;
    Ok(())
}

fn handle_events<H: Handler>(mut handler: H, rx: Receiver<Event>) {
    let mut node: Option<Node> = None;
    while let Ok(event) = rx.recv() {
        match event {
            Event::Stop => return,
            Event::Tick => {
                if let Some(n) = &node {
                    handler.tick(n, Instant::now());
                }
            }
            Event::Message(msg) if msg.kind() == "init" => match parse_init(&msg) {
                Ok(n) => {
                    handler.init(&n);
                    n.reply(&msg, json!({"type": "init_ok"}));
                    node = Some(n);
                }
                Err(e) => {
                    eprintln!("malformed init ({e}): {:?}", msg.body);
                    let reply = Node::new(msg.dest.clone(), Vec::new());
                    reply.error(&msg, ErrorCode::MalformedRequest, &e);
                }
            },
            Event::Message(msg) => match &node {
                Some(n) => handler.message(n, msg),
                None => eprintln!("ignoring a {:?} message before init", msg.kind()),
            },
        }
    }
}

fn parse_init(msg: &Message) -> Result<Node, String> {
    let id = msg
        .get("node_id")
        .and_then(Value::as_str)
        .ok_or("init without a string node_id")?;
    let ids = msg
        .get("node_ids")
        .and_then(Value::as_array)
        .ok_or("init without a node_ids list")?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or("node_ids holds a non-string")?;
    if !ids.iter().any(|i| i == id) {
        return Err(format!("node_ids does not name this node, {id}"));
    }
    Ok(Node::new(id.to_string(), ids))
}

/// A node's command line: the bug named by `--bug NAME`, and the values of the other options
/// the node knows (`--NAME VALUE` or `--NAME=VALUE`).
#[derive(Clone, Debug, PartialEq)]
pub struct Args<B> {
    /// The bug, if `--bug` named one.
    pub bug: Option<B>,
    options: BTreeMap<String, String>,
}

impl<B> Args<B> {
    /// The value given to option `--name`, if any.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// The period given as `--name MILLISECONDS`, or `default_ms` without it. A value that is
    /// not a positive whole number of milliseconds is a usage error (exit code 2).
    pub fn millis(&self, name: &str, default_ms: u64) -> Duration {
        match parse_millis(self.option(name), default_ms) {
            Ok(period) => period,
            Err(e) => usage_error(&format!("--{name} {e}")),
        }
    }
}

/// `value` as a positive number of milliseconds, or `default_ms` if absent.
fn parse_millis(value: Option<&str>, default_ms: u64) -> Result<Duration, String> {
    let ms = match value.map(str::parse::<u64>) {
        None => default_ms,
        Some(Ok(ms)) => ms,
        Some(Err(e)) => return Err(format!("needs a whole number of milliseconds: {e}")),
    };
    if ms == 0 {
        return Err("must be at least 1 millisecond".into());
    }
    Ok(Duration::from_millis(ms))
}

/// Parses a node's command line (`args`, without the program name): `--bug NAME` out of `bugs`,
/// and `--NAME VALUE` for each name in `options`. Each may be given once; anything else is an
/// error that says what is accepted.
pub fn parse_args<B: Copy>(
    args: impl IntoIterator<Item = String>,
    bugs: &[(&str, B)],
    options: &[&str],
) -> Result<Args<B>, String> {
    let names = || {
        let names: Vec<&str> = bugs.iter().map(|(n, _)| *n).collect();
        if names.is_empty() {
            "this node has no bugs".to_string()
        } else {
            format!("known bugs: {}", names.join(", "))
        }
    };
    let usage = || {
        let mut usage = String::from("[--bug NAME]");
        for option in options {
            usage.push_str(&format!(" [--{option} VALUE]"));
        }
        usage
    };
    let mut args = args.into_iter();
    let mut parsed = Args {
        bug: None,
        options: BTreeMap::new(),
    };
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unknown argument {arg:?}; usage: {}", usage()));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        if name != "bug" && !options.contains(&name) {
            return Err(format!("unknown argument {arg:?}; usage: {}", usage()));
        }
        let value = match inline {
            Some(value) => value,
            None if name == "bug" => args
                .next()
                .ok_or_else(|| format!("--bug needs a name; {}", names()))?,
            None => args
                .next()
                .ok_or_else(|| format!("--{name} needs a value; usage: {}", usage()))?,
        };
        if name == "bug" {
            if parsed.bug.is_some() {
                return Err("--bug given twice".into());
            }
            let found = bugs.iter().find(|(n, _)| *n == value).map(|(_, b)| *b);
            parsed.bug = Some(found.ok_or_else(|| format!("unknown bug {value:?}; {}", names()))?);
        } else if parsed.options.insert(name.to_string(), value).is_some() {
            return Err(format!("--{name} given twice"));
        }
    }
    Ok(parsed)
}

/// The bug named by `--bug NAME` (or `--bug=NAME`) in `args` (without the program name), out of
/// `known`; `None` without the flag. Anything else on the command line is an error.
pub fn parse_bug<B: Copy>(
    args: impl IntoIterator<Item = String>,
    known: &[(&str, B)],
) -> Result<Option<B>, String> {
    parse_args(args, known, &[]).map(|a| a.bug)
}

/// The bug named on this process's command line, out of `known`. A bad command line ends the
/// process with exit code 2 and a message on stderr, before any protocol traffic.
pub fn bug_from_args<B: Copy + std::fmt::Debug>(known: &[(&str, B)]) -> Option<B> {
    args_from_env(known, &[]).bug
}

/// This process's command line, parsed as [`parse_args`] does. A bad command line ends the
/// process with exit code 2 and a message on stderr, before any protocol traffic.
pub fn args_from_env<B: Copy + std::fmt::Debug>(bugs: &[(&str, B)], options: &[&str]) -> Args<B> {
    match parse_args(std::env::args().skip(1), bugs, options) {
        Ok(args) => {
            if let Some(bug) = args.bug {
                eprintln!("running with a deliberate bug: {bug:?}");
            }
            args
        }
        Err(e) => usage_error(&e),
    }
}

/// Ends the process with exit code 2 and `why` on stderr: the command line is unusable. Only for
/// use before any protocol traffic.
pub fn usage_error(why: &str) -> ! {
    eprintln!("{why}");
    std::process::exit(2);
}

/// A name for this process's incarnation of node `id`, different from every other incarnation's.
///
/// A node restarted after a kill has lost its state but not its id, and its peers still hold
/// what it wrote before. State that one writer owns (a counter slot, an origin's log) is keyed by
/// incarnation, so the new process never writes over, or under, what the old one wrote. The
/// process id differs between incarnations that run at different times unless the pid space
/// wraps in between; the start time in nanoseconds guards against that.
pub fn incarnation(id: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{id}.{}.{nanos}", std::process::id())
}

/// How many peers a push goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// The one peer with the most room in its window: one copy is enough for a write to survive
    /// its writer's kill, and the rest arrives with gossip.
    One,
    /// Every peer with room in its window, for state that peers should see at once.
    All,
    /// Every peer with room in its window, and none if none has room: for what this node is not
    /// the only holder of (a relay of a message its sender keeps retrying), which needs no copy
    /// to survive this node.
    AllWithRoom,
}

/// Flow control for eager messages (pushes) to peers that may have stopped listening, and the
/// pacing of whole-state gossip.
///
/// A node writes each acknowledged write to its peers before acknowledging it, so that the write
/// survives the node's kill. But a paused, killed or cut-off peer reads nothing, and whatever is
/// sent to it meanwhile queues in the network or in its input pipe. So pushes are numbered per
/// peer and acknowledged by the receiver (cumulatively, every `ACK_EVERY` pushes and on every
/// tick), and invariants hold:
/// - At most `window` unacknowledged pushes go to a peer, except that a write this node
///   acknowledges always goes to at least one peer: when no peer has room, it goes to the one
///   heard from last. So one copy of every write is always out, and a silent peer gets at most
///   `window` pushes while another peer is listening. A push goes to one peer with room or to
///   all of them ([`Fanout`]).
/// - Whole states go every tick to a peer heard from since the last one, and at least every
///   `heartbeat` to any peer however silent, so two peers that stopped sending to each other
///   (across a partition, say) start again once they hear each other.
///
/// What a skipped push would have carried arrives with the next whole state.
#[derive(Debug)]
pub struct Flow {
    window: u64,
    heartbeat: Duration,
    peers: BTreeMap<String, PeerFlow>,
}

/// Pushes received from a peer before they are acknowledged without waiting for a tick.
const ACK_EVERY: u64 = 16;

#[derive(Debug, Default)]
struct PeerFlow {
    /// Pushes sent to the peer, and the highest of them it acknowledged.
    sent: u64,
    acked: u64,
    last_heard: Option<Instant>,
    heard_since_state: bool,
    last_state: Option<Instant>,
    /// The highest push number received from the peer, and how many arrived since the last ack.
    received: u64,
    unacked: u64,
}

impl Flow {
    /// Flow control with at most `window` unacknowledged pushes per peer, and a whole state to
    /// every peer at least every `heartbeat`.
    pub fn new(window: u64, heartbeat: Duration) -> Self {
        Flow {
            window,
            heartbeat,
            peers: BTreeMap::new(),
        }
    }

    fn flow(&mut self, peer: &str) -> &mut PeerFlow {
        self.peers.entry(peer.to_string()).or_default()
    }

    /// Notes a message from another node: the sender is alive, a push (a message with a `seq`)
    /// is acknowledged when an acknowledgement is due, and an acknowledgement (`push_ok`)
    /// makes room. Call it for every message the node gets.
    pub fn receive(&mut self, node: &Node, msg: &Message, now: Instant) {
        if msg.src == node.id() || !node.ids().contains(&msg.src) {
            return;
        }
        self.heard(&msg.src, now);
        match (msg.kind(), msg.get("seq").and_then(Value::as_u64)) {
            ("push_ok", Some(seq)) => self.acked(&msg.src, seq),
            (_, Some(seq)) => {
                if let Some(ack) = self.pushed(&msg.src, seq) {
                    node.send(&msg.src, json!({"type": "push_ok", "seq": ack}));
                }
            }
            _ => {}
        }
    }

    /// Sends `body` as a push to `fanout` of `peers`.
    pub fn push<'a>(
        &mut self,
        node: &Node,
        peers: impl IntoIterator<Item = &'a str>,
        fanout: Fanout,
        body: &Value,
    ) {
        for (peer, seq) in self.push_to(peers, fanout) {
            let mut body = body.clone();
            if let Some(fields) = body.as_object_mut() {
                fields.insert("seq".into(), json!(seq));
            }
            node.send(peer, body);
        }
    }

    /// Sends the acknowledgements owed; call it every tick.
    pub fn send_acks(&mut self, node: &Node) {
        for (peer, seq) in self.acks_due() {
            node.send(&peer, json!({"type": "push_ok", "seq": seq}));
        }
    }

    fn heard(&mut self, peer: &str, now: Instant) {
        let flow = self.flow(peer);
        flow.last_heard = Some(now);
        flow.heard_since_state = true;
    }

    /// The peers, out of `peers`, that a push goes to now, each with the number to stamp on it:
    /// `fanout` of the peers with room in their window, or else (unless `AllWithRoom`) the one
    /// heard from last.
    fn push_to<'a>(
        &mut self,
        peers: impl IntoIterator<Item = &'a str>,
        fanout: Fanout,
    ) -> Vec<(&'a str, u64)> {
        let window = self.window;
        let mut candidates: Vec<(&str, u64, Option<Instant>)> = peers
            .into_iter()
            .map(|p| {
                let flow = self.flow(p);
                let room = window.saturating_sub(flow.sent.saturating_sub(flow.acked));
                (p, room, flow.last_heard)
            })
            .collect();
        // Never heard from (`None`) sorts first, so any peer heard from wins a tie.
        let heard_last = candidates.iter().max_by_key(|c| c.2).map(|c| c.0);
        candidates.retain(|c| c.1 > 0);
        let chosen: Vec<&str> = match fanout {
            Fanout::All | Fanout::AllWithRoom => candidates.iter().map(|c| c.0).collect(),
            Fanout::One => {
                let roomiest = candidates.iter().max_by_key(|c| (c.1, c.2));
                roomiest.map(|c| c.0).into_iter().collect()
            }
        };
        let chosen = if chosen.is_empty() && fanout != Fanout::AllWithRoom {
            heard_last.into_iter().collect()
        } else {
            chosen
        };
        chosen
            .into_iter()
            .map(|p| {
                let flow = self.flow(p);
                flow.sent += 1;
                (p, flow.sent)
            })
            .collect()
    }

    /// Notes push number `seq` from `peer`; returns the number to acknowledge now, if an
    /// acknowledgement is due.
    fn pushed(&mut self, peer: &str, seq: u64) -> Option<u64> {
        let flow = self.flow(peer);
        flow.received = flow.received.max(seq);
        flow.unacked += 1;
        (flow.unacked >= ACK_EVERY).then(|| {
            flow.unacked = 0;
            flow.received
        })
    }

    /// Notes that `peer` acknowledged pushes up to number `seq`.
    fn acked(&mut self, peer: &str, seq: u64) {
        let flow = self.flow(peer);
        flow.acked = flow.acked.max(seq);
    }

    /// Acknowledgements owed: per peer, the number to acknowledge.
    fn acks_due(&mut self) -> Vec<(String, u64)> {
        self.peers
            .iter_mut()
            .filter(|(_, f)| f.unacked > 0)
            .map(|(p, f)| {
                f.unacked = 0;
                (p.clone(), f.received)
            })
            .collect()
    }

    /// Whether a whole state may go to `peer` at `now`; if so, it counts as sent.
    pub fn may_send_state(&mut self, peer: &str, now: Instant) -> bool {
        let heartbeat = self.heartbeat;
        let flow = self.flow(peer);
        let due = flow
            .last_state
            .is_none_or(|last| now.saturating_duration_since(last) >= heartbeat);
        if flow.heard_since_state || due {
            flow.heard_since_state = false;
            flow.last_state = Some(now);
            true
        } else {
            false
        }
    }
}

/// Client requests held back, after a restart, until this incarnation has merged a whole state
/// from every peer.
///
/// A node restarted after a kill has lost its state but not its id, and the checks hold a node
/// to everything its previous incarnation acknowledged and showed: a remove must see the adds
/// that node acknowledged, a write must supersede what that node read. Whatever that incarnation
/// acknowledged was pushed to a peer first, so once every peer's whole state is merged the new
/// incarnation holds at least as much. So [`CatchUp::start`] asks every peer for its state
/// (`sync`) and client requests wait (boundedly) until every peer has sent one; a request still
/// waiting after `wait` is refused with error 11, definite, which is true because it never took
/// effect.
///
/// The first incarnation of a node has nothing to catch up on, and waiting would leave it
/// unavailable for as long as a partition at the start of a run lasts. A process cannot tell a
/// first start from a restart by itself (it keeps nothing across a kill), so it asks a durable
/// store: at `start` it creates a boot record, `BOOT_KEY_PREFIX` + its id, in the `lin-kv`
/// service (partitions do not cut nodes from services) with a compare-and-set that only succeeds
/// if the record does not exist yet. If it succeeds this is the first incarnation, and requests
/// are answered at once from then on; if the record exists, the node waits for its peers as
/// above. Until the service answers, requests wait as after a restart, so the rule is safe even
/// if the answer never comes. The harness counts calls to a service as a channel between the
/// nodes that make them, so the boot records only ever let its checks assume that more could
/// have been seen, never less: they cannot hide a bug.
#[derive(Debug)]
pub struct CatchUp {
    heard: BTreeSet<String>,
    /// Whether this is the node's first incarnation, once the boot record says so.
    first: Option<bool>,
    parked: Parked,
    wait: Duration,
}

/// Where in the `lin-kv` service a node keeps its boot record, followed by its id.
pub const BOOT_KEY_PREFIX: &str = "converge-mutants/boot/";
/// The service that keeps boot records.
const BOOT_SERVICE: &str = "lin-kv";
/// The `msg_id` of the boot record's compare-and-set: the only request this process sends that
/// expects a reply.
const BOOT_MSG_ID: u64 = 1;

impl CatchUp {
    /// At most `capacity` requests waiting, each for at most `wait`.
    pub fn new(capacity: usize, wait: Duration) -> Self {
        CatchUp {
            heard: BTreeSet::new(),
            first: None,
            parked: Parked::new(capacity),
            wait,
        }
    }

    /// Starts over, as a fresh incarnation: forgets every peer heard, creates the boot record
    /// (or learns that it exists), and asks every peer for its whole state with `sync`.
    pub fn start(&mut self, node: &Node) {
        self.heard.clear();
        self.first = None;
        self.parked = Parked::new(self.parked.capacity);
        let key = format!("{BOOT_KEY_PREFIX}{}", node.id());
        node.send(
            BOOT_SERVICE,
            json!({"type": "cas", "msg_id": BOOT_MSG_ID, "key": key, "from": false,
                   "to": true, "create_if_not_exists": true}),
        );
        for peer in node.peers() {
            node.send(peer, json!({"type": "sync"}));
        }
    }

    /// Whether requests may be answered: this is the first incarnation, or a whole state from
    /// every peer has been merged since [`CatchUp::start`].
    pub fn caught_up(&self, node: &Node) -> bool {
        self.first == Some(true) || node.peers().all(|p| self.heard.contains(p))
    }

    /// Takes the service's answer about the boot record: `None` if `msg` is not that answer (the
    /// handler deals with it), else the held requests that may be handled now, in arrival order.
    pub fn boot_answer(&mut self, node: &Node, msg: &Message) -> Option<Vec<Message>> {
        let answers = msg.src == BOOT_SERVICE
            && msg.get("in_reply_to").and_then(Value::as_u64) == Some(BOOT_MSG_ID);
        if !answers {
            return None;
        }
        // Created: no earlier incarnation. Anything else (the record exists, or the service
        // refused) leaves the node waiting for its peers, which is always safe.
        let first = msg.kind() == "cas_ok";
        self.first = Some(first);
        eprintln!(
            "{}: {}",
            node.id(),
            if first {
                "first incarnation"
            } else {
                "restarted: catching up with the peers"
            }
        );
        Some(self.ready(node))
    }

    /// Hands `msg` back if it may be handled now; otherwise holds it, or refuses it with error
    /// 11 when too many requests are waiting already.
    pub fn admit(&mut self, node: &Node, msg: Message) -> Option<Message> {
        if self.caught_up(node) {
            return Some(msg);
        }
        if let Err(msg) = self.parked.park(msg, Instant::now() + self.wait) {
            node.error(
                &msg,
                ErrorCode::TemporarilyUnavailable,
                "too many requests waiting",
            );
        }
        None
    }

    /// Notes that a whole state from `peer` was merged, and returns the held requests that may
    /// be handled now, in arrival order.
    pub fn heard(&mut self, node: &Node, peer: &str) -> Vec<Message> {
        self.heard.insert(peer.to_string());
        self.ready(node)
    }

    fn ready(&mut self, node: &Node) -> Vec<Message> {
        if self.caught_up(node) {
            self.parked.take(|_| true)
        } else {
            Vec::new()
        }
    }

    /// Refuses, with error 11, every held request whose wait is over; call it every tick.
    pub fn expire(&mut self, node: &Node, now: Instant) {
        for msg in self.parked.expired(now) {
            let text = "not caught up with the peers yet";
            node.error(&msg, ErrorCode::TemporarilyUnavailable, text);
        }
    }
}

/// Requests parked until a condition holds, each with a deadline; at most `capacity` of them.
#[derive(Debug)]
pub struct Parked {
    queue: VecDeque<(Instant, Message)>,
    capacity: usize,
}

impl Parked {
    /// An empty queue for at most `capacity` requests.
    pub fn new(capacity: usize) -> Self {
        Parked {
            queue: VecDeque::new(),
            capacity,
        }
    }

    /// Parks `msg` until `deadline`, or hands it back if the queue is full.
    pub fn park(&mut self, msg: Message, deadline: Instant) -> Result<(), Message> {
        if self.queue.len() >= self.capacity {
            return Err(msg);
        }
        self.queue.push_back((deadline, msg));
        Ok(())
    }

    /// Removes and returns, in arrival order, the parked requests that `ready` accepts.
    pub fn take(&mut self, mut ready: impl FnMut(&Message) -> bool) -> Vec<Message> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for (deadline, msg) in self.queue.drain(..) {
            if ready(&msg) {
                taken.push(msg);
            } else {
                kept.push_back((deadline, msg));
            }
        }
        self.queue = kept;
        taken
    }

    /// Removes and returns the parked requests whose deadline has passed.
    pub fn expired(&mut self, now: Instant) -> Vec<Message> {
        let mut expired = Vec::new();
        self.queue.retain(|(deadline, msg)| {
            let keep = *deadline > now;
            if !keep {
                expired.push(msg.clone());
            }
            keep
        });
        expired
    }

    /// Requests parked now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Bug {
        A,
        B,
    }
    const BUGS: &[(&str, Bug)] = &[("a", Bug::A), ("b", Bug::B)];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bugs_are_named_by_flag_and_anything_else_is_refused() {
        assert_eq!(parse_bug(args(&[]), BUGS), Ok(None));
        assert_eq!(parse_bug(args(&["--bug", "b"]), BUGS), Ok(Some(Bug::B)));
        assert_eq!(parse_bug(args(&["--bug=a"]), BUGS), Ok(Some(Bug::A)));
        assert!(parse_bug(args(&["--bug", "c"]), BUGS).is_err_and(|e| e.contains("a, b")));
        assert!(parse_bug(args(&["--bug"]), BUGS).is_err());
        assert!(parse_bug(args(&["--bug", "a", "--bug", "b"]), BUGS).is_err());
        assert!(parse_bug(args(&["--verbose"]), BUGS).is_err());
    }

    #[test]
    fn options_take_one_value_each_and_only_known_ones_are_accepted() {
        let known = ["mode", "skew-ms"];
        let parsed = parse_args(
            args(&["--mode", "mv", "--bug=a", "--skew-ms=-5"]),
            BUGS,
            &known,
        )
        .expect("a well-formed command line");
        assert_eq!(parsed.bug, Some(Bug::A));
        assert_eq!(parsed.option("mode"), Some("mv"));
        assert_eq!(parsed.option("skew-ms"), Some("-5"));
        assert_eq!(parsed.option("other"), None);
        assert!(parse_args(args(&["--mode"]), BUGS, &known).is_err());
        assert!(parse_args(args(&["--mode", "a", "--mode", "b"]), BUGS, &known).is_err());
        assert!(
            parse_args(args(&["--speed", "9"]), BUGS, &known)
                .is_err_and(|e| e.contains("[--mode VALUE] [--skew-ms VALUE]"))
        );
    }

    #[test]
    fn periods_are_positive_milliseconds_with_a_default() {
        assert_eq!(parse_millis(None, 500), Ok(Duration::from_millis(500)));
        assert_eq!(parse_millis(Some("20"), 500), Ok(Duration::from_millis(20)));
        assert!(parse_millis(Some("0"), 500).is_err());
        assert!(parse_millis(Some("-5"), 500).is_err());
        assert!(parse_millis(Some("1.5"), 500).is_err());
    }

    #[test]
    fn only_objects_with_src_dest_and_a_typed_body_are_messages() {
        let msg = Message::parse(r#"{"src":"c1","dest":"n0","body":{"type":"read","msg_id":3}}"#)
            .expect("a well-formed message parses");
        assert_eq!((msg.kind(), msg.msg_id()), ("read", Some(3)));
        for bad in [
            "",
            "nope",
            "[1]",
            r#"{"src":"c1","dest":"n0"}"#,
            r#"{"src":"c1","dest":"n0","body":{}}"#,
            r#"{"src":1,"dest":"n0","body":{"type":"read"}}"#,
            r#"{"src":"c1","dest":"n0","body":{"type":7}}"#,
        ] {
            assert!(Message::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parked_requests_leave_when_ready_or_expired_and_the_queue_is_bounded() {
        let now = Instant::now();
        let msg = |id: u64| Message {
            src: "c0".into(),
            dest: "n0".into(),
            body: json!({"type": "read", "msg_id": id})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let mut parked = Parked::new(2);
        assert!(parked.park(msg(1), now).is_ok());
        assert!(parked.park(msg(2), now + Duration::from_secs(9)).is_ok());
        assert!(parked.park(msg(3), now).is_err());
        assert_eq!(parked.expired(now + Duration::from_millis(1)), vec![msg(1)]);
        assert!(parked.take(|m| m.msg_id() == Some(7)).is_empty());
        assert_eq!(parked.take(|m| m.msg_id() == Some(2)), vec![msg(2)]);
        assert!(parked.is_empty());
    }

    #[test]
    fn pushes_to_a_silent_peer_are_bounded_but_one_copy_always_goes_out() {
        let start = Instant::now();
        let mut flow = Flow::new(2, Duration::from_millis(100));
        let peers = ["n1", "n2"];
        let all = Fanout::All;
        assert_eq!(flow.push_to(peers, all), vec![("n1", 1), ("n2", 1)]);
        flow.acked("n2", 1);
        assert_eq!(flow.push_to(peers, all), vec![("n1", 2), ("n2", 2)]);
        // n1 has two pushes unacknowledged: only n2 gets the next ones.
        assert_eq!(flow.push_to(peers, all), vec![("n2", 3)]);
        // Neither has room: the push still goes out, to the peer heard from last.
        flow.heard("n1", start);
        assert_eq!(flow.push_to(peers, all), vec![("n1", 3)]);
        flow.acked("n1", 3);
        assert_eq!(flow.push_to(peers, all), vec![("n1", 4)]);
        // One copy goes to the peer with the most room.
        flow.acked("n2", 3);
        assert_eq!(flow.push_to(peers, Fanout::One), vec![("n2", 4)]);
        // A push nobody needs to survive this node waits for room.
        assert_eq!(flow.push_to(["n1"], Fanout::AllWithRoom), vec![("n1", 5)]);
        assert_eq!(flow.push_to(["n1"], Fanout::AllWithRoom), vec![]);
    }

    #[test]
    fn pushes_are_acknowledged_in_batches_and_on_ticks() {
        let mut flow = Flow::new(64, Duration::from_millis(100));
        for seq in 1..ACK_EVERY {
            assert_eq!(flow.pushed("n1", seq), None);
        }
        assert_eq!(flow.pushed("n1", ACK_EVERY + 5), Some(ACK_EVERY + 5));
        assert_eq!(flow.pushed("n1", 3), None);
        assert_eq!(flow.acks_due(), vec![("n1".to_string(), ACK_EVERY + 5)]);
        assert!(flow.acks_due().is_empty());
    }

    #[test]
    fn whole_states_go_to_a_silent_peer_once_per_heartbeat() {
        let start = Instant::now();
        let mut flow = Flow::new(64, Duration::from_millis(100));
        assert!(flow.may_send_state("n1", start));
        assert!(!flow.may_send_state("n1", start + Duration::from_millis(50)));
        assert!(flow.may_send_state("n1", start + Duration::from_millis(100)));
        flow.heard("n1", start + Duration::from_millis(105));
        assert!(flow.may_send_state("n1", start + Duration::from_millis(110)));
    }

    #[test]
    fn init_needs_an_id_among_the_ids() {
        let init = |body: Value| Message {
            src: "c-init".into(),
            dest: "n1".into(),
            body: body.as_object().cloned().unwrap_or_default(),
        };
        let ok = parse_init(&init(
            json!({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n0", "n1"]}),
        ))
        .expect("a well-formed init");
        assert_eq!(ok.peers().collect::<Vec<_>>(), vec!["n0"]);
        assert!(parse_init(&init(json!({"type": "init", "node_id": "n1"}))).is_err());
        assert!(
            parse_init(&init(
                json!({"type": "init", "node_id": "n9", "node_ids": ["n0", "n1"]})
            ))
            .is_err()
        );
    }
}
