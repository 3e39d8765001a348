//! The store's tests: deltas reloaded as `Durable::apply` builds them, and every way a stored
//! file can be wrong (values that do not decode, seals that do not match, an empty file, the
//! unsealed layout) refused with a message naming it. They live beside the store because they
//! open its private tables to tamper with them.

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
        t.insert(b"k".as_slice(), seal("keys", b"k", garbage).as_slice())
            .expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("corrupt") && e.contains("key \"k\""), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(OPLOG).expect("table");
        t.insert(
            (1, 1),
            seal("oplog", &oplog_key((1, 1)), garbage).as_slice(),
        )
        .expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("oplog entry (n1, 1)"), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(STRONG).expect("table");
        t.insert(
            b"seat".as_slice(),
            seal("strong", b"seat", garbage).as_slice(),
        )
        .expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("consensus record of key \"seat\""), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(OPLOG).expect("table");
        let sealed = seal("oplog", &oplog_key((2, 1)), &entry(1, 1).encode());
        t.insert((2, 1), sealed.as_slice()).expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("inconsistent") && e.contains("(n2, 1)"), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(META).expect("table");
        t.insert(
            META_KEY,
            seal("meta", META_KEY.as_bytes(), garbage).as_slice(),
        )
        .expect("insert");
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

/// Flips bit 0 of the last byte of the value stored under `key` in `table`.
fn flip_value(dir: &Path, table: TableDefinition<&[u8], &[u8]>, key: &[u8]) {
    tamper(dir, |tx| {
        let mut t = tx.open_table(table).expect("table");
        let mut v = t.get(key).expect("get").expect("stored").value().to_vec();
        *v.last_mut().expect("a value") ^= 1;
        t.insert(key, v.as_slice()).expect("insert");
    });
}

#[test]
fn a_flipped_bit_in_any_record_is_refused_naming_its_table_and_key() {
    // A counter whose component would decode fine with a bit flipped: the seal catches it.
    let dir = tempfile::tempdir().expect("a scratch dir");
    let store = Store::open(dir.path()).expect("opens");
    let mut counter = converge_core::crdt::GCounter::new();
    counter.increment(ReplicaId(0), 1_000).expect("no overflow");
    store
        .apply(&DurableDelta {
            meta: DurableMeta::default(),
            keys: vec![(b"c".to_vec().into_boxed_slice(), KeyState::Counter(counter))],
            appended: vec![],
            truncated: vec![],
            strong: vec![],
        })
        .expect("persists");
    drop(store);
    flip_value(dir.path(), KEYS, b"c");
    let e = load_error(dir.path());
    assert!(
        e.contains("checksum") && e.contains("`keys`") && e.contains("\"c\""),
        "{e}"
    );

    let dir = filled();
    flip_value(dir.path(), STRONG, b"seat");
    let e = load_error(dir.path());
    assert!(e.contains("`strong`") && e.contains("\"seat\""), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(OPLOG).expect("table");
        let mut v = t
            .get((1, 1))
            .expect("get")
            .expect("stored")
            .value()
            .to_vec();
        v[SEAL_BYTES] ^= 0x80;
        t.insert((1, 1), v.as_slice()).expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("`oplog`") && e.contains("(n1, 1)"), "{e}");

    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(META).expect("table");
        let mut v = t
            .get(META_KEY)
            .expect("get")
            .expect("stored")
            .value()
            .to_vec();
        *v.last_mut().expect("a value") ^= 4;
        t.insert(META_KEY, v.as_slice()).expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("`meta`") && e.contains("\"meta\""), "{e}");

    // A flipped key byte: the value now sits under "j", and its seal names "k".
    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(KEYS).expect("table");
        let v = t
            .remove(b"k".as_slice())
            .expect("remove")
            .expect("stored")
            .value()
            .to_vec();
        t.insert(b"j".as_slice(), v.as_slice()).expect("insert");
    });
    let e = load_error(dir.path());
    assert!(e.contains("`keys`") && e.contains("\"j\""), "{e}");

    // The incarnation and the peers' records are sealed too.
    let dir = filled();
    Store::open(dir.path())
        .expect("opens")
        .record_peer(2, 77)
        .expect("records");
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(PEERS).expect("table");
        let mut v = t.get(2).expect("get").expect("stored").value().to_vec();
        v[SEAL_BYTES] ^= 1;
        t.insert(2, v.as_slice()).expect("insert");
    });
    let e = Store::open(dir.path())
        .expect("opens")
        .peers()
        .expect_err("refused")
        .to_string();
    assert!(e.contains("`peers`") && e.contains("n2"), "{e}");
    let dir = filled();
    tamper(dir.path(), |tx| {
        let mut t = tx.open_table(META).expect("table");
        let mut v = t
            .get(INCARNATION_KEY)
            .expect("get")
            .expect("stored")
            .value()
            .to_vec();
        v[SEAL_BYTES] ^= 1;
        t.insert(INCARNATION_KEY, v.as_slice()).expect("insert");
    });
    let e = Store::open(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("`meta`") && e.contains("incarnation"), "{e}");
}

#[test]
fn the_incarnation_is_drawn_once_and_kept() {
    let dir = filled();
    let first = Store::open(dir.path()).expect("opens");
    assert!(!first.created(), "filled() created it");
    let inc = first.incarnation();
    assert_ne!(inc, 0);
    drop(first);
    let again = Store::open(dir.path()).expect("reopens");
    assert_eq!(again.incarnation(), inc);
    again.record_peer(1, 9).expect("records");
    drop(again);
    assert_eq!(
        Store::open(dir.path())
            .expect("reopens")
            .peers()
            .expect("peers"),
        [(1, 9)].into()
    );
    // Another store is another life.
    let other = tempfile::tempdir().expect("a scratch dir");
    let fresh = Store::open(other.path()).expect("opens");
    assert!(fresh.created());
    assert_ne!(fresh.incarnation(), inc);
    // It stays new, reopened, until it is marked accepted.
    drop(fresh);
    let reopened = Store::open(other.path()).expect("reopens");
    assert!(!reopened.created() && !reopened.accepted());
    reopened.mark_accepted().expect("marks");
    drop(reopened);
    assert!(Store::open(other.path()).expect("reopens").accepted());
}

#[test]
fn a_zero_length_file_is_refused_not_recreated() {
    let dir = filled();
    std::fs::write(dir.path().join(FILE_NAME), b"").expect("truncate");
    let e = Store::open(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("empty file") && e.contains(FILE_NAME), "{e}");
    assert_eq!(
        std::fs::metadata(dir.path().join(FILE_NAME))
            .map(|m| m.len())
            .ok(),
        Some(0),
        "the file is left as it was"
    );
}

#[test]
fn a_store_of_the_unsealed_layout_is_migrated_once() {
    let dir = filled();
    let want = Store::open(dir.path())
        .expect("opens")
        .load()
        .expect("loads");
    // Rewrite it as layout 1 wrote it: bare values, no incarnation.
    tamper(dir.path(), |tx| {
        let mut keys = tx.open_table(KEYS).expect("table");
        let v = keys
            .get(b"k".as_slice())
            .expect("get")
            .expect("stored")
            .value()[SEAL_BYTES..]
            .to_vec();
        keys.insert(b"k".as_slice(), v.as_slice()).expect("insert");
        let mut oplog = tx.open_table(OPLOG).expect("table");
        let v = oplog.get((1, 1)).expect("get").expect("stored").value()[SEAL_BYTES..].to_vec();
        oplog.insert((1, 1), v.as_slice()).expect("insert");
        let mut strong = tx.open_table(STRONG).expect("table");
        let v = strong
            .get(b"seat".as_slice())
            .expect("get")
            .expect("stored")
            .value()[SEAL_BYTES..]
            .to_vec();
        strong
            .insert(b"seat".as_slice(), v.as_slice())
            .expect("insert");
        let mut meta = tx.open_table(META).expect("table");
        let v = meta.get(META_KEY).expect("get").expect("stored").value()[SEAL_BYTES..].to_vec();
        meta.insert(META_KEY, v.as_slice()).expect("insert");
        meta.insert(FORMAT_KEY, [FORMAT_UNSEALED].as_slice())
            .expect("insert");
        meta.remove(INCARNATION_KEY).expect("remove");
    });
    let store = Store::open(dir.path()).expect("migrates");
    assert!(!store.created(), "a migrated store holds an earlier life");
    assert!(store.accepted(), "and is not new");
    assert_eq!(store.load().expect("loads"), want);
    let inc = store.incarnation();
    drop(store);
    // Migrated once: the next open finds layout 2 and the same incarnation.
    let store = Store::open(dir.path()).expect("reopens");
    assert_eq!(store.incarnation(), inc);
    assert_eq!(store.load().expect("loads"), want);
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
