use super::*;

fn flags() -> Flags {
    Flags {
        id: Some(0),
        region: Some("us-east".into()),
        client_listen: Some("127.0.0.1:6380".parse().unwrap()),
        peer_listen: Some("127.0.0.1:7380".parse().unwrap()),
        peers: vec!["1=eu-west@127.0.0.1:7381".parse().unwrap()],
        insecure_peers: true,
        ..Flags::default()
    }
}

#[test]
fn peer_links_need_tls_or_an_explicit_insecure_flag() {
    let no_security = NodeConfig::resolve(Flags {
        insecure_peers: false,
        ..flags()
    });
    let message = no_security.unwrap_err().to_string();
    for option in ["--tls-ca", "--tls-cert", "--tls-key", "--insecure-peers"] {
        assert!(message.contains(option), "{message}");
    }
    assert_eq!(
        NodeConfig::resolve(flags()).unwrap().peer_security,
        PeerSecurity::Insecure
    );
    let tls = TlsFiles {
        ca: Some("ca.pem".into()),
        cert: Some("n.pem".into()),
        key: Some("n.key".into()),
        ..TlsFiles::default()
    };
    let c = NodeConfig::resolve(Flags {
        insecure_peers: false,
        tls: tls.clone(),
        ..flags()
    })
    .unwrap();
    assert!(matches!(c.peer_security, PeerSecurity::Tls { .. }));
    assert_eq!(c.client_tls, None);
    // Both at once, a partial set, a half client-port pair, a region no DNS name can hold.
    let refused = [
        Flags {
            tls: tls.clone(),
            ..flags()
        },
        Flags {
            insecure_peers: false,
            tls: TlsFiles {
                key: None,
                ..tls.clone()
            },
            ..flags()
        },
        Flags {
            tls: TlsFiles {
                client_cert: Some("c.pem".into()),
                ..TlsFiles::default()
            },
            ..flags()
        },
        Flags {
            insecure_peers: false,
            tls: tls.clone(),
            region: Some("US East".into()),
            ..flags()
        },
    ];
    for f in refused {
        let e = NodeConfig::resolve(f.clone());
        assert!(matches!(e, Err(ConfigError::Bad { .. })), "{f:?}: {e:?}");
    }
    // The file's [tls] table and insecure_peers are read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\nclient_cert = \"c.pem\"\nclient_key = \"c.key\"\n",
    )
    .unwrap();
    let c = NodeConfig::resolve(Flags {
        config: Some(path.clone()),
        insecure_peers: false,
        ..flags()
    })
    .unwrap();
    assert!(matches!(c.peer_security, PeerSecurity::Tls { .. }));
    assert_eq!(c.client_tls.map(|t| t.key), Some(PathBuf::from("c.key")));
    std::fs::write(&path, "insecure_peers = true\n").unwrap();
    let c = NodeConfig::resolve(Flags {
        config: Some(path),
        insecure_peers: false,
        ..flags()
    })
    .unwrap();
    assert_eq!(c.peer_security, PeerSecurity::Insecure);
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        "id = 5\nregion = \"apac\"\nconsistency = \"LOCAL_QUORUM\"\n[limits]\nconnections_max = 3\n",
    )
    .unwrap();
    let c = NodeConfig::resolve(Flags {
        config: Some(path),
        ..flags()
    })
    .unwrap();
    assert_eq!((c.id, c.region.as_str()), (0, "us-east"));
    assert_eq!(c.consistency, Consistency::LocalQuorum);
    assert_eq!(c.limits.connections_max, 3);
    assert_eq!(c.members(), vec![(0, "us-east"), (1, "eu-west")]);
}

#[test]
fn residency_pins_come_from_the_file_and_enter_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    let write = |text: &str| std::fs::write(&path, text).unwrap();
    let resolve = || {
        NodeConfig::resolve(Flags {
            config: Some(path.clone()),
            ..flags()
        })
    };
    let plain = resolve_without_file();
    write("[[residency]]\nprefix = \"eu:\"\nregions = [\"eu-west\"]\n");
    let pinned = resolve().unwrap();
    assert_eq!(pinned.residency.len(), 1);
    let rc = pinned.replica_config();
    assert!(rc.may_hold(ReplicaId(1), b"eu:anna"));
    assert!(!rc.may_hold(ReplicaId(0), b"eu:anna"));
    assert!(rc.may_hold(ReplicaId(0), b"us:bob"));
    // Members that disagree on the pins refuse each other's links.
    assert_ne!(pinned.fingerprint(), plain.fingerprint());
    write("[[residency]]\nprefix = \"eu:\"\nregions = [\"mars\"]\n");
    let e = resolve();
    assert!(
        matches!(
            &e,
            Err(ConfigError::Bad {
                field: "residency",
                ..
            })
        ),
        "{e:?}"
    );
    write(
        "[[residency]]\nprefix = \"eu:\"\nregions = [\"eu-west\"]\n\
         [[residency]]\nprefix = \"eu:x\"\nregions = [\"us-east\"]\n",
    );
    let e = resolve();
    assert!(
        matches!(
            &e,
            Err(ConfigError::Bad {
                field: "residency",
                ..
            })
        ),
        "{e:?}"
    );
}

fn resolve_without_file() -> NodeConfig {
    NodeConfig::resolve(flags()).unwrap()
}

#[test]
fn bad_configs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "id = 1\nbogus = 2\n").unwrap();
    let e = NodeConfig::resolve(Flags {
        config: Some(path),
        ..flags()
    });
    assert!(matches!(e, Err(ConfigError::Parse { .. })), "{e:?}");
    let e = NodeConfig::resolve(Flags {
        id: Some(1),
        ..flags()
    });
    assert!(
        matches!(e, Err(ConfigError::Bad { field: "peers", .. })),
        "{e:?}"
    );
    let e = NodeConfig::resolve(Flags {
        region: None,
        ..flags()
    });
    assert!(matches!(e, Err(ConfigError::Missing("region"))), "{e:?}");
    assert!("1=a@nowhere".parse::<PeerSpec>().is_err());
}

#[test]
fn passwords_come_from_flags_env_or_file_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    let admin = dir.path().join("admin.password");
    std::fs::write(&admin, "from-admin-file\n").unwrap();
    std::fs::write(
        &path,
        format!(
            "[auth]\npassword = \"inline\"\nadmin_password_file = {:?}\n",
            admin.display().to_string()
        ),
    )
    .unwrap();
    let from_file = NodeConfig::resolve(Flags {
        config: Some(path.clone()),
        ..flags()
    })
    .unwrap();
    assert!(from_file.passwords.client.unwrap().matches(b"inline"));
    assert!(
        from_file
            .passwords
            .admin
            .unwrap()
            .matches(b"from-admin-file")
    );
    let flag_file = dir.path().join("flag.password");
    std::fs::write(&flag_file, "from-flag-file\r\n").unwrap();
    let from_flags = NodeConfig::resolve(Flags {
        config: Some(path),
        password: Some("from-env".into()),
        admin_password: Some("admin-env".into()),
        admin_password_file: Some(flag_file),
        ..flags()
    })
    .unwrap();
    assert!(from_flags.passwords.client.unwrap().matches(b"from-env"));
    assert!(
        from_flags
            .passwords
            .admin
            .unwrap()
            .matches(b"from-flag-file")
    );
    assert_eq!(
        NodeConfig::resolve(flags()).unwrap().passwords,
        Passwords::default()
    );
    let e = NodeConfig::resolve(Flags {
        password: Some(String::new()),
        ..flags()
    });
    assert!(
        matches!(
            e,
            Err(ConfigError::Bad {
                field: "password",
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn the_fingerprint_depends_on_members_only() {
    let a = NodeConfig::resolve(flags()).unwrap();
    let mut b_flags = flags();
    b_flags.id = Some(1);
    b_flags.region = Some("eu-west".into());
    b_flags.peers = vec!["0=us-east@127.0.0.1:7380".parse().unwrap()];
    let b = NodeConfig::resolve(b_flags).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let mut c_flags = flags();
    c_flags.peers = vec!["1=apac@127.0.0.1:7381".parse().unwrap()];
    assert_ne!(
        a.fingerprint(),
        NodeConfig::resolve(c_flags).unwrap().fingerprint()
    );
}
