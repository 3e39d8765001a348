use super::super::state::testing;
use super::*;
use crate::sync::lock;
use rustls::pki_types::pem::PemObject as _;

fn bad_inputs(node: &Node) -> Vec<(&'static str, u64)> {
    lock(&node.counters.bad_inputs)
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect()
}

#[test]
fn the_backoff_doubles_up_to_its_cap() {
    let mut b = BACKOFF_MIN;
    let mut seen = vec![b];
    while b < BACKOFF_MAX {
        b = next_backoff(b);
        seen.push(b);
    }
    assert_eq!(
        seen.iter().map(Duration::as_millis).collect::<Vec<_>>(),
        [50, 100, 200, 400, 800, 1600, 2000]
    );
    assert_eq!(next_backoff(BACKOFF_MAX), BACKOFF_MAX);
}

fn hello(sender: u64, fingerprint: u64, incarnation: u64) -> Result<Frame, String> {
    Ok(Frame::Hello {
        sender,
        fingerprint,
        incarnation,
        extensions: Vec::new(),
    })
}

/// The id of the admitted link, `None` if refused with an answer, or the error.
async fn admitted(node: &Node, frame: Result<Frame, String>) -> Result<Option<u64>, String> {
    admit(node, frame, None)
        .await
        .map(|(l, _)| l.map(|l| l.spec.id))
}

#[tokio::test]
async fn admit_takes_a_hello_from_a_configured_peer_of_this_cluster() {
    let (node, _rx) = testing::node(testing::config());
    let fp = node.fingerprint;
    let (link, answer) = admit(&node, hello(2, fp, 0), None).await.expect("admitted");
    assert_eq!(link.map(|l| l.spec.id), Some(2));
    assert_eq!(answer, frame::encode_welcome());
    assert!(bad_inputs(&node).is_empty());
    let refused = [
        (hello(1, fp ^ 1, 0), "peer_fingerprint"),
        (hello(7, fp, 0), "peer_unknown"),
        (
            Ok(Frame::Data {
                stamp: 0,
                payload: vec![],
            }),
            "peer_no_hello",
        ),
        (Ok(Frame::Welcome), "peer_no_hello"),
        (Err("timed out".to_string()), "peer_bad_hello"),
    ];
    for (frame, kind) in refused {
        let (node, _rx) = testing::node(testing::config());
        assert!(admitted(&node, frame).await.is_err(), "{kind}");
        assert_eq!(bad_inputs(&node), [(kind, 1)]);
    }
    // A cut link is refused without counting a bad input: the peer did nothing wrong.
    node.links[&1].cut.store(true, Ordering::Relaxed);
    assert_eq!(
        admitted(&node, hello(1, fp, 0)).await,
        Err("link to 1 is cut".to_string())
    );
    assert!(bad_inputs(&node).is_empty());
}

#[test]
fn a_certificate_must_name_the_member_the_hello_claims() {
    let (node, _rx) = testing::node(testing::config());
    let ca = crate::tls::Ca::generate("test").unwrap();
    let pem = ca.issue_member(1, "eu-west", &[]).unwrap().cert_pem;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(check_certificate(&node, &node.links[&1], &der), Ok(()));
    assert!(bad_inputs(&node).is_empty());
    // Member 1's certificate on a link whose Hello claims member 2.
    assert!(check_certificate(&node, &node.links[&2], &der).is_err());
    assert_eq!(bad_inputs(&node), [("peer_cert_mismatch", 1)]);
}

#[tokio::test]
async fn a_peer_is_refused_when_it_comes_back_as_another_incarnation() {
    let dir = tempfile::tempdir().expect("a scratch dir");
    let store = Arc::new(crate::store::Store::open(dir.path()).expect("a store"));
    let (node, _rx) = testing::node(testing::config());
    let node = node.with_identity(super::super::state::Identity::new(
        store.incarnation(),
        false,
        Default::default(),
        Some(store.clone()),
    ));
    let fp = node.fingerprint;
    // The first life of 1 is accepted and recorded on disk; the same life again too.
    assert_eq!(admitted(&node, hello(1, fp, 0xaa)).await, Ok(Some(1)));
    assert_eq!(admitted(&node, hello(1, fp, 0xaa)).await, Ok(Some(1)));
    assert_eq!(store.peers().expect("peers"), [(1, 0xaa)].into());
    // Another life is answered `Refused` naming the one known, and counted.
    let (link, answer) = admit(&node, hello(1, fp, 0xbb), None)
        .await
        .expect("answered");
    assert!(link.is_none());
    assert_eq!(answer, frame::encode_refused(0xaa));
    assert_eq!(bad_inputs(&node), [("peer_incarnation", 1)]);
    // A node without a store (incarnation 0) is neither checked nor recorded.
    assert_eq!(admitted(&node, hello(2, fp, 0)).await, Ok(Some(2)));
    assert_eq!(store.peers().expect("peers"), [(1, 0xaa)].into());
}

#[test]
fn a_fresh_node_serves_once_every_peer_welcomed_it() {
    let (node, _rx) = testing::node(testing::config());
    let node = node.with_identity(super::super::state::Identity::new(
        5,
        true,
        Default::default(),
        None,
    ));
    assert!(!node.serving());
    node.links[&1].welcomed.store(true, Ordering::Relaxed);
    assert!(!node.serving(), "one peer of two is not enough");
    node.links[&2].welcomed.store(true, Ordering::Relaxed);
    assert!(node.serving());
    // Latched: a link going down later does not stop the node serving.
    node.links[&2].welcomed.store(false, Ordering::Relaxed);
    assert!(node.serving());
}

#[tokio::test]
async fn a_new_connection_beyond_the_cap_closes_the_oldest_waiting_one() {
    let (node, _rx) = testing::node(testing::config());
    let node = Arc::new(node);
    let held: Vec<PreHello> = (0..PRE_HELLO_MAX).map(|_| PreHello::enter(&node)).collect();
    assert!(bad_inputs(&node).is_empty());
    let newest = PreHello::enter(&node);
    assert_eq!(lock(&node.pre_hello).len(), PRE_HELLO_MAX);
    assert_eq!(bad_inputs(&node), [("peer_pre_hello_evicted", 1)]);
    // The oldest is told to close; the second oldest is not.
    let told = |p: &PreHello| {
        let signal = p.evicted.clone();
        async move {
            tokio::time::timeout(Duration::from_millis(50), signal.notified())
                .await
                .is_ok()
        }
    };
    assert!(told(&held[0]).await);
    assert!(!told(&held[1]).await);
    drop(held);
    drop(newest);
    assert!(lock(&node.pre_hello).is_empty(), "every place is freed");
}

#[tokio::test]
async fn a_dripped_frame_is_cut_off_by_its_arrival_bound() {
    let (mut tx, mut rx) = tokio::io::duplex(64);
    // A data frame of 100 bytes announced, then one byte every 1.5 s.
    let dripper = tokio::spawn(async move {
        let _ = tx.write_all(&[0, 0, 0, 100]).await;
        for _ in 0..20 {
            if tx.write_all(&[2]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
    });
    let start = Instant::now();
    let got = read_frame(&mut rx, &mut Vec::new(), 1024, PEER_IDLE_TIMEOUT).await;
    let took = start.elapsed();
    assert_eq!(got, Err("frame arrived too slowly".to_string()));
    // Each byte came well within the idle timeout: only the frame's own bound stopped it.
    assert!(
        took >= FRAME_GRACE && took < FRAME_GRACE + Duration::from_secs(2),
        "{took:?}"
    );
    dripper.abort();
}

#[test]
fn a_frame_may_take_its_grace_plus_its_length_at_the_minimum_rate() {
    assert_eq!(frame_budget(&[0, 0]), FRAME_GRACE);
    assert_eq!(
        frame_budget(&[0, 0x10, 0, 0]),
        FRAME_GRACE + Duration::from_secs(1)
    );
}

#[tokio::test]
async fn read_frame_reads_frames_across_reads_until_the_peer_closes() {
    let mut wire = frame::encode_hello(3, 4, 6);
    wire.extend(frame::encode_data(5, b"payload").unwrap());
    let mut stream: &[u8] = &wire;
    let mut buf = Vec::new();
    let second = Duration::from_secs(1);
    assert_eq!(
        read_frame(&mut stream, &mut buf, 1024, second).await,
        Ok(Frame::Hello {
            sender: 3,
            fingerprint: 4,
            incarnation: 6,
            extensions: Vec::new(),
        })
    );
    assert_eq!(
        read_frame(&mut stream, &mut buf, 1024, second).await,
        Ok(Frame::Data {
            stamp: 5,
            payload: b"payload".to_vec()
        })
    );
    assert_eq!(
        read_frame(&mut stream, &mut buf, 1024, second).await,
        Err("closed by peer".to_string())
    );
    // A frame over the maximum is refused from its header alone.
    let mut stream: &[u8] = &[0, 0, 4, 0];
    let got = read_frame(&mut stream, &mut Vec::new(), 1023, second).await;
    assert!(
        got.as_ref()
            .is_err_and(|e| e.starts_with("bad frame (frame_too_long)")),
        "{got:?}"
    );
    // Before the hello, the maximum is a hello's size: a 16 MiB announcement is refused
    // from its header, before any of its body.
    let mut stream: &[u8] = &[1, 0, 0, 0];
    let got = read_frame(&mut stream, &mut Vec::new(), HELLO_FRAME_BYTES, second).await;
    assert!(
        got.as_ref()
            .is_err_and(|e| e.starts_with("bad frame (frame_too_long)")),
        "{got:?}"
    );
}

#[test]
fn a_data_stamp_gives_the_lag_and_moves_the_clock() {
    let (node, _rx) = testing::node(testing::config());
    let link = &node.links[&1];
    let now = 1_000_000;
    observe_stamp(&node, link, Stamp::new(now - 30, 2), now);
    assert_eq!(link.lag_ms.load(Ordering::Relaxed), 30);
    assert_eq!(node.clock.last(), Stamp::new(now - 30, 2));
    // A stamp from beyond the drift bound: counted, lag zero, the clock untouched.
    let ahead = Stamp::new(now + node.max_drift_ms + 1, 0);
    observe_stamp(&node, link, ahead, now);
    assert_eq!(link.lag_ms.load(Ordering::Relaxed), 0);
    assert_eq!(node.clock.last(), Stamp::new(now - 30, 2));
    assert_eq!(link.frames_in.load(Ordering::Relaxed), 2);
    assert_eq!(node.counters.clock_drift.load(Ordering::Relaxed), 1);
}
