//! The TCP node's TLS, against a real node in this process: a process posing as a region is
//! refused on the peer port — in plaintext, with a certificate of another CA, with a valid
//! certificate of one member whose `Hello` claims another — and nothing it sends reaches the
//! replica, while a peer with its own certificate is admitted; and the client port, with TLS on,
//! serves a TLS client and refuses plaintext. The dialer, too, sends nothing to a listener on a
//! peer's address whose certificate names another member.
//!
//! What each attempt did is read from the node itself: `/metrics` (`bad_inputs_total` by kind,
//! `peer_frames_total` in) and `CLUSTER.LINKS` (links admitted).

use converge_node::config::{Flags, NodeConfig, TlsFiles};
use converge_node::frame;
use converge_node::tls::{Ca, Issued};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The runtime a test's body runs on (plain `#[test]`s, so `docs/spec.md` can name them).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A free loopback port (bound, then released for the node to take).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// The node under test: replica 0 (`us-east`) with peers 1 (`eu-west`) and 2 (`apac`), whose
/// peer ports nothing listens on.
struct Target {
    peer: SocketAddr,
    client: SocketAddr,
    metrics: SocketAddr,
    fingerprint: u64,
}

async fn start(dir: &Path, ca: &Ca) -> Target {
    start_with_peer(dir, ca, free_port()).await
}

/// [`start`], with peer 1's peer port at `peer1`.
async fn start_with_peer(dir: &Path, ca: &Ca, peer1: SocketAddr) -> Target {
    let node = ca
        .issue_member(0, "us-east", &["localhost", "127.0.0.1"])
        .expect("issue");
    let flags = Flags {
        id: Some(0),
        region: Some("us-east".into()),
        peers: vec![
            format!("1=eu-west@{peer1}").parse().expect("peer"),
            format!("2=apac@{}", free_port()).parse().expect("peer"),
        ],
        client_listen: Some(free_port()),
        peer_listen: Some(free_port()),
        metrics_listen: Some(free_port()),
        tls: TlsFiles {
            ca: Some(write(dir, "ca.pem", ca.cert_pem())),
            cert: Some(write(dir, "node.pem", &node.cert_pem)),
            key: Some(write(dir, "node.key", &node.key_pem)),
            client_cert: Some(dir.join("node.pem")),
            client_key: Some(dir.join("node.key")),
        },
        ..Flags::default()
    };
    let config = NodeConfig::resolve(flags).expect("config");
    let target = Target {
        peer: config.peer_listen,
        client: config.client_listen,
        metrics: config.metrics_listen.expect("metrics"),
        fingerprint: config.fingerprint(),
    };
    tokio::spawn(converge_node::server::run(config));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(target.metrics).await.is_err() {
        assert!(Instant::now() < deadline, "the node did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    target
}

/// A TLS client trusting `trust` (PEM) and presenting `identity`, if any.
fn connector(trust: &str, identity: Option<&Issued>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trust.as_bytes()).expect("ca"))
        .expect("root");
    #[allow(deprecated)] // the ring provider, as the node uses (see `converge_node::tls`)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Sends `bytes`, then reads until the node closes the link or `wait` passes: whether it closed.
async fn send_and_see_closed(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    bytes: &[u8],
    wait: Duration,
) -> bool {
    if s.write_all(bytes).await.is_err() || s.flush().await.is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// A `Hello` from `sender` with the cluster's fingerprint, then one data frame.
fn hello_and_data(sender: u64, fingerprint: u64) -> Vec<u8> {
    // Incarnation 0: a node without a store, which the acceptor neither checks nor records.
    let mut wire = frame::encode_hello(sender, fingerprint, 0);
    wire.extend(frame::encode_data(1, b"not a replica payload").expect("frame"));
    wire
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text)).await;
    text
}

/// The value of the metric line starting with `prefix` (0 if absent).
async fn metric(target: &Target, prefix: &str) -> u64 {
    let text = http_get(target.metrics, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The frames read from peers 1 and 2: what reached the replica.
async fn frames_in(target: &Target) -> u64 {
    let mut sum = 0;
    for p in 1..=2 {
        sum += metric(
            target,
            &format!("converge_peer_frames_total{{peer=\"{p}\",direction=\"in\"}}"),
        )
        .await;
    }
    sum
}

/// The count of bad inputs of `kind`, once it reaches `want` (or what it is after 5 s): the node
/// may close a refused link a moment before it counts it.
async fn bad(target: &Target, kind: &str, want: u64) -> u64 {
    let series = format!("converge_bad_inputs_total{{kind=\"{kind}\"}}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = metric(target, &series).await;
        if got >= want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_process_posing_as_a_region_is_refused_and_a_member_is_admitted() {
    runtime().block_on(a_process_posing_as_a_region_is_refused_and_a_member_is_admitted_body());
}

async fn a_process_posing_as_a_region_is_refused_and_a_member_is_admitted_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("cluster").expect("ca");
    let target = start(dir.path(), &ca).await;
    let name = || ServerName::try_from("r0.us-east.member.converge").expect("name");
    let wait = Duration::from_secs(3);

    // (a) Plaintext: a well-formed Hello of member 1, then a frame; the TLS handshake fails.
    let plain = TcpStream::connect(target.peer).await.expect("connect");
    assert!(send_and_see_closed(plain, &hello_and_data(1, target.fingerprint), wait).await);
    assert_eq!(bad(&target, "peer_tls_handshake", 1).await, 1);

    // (b) A certificate naming member 1, from another CA (the attacker trusts ours: it is
    // public). The node refuses the client certificate.
    let rogue_ca = Ca::generate("cluster").expect("ca");
    let rogue = rogue_ca.issue_member(1, "eu-west", &[]).expect("issue");
    let tls = connector(ca.cert_pem(), Some(&rogue));
    let tcp = TcpStream::connect(target.peer).await.expect("connect");
    // The client's side of a TLS 1.3 handshake may finish before the server has checked its
    // certificate; the refusal then comes as the link closing.
    if let Ok(s) = tls.connect(name(), tcp).await {
        assert!(send_and_see_closed(s, &hello_and_data(1, target.fingerprint), wait).await);
    }
    assert_eq!(bad(&target, "peer_tls_handshake", 2).await, 2);

    // (b') No client certificate at all.
    let tls = connector(ca.cert_pem(), None);
    let tcp = TcpStream::connect(target.peer).await.expect("connect");
    if let Ok(s) = tls.connect(name(), tcp).await {
        assert!(send_and_see_closed(s, &hello_and_data(1, target.fingerprint), wait).await);
    }
    assert_eq!(bad(&target, "peer_tls_handshake", 3).await, 3);

    // (c) A valid certificate of member 1 whose Hello claims member 2.
    let member1 = ca.issue_member(1, "eu-west", &[]).expect("issue");
    let tls = connector(ca.cert_pem(), Some(&member1));
    let tcp = TcpStream::connect(target.peer).await.expect("connect");
    let s = tls.connect(name(), tcp).await.expect("handshake");
    assert!(send_and_see_closed(s, &hello_and_data(2, target.fingerprint), wait).await);
    assert_eq!(bad(&target, "peer_cert_mismatch", 1).await, 1);
    // A certificate of member 2's id in another region than the configuration's is no better.
    let wrong_region = ca.issue_member(2, "eu-west", &[]).expect("issue");
    let tls = connector(ca.cert_pem(), Some(&wrong_region));
    let tcp = TcpStream::connect(target.peer).await.expect("connect");
    let s = tls.connect(name(), tcp).await.expect("handshake");
    assert!(send_and_see_closed(s, &hello_and_data(2, target.fingerprint), wait).await);
    assert_eq!(bad(&target, "peer_cert_mismatch", 2).await, 2);

    // Nothing any of them sent reached the replica.
    assert_eq!(frames_in(&target).await, 0);

    // (d) Member 1 with its own certificate: admitted, its frame read, the link kept open.
    let tls = connector(ca.cert_pem(), Some(&member1));
    let tcp = TcpStream::connect(target.peer).await.expect("connect");
    let s = tls.connect(name(), tcp).await.expect("handshake");
    assert!(
        !send_and_see_closed(
            s,
            &hello_and_data(1, target.fingerprint),
            Duration::from_secs(1)
        )
        .await
    );
    assert_eq!(frames_in(&target).await, 1);
    assert_eq!(bad(&target, "peer_cert_mismatch", 2).await, 2);
    assert_eq!(bad(&target, "peer_tls_handshake", 3).await, 3);
}

#[test]
fn the_client_port_speaks_tls_only() {
    runtime().block_on(the_client_port_speaks_tls_only_body());
}

async fn the_client_port_speaks_tls_only_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("cluster").expect("ca");
    let target = start(dir.path(), &ca).await;
    let tls = connector(ca.cert_pem(), None);
    let tcp = TcpStream::connect(target.client).await.expect("connect");
    let mut s = tls
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    s.write_all(b"*1\r\n$4\r\nPING\r\n").await.expect("write");
    s.flush().await.expect("flush");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(&buf[..n], b"+PONG\r\n");
    // A plaintext PING gets no RESP answer: the connection fails its handshake and closes.
    let mut plain = TcpStream::connect(target.client).await.expect("connect");
    plain.write_all(b"PING\r\n").await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
    assert!(!got.windows(4).any(|w| w == b"PONG"), "{got:?}");
    assert_eq!(bad(&target, "client_tls_handshake", 1).await, 1);
}

/// Serves TLS on `listener` as `identity`, requiring a client certificate of `ca`; the first
/// frame of the first connection that completes the handshake and sends one, if any within `wait`.
async fn impostor(
    listener: tokio::net::TcpListener,
    ca: &Ca,
    identity: &Issued,
    wait: Duration,
) -> Option<frame::Frame> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("ca"))
        .expect("root");
    #[allow(deprecated)] // the ring provider, as the node uses (see `converge_node::tls`)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key"),
        )
        .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let Ok(Ok((tcp, _))) = tokio::time::timeout_at(deadline, listener.accept()).await else {
            return None;
        };
        let Ok(Ok(mut s)) = tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await else {
            continue;
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Ok(Some((f, _))) = frame::decode(&buf, 1 << 20) {
                return Some(f);
            }
            match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                Ok(_) => break,
                Err(_) => return None,
            }
        }
    }
}

#[test]
fn the_dialer_sends_nothing_to_a_listener_that_is_not_the_member_it_dialed() {
    runtime()
        .block_on(the_dialer_sends_nothing_to_a_listener_that_is_not_the_member_it_dialed_body());
}

async fn the_dialer_sends_nothing_to_a_listener_that_is_not_the_member_it_dialed_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("cluster").expect("ca");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let peer1 = listener.local_addr().expect("addr");
    let target = start_with_peer(dir.path(), &ca, peer1).await;
    // On member 1's address, a listener with a valid certificate of member 2: node 0 refuses it
    // in the handshake, so no Hello (nor anything after it) reaches the listener.
    let member2 = ca.issue_member(2, "apac", &[]).expect("issue");
    let wait = Duration::from_secs(3);
    assert_eq!(impostor(listener, &ca, &member2, wait).await, None);
    // Member 1 itself on the same address: node 0's link comes up and starts with its Hello.
    let listener = tokio::net::TcpListener::bind(peer1).await.expect("rebind");
    let member1 = ca.issue_member(1, "eu-west", &[]).expect("issue");
    let got = impostor(listener, &ca, &member1, Duration::from_secs(10)).await;
    assert!(
        matches!(
            got,
            Some(frame::Frame::Hello { sender: 0, fingerprint, .. }) if fingerprint == target.fingerprint
        ),
        "{got:?}"
    );
}
