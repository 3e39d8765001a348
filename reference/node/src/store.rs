//! The node's disk: a replica's [`Durable`] state in a redb database, written one
//! [`DurableDelta`] at a time.
//!
//! # Layout
//! One database file, `<dir>/durable.redb`, with four tables:
//! - `keys`: key bytes → the key's state, [`KeyState::encode`]d. A delta's key replaces the
//!   stored state whole (the replica hands out the joined state, not a δ).
//! - `oplog`: `(origin, seq)` → the entry, [`Entry::encode`]d. The tuple key orders the table by
//!   origin then sequence number, so each origin's log is one contiguous range: truncation is a
//!   range delete and recovery reads entries in the order [`Replica::recover`] wants them.
//! - `strong`: key bytes → the consensus acceptor's record of that key (decision, promise,
//!   accepted proposal), [`encode_record`]ed; replaced whole. A lost promise could let two values
//!   be chosen, so it is written in the same transaction as the rest of the delta.
//! - `meta`: `"meta"` → the [`DurableMeta`] (HLC, last sequence number, frontier, horizon, the
//!   consensus round mark), and
//!   `"format"` → this layout's version. The meta is stored as a [`Durable::encode`] image with no
//!   keys and no entries, so it reuses the core's versioned, validated codec rather than a second
//!   encoding of the same clocks that could drift from it.
//!
//! # One transaction per delta: the group commit
//! [`Store::apply`] writes a whole delta in one redb write transaction committed with
//! [`Durability::Immediate`] (fsync before `commit` returns), so a crash leaves either all of a
//! delta or none of it, never a key without the oplog entry that produced it. The stdio loop
//! hands every line already queued to the face before it takes one delta, so a burst of requests
//! costs one commit: that is the group commit, and its latency is what an acknowledgement waits
//! for.
//!
//! # The ordering rule
//! The shell persists the delta of an input **before** it writes any line that input produced
//! (see `converge_core::replica` § durable). This module only has to make `apply` durable when
//! it returns `Ok`; `stdio` keeps the order, and stops the node on an error rather than write a
//! line describing state the disk does not hold.
//!
//! # Corruption
//! Every stored value goes back through the core's validating decoders on [`Store::load`]; a
//! value that does not decode, an entry stored under a key other than its own `(origin, seq)`, or
//! tables holding state without a meta is a [`StoreError`] naming what is wrong, never a panic,
//! and the node refuses to start on it.
//!
//! [`Replica::recover`]: converge_core::replica::Replica::recover

use converge_core::ReplicaId;
use converge_core::replica::{
    DecodeError, Durable, DurableDelta, DurableMeta, Entry, Key, KeyState, decode_record,
    encode_record,
};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Key bytes → encoded [`KeyState`].
const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keys");
/// `(origin, seq)` → encoded [`Entry`].
const OPLOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("oplog");
/// Key bytes → encoded consensus record.
const STRONG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("strong");
/// `"meta"` → the meta as a [`Durable::encode`] image; `"format"` → [`FORMAT`].
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_KEY: &str = "meta";
const FORMAT_KEY: &str = "format";
/// The version of this layout. A later layout bumps it, and an older binary then refuses the
/// file instead of misreading it.
const FORMAT: u8 = 1;
/// The database file inside the store's directory.
const FILE_NAME: &str = "durable.redb";
/// redb's page cache. Its default (1 GiB) is sized for one big database per machine; a node's
/// state is small and several nodes share a machine under test, so the cache is capped.
const CACHE_BYTES: usize = 16 << 20;

/// Why the store cannot open, load or persist.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's directory could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// redb failed: I/O, a file redb itself finds corrupt, or a file another process holds.
    #[error("the store {path} failed: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("the store {path} is corrupt: {what} does not decode: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// The decoder's complaint.
        source: DecodeError,
    },
    /// redb panicked on the file. It asserts on some malformed files (a file cut short, a flipped
    /// byte in a page header) rather than returning an error; the store catches that so the node
    /// can refuse to start with a message instead of dying mid-way.
    #[error("the store {path} is corrupt: redb failed on it: {message}")]
    Panicked {
        /// The database file.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
    /// The stored values decode but do not fit together.
    #[error("the store {path} is inconsistent: {what}")]
    Inconsistent {
        /// The database file.
        path: PathBuf,
        /// What does not fit.
        what: String,
    },
}

/// A replica's durable state on disk: see the module documentation.
pub struct Store {
    /// Always `Some` until `drop`, which takes it to drop it under `guarded` (see there).
    db: Option<Database>,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `dir` (created if missing), creating its tables on first use, and
    /// checks the layout version of an existing one.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        guarded(&path, || Store::open_inner(dir))
    }

    fn open_inner(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        // The v3 file format is what redb 3 reads natively; creating files in it now means the
        // move to redb 3 (once the workspace's rust-version allows it) needs no upgrade step.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_file_format_v3(true)
            .create(&path)
            .map_err(|e| db_error(&path, e))?;
        let store = Store { db: Some(db), path };
        store.init_tables()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables and records the layout version if this is a new file; refuses a file
    /// written in another layout.
    fn init_tables(&self) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
        {
            tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
            tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
            // Created here for a database written before consensus existed, too.
            tx.open_table(STRONG).map_err(|e| self.db_err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(|e| self.db_err(e))?
                .map(|v| v.value().to_vec());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT_KEY, [FORMAT].as_slice())
                        .map_err(|e| self.db_err(e))?;
                }
                Some([FORMAT]) => {}
                Some(other) => {
                    return Err(self.inconsistent(format!(
                        "layout version {other:?}, this build reads {FORMAT}"
                    )));
                }
            }
        }
        tx.commit().map_err(|e| self.db_err(e))
    }

    /// The stored state, or `None` if nothing was ever persisted here. Every value is decoded and
    /// validated; whether the whole is a state a replica can run from is
    /// [`Replica::recover`]'s check.
    ///
    /// [`Replica::recover`]: converge_core::replica::Replica::recover
    pub fn load(&self) -> Result<Option<Durable>, StoreError> {
        guarded(&self.path, || self.load_inner())
    }

    fn load_inner(&self) -> Result<Option<Durable>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
        let meta_table = tx.open_table(META).map_err(|e| self.db_err(e))?;
        let meta = match meta_table.get(META_KEY).map_err(|e| self.db_err(e))? {
            Some(v) => Some(self.decode_meta(v.value())?),
            None => None,
        };
        let keys_table = tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
        let mut keys = BTreeMap::new();
        for row in keys_table.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            let key: Key = k.value().into();
            let state = KeyState::decode(v.value()).map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("the state of key {:?}", String::from_utf8_lossy(&key)),
                source,
            })?;
            keys.insert(key, state);
        }
        let oplog_table = tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
        let mut oplog = Vec::new();
        for row in oplog_table.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            let (origin, seq) = k.value();
            let entry = Entry::decode(v.value()).map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("oplog entry (n{origin}, {seq})"),
                source,
            })?;
            if (entry.origin, entry.seq) != (ReplicaId(origin), seq) {
                return Err(self.inconsistent(format!(
                    "the entry stored as (n{origin}, {seq}) is (n{}, {})",
                    entry.origin.0, entry.seq
                )));
            }
            oplog.push(entry);
        }
        let strong_table = tx.open_table(STRONG).map_err(|e| self.db_err(e))?;
        let mut strong = BTreeMap::new();
        for row in strong_table.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            let key: Key = k.value().into();
            let record = decode_record(v.value()).map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!(
                    "the consensus record of key {:?}",
                    String::from_utf8_lossy(&key)
                ),
                source,
            })?;
            strong.insert(key, record);
        }
        match meta {
            Some(meta) => Ok(Some(Durable {
                meta,
                keys,
                oplog,
                strong,
            })),
            // Every delta carries the meta, so keys or entries without one were not written by
            // this module; recovering from them would restart the clocks under live data.
            None if !keys.is_empty() || !oplog.is_empty() || !strong.is_empty() => Err(self
                .inconsistent(
                    "keys, oplog entries or consensus records are stored but no meta is"
                        .to_string(),
                )),
            None => Ok(None),
        }
    }

    /// Persists one delta in one transaction and returns once it is on disk: see the module
    /// documentation. The result is the stored state [`Durable::apply`] gives in memory.
    pub fn apply(&self, delta: &DurableDelta) -> Result<(), StoreError> {
        guarded(&self.path, || self.apply_inner(delta))
    }

    fn apply_inner(&self, delta: &DurableDelta) -> Result<(), StoreError> {
        let mut tx = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
        // The ordering rule rests on this: `commit` returns only once the delta is on disk.
        tx.set_durability(Durability::Immediate);
        {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
            for (k, s) in &delta.keys {
                keys.insert(&**k, s.encode().as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            let mut oplog = tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
            let mut appended: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for e in &delta.appended {
                oplog
                    .insert((e.origin.0, e.seq), e.encode().as_slice())
                    .map_err(|e| self.db_err(e))?;
                appended.entry(e.origin.0).or_default().push(e.seq);
            }
            // The replica's log restarts an origin (drops everything older) when an appended
            // entry does not follow the last one retained: its frontier jumped. The stored log
            // keeps the same shape, each origin's last gap-free run, as `Durable::apply` does.
            // The stored log is gap-free before the delta, so only the appended entries and the
            // one stored just below them need looking at.
            for (origin, seqs) in appended {
                let mut start = seqs[0];
                let mut restarted = false;
                for pair in seqs.windows(2) {
                    if pair[0] + 1 != pair[1] {
                        start = pair[1];
                        restarted = true;
                    }
                }
                if !restarted {
                    let below = start.checked_sub(1).filter(|&s| s > 0);
                    restarted = match below {
                        Some(s) => oplog
                            .get((origin, s))
                            .map_err(|e| self.db_err(e))?
                            .is_none(),
                        None => false,
                    };
                }
                if restarted {
                    oplog
                        .retain_in((origin, 0)..(origin, start), |_, _| false)
                        .map_err(|e| self.db_err(e))?;
                }
            }
            for &(origin, first) in &delta.truncated {
                oplog
                    .retain_in((origin.0, 0)..(origin.0, first), |_, _| false)
                    .map_err(|e| self.db_err(e))?;
            }
            let mut strong = tx.open_table(STRONG).map_err(|e| self.db_err(e))?;
            for (k, r) in &delta.strong {
                strong
                    .insert(&**k, encode_record(r).as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
            meta.insert(META_KEY, encode_meta(&delta.meta).as_slice())
                .map_err(|e| self.db_err(e))?;
        }
        tx.commit().map_err(|e| self.db_err(e))
    }

    fn decode_meta(&self, bytes: &[u8]) -> Result<DurableMeta, StoreError> {
        let image = Durable::decode(bytes).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            what: "the meta".to_string(),
            source,
        })?;
        if !image.keys.is_empty() || !image.oplog.is_empty() || !image.strong.is_empty() {
            return Err(self.inconsistent("the meta carries keys or entries".to_string()));
        }
        Ok(image.meta)
    }

    fn db(&self) -> Result<&Database, StoreError> {
        // Only `drop` takes the database, and nothing runs after it.
        self.db.as_ref().ok_or_else(|| StoreError::Panicked {
            path: self.path.clone(),
            message: "the database was closed".to_string(),
        })
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_error(&self.path, e)
    }

    fn inconsistent(&self, what: String) -> StoreError {
        StoreError::Inconsistent {
            path: self.path.clone(),
            what,
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // redb may also assert while closing a malformed file (it finishes deferred frees then);
        // a store that is being dropped has nothing left to report, so the panic is contained
        // and said on stderr.
        if let Some(db) = self.db.take()
            && let Err(e) = guarded(&self.path, || {
                drop(db);
                Ok(())
            })
        {
            eprintln!("{e}");
        }
    }
}

/// Runs `f`, turning a panic inside redb into [`StoreError::Panicked`]. The store is not used
/// again after one (the node stops), so whatever state the panic left behind is never read.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Err(StoreError::Panicked {
            path: path.to_path_buf(),
            message,
        })
    })
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

/// The meta as a [`Durable::encode`] image without keys or entries (see the module docs).
fn encode_meta(meta: &DurableMeta) -> Vec<u8> {
    Durable {
        meta: meta.clone(),
        keys: BTreeMap::new(),
        oplog: Vec::new(),
        strong: BTreeMap::new(),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maelstrom::{Face, FaceConfig, Workload};
    use converge_core::HlcTimestamp;
    use converge_core::consensus::{Ballot, KeyRecord};
    use converge_core::replica::KeyKind;
    use serde_json::{Value as Json, json};

    /// Three faces on virtual time, each persisting to a store and to an in-memory `Durable`
    /// fed the same deltas, with some peer messages to n2 dropped under load so that
    /// retransmission and anti-entropy have to repair it (with a capped oplog, its logs then
    /// restart origins whose frontier jumped).
    struct Cluster {
        faces: Vec<Face>,
        stores: Vec<Store>,
        mem: Vec<Durable>,
        dirs: Vec<tempfile::TempDir>,
        config: FaceConfig,
        now: u64,
        sent: u64,
        /// Drop every third peer message to n2 while set.
        lossy: bool,
        deltas: usize,
    }

    impl Cluster {
        fn new(config: FaceConfig) -> Cluster {
            let n = 3;
            let dirs: Vec<_> = (0..n)
                .map(|_| tempfile::tempdir().expect("a scratch dir"))
                .collect();
            let mut c = Cluster {
                faces: (0..n).map(|_| Face::new(config.clone(), None)).collect(),
                stores: dirs
                    .iter()
                    .map(|d| Store::open(d.path()).expect("a fresh store opens"))
                    .collect(),
                mem: vec![Durable::new(); n],
                dirs,
                config,
                now: 1_000,
                sent: 0,
                lossy: true,
                deltas: 0,
            };
            for i in 0..n {
                c.input(i, &init_line(i, n));
            }
            c
        }

        /// One input to node `i`, then its outputs in the order of the rule: persist, then
        /// deliver.
        fn input(&mut self, i: usize, line: &str) {
            self.faces[i].handle_line(self.now, line);
            self.outputs(i);
        }

        fn outputs(&mut self, i: usize) {
            if let Some(d) = self.faces[i].take_durable() {
                self.stores[i]
                    .apply(&d)
                    .expect("the store persists the delta");
                self.mem[i].apply(d);
                self.deltas += 1;
            }
            let lines: Vec<String> = std::iter::from_fn(|| self.faces[i].poll_line()).collect();
            for line in lines {
                let msg: Json = serde_json::from_str(&line).expect("the face writes JSON");
                let Some(to) = msg["dest"]
                    .as_str()
                    .and_then(|d| d.strip_prefix('n'))
                    .and_then(|k| k.parse::<usize>().ok())
                else {
                    continue;
                };
                self.sent += 1;
                if self.lossy && to == 2 && self.sent.is_multiple_of(3) {
                    continue;
                }
                self.input(to, &line);
            }
        }

        /// Advances virtual time by `ms`, firing due timers.
        fn tick(&mut self, ms: u64) {
            self.now += ms;
            for i in 0..self.faces.len() {
                if self.faces[i]
                    .poll_timeout()
                    .is_some_and(|at| at <= self.now)
                {
                    self.faces[i].handle_timeout(self.now);
                    self.outputs(i);
                }
            }
        }

        /// Reopens every store from disk and checks it holds what `Durable::apply` holds.
        fn check_reopened(&mut self) {
            // redb locks its file: the old handles close first, as a crashed process's would.
            self.stores.clear();
            for i in 0..self.faces.len() {
                self.stores
                    .push(Store::open(self.dirs[i].path()).expect("the store reopens"));
                let loaded = self.stores[i].load().expect("the store loads");
                assert_eq!(loaded.as_ref(), Some(&self.mem[i]), "node n{i}");
            }
        }
    }

    fn init_line(i: usize, n: usize) -> String {
        let ids: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
        json!({"src": "c0", "dest": format!("n{i}"), "body":
            {"type": "init", "msg_id": 1, "node_id": format!("n{i}"), "node_ids": ids}})
        .to_string()
    }

    fn read(face: &mut Face, now: u64) -> Json {
        face.handle_line(
            now,
            &json!({"src": "c9", "dest": "n0", "body": {"type": "read", "msg_id": 99}}).to_string(),
        );
        let _ = face.take_durable();
        let line = face.poll_line().expect("a read is answered at once");
        let msg: Json = serde_json::from_str(&line).expect("JSON");
        msg["body"]["value"].clone()
    }

    fn run_cluster(config: FaceConfig) {
        let mut c = Cluster::new(config);
        for step in 0..240_i64 {
            let i = (step % 3) as usize;
            let add = json!({"src": "c1", "dest": format!("n{i}"), "body":
                {"type": "add", "msg_id": 10 + step, "element": step}});
            c.input(i, &add.to_string());
            c.tick(7);
            if step % 80 == 79 {
                c.check_reopened();
            }
        }
        c.lossy = false;
        for _ in 0..2_000 {
            c.tick(10);
        }
        c.check_reopened();
        let appended: usize = c.mem.iter().map(|d| d.oplog.len()).sum();
        assert!(c.deltas > 240, "deltas: {}, oplog: {appended}", c.deltas);
        // A replica recovered from what the store loaded reads what the live one reads.
        for i in 0..c.faces.len() {
            let loaded = c.stores[i].load().expect("the store loads");
            let mut recovered = Face::new(c.config.clone(), loaded);
            recovered.handle_line(c.now, &init_line(i, c.faces.len()));
            assert!(recovered.replica().is_some(), "n{i} recovers");
            let _ = recovered.poll_line();
            let now = c.now;
            let want = read(&mut c.faces[i], now);
            assert_eq!(read(&mut recovered, now), want, "n{i}");
            assert_eq!(want.as_array().map(Vec::len), Some(240), "n{i} converged");
        }
    }

    #[test]
    fn stored_deltas_reload_as_durable_apply_builds_them() {
        let mut config = FaceConfig::new(Workload::OrSet);
        config.track_durable = true;
        run_cluster(config);
    }

    #[test]
    fn stored_deltas_reload_as_durable_apply_builds_them_with_a_capped_oplog() {
        let mut config = FaceConfig::new(Workload::OrSet);
        config.track_durable = true;
        config.oplog_entries_max = Some(4);
        run_cluster(config);
    }

    fn entry(origin: u64, seq: u64) -> Entry {
        Entry {
            origin: ReplicaId(origin),
            seq,
            stamp: HlcTimestamp::new(seq, 0),
            deps: Default::default(),
            key: b"k".to_vec().into_boxed_slice(),
            delta: KeyState::empty(KeyKind::Counter),
            redacted: false,
        }
    }

    #[test]
    fn restarted_and_truncated_logs_keep_the_shape_durable_apply_gives() {
        let dir = tempfile::tempdir().expect("a scratch dir");
        let store = Store::open(dir.path()).expect("opens");
        assert_eq!(
            store.load().expect("loads"),
            None,
            "a fresh store holds nothing"
        );
        let deltas = [
            (vec![(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)], vec![]),
            // Origin 1's frontier jumped: its log restarts at 7.
            (vec![(1, 7)], vec![]),
            // Origin 2 continues, then jumps inside one delta: only 8, 9 remain.
            (vec![(2, 3), (2, 4), (2, 8), (2, 9)], vec![]),
            // Truncation after appending: 7 goes, 8 stays.
            (vec![(1, 8)], vec![(1, 8)]),
            // Everything of origin 2 acknowledged; origin 3 starts above 1.
            (vec![(3, 5), (3, 6)], vec![(2, 10)]),
        ];
        let mut mem = Durable::new();
        for (step, (appended, truncated)) in deltas.into_iter().enumerate() {
            let delta = DurableDelta {
                meta: DurableMeta {
                    last_seq: step as u64,
                    ..DurableMeta::default()
                },
                keys: vec![(
                    format!("key{step}").into_bytes().into_boxed_slice(),
                    KeyState::empty(KeyKind::Set),
                )],
                appended: appended.iter().map(|&(o, s)| entry(o, s)).collect(),
                truncated: truncated.iter().map(|&(o, s)| (ReplicaId(o), s)).collect(),
                // One consensus record per step, and the first one's replaced at the last.
                strong: vec![(
                    format!("seat{}", step % 4).into_bytes().into_boxed_slice(),
                    promised(step as u64 + 1),
                )],
            };
            store.apply(&delta).expect("persists");
            mem.apply(delta);
            assert_eq!(
                store.load().expect("loads"),
                Some(mem.clone()),
                "step {step}"
            );
        }
        let seqs: Vec<(u64, u64)> = mem.oplog.iter().map(|e| (e.origin.0, e.seq)).collect();
        assert_eq!(seqs, [(1, 8), (3, 5), (3, 6)]);
        drop(store);
        let store = Store::open(dir.path()).expect("reopens");
        assert_eq!(store.load().expect("loads"), Some(mem));
    }

    /// A store holding one key, one entry and a meta, closed.
    fn filled() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a scratch dir");
        let store = Store::open(dir.path()).expect("opens");
        store
            .apply(&DurableDelta {
                meta: DurableMeta::default(),
                keys: vec![(
                    b"k".to_vec().into_boxed_slice(),
                    KeyState::empty(KeyKind::Set),
                )],
                appended: vec![entry(1, 1)],
                truncated: vec![],
                strong: vec![(b"seat".to_vec().into_boxed_slice(), promised(3))],
            })
            .expect("persists");
        dir
    }

    /// A consensus record that promised round `round` and decided nothing.
    fn promised(round: u64) -> KeyRecord {
        KeyRecord {
            promised: Ballot {
                round,
                proposer: ReplicaId(1),
            },
            ..KeyRecord::default()
        }
    }

    /// Overwrites one stored value behind the store's back.
    fn tamper(dir: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
        let db = Database::create(dir.join(FILE_NAME)).expect("redb opens the file");
        let tx = db.begin_write().expect("a write transaction");
        f(&tx);
        tx.commit().expect("commits");
    }

    fn load_error(dir: &Path) -> String {
        let store = Store::open(dir).expect("the file itself is sound");
        match store.load() {
            Ok(d) => panic!("a corrupt store loaded: {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn corrupt_values_are_errors_that_name_them() {
        let garbage: &[u8] = &[0xff, 0x00, 0x13];
        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(KEYS).expect("table");
            t.insert(b"k".as_slice(), garbage).expect("insert");
        });
        let e = load_error(dir.path());
        assert!(e.contains("corrupt") && e.contains("key \"k\""), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(OPLOG).expect("table");
            t.insert((1, 1), garbage).expect("insert");
        });
        let e = load_error(dir.path());
        assert!(e.contains("oplog entry (n1, 1)"), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(STRONG).expect("table");
            t.insert(b"seat".as_slice(), garbage).expect("insert");
        });
        let e = load_error(dir.path());
        assert!(e.contains("consensus record of key \"seat\""), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(OPLOG).expect("table");
            t.insert((2, 1), entry(1, 1).encode().as_slice())
                .expect("insert");
        });
        let e = load_error(dir.path());
        assert!(e.contains("inconsistent") && e.contains("(n2, 1)"), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(META).expect("table");
            t.insert(META_KEY, garbage).expect("insert");
        });
        let e = load_error(dir.path());
        assert!(e.contains("the meta does not decode"), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(META).expect("table");
            t.remove(META_KEY).expect("remove");
        });
        let e = load_error(dir.path());
        assert!(e.contains("no meta"), "{e}");

        let dir = filled();
        tamper(dir.path(), |tx| {
            let mut t = tx.open_table(META).expect("table");
            t.insert(FORMAT_KEY, [FORMAT + 1].as_slice())
                .expect("insert");
        });
        let e = Store::open(dir.path())
            .err()
            .expect("another layout is refused")
            .to_string();
        assert!(e.contains("layout version"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("a scratch dir");
        std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 64 << 10]).expect("write");
        let e = Store::open(dir.path())
            .err()
            .expect("garbage is refused")
            .to_string();
        assert!(e.contains(FILE_NAME), "{e}");

        // A real store cut short, as a disk that lost its tail would leave it.
        let dir = filled();
        let path = dir.path().join(FILE_NAME);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 3]).expect("write");
        match Store::open(dir.path()) {
            // redb may repair a short file from its last good commit; whatever it recovers must
            // load or fail with an error, not panic.
            Ok(store) => drop(store.load()),
            Err(e) => assert!(e.to_string().contains("corrupt"), "{e}"),
        }
    }
}
