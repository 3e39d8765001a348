//! The node's disk: a replica's [`Durable`] state in a redb database, written one
//! [`DurableDelta`] at a time.
//!
//! # Layout
//! One database file, `<dir>/durable.redb`, with five tables:
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
//!   `"format"` → this layout's version, `"incarnation"` → the nonce drawn when the store
//!   was created, and `"accepted"` (present once every peer accepted that incarnation). The meta is stored as a [`Durable::encode`] image with no
//!   keys and no entries, so it reuses the core's versioned, validated codec rather than a second
//!   encoding of the same clocks that could drift from it.
//! - `peers`: a member's replica id → the incarnation of it this node first accepted (see
//!   [`Store::record_peer`]).
//!
//! # Checksums
//! Every stored value but the one-byte layout version is sealed: a CRC-32 of the table's name,
//! the record's key bytes and the value, then the value. [`Store::load`] checks each seal before
//! decoding, so a flipped bit in a value (a counter component that decodes fine but wrongly) or
//! in a key (which would file the value under another key, or drop it) is refused with the
//! table and key named, never merged into the replica and spread to every region. The version
//! byte is not sealed: it is read before anything else, and a flipped one is an unknown layout,
//! refused all the same. A store of layout 1 (no seals) is migrated once, when it is opened,
//! with a log line: its values are sealed as they are, which is no weaker than before.
//!
//! # Identity
//! A store records, when it is created, a random nonce: the **incarnation** of the replica that
//! runs on it. [`Store::created`] says whether this open created the file, and
//! [`Store::accepted`] whether every peer has accepted the incarnation since (the node marks it
//! with [`Store::mark_accepted`]): a store that was created but never accepted stays new across
//! restarts, so a node refused by a peer cannot slip past the check by simply being started
//! again on the store its refused start created. A store never
//! recreates itself over an existing file: a zero-length `durable.redb` (a disk that lost it)
//! is refused, as is any file redb does not open. Peers compare the incarnation with the one
//! they first accepted (see `server::peer`), so a region that lost its disk cannot come back
//! under its old identity and reuse sequence numbers its peers already hold.
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
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Key bytes → encoded [`KeyState`].
const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keys");
/// `(origin, seq)` → encoded [`Entry`].
const OPLOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("oplog");
/// Key bytes → encoded consensus record.
const STRONG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("strong");
/// `"meta"` → the meta as a [`Durable::encode`] image; `"format"` → [`FORMAT`];
/// `"incarnation"` → the nonce, 8 bytes big-endian.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// A member's replica id → the incarnation first accepted from it, 8 bytes big-endian.
const PEERS: TableDefinition<u64, &[u8]> = TableDefinition::new("peers");
const META_KEY: &str = "meta";
const FORMAT_KEY: &str = "format";
const INCARNATION_KEY: &str = "incarnation";
const ACCEPTED_KEY: &str = "accepted";
/// The version of this layout. A later layout bumps it, and an older binary then refuses the
/// file instead of misreading it. 2 sealed every value (see § checksums) and added the
/// incarnation and the `peers` table.
const FORMAT: u8 = 2;
/// The layout without seals, migrated on open.
const FORMAT_UNSEALED: u8 = 1;
/// Bytes of a seal in front of every stored value.
const SEAL_BYTES: usize = 4;
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
    /// A stored record's seal does not match its table, key and value: the disk changed it.
    #[error(
        "the store {path} is corrupt: the record {key} of table `{table}` fails its checksum \
         (the disk changed it; restore the data directory from a backup or rebuild this region)"
    )]
    Checksum {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The record's key, printed.
        key: String,
    },
    /// The database file exists but is empty: the disk lost it. It is never recreated in place,
    /// since the node would come back under its old identity with its history forgotten.
    #[error(
        "the store {path} is an empty file: the disk lost it or the volume is not mounted; \
         restore it, or remove the file to start this region from nothing"
    )]
    EmptyFile {
        /// The database file.
        path: PathBuf,
    },
    /// The OS gave no randomness for a new store's incarnation.
    #[error("cannot draw the incarnation of the new store {path}: {message}")]
    Random {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

/// A replica's durable state on disk: see the module documentation.
pub struct Store {
    /// Always `Some` until `drop`, which takes it to drop it under `guarded` (see there).
    db: Option<Database>,
    path: PathBuf,
    /// The nonce drawn when the store was created (never 0).
    incarnation: u64,
    /// Whether this open created the store.
    created: bool,
    /// Whether every peer accepted the incarnation (see [`Store::accepted`]).
    accepted: bool,
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
        // redb would format a zero-length file as a new database: refuse it instead (see
        // `StoreError::EmptyFile`).
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::EmptyFile { path });
        }
        // The v3 file format is what redb 3 reads natively; creating files in it now means the
        // move to redb 3 (once the workspace's rust-version allows it) needs no upgrade step.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_file_format_v3(true)
            .create(&path)
            .map_err(|e| db_error(&path, e))?;
        let mut store = Store {
            db: Some(db),
            path,
            incarnation: 0,
            created: false,
            accepted: false,
        };
        store.init_tables()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The nonce drawn when this store was created: the incarnation of the replica on it.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether this very open created the store (no earlier life of the replica is on it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether every peer has accepted this store's incarnation ([`Store::mark_accepted`]), as
    /// it was when the store was opened. `false` for a new store until then, across restarts.
    pub fn accepted(&self) -> bool {
        self.accepted
    }

    /// Records, durably, that every peer accepted this store's incarnation.
    pub fn mark_accepted(&self) -> Result<(), StoreError> {
        guarded(&self.path, || {
            let mut tx = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
            tx.set_durability(Durability::Immediate);
            {
                let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
                let sealed = seal("meta", ACCEPTED_KEY.as_bytes(), &[1]);
                meta.insert(ACCEPTED_KEY, sealed.as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            tx.commit().map_err(|e| self.db_err(e))
        })
    }

    /// Creates the tables, the layout version and the incarnation if this is a new file;
    /// migrates a file of the unsealed layout; refuses a file written in another layout.
    fn init_tables(&mut self) -> Result<(), StoreError> {
        let mut tx = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
        tx.set_durability(Durability::Immediate);
        let format = {
            tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
            tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
            // Created here for a database written before consensus existed, too.
            tx.open_table(STRONG).map_err(|e| self.db_err(e))?;
            tx.open_table(PEERS).map_err(|e| self.db_err(e))?;
            let meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
            meta.get(FORMAT_KEY)
                .map_err(|e| self.db_err(e))?
                .map(|v| v.value().to_vec())
        };
        let (incarnation, created, accepted) = match format.as_deref() {
            None => (self.new_incarnation(&tx)?, true, false),
            Some([FORMAT]) => {
                let meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
                let sealed = meta
                    .get(INCARNATION_KEY)
                    .map_err(|e| self.db_err(e))?
                    .map(|v| v.value().to_vec())
                    .ok_or_else(|| self.inconsistent("no incarnation is stored".to_string()))?;
                let bytes = self.unseal("meta", INCARNATION_KEY.as_bytes(), &sealed, || {
                    format!("{INCARNATION_KEY:?}")
                })?;
                let bytes: [u8; 8] = bytes
                    .try_into()
                    .map_err(|_| self.inconsistent("the incarnation is not 8 bytes".to_string()))?;
                let accepted = match meta.get(ACCEPTED_KEY).map_err(|e| self.db_err(e))? {
                    Some(v) => {
                        let flag =
                            self.unseal("meta", ACCEPTED_KEY.as_bytes(), v.value(), || {
                                format!("{ACCEPTED_KEY:?}")
                            })?;
                        flag == [1]
                    }
                    None => false,
                };
                (u64::from_be_bytes(bytes), false, accepted)
            }
            // A store of the old layout holds an earlier life: it is not new, and its peers,
            // which ran the old framing, know no incarnation of it yet.
            Some([FORMAT_UNSEALED]) => {
                self.migrate_unsealed(&tx)?;
                let incarnation = self.new_incarnation(&tx)?;
                let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
                let sealed = seal("meta", ACCEPTED_KEY.as_bytes(), &[1]);
                meta.insert(ACCEPTED_KEY, sealed.as_slice())
                    .map_err(|e| self.db_err(e))?;
                (incarnation, false, true)
            }
            Some(other) => {
                return Err(self.inconsistent(format!(
                    "layout version {other:?}, this build reads {FORMAT}"
                )));
            }
        };
        tx.commit().map_err(|e| self.db_err(e))?;
        self.incarnation = incarnation;
        self.created = created;
        self.accepted = accepted;
        Ok(())
    }

    /// Draws and records the incarnation of a new (or newly migrated) store, and the layout.
    fn new_incarnation(&self, tx: &WriteTransaction) -> Result<u64, StoreError> {
        // 0 means "no store" in a peer `Hello`, so it is never drawn.
        let incarnation = getrandom::u64()
            .map_err(|e| StoreError::Random {
                path: self.path.clone(),
                message: e.to_string(),
            })?
            .max(1);
        let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
        meta.insert(FORMAT_KEY, [FORMAT].as_slice())
            .map_err(|e| self.db_err(e))?;
        let sealed = seal(
            "meta",
            INCARNATION_KEY.as_bytes(),
            &incarnation.to_be_bytes(),
        );
        meta.insert(INCARNATION_KEY, sealed.as_slice())
            .map_err(|e| self.db_err(e))?;
        Ok(incarnation)
    }

    /// Seals every value of a layout-1 store in place (see § checksums). Runs in the open's
    /// transaction, so a crash leaves the store wholly in one layout or the other.
    fn migrate_unsealed(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let mut keys = tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map_err(|e| self.db_err(e))?
            .map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| self.db_err(e))?;
        let key_rows = rows.len();
        for (k, v) in rows {
            keys.insert(k.as_slice(), seal("keys", &k, &v).as_slice())
                .map_err(|e| self.db_err(e))?;
        }
        let mut oplog = tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
        let rows: Vec<((u64, u64), Vec<u8>)> = oplog
            .iter()
            .map_err(|e| self.db_err(e))?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| self.db_err(e))?;
        let entries = rows.len();
        for (k, v) in rows {
            oplog
                .insert(k, seal("oplog", &oplog_key(k), &v).as_slice())
                .map_err(|e| self.db_err(e))?;
        }
        let mut strong = tx.open_table(STRONG).map_err(|e| self.db_err(e))?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = strong
            .iter()
            .map_err(|e| self.db_err(e))?
            .map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| self.db_err(e))?;
        let records = rows.len();
        for (k, v) in rows {
            strong
                .insert(k.as_slice(), seal("strong", &k, &v).as_slice())
                .map_err(|e| self.db_err(e))?;
        }
        let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
        let old = meta
            .get(META_KEY)
            .map_err(|e| self.db_err(e))?
            .map(|v| v.value().to_vec());
        if let Some(v) = old {
            meta.insert(META_KEY, seal("meta", META_KEY.as_bytes(), &v).as_slice())
                .map_err(|e| self.db_err(e))?;
        }
        tracing::warn!(
            path = %self.path.display(),
            keys = key_rows,
            entries,
            records,
            "migrated the store from layout {FORMAT_UNSEALED} (no checksums) to {FORMAT}: \
             every stored value is now sealed"
        );
        Ok(())
    }

    /// The incarnation first accepted from each member (see [`Store::record_peer`]), every
    /// record's seal checked.
    pub fn peers(&self) -> Result<BTreeMap<u64, u64>, StoreError> {
        guarded(&self.path, || {
            let tx = self.db()?.begin_read().map_err(|e| self.db_err(e))?;
            let table = tx.open_table(PEERS).map_err(|e| self.db_err(e))?;
            let mut out = BTreeMap::new();
            for row in table.iter().map_err(|e| self.db_err(e))? {
                let (k, v) = row.map_err(|e| self.db_err(e))?;
                let id = k.value();
                let bytes =
                    self.unseal("peers", &id.to_be_bytes(), v.value(), || format!("n{id}"))?;
                let inc = <[u8; 8]>::try_from(bytes).map_err(|_| {
                    self.inconsistent(format!("the incarnation of n{id} is not 8 bytes"))
                })?;
                out.insert(id, u64::from_be_bytes(inc));
            }
            Ok(out)
        })
    }

    /// Records, durably, that `incarnation` is the life of member `id` this node accepted. The
    /// peer reader calls it once per member, before it admits the member's first link.
    pub fn record_peer(&self, id: u64, incarnation: u64) -> Result<(), StoreError> {
        guarded(&self.path, || {
            let mut tx = self.db()?.begin_write().map_err(|e| self.db_err(e))?;
            tx.set_durability(Durability::Immediate);
            {
                let mut table = tx.open_table(PEERS).map_err(|e| self.db_err(e))?;
                let sealed = seal("peers", &id.to_be_bytes(), &incarnation.to_be_bytes());
                table
                    .insert(id, sealed.as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            tx.commit().map_err(|e| self.db_err(e))
        })
    }

    /// The value under a record's seal, or [`StoreError::Checksum`] naming `table` and the key
    /// (`name` prints it).
    fn unseal<'a>(
        &self,
        table: &'static str,
        key: &[u8],
        stored: &'a [u8],
        name: impl FnOnce() -> String,
    ) -> Result<&'a [u8], StoreError> {
        match stored.split_at_checked(SEAL_BYTES) {
            Some((crc, value)) if crc == checksum(table, key, value).to_be_bytes() => Ok(value),
            _ => Err(StoreError::Checksum {
                path: self.path.clone(),
                table,
                key: name(),
            }),
        }
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
            Some(v) => {
                let bytes = self.unseal("meta", META_KEY.as_bytes(), v.value(), || {
                    format!("{META_KEY:?}")
                })?;
                Some(self.decode_meta(bytes)?)
            }
            None => None,
        };
        let keys_table = tx.open_table(KEYS).map_err(|e| self.db_err(e))?;
        let mut keys = BTreeMap::new();
        for row in keys_table.iter().map_err(|e| self.db_err(e))? {
            let (k, v) = row.map_err(|e| self.db_err(e))?;
            let key: Key = k.value().into();
            let bytes = self.unseal("keys", &key, v.value(), || printed(&key))?;
            let state = KeyState::decode(bytes).map_err(|source| StoreError::Corrupt {
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
            let bytes = self.unseal("oplog", &oplog_key((origin, seq)), v.value(), || {
                format!("(n{origin}, {seq})")
            })?;
            let entry = Entry::decode(bytes).map_err(|source| StoreError::Corrupt {
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
            let bytes = self.unseal("strong", &key, v.value(), || printed(&key))?;
            let record = decode_record(bytes).map_err(|source| StoreError::Corrupt {
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
                keys.insert(&**k, seal("keys", k, &s.encode()).as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            let mut oplog = tx.open_table(OPLOG).map_err(|e| self.db_err(e))?;
            let mut appended: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for e in &delta.appended {
                let key = (e.origin.0, e.seq);
                oplog
                    .insert(key, seal("oplog", &oplog_key(key), &e.encode()).as_slice())
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
                    .insert(&**k, seal("strong", k, &encode_record(r)).as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            let mut meta = tx.open_table(META).map_err(|e| self.db_err(e))?;
            let sealed = seal("meta", META_KEY.as_bytes(), &encode_meta(&delta.meta));
            meta.insert(META_KEY, sealed.as_slice())
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

/// The CRC-32 of a record: its table's name, its key bytes (length-prefixed, so a byte cannot
/// move between key and value unseen) and its value.
fn checksum(table: &str, key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(table.as_bytes());
    h.update(&[0]);
    h.update(&(key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// A value as stored: its seal, then the value (see § checksums).
fn seal(table: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_BYTES + value.len());
    out.extend_from_slice(&checksum(table, key, value).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The bytes an oplog record's seal covers for its `(origin, seq)` key.
fn oplog_key((origin, seq): (u64, u64)) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&origin.to_be_bytes());
    out[8..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// A key as error messages print it.
fn printed(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
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
mod tests;
