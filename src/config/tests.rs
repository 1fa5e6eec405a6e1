//! Unit tests of the configuration: settings and variables in, a `Config` or one error line out.

use super::redis::DEFAULT_REDIS_URL;
use super::*;
use std::collections::HashMap;
use std::path::PathBuf;

fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut argv = vec!["asgard-stats"];
    argv.extend_from_slice(args);
    argv.push("check");
    let cli = crate::cli::parse_from(argv).expect("arguments parse");
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_settings(&cli.settings, |name| env.get(name).cloned())
}

#[test]
fn masters_follow_the_documented_order() {
    let env = [
        ("HOLLOWMAN_MESOS_ADDRESS", "http://a:5050"),
        ("HOLLOWMAN_MESOS_ADDRESS_0", "http://b:5050/"),
        ("HOLLOWMAN_MESOS_ADDRESS_1", "https://c:5050"),
        ("HOLLOWMAN_MESOS_ADDRESS_3", "http://not-reached:5050"),
    ];
    let c = config(&[], &env).expect("valid");
    assert_eq!(
        c.masters,
        ["http://a:5050", "http://b:5050", "https://c:5050"]
    );
    let c = config(&[], &env[1..]).expect("valid");
    assert_eq!(c.masters, ["http://b:5050", "https://c:5050"]);
    let c = config(&["--master", "http://flag:1"], &env).expect("valid");
    assert_eq!(c.masters, ["http://flag:1"], "flags win");
    let c = config(&["--mesos-master-ip", "10.0.0.1"], &[]).expect("valid");
    assert_eq!(c.masters, ["http://10.0.0.1:5050"]);
    assert!(config(&[], &[]).is_err());
    assert!(config(&["--master", "ftp://x"], &[]).is_err());
    assert!(config(&["--master", "http://u:p@x"], &[]).is_err());
}

#[test]
fn secrets_are_redacted_in_debug() {
    let c = config(
        &[
            "--master",
            "http://m:5050",
            "--mesos-principal",
            "ops",
            "--mesos-secret",
            "hunter2",
            "--redis-url",
            "redis://:sekrit@r:6379/0",
            "--rabbitmq-host",
            "mq:5673",
            "--rabbitmq-password",
            "pa55",
            "--routing-key",
            "rk",
        ],
        &[],
    )
    .expect("valid");
    let shown = format!("{c:?}");
    for secret in ["hunter2", "sekrit", "pa55"] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    assert_eq!(c.redis.shown_url, "redis://<redacted>@r:6379/0");
    let broker = c.require_broker().expect("configured");
    let mq = BrokerAddress {
        host: "mq".into(),
        port: 5673,
        tls: false,
    };
    assert_eq!(broker.hosts, [mq]);
    assert_eq!(broker.password.expose(), "pa55");
}

#[test]
fn bad_settings_are_rejected() {
    let m = ["--master", "http://m:1"];
    let with = |extra: &[&str]| {
        let mut args = m.to_vec();
        args.extend_from_slice(extra);
        config(&args, &[])
    };
    assert!(with(&[]).is_ok());
    for bad in [
        &["--connect-timeout", "0"][..],
        &["--request-timeout=-1"],
        &["--deadline", "NaN"],
        &["--workers", "0"],
        &["--shard", "0/3"],
        &["--shard", "4/3"],
        &["--shard", "x"],
        &["--redis-url", "http://r"],
        &["--redis-pool-min", "5", "--redis-pool-max", "2"],
        &["--mesos-principal", "only"],
        &["--rabbitmq-host", "mq"],
        &["--rabbitmq-host", "mq:notaport", "--routing-key", "rk"],
        &["--state-ttl", "0"],
        &["--metrics-file", "/var/lib/node_exporter/"],
        &["--metrics-file", "/var/lib/.."],
        &["--body-budget-bytes", "0"],
        &["--max-agent-list-bytes", "0"],
        &[
            "--rabbitmq-host",
            "mq",
            "--routing-key",
            "rk",
            "--blocked-timeout",
            "0",
        ],
    ] {
        assert!(with(bad).is_err(), "{bad:?} must be rejected");
    }
    assert_eq!(
        with(&["--shard", "2/3"]).expect("valid").shard,
        Some(Shard { index: 2, count: 3 })
    );
    assert!(with(&[]).expect("valid").require_broker().is_err());
    assert_eq!(
        with(&["--metrics-file", "m.prom"])
            .expect("valid")
            .metrics_file,
        Some(PathBuf::from("m.prom"))
    );
}

#[test]
fn values_amqp_cannot_carry_are_rejected() {
    let with = |rk: &str, vhost: &str| {
        let args = ["--master", "http://m:1", "--rabbitmq-host", "mq"];
        let mut args = args.to_vec();
        args.extend(["--routing-key", rk, "--rabbitmq-vhost", vhost]);
        config(&args, &[])
    };
    let longest = "k".repeat(255);
    let broker = with(&longest, "/").expect("255 bytes fit");
    let key = &broker.require_broker().expect("set").routing_key;
    assert_eq!(key.fixed(), Some(longest.as_str()));
    let error = with(&"k".repeat(256), "/").expect_err("256 bytes do not");
    assert!(error.to_string().contains("256 bytes"), "{error}");
    // 130 two-byte characters: 260 bytes, though only 130 characters.
    let error = with(&"é".repeat(130), "/").expect_err("bytes count, not characters");
    assert!(error.to_string().contains("RABBITMQ_RK"), "{error}");
    let error = with("rk", &"v".repeat(256)).expect_err("a vhost too");
    assert!(error.to_string().contains("RABBITMQ_VHOST"), "{error}");
}

#[test]
fn broker_hosts_are_a_list_of_plain_and_tls_addresses() {
    let hosts = |value: &str| {
        let args = ["--master", "http://m:1", "--routing-key", "rk"];
        config(&[&args[..], &["--rabbitmq-host", value]].concat(), &[])
            .map(|c| {
                let broker = c.broker.expect("configured");
                broker
                    .hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        hosts("mq1, amqps://mq2,amqp://mq3:1/,amqps://[::1]:5673,[fe80::1]"),
        Ok(vec![
            "mq1:5672".to_string(),
            "amqps://mq2:5671".into(),
            "mq3:1".into(),
            "amqps://[::1]:5673".into(),
            "[fe80::1]:5672".into(),
        ])
    );
    for bad in [
        "amqp://user:s3cret@mq/",
        "mq:s3cret",
        "http://mq",
        "mq,,mq2",
        "::1:5673",
        "amqps://mq/vhost",
        "mq:70000",
    ] {
        let why = hosts(bad).expect_err(bad);
        assert!(why.starts_with("RabbitMQ host "), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
    }
}

#[test]
fn sentinel_urls_are_accepted_and_shown_without_their_passwords() {
    let redis = |url: &str| {
        config(&["--master", "http://m:1", "--redis-url", url], &[])
            .map(|c| c.redis.shown_url)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        redis("redis+sentinel://:s3cret@s1:26379,s2/mymaster/1?sentinel_password=s3cret"),
        Ok("redis+sentinel://<redacted>@s1:26379,s2/mymaster/1?<redacted>".into())
    );
    assert!(redis("rediss+sentinel://s1/mymaster").is_ok());
    for bad in [
        "redis+sentinel://:s3cret@s1:26379",
        "redis+sentinel://:s3cret@s1:x/m",
        "redis+sentinel://s1/m?sentinel_pasword=s3cret",
        "sentinel://s1/m",
    ] {
        let why = redis(bad).expect_err(bad);
        assert!(why.starts_with("Redis URL "), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
    }
}

#[test]
fn master_urls_with_credentials_are_refused_without_showing_them() {
    let why = config(&["--master", "http://user:s3cret@m:5050"], &[])
        .expect_err("refused")
        .to_string();
    assert!(why.contains("http://<redacted>@m:5050"), "{why}");
    assert!(!why.contains("s3cret"), "{why}");
}

#[test]
fn a_shard_index_of_a_count_is_the_shard_one_above_it() {
    let m = ["--master", "http://m:1"];
    let shard = |extra: &[&str], env: &[(&str, &str)]| {
        config(&[&m[..], extra].concat(), env).map(|c| c.shard)
    };
    let third = Some(Shard { index: 3, count: 4 });
    assert_eq!(
        shard(&["--shard-index", "2", "--shard-count", "4"], &[]).ok(),
        Some(third)
    );
    assert_eq!(shard(&["--shard", "3/4"], &[]).ok(), Some(third));
    assert_eq!(
        shard(
            &["--shard", "3/4", "--shard-index=2", "--shard-count=4"],
            &[]
        )
        .ok(),
        Some(third),
        "both forms may be given when they agree"
    );
    assert_eq!(
        shard(&["--shard-index", "0", "--shard-count", "1"], &[]).ok(),
        Some(Some(Shard { index: 1, count: 1 }))
    );
    assert_eq!(shard(&[], &[]).ok(), Some(None));
    for (bad, why) in [
        (&["--shard-index", "2"][..], "go together"),
        (&["--shard-count", "4"], "go together"),
        (
            &["--shard-index", "4", "--shard-count", "4"],
            "got index 4 of 4",
        ),
        (
            &["--shard-index", "0", "--shard-count", "0"],
            "must be above 0",
        ),
        (
            &["--shard", "2/4", "--shard-index", "2", "--shard-count", "4"],
            "different shards",
        ),
        (
            &["--shard", "3/5", "--shard-index", "2", "--shard-count", "4"],
            "different shards",
        ),
    ] {
        let error = shard(bad, &[]).expect_err("refused").to_string();
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}

/// A file of this test's own holding `content`.
fn secret_file(name: &str, content: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("asgard-config-test-{}-{name}", std::process::id()));
    std::fs::write(&path, content).expect("write a secret file");
    path
}

#[test]
fn secrets_come_from_files_without_one_trailing_newline() {
    let base = [
        "--master",
        "http://m:1",
        "--rabbitmq-host",
        "mq",
        "--routing-key",
        "rk",
        "--mesos-principal",
        "ops",
    ];
    let with = |extra: &[&str]| config(&[&base[..], extra].concat(), &[]);
    let mesos = secret_file("mesos", b"m3sos\r\n");
    let broker = secret_file("broker", b"pa55\n\n");
    let redis = secret_file("redis", b"redis://:s3cret@r:6379/1\n");
    let c = with(&[
        "--mesos-secret-file",
        mesos.to_str().expect("UTF-8"),
        "--rabbitmq-password-file",
        broker.to_str().expect("UTF-8"),
        "--redis-url-file",
        redis.to_str().expect("UTF-8"),
    ])
    .expect("valid");
    let credentials = c.http.credentials.as_ref().expect("credentials");
    assert_eq!(credentials.secret.expose(), "m3sos");
    let broker_settings = c.require_broker().expect("configured");
    assert_eq!(
        broker_settings.password.expose(),
        "pa55\n",
        "only one newline goes"
    );
    assert_eq!(c.redis.url.expose(), "redis://:s3cret@r:6379/1");
    assert_eq!(c.redis.shown_url, "redis://<redacted>@r:6379/1");
    // Without a value or a file, the defaults.
    let c = with(&["--mesos-secret", "x"]).expect("valid");
    assert_eq!(c.redis.url.expose(), DEFAULT_REDIS_URL);
    assert_eq!(c.require_broker().expect("set").password.expose(), "guest");

    let missing = std::env::temp_dir().join("asgard-config-test-no-such-file");
    let empty = secret_file("empty", b"\n");
    let binary = secret_file("binary", b"\xffs3cret");
    let folder = std::env::temp_dir();
    let [mesos_path, broker_path, redis_path, missing, empty_path, binary_path, folder] =
        [&mesos, &broker, &redis, &missing, &empty, &binary, &folder]
            .map(|p| p.to_str().expect("UTF-8").to_string());
    for (extra, why) in [
        (
            vec!["--mesos-secret", "x", "--mesos-secret-file", &mesos_path],
            "are both set",
        ),
        (
            vec![
                "--mesos-secret",
                "x",
                "--rabbitmq-password",
                "x",
                "--rabbitmq-password-file",
                &broker_path,
            ],
            "RABBITMQ_PWD (--rabbitmq-password) and STATS_COLLECTOR_RABBITMQ_PWD_FILE",
        ),
        (
            vec![
                "--mesos-secret",
                "x",
                "--redis-url",
                "redis://r",
                "--redis-url-file",
                &redis_path,
            ],
            "STATS_COLLECTOR_REDIS_URL (--redis-url) and",
        ),
        (
            vec!["--mesos-secret-file", &missing],
            "cannot be read: No such file",
        ),
        (vec!["--mesos-secret-file", &empty_path], "is empty"),
        (vec!["--mesos-secret-file", &binary_path], "is not UTF-8"),
        (vec!["--mesos-secret-file", &folder], "it is a folder"),
    ] {
        let error = with(&extra).expect_err("refused").to_string();
        assert!(error.contains(why), "{extra:?}: {error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
    for file in [mesos, broker, redis, empty, binary] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn secrets_given_as_flags_are_warned_about() {
    let warned = |args: &[&str]| {
        let mut argv = vec!["asgard-stats", "--master", "http://m:1"];
        argv.extend_from_slice(args);
        let cli = crate::cli::parse_from(argv).expect("arguments parse");
        Config::secret_flag_warnings(&cli.settings)
    };
    assert!(warned(&["check"]).is_empty());
    // Before and after the subcommand alike.
    let lines = warned(&["--mesos-secret", "x", "check", "--rabbitmq-password", "y"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("--mesos-secret is given on the command line")
            && lines[0].contains("process list"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("STATS_COLLECTOR_RABBITMQ_PWD_FILE"),
        "{lines:?}"
    );
    // A URL is a secret only with credentials in it.
    assert!(warned(&["--redis-url", "redis://r:6379/0", "check"]).is_empty());
    assert_eq!(
        warned(&["--redis-url", "redis://:pw@r/0", "check"]).len(),
        1
    );
    assert!(warned(&["--pushgateway", "http://pg:9091", "check"]).is_empty());
    assert_eq!(
        warned(&["check", "--pushgateway", "http://u:pw@pg:9091"]).len(),
        1
    );
}

#[test]
fn a_pushgateway_url_loses_its_user_info_to_basic_credentials() {
    let gateway = |url: &str| {
        config(&["--master", "http://m:1", "--pushgateway", url], &[])
            .map(|c| c.pushgateway.expect("configured"))
            .map_err(|e| e.to_string())
    };
    let plain = gateway("http://pg:9091/").expect("valid");
    assert_eq!(plain.url, "http://pg:9091");
    assert!(plain.credentials.is_none());
    let with = gateway("https://ops:p%40ss%2Fw0rd@pg.example:9091/prefix").expect("valid");
    assert_eq!(with.url, "https://pg.example:9091/prefix");
    assert_eq!(with.shown_url, "https://<redacted>@pg.example:9091/prefix");
    let credentials = with.credentials.expect("credentials");
    assert_eq!(credentials.principal, "ops");
    assert_eq!(credentials.secret.expose(), "p@ss/w0rd");
    for bad in [
        "pg:9091",
        "ftp://pg",
        "http://u:s3cret@pg/?x=1",
        "http://u:s3cret@",
        "http://u:%zzs3cret@pg",
        "http://pg:9091#s3cret",
    ] {
        let why = gateway(bad).expect_err(bad);
        assert!(why.starts_with("Pushgateway URL "), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
    }
    assert!(
        config(&["--master", "http://m:1", "--pushgateway", ""], &[])
            .expect("valid")
            .pushgateway
            .is_none()
    );
}

#[test]
fn a_master_address_with_a_port_where_an_ip_is_expected_is_refused_at_configuration() {
    let with_ip = |ip: &str| config(&["--mesos-master-ip", ip], &[]);
    let why = with_ip("10.0.0.1:5050").expect_err("refused").to_string();
    assert!(
        why.contains("STATS_COLLECTOR_MESOS_MASTER_IP must be an address without port"),
        "{why}"
    );
    for bad in ["http://10.0.0.1", "10.0.0.1/x", "a b"] {
        assert!(with_ip(bad).is_err(), "{bad}");
    }
    for (ip, url) in [
        ("10.0.0.1", "http://10.0.0.1:5050"),
        ("master.example", "http://master.example:5050"),
        ("::1", "http://[::1]:5050"),
        ("[fd00::1]", "http://[fd00::1]:5050"),
    ] {
        assert_eq!(
            with_ip(ip).map(|c| c.masters).ok(),
            Some(vec![url.to_string()]),
            "{ip}"
        );
    }
    for bad in [
        "http://m:5050:5050",
        "http://m:x",
        "http://m:70000",
        "http://[::1",
        "http://m:",
    ] {
        assert!(config(&["--master", bad], &[]).is_err(), "{bad}");
    }
    for good in [
        "http://m",
        "https://m:5050",
        "http://[::1]:5050",
        "http://10.0.0.1:1",
    ] {
        assert!(config(&["--master", good], &[]).is_ok(), "{good}");
    }
}

#[test]
fn the_redis_pool_follows_the_workers_unless_told() {
    let m = ["--master", "http://m:1"];
    let pool = |extra: &[&str]| {
        config(&[&m[..], extra].concat(), &[]).map(|c| (c.workers, c.redis.pool_max))
    };
    assert_eq!(pool(&[]).ok(), Some((32, 32)));
    assert_eq!(pool(&["--workers", "200"]).ok(), Some((200, 200)));
    assert_eq!(
        pool(&["--workers", "200", "--redis-pool-max", "12"]).ok(),
        Some((200, 12))
    );
    assert!(pool(&["--redis-pool-max", "0"]).is_err());
}

#[test]
fn an_exchange_and_a_routing_key_template_are_read_and_checked() {
    let with = |extra: &[&str]| {
        let args = ["--master", "http://m:1", "--rabbitmq-host", "mq"];
        config(&[&args[..], extra].concat(), &[])
    };
    let plain = with(&["--routing-key", "rk"]).expect("valid");
    let broker = plain.require_broker().expect("set");
    assert_eq!(broker.exchange, "", "the default exchange, as before");
    assert_eq!(broker.exchange_type, "topic");
    assert!(!broker.declare_exchange);
    assert_eq!(broker.routing_key.fixed(), Some("rk"));

    let args = [
        "--routing-key",
        "asgard.stats.{appname}",
        "--exchange",
        "stats",
        "--exchange-type",
        "x-consistent-hash",
        "--declare-exchange",
    ];
    let named = with(&args).expect("valid");
    let broker = named.require_broker().expect("set");
    assert_eq!(broker.exchange, "stats");
    assert_eq!(broker.exchange_type, "x-consistent-hash");
    assert!(broker.declare_exchange);
    assert_eq!(broker.routing_key.fixed(), None);
    assert_eq!(broker.routing_key.setting, "asgard.stats.{appname}");

    let error = with(&["--routing-key", "asgard.{app}"]).expect_err("unknown field");
    assert!(error.to_string().contains("RABBITMQ_RK"), "{error}");
    assert!(error.to_string().contains("{app}"), "{error}");
    let error = with(&["--routing-key", "rk", "--declare-exchange"]).expect_err("no exchange");
    assert!(error.to_string().contains("DECLARE_EXCHANGE"), "{error}");
    let long = "x".repeat(256);
    let error = with(&["--routing-key", "rk", "--exchange", &long]).expect_err("too long");
    assert!(error.to_string().contains("RABBITMQ_EXCHANGE"), "{error}");
}
