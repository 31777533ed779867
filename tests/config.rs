//! Configuration: flag > environment > env file > default, and one clear error per bad setting.

use ezarch::config::{parse_env_file, Config};

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
}

#[test]
fn precedence_is_flag_then_environment_then_env_file_then_default() {
    let file =
        "export IN_PIPE_PORT_A=\"7000\"\nexport IN_PIPE_PORT_B=7001\n# comment\nWORKER_PIPE_PORT_A='7004'\n";
    let environment = env_of(&[("IN_PIPE_PORT_A", "8000"), ("IN_PIPE_PORT_B", "8001")]);
    let flags = vec![("IN_PIPE_PORT_A".to_string(), "9999".to_string())];
    let config = Config::resolve(&flags, environment, Some(file)).unwrap();
    assert_eq!(config.port("IN_PIPE_PORT_A"), 9999); // flag
    assert_eq!(config.port("IN_PIPE_PORT_B"), 8001); // environment over file
    assert_eq!(config.port("WORKER_PIPE_PORT_A"), 7004); // file
    assert_eq!(config.port("WORKER_PIPE_PORT_B"), 9005); // default
    assert!(config.summary().contains("IN_PIPE_PORT_A=9999 (flag)"));
    assert_eq!(config.endpoint("IN_PIPE_HOST", "IN_PIPE_PORT_A"), "tcp://127.0.0.1:9999");
}

#[test]
fn the_seed_env_file_parses_to_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/env")).unwrap();
    let values = parse_env_file(&text).unwrap();
    assert_eq!(values["IN_PIPE_PORT_A"], "9000");
    assert_eq!(values["BROKER_BROADCAST_PORT"], "9003");
    assert_eq!(values["WORKER_LIFETIME_S"], "9");
    Config::resolve(&[], |_| None, Some(&text)).unwrap();
}

#[test]
fn bad_settings_are_named_with_their_source() {
    let cases: &[(&str, &str, &str)] = &[
        ("IN_PIPE_PORT_A", "70000", "port"),
        ("WORKER_PIPE_PORT_B", "0", "port"),
        ("POLL_INTERVAL_MS", "-5", "positive whole number"),
        ("WORKER_LIFETIME_S", "soon", "positive whole number"),
        ("LOG_LEVEL", "loud", "error, warn"),
        ("IN_PIPE_HOST", "", "host"),
    ];
    for &(name, value, expected) in cases {
        let flags = vec![(name.to_string(), value.to_string())];
        let err = Config::resolve(&flags, |_| None, None).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("(from flag)") && err.contains(expected), "{err}");
    }
    let err = Config::resolve(&[("NOT_A_SETTING".into(), "1".into())], |_| None, None).unwrap_err();
    assert!(err.to_string().contains("NOT_A_SETTING"));
    let err = parse_env_file("export JUST_A_NAME\n").unwrap_err();
    assert!(err.to_string().contains("line 1"));
}
