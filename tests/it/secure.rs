//! Nothing leaked, and a production broker connection: no secret of any setting reaches
//! any output; a standby's redirect never downgrades the scheme nor carries credentials
//! elsewhere; a refused Redis login says so; passes publish over TLS (a RabbitMQ node of
//! the test's own with a TLS listener and certificates made here) and through a list of
//! brokers whose first is dead. Clusters here bind agents on
//! loopback ranges from `loopback_range`.

use crate::common::*;
use base64::Engine;
use mesos_sim::{Cluster, ClusterSpec, MasterFault, TlsIdentity};

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The broker lines of `check`'s report.
fn broker_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("broker "))
        .collect()
}

#[test]
fn passes_publish_over_tls_with_the_certificate_checked() {
    // The certificate names localhost only, so 127.0.0.1 fails the name check.
    let certificates = TestCertificates::new(&["localhost"], &[]);
    let node = Broker::private_tls(&certificates);
    let world = World::on_broker(fresh_spec(3, 2), &node);
    declare_queue(&node, &world.queue);
    let ca_file = certificates.ca_file();
    let over = |host: String| {
        world
            .collector()
            .env("STATS_COLLECTOR_RABBITMQ_HOST", host)
            .env("STATS_COLLECTOR_RABBITMQ_CA_FILE", &ca_file)
    };
    let tls_host = format!("amqps://localhost:{}", node.tls_port());

    let check = over(tls_host.clone()).arg("check").run();
    check.assert_success();
    let lines = broker_lines(&check);
    assert_eq!(lines.len(), 1, "{check}");
    assert!(
        lines[0].contains(&format!(
            "ok    {tls_host} vhost \"/\": logged in as guest; TLS 1."
        )) && lines[0].contains("certificate CN=localhost"),
        "{check}"
    );

    over(tls_host.clone()).arg("collect").run().assert_success();
    world.wait_for_new_samples();
    let run = over(tls_host.clone()).arg("collect").run();
    run.assert_success();
    assert!(run.stderr.contains("published=6"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("broker {tls_host}: logged in as guest")),
        "{run}"
    );
    assert_eq!(world.messages().len(), 6, "every document arrived over TLS");

    // A certificate signed by another CA: nothing is written, and the line says why.
    let stranger = TestCertificates::new(&["localhost"], &[]).ca_file();
    let untrusted = world
        .collector()
        .env("STATS_COLLECTOR_RABBITMQ_HOST", &tls_host)
        .env("STATS_COLLECTOR_RABBITMQ_CA_FILE", &stranger)
        .arg("collect")
        .run();
    untrusted.assert_status(69);
    assert!(
        untrusted.stderr.contains(&format!("broker {tls_host}"))
            && untrusted.stderr.contains("TLS handshake failed")
            && untrusted.stderr.contains("UnknownIssuer"),
        "{untrusted}"
    );
    // The system's roots do not know the test CA either.
    let system_roots = world
        .collector()
        .env("STATS_COLLECTOR_RABBITMQ_HOST", &tls_host)
        .arg("collect")
        .run();
    system_roots.assert_status(69);
    assert!(
        system_roots.stderr.contains("UnknownIssuer"),
        "{system_roots}"
    );
    // The right CA, but a name the certificate does not hold.
    let by_ip = over(format!("amqps://127.0.0.1:{}", node.tls_port()))
        .arg("collect")
        .run();
    by_ip.assert_status(69);
    assert!(
        by_ip
            .stderr
            .contains("certificate not valid for name \"127.0.0.1\""),
        "{by_ip}"
    );
    // A CA file that cannot be read is a configuration error, in `collect` as in `check`.
    let missing = std::env::temp_dir().join(unique_name("no-such-ca"));
    for command in ["collect", "check"] {
        let run = world
            .collector()
            .env("STATS_COLLECTOR_RABBITMQ_HOST", &tls_host)
            .env("STATS_COLLECTOR_RABBITMQ_CA_FILE", &missing)
            .arg(command)
            .run();
        run.assert_status(2);
        assert!(
            run.stderr.contains("cannot read the CA file")
                || run.stdout.contains("cannot read the CA file"),
            "{run}"
        );
    }
    assert!(world.messages().is_empty());
    assert!(!world.redis_exists(&format!("{}lock", world.prefix)));
    for file in [ca_file, stranger] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn a_host_list_whose_first_broker_is_dead_delivers_through_the_second() {
    let certificates = TestCertificates::new(&["localhost"], &["127.0.0.1".parse().expect("IP")]);
    let node = Broker::private_tls(&certificates);
    let world = World::on_broker(fresh_spec(3, 2), &node);
    declare_queue(&node, &world.queue);
    let ca_file = certificates.ca_file();
    let dead = format!("[::1]:{}", free_port());
    let tls_host = format!("amqps://127.0.0.1:{}", node.tls_port());
    let hosts = format!("{dead}, {tls_host}");
    let with_list = || {
        world
            .collector()
            .env("STATS_COLLECTOR_RABBITMQ_HOST", &hosts)
            .env("STATS_COLLECTOR_RABBITMQ_CA_FILE", &ca_file)
    };

    let check = with_list().arg("check").run();
    check.assert_success();
    let lines = broker_lines(&check);
    assert_eq!(lines.len(), 2, "one line per broker: {check}");
    assert!(
        lines[0].contains(&format!("FAIL  {dead}")) && lines[0].contains("cannot connect"),
        "{check}"
    );
    assert!(lines[1].contains(&format!("ok    {tls_host}")), "{check}");

    with_list().arg("collect").run().assert_success();
    world.wait_for_new_samples();
    let run = with_list().arg("collect").run();
    run.assert_success();
    assert!(run.stderr.contains(&format!("broker {dead}")), "{run}");
    assert!(
        run.stderr
            .contains(&format!("broker {tls_host}: logged in as guest")),
        "{run}"
    );
    assert_eq!(world.messages().len(), 6, "{run}");

    // Both dead: each is named with its reason, and the pass stops before any write.
    let both = world
        .collector()
        .env(
            "STATS_COLLECTOR_RABBITMQ_HOST",
            format!("{dead},127.0.0.1:{}", free_port()),
        )
        .arg("collect")
        .run();
    both.assert_status(69);
    assert!(
        both.stderr.contains("no broker accepted the login") && both.stderr.contains(&dead),
        "{both}"
    );
    let _ = std::fs::remove_file(ca_file);
}

#[test]
fn a_redirect_never_changes_the_scheme_nor_keeps_the_location_path() {
    let (principal, secret) = ("asgard", "redirect-s3cret");
    let credentials = Some((principal.to_string(), secret.to_string()));
    let certificates = TestCertificates::new(&["localhost"], &["127.0.0.1".parse().expect("IP")]);
    let https = Cluster::start(ClusterSpec {
        standby_masters: 1,
        credentials: credentials.clone(),
        tls: Some(TlsIdentity {
            cert_chain_pem: certificates.cert_pem.clone(),
            key_pem: certificates.key_pem.clone(),
        }),
        ..fresh_spec(0, 1)
    })
    .expect("the https cluster starts");
    // The plain-http "leader" a hostile or misconfigured standby points at.
    let elsewhere = Cluster::start(ClusterSpec {
        credentials,
        ..fresh_spec(0, 1)
    })
    .expect("the http cluster starts");
    let redis = RedisServer::start();
    let ca_file = certificates.ca_file();
    let standby = https.standby_urls()[0].clone();
    let run = || {
        collector()
            .envs(collector_env(
                std::slice::from_ref(&standby),
                &redis,
                &Broker::shared(),
                "unused",
                &unique_key_prefix(),
            ))
            .env("STATS_COLLECTOR_MESOS_PRINCIPAL", principal)
            .env("STATS_COLLECTOR_MESOS_SECRET", secret)
            .env("STATS_COLLECTOR_MESOS_CA_FILE", &ca_file)
            .arg("check")
            .run()
    };
    let expected = format!("Basic {}", base64(&format!("{principal}:{secret}")));

    let target = elsewhere.leader_url();
    https.set_master_fault(0, MasterFault::Redirect(format!("{target}/master/slaves")));
    let downgrade = run();
    downgrade.assert_status(69);
    assert!(
        downgrade.stderr.contains(" WARN ")
            && downgrade.stderr.contains("changes the scheme from https"),
        "{downgrade}"
    );
    assert_eq!(elsewhere.master_requests_served(0), 0, "{downgrade}");
    assert_eq!(elsewhere.last_master_auth_header(0), None);

    // Same scheme, any path: only the host and port are taken, and credentials follow.
    let leader = https.leader_url();
    let authority = leader.trim_start_matches("https:");
    https.set_master_fault(
        0,
        MasterFault::Redirect(format!("{authority}/elsewhere?x=1")),
    );
    let followed = run();
    assert!(
        followed
            .stdout
            .contains(&format!("not leading; leader {leader}")),
        "{followed}"
    );
    assert_eq!(
        https.last_master_auth_header(1).as_deref(),
        Some(expected.as_str())
    );
    let _ = std::fs::remove_file(ca_file);
}

#[test]
fn a_refused_redis_login_says_so() {
    let world = World::start(fresh_spec(1, 1));
    let redis = RedisServer::with_password("right-password");
    let port = redis.port();
    for (url, word) in [
        (
            format!("redis://:wrong-password@127.0.0.1:{port}/0"),
            "authentication failed",
        ),
        (
            format!("redis://127.0.0.1:{port}/0"),
            "authentication failed",
        ),
    ] {
        for command in ["collect", "check"] {
            let run = world
                .collector()
                .env("STATS_COLLECTOR_REDIS_URL", &url)
                .arg(command)
                .run();
            run.assert_status(69);
            let out = format!("{}{}", run.stdout, run.stderr);
            assert!(
                out.contains(word) && out.contains("STATS_COLLECTOR_REDIS_URL"),
                "{run}"
            );
            assert!(!out.contains("timed out"), "{run}");
            assert!(!out.contains("wrong-password"), "{run}");
        }
    }
}

/// A database the server does not have: Redis's own words, not a refused connection.
#[test]
fn a_database_redis_refuses_is_named_in_its_own_words() {
    let world = World::start(fresh_spec(1, 1));
    let url = format!("redis://127.0.0.1:{}/99", world.redis.port());
    for command in ["collect", "check"] {
        let run = world
            .collector()
            .env("STATS_COLLECTOR_REDIS_URL", &url)
            .arg(command)
            .run();
        run.assert_status(69);
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(
            out.contains("Redis refused the URL's database (DB index is out of range)"),
            "{run}"
        );
        assert!(!out.contains("connection refused"), "{run}");
    }
}

/// Every secret-bearing setting, one at a time and all valid together, through every
/// command, both log formats, at the most verbose level: neither the secret nor its
/// base64 form (as in a Basic header) shows anywhere.
#[test]
fn no_secret_reaches_any_output() {
    const SECRET: &str = "Zq9sEcReT";
    let principal = "asgard";
    let mut world = World::start(ClusterSpec {
        standby_masters: 1,
        credentials: Some((principal.into(), SECRET.into())),
        ..fresh_spec(2, 2)
    });
    world.redis = RedisServer::with_password(SECRET);
    let leader = world.cluster.leader_url();
    let authority = leader.trim_start_matches("http://");
    let redis_port = world.redis.port();
    let broker = world.broker.clone();
    let scratch = std::env::temp_dir().join(unique_name("asgard-secret-files"));
    std::fs::create_dir_all(&scratch).expect("create a folder for secret files");
    let secret_file = |content: &str| {
        let path = scratch.join(unique_name("secret"));
        std::fs::write(&path, content).expect("write a secret file");
        path.display().to_string()
    };
    let forms = [
        SECRET.to_string(),
        base64(SECRET),
        base64(&format!("{principal}:{SECRET}")),
        base64(&format!(":{SECRET}")),
    ];
    // (case, exit codes of collect, collect --dry-run and check, the settings it changes);
    // a dry run does without Redis and the broker.
    let cases: Vec<SecretCase> = vec![
        ("every secret valid", (0, 0, 0), vec![]),
        (
            "a master URL with credentials",
            (2, 2, 2),
            vec![(
                "HOLLOWMAN_MESOS_ADDRESS",
                format!("http://{principal}:{SECRET}@{authority}"),
            )],
        ),
        (
            "a second master URL with credentials",
            (2, 2, 2),
            vec![(
                "HOLLOWMAN_MESOS_ADDRESS_0",
                format!("https://{principal}:{SECRET}@{authority}"),
            )],
        ),
        (
            "a master IP with credentials",
            (2, 2, 2),
            vec![
                ("HOLLOWMAN_MESOS_ADDRESS", String::new()),
                ("HOLLOWMAN_MESOS_ADDRESS_0", String::new()),
                (
                    "STATS_COLLECTOR_MESOS_MASTER_IP",
                    format!("{principal}:{SECRET}@127.0.0.1"),
                ),
            ],
        ),
        (
            "a wrong Mesos secret",
            (69, 69, 69),
            vec![("STATS_COLLECTOR_MESOS_SECRET", format!("{SECRET}x"))],
        ),
        (
            "a Redis password holding a slash",
            (2, 2, 2),
            vec![(
                "STATS_COLLECTOR_REDIS_URL",
                format!("redis://:a/{SECRET}@127.0.0.1:{redis_port}/0"),
            )],
        ),
        (
            "a wrong Redis password",
            (69, 0, 69),
            vec![(
                "STATS_COLLECTOR_REDIS_URL",
                format!("redis://:{SECRET}x@127.0.0.1:{redis_port}/0"),
            )],
        ),
        (
            "a Redis password in the query",
            (69, 0, 69),
            vec![(
                "STATS_COLLECTOR_REDIS_URL",
                format!("redis://127.0.0.1:{redis_port}/0?password={SECRET}"),
            )],
        ),
        (
            "a broker URL with credentials",
            (2, 2, 2),
            vec![(
                "STATS_COLLECTOR_RABBITMQ_HOST",
                format!("amqp://guest:{SECRET}@{broker}/"),
            )],
        ),
        (
            "a broker host with a secret for a port",
            (2, 2, 2),
            vec![(
                "STATS_COLLECTOR_RABBITMQ_HOST",
                format!("127.0.0.1:{SECRET}"),
            )],
        ),
        (
            "a wrong broker password",
            (69, 0, 69),
            vec![("STATS_COLLECTOR_RABBITMQ_PWD", SECRET.to_string())],
        ),
        // The file forms: the secret only in the file (an empty value unsets a variable).
        (
            "the Mesos secret in a file",
            (0, 0, 0),
            vec![
                ("STATS_COLLECTOR_MESOS_SECRET", String::new()),
                (
                    "STATS_COLLECTOR_MESOS_SECRET_FILE",
                    secret_file(&format!("{SECRET}\n")),
                ),
            ],
        ),
        (
            "the Redis URL in a file",
            (0, 0, 0),
            vec![
                ("STATS_COLLECTOR_REDIS_URL", String::new()),
                (
                    "STATS_COLLECTOR_REDIS_URL_FILE",
                    secret_file(&format!("redis://:{SECRET}@127.0.0.1:{redis_port}/0\r\n")),
                ),
            ],
        ),
        (
            "a wrong broker password in a file",
            (69, 0, 69),
            vec![
                ("STATS_COLLECTOR_RABBITMQ_PWD", String::new()),
                ("STATS_COLLECTOR_RABBITMQ_PWD_FILE", secret_file(SECRET)),
            ],
        ),
        (
            "a wrong Mesos secret in a file",
            (69, 69, 69),
            vec![
                ("STATS_COLLECTOR_MESOS_SECRET", String::new()),
                (
                    "STATS_COLLECTOR_MESOS_SECRET_FILE",
                    secret_file(&format!("{SECRET}x\n")),
                ),
            ],
        ),
        (
            "a Redis URL file holding no URL",
            (2, 2, 2),
            vec![
                ("STATS_COLLECTOR_REDIS_URL", String::new()),
                ("STATS_COLLECTOR_REDIS_URL_FILE", secret_file(SECRET)),
            ],
        ),
        (
            "a Redis URL file whose password holds a slash",
            (2, 2, 2),
            vec![
                ("STATS_COLLECTOR_REDIS_URL", String::new()),
                (
                    "STATS_COLLECTOR_REDIS_URL_FILE",
                    secret_file(&format!("redis://:a/{SECRET}@127.0.0.1:{redis_port}/0")),
                ),
            ],
        ),
        (
            "the Mesos secret as a value and a file",
            (2, 2, 2),
            vec![("STATS_COLLECTOR_MESOS_SECRET_FILE", secret_file(SECRET))],
        ),
        (
            "a Pushgateway URL with credentials that refuses",
            (0, 0, 69),
            vec![(
                "STATS_COLLECTOR_PUSHGATEWAY",
                format!("http://{principal}:{SECRET}@127.0.0.1:{}/", free_port()),
            )],
        ),
    ];
    // The standby names the leader with credentials of its own in every case.
    world.cluster.set_master_fault(
        0,
        MasterFault::Redirect(format!("//{principal}:{SECRET}@{authority}/master/slaves")),
    );
    let base = || {
        world
            .collector()
            .env("STATS_COLLECTOR_MESOS_PRINCIPAL", principal)
            .env("STATS_COLLECTOR_MESOS_SECRET", SECRET)
    };
    assert_no_secret_in_any_output(base, &cases, &forms);
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn secret_files_that_cannot_be_used_are_named_and_never_shown() {
    const SECRET: &str = "F1le-s3cret";
    let world = World::start(fresh_spec(1, 1));
    let scratch = std::env::temp_dir().join(unique_name("asgard-secret-files"));
    std::fs::create_dir_all(&scratch).expect("create a folder for secret files");
    let missing = scratch.join("no-such-file");
    let holding = |name: &str, content: &[u8]| {
        let path = scratch.join(name);
        std::fs::write(&path, content).expect("write a secret file");
        path
    };
    let empty = holding("empty", b"\n");
    let not_text = holding("not-text", &[b"\xff\xfe", SECRET.as_bytes()].concat());
    let too_large = holding("too-large", SECRET.repeat(10_000).as_bytes());
    let good = holding("good", format!("{SECRET}\n").as_bytes());
    for (variable, value_variable) in [
        (
            "STATS_COLLECTOR_MESOS_SECRET_FILE",
            "STATS_COLLECTOR_MESOS_SECRET",
        ),
        (
            "STATS_COLLECTOR_RABBITMQ_PWD_FILE",
            "STATS_COLLECTOR_RABBITMQ_PWD",
        ),
        (
            "STATS_COLLECTOR_REDIS_URL_FILE",
            "STATS_COLLECTOR_REDIS_URL",
        ),
    ] {
        // The Mesos secret is read only beside a principal.
        let base = || {
            let collector = world.collector();
            if variable.contains("MESOS") {
                collector.env("STATS_COLLECTOR_MESOS_PRINCIPAL", "asgard")
            } else {
                collector
            }
        };
        for (file, why) in [
            (&missing, "cannot be read: No such file or directory"),
            (&scratch, "cannot be read: it is a folder"),
            (&empty, "is empty"),
            (&not_text, "is not UTF-8 text"),
            (&too_large, "is over 65536 bytes, too large for a secret"),
        ] {
            for command in ["collect", "check"] {
                let run = base()
                    .env_remove(value_variable)
                    .env(variable, file)
                    .arg(command)
                    .run();
                run.assert_status(2);
                let line = format!("({}) {}: {why}", flag_of(variable), file.display());
                assert!(
                    run.stderr.contains(variable) && run.stderr.contains(&line),
                    "{variable}, {why}: {run}"
                );
                assert!(!run.stderr.contains(SECRET), "{run}");
            }
        }
        // A value and a file: which one is meant cannot be told.
        let run = base()
            .env(value_variable, "a-value")
            .env(variable, &good)
            .arg("collect")
            .run();
        run.assert_status(2);
        assert!(
            run.stderr.contains(&format!(
                "{value_variable} ({}) and {variable} ({}) are both set: give the secret one way only",
                flag_of(value_variable),
                flag_of(variable)
            )),
            "{run}"
        );
        assert!(!run.stderr.contains(SECRET), "{run}");
    }
    let _ = std::fs::remove_dir_all(scratch);
}

/// The flag of a secret setting's variable.
fn flag_of(variable: &str) -> &'static str {
    match variable {
        "STATS_COLLECTOR_MESOS_SECRET" => "--mesos-secret",
        "STATS_COLLECTOR_MESOS_SECRET_FILE" => "--mesos-secret-file",
        "STATS_COLLECTOR_RABBITMQ_PWD" => "--rabbitmq-password",
        "STATS_COLLECTOR_RABBITMQ_PWD_FILE" => "--rabbitmq-password-file",
        "STATS_COLLECTOR_REDIS_URL" => "--redis-url",
        _ => "--redis-url-file",
    }
}

#[test]
fn a_secret_given_as_a_flag_is_warned_about_once() {
    let world = World::start(fresh_spec(1, 1));
    let run = world
        .collector()
        .env_remove("STATS_COLLECTOR_RABBITMQ_PWD")
        .args(["--rabbitmq-password", Broker::PASSWORD, "collect"])
        .run();
    run.assert_success();
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("process list"))
        .collect();
    assert_eq!(warnings.len(), 1, "{run}");
    assert!(
        warnings[0].contains(" WARN ")
            && warnings[0].contains("--rabbitmq-password is given on the command line")
            && warnings[0].contains("STATS_COLLECTOR_RABBITMQ_PWD_FILE"),
        "{run}"
    );
    // From the environment (the tests' usual way), no warning.
    let quiet = world.collect();
    quiet.assert_success();
    assert!(!quiet.stderr.contains("process list"), "{quiet}");
}
