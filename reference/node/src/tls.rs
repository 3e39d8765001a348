//! TLS for the TCP node: mutual TLS on peer links, optional TLS on the client port, the naming
//! of members in certificates, and the generation of a cluster's certificates.
//!
//! # Member names
//! A node's certificate names its member — replica id and region — with a DNS subject
//! alternative name [`member_name`]: `r<id>.<region>.member.converge`, e.g.
//! `r2.apac.member.converge`. A region name must then be a DNS label (lowercase ASCII letters,
//! digits and `-`, 1 to 63 bytes, no `-` at either end); `NodeConfig` refuses other names when
//! peer TLS is on. The name is checked by webpki's own subject-name matcher
//! ([`cert_names_member`]), so this module parses no certificate itself.
//!
//! # Invariants
//! - Peer links: the dialer accepts only an acceptor whose certificate chains to the cluster CA
//!   and names the member it dialed (rustls' server-name check against [`member_name`]); the
//!   acceptor requires a client certificate chained to the CA ([`PeerTls::acceptor`]), and the
//!   peer code accepts the link only once the `Hello`'s sender is a configured member whose
//!   id *and* region the certificate names ([`cert_names_member`]).
//! - Only the ring provider is used, passed explicitly to every config: no process-wide default
//!   provider is installed or relied on.
//! - Loading refuses what it cannot use (a missing file, no certificate, no key, a key that does
//!   not match) with a typed [`TlsError`] at start-up, never at the first connection.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The domain under which every member is named.
pub const MEMBER_DOMAIN: &str = "member.converge";

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA certificate cannot verify peers.
    #[error("CA certificate: {0}")]
    Verifier(String),
    /// A region name cannot be part of a DNS name.
    #[error(
        "region {0:?} cannot name a member in a certificate: with peer TLS a region must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end)"
    )]
    Region(String),
    /// Generating a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The DNS name a member's certificate carries: `r<id>.<region>.member.converge`.
pub fn member_name(id: u64, region: &str) -> Result<String, TlsError> {
    let label_ok = !region.is_empty()
        && region.len() <= 63
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !label_ok {
        return Err(TlsError::Region(region.to_string()));
    }
    Ok(format!("r{id}.{region}.{MEMBER_DOMAIN}"))
}

/// Whether the end-entity certificate `cert` (DER, untrusted bytes) names member `id` of
/// `region`. Anything that does not parse, or names another member, is `false`. The chain to
/// the CA is the handshake's business; this is only the name.
pub fn cert_names_member(cert: &[u8], id: u64, region: &str) -> bool {
    let Ok(name) = member_name(id, region) else {
        return false;
    };
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    let der = CertificateDer::from(cert);
    let Ok(ee) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&server_name).is_ok()
}

/// The end-entity certificate a finished TLS server-side handshake received (DER), if any.
pub fn client_certificate(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
}

/// The TLS side of peer links: one acceptor (client certificates required) and one connector
/// (presenting this node's certificate), both trusting the cluster CA alone.
#[derive(Clone)]
pub struct PeerTls {
    /// Wraps accepted peer connections.
    pub acceptor: TlsAcceptor,
    /// Wraps dialed peer connections.
    pub connector: TlsConnector,
}

impl PeerTls {
    /// Loads the CA certificate, this node's certificate chain and its key (PEM files).
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TlsError> {
        let roots = Arc::new(load_roots(ca)?);
        let chain = load_chain(cert)?;
        let key = load_key(key)?;
        let provider = ring_provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        // The dialer never reads its link (links are one-way), so session tickets would only
        // sit unread in its socket.
        server.send_tls13_tickets = 0;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The name to dial member `id` of `region` by (what its certificate must name).
    pub fn dial_name(id: u64, region: &str) -> Result<ServerName<'static>, TlsError> {
        let name = member_name(id, region)?;
        ServerName::try_from(name).map_err(|_| TlsError::Region(region.to_string()))
    }
}

/// The client port's TLS: this certificate chain and key, no client certificate asked for
/// (what `redis-cli --tls --cacert ca.pem` expects).
pub fn client_port_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let provider = ring_provider();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_chain(cert)?, load_key(key)?)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The ring provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange;
/// the project takes ring deliberately (no aws-lc and its C/cmake build), and classical
/// X25519/ECDHE between regions is what this threat model asks for.
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e.to_string()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_chain(path)? {
        roots
            .add(cert)
            .map_err(|e| pem_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A certificate authority generated in memory: what `converge cluster up` (and the tests)
/// sign node certificates with. Its key never leaves memory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its private key, both PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8); keep it private.
    pub key_pem: String,
}

impl Ca {
    /// A fresh self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Ca, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let pem = params.self_signed(&key)?.pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    /// The CA certificate (PEM), what every node trusts.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for member `id` of `region`, usable on both ends of a peer link, naming
    /// also `extra` (DNS names or IP addresses, e.g. for the client port).
    pub fn issue_member(&self, id: u64, region: &str, extra: &[&str]) -> Result<Issued, TlsError> {
        let mut names = vec![member_name(id, region)?];
        names.extend(extra.iter().map(|s| s.to_string()));
        self.issue(names)
    }

    /// A certificate naming `names` (DNS names or IP addresses), for server and client use.
    pub fn issue(&self, names: Vec<String>) -> Result<Issued, TlsError> {
        let mut params = CertificateParams::new(names.clone())?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn member_names_are_dns_names_of_id_and_region() {
        assert_eq!(
            member_name(2, "apac").unwrap(),
            "r2.apac.member.converge".to_string()
        );
        for bad in ["", "US-East", "eu west", "-a", "a-", "a.b", &"x".repeat(64)] {
            assert!(member_name(1, bad).is_err(), "{bad:?}");
        }
        assert!(member_name(1, &"x".repeat(63)).is_ok());
    }

    #[test]
    fn a_certificate_names_its_member_only() {
        let ca = Ca::generate("test").unwrap();
        let cert = der(&ca
            .issue_member(1, "eu-west", &["localhost"])
            .unwrap()
            .cert_pem);
        assert!(cert_names_member(&cert, 1, "eu-west"));
        // Another id, another region, a prefix or suffix of either: not this member.
        assert!(!cert_names_member(&cert, 2, "eu-west"));
        assert!(!cert_names_member(&cert, 11, "eu-west"));
        assert!(!cert_names_member(&cert, 1, "apac"));
        assert!(!cert_names_member(&cert, 1, "eu"));
        assert!(!cert_names_member(&cert, 1, "EU-WEST"));
        // A certificate naming no member, and bytes that are no certificate.
        let other = der(&ca.issue(vec!["localhost".into()]).unwrap().cert_pem);
        assert!(!cert_names_member(&other, 1, "eu-west"));
        assert!(!cert_names_member(b"not a certificate", 1, "eu-west"));
        assert!(!cert_names_member(&[], 1, "eu-west"));
    }

    #[test]
    fn loading_refuses_missing_or_mismatched_material() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("test").unwrap();
        let a = ca.issue_member(0, "us-east", &[]).unwrap();
        let b = ca.issue_member(1, "eu-west", &[]).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca_p = write("ca.pem", ca.cert_pem());
        let cert_p = write("a.pem", &a.cert_pem);
        let key_p = write("a.key", &a.key_pem);
        let other_key = write("b.key", &b.key_pem);
        let empty = write("empty.pem", "");
        assert!(PeerTls::load(&ca_p, &cert_p, &key_p).is_ok());
        assert!(client_port_acceptor(&cert_p, &key_p).is_ok());
        let missing = dir.path().join("missing.pem");
        for (ca, cert, key) in [
            (&missing, &cert_p, &key_p),
            (&empty, &cert_p, &key_p),
            (&ca_p, &empty, &key_p),
            (&ca_p, &cert_p, &empty),
            (&ca_p, &cert_p, &other_key),
        ] {
            assert!(
                PeerTls::load(ca, cert, key).is_err(),
                "{ca:?} {cert:?} {key:?}"
            );
        }
    }
}
