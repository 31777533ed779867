//! Configuration: flag > environment > env file > default, and one clear error per bad setting.

use ezarch::config::{parse_env_file, read_env_file, Config, Kind, SETTINGS};

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
        ("POLL_INTERVAL_MS", "-5", "from 10 to 3600000"),
        ("WORKER_LIFETIME_S", "soon", "from 1 to 86400"),
        ("WORKER_LIFETIME_S", "10000000000000000000", "from 1 to 86400"),
        ("TASK_TIMEOUT_MS", "0", "from 1 to"),
        ("MAX_CONNECTIONS", "0", "from 1 to"),
        ("INBOUND_BUDGET_MB", "99999999999", "MiB from 1 to"),
        ("LOG_LEVEL", "loud", "warning"),
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

#[test]
fn every_number_has_a_range_whose_ends_are_accepted() {
    for s in SETTINGS {
        if let Kind::Number { min, max, .. } = s.kind {
            for value in [min, max] {
                let flags = vec![(s.name.to_string(), value.to_string())];
                let config = Config::resolve(&flags, |_| None, None).unwrap();
                assert_eq!(config.number(s.name), value);
            }
            for value in [min.wrapping_sub(1), max + 1] {
                let flags = vec![(s.name.to_string(), value.to_string())];
                assert!(Config::resolve(&flags, |_| None, None).is_err(), "{} = {value}", s.name);
            }
        }
        let default = vec![(s.name.to_string(), s.default.to_string())];
        Config::resolve(&default, |_| None, None).unwrap();
    }
}

#[test]
fn python_log_levels_of_the_original_env_files_are_accepted_in_any_case() {
    let cases = [
        ("WARNING", log::LevelFilter::Warn),
        ("warn", log::LevelFilter::Warn),
        ("CRITICAL", log::LevelFilter::Error),
        ("Critical", log::LevelFilter::Error),
        ("ERROR", log::LevelFilter::Error),
        ("DEBUG", log::LevelFilter::Debug),
        ("info", log::LevelFilter::Info),
        ("trace", log::LevelFilter::Trace),
    ];
    for (text, level) in cases {
        let config = Config::resolve(&[], |_| None, Some(&format!("export LOG_LEVEL=\"{text}\"\n"))).unwrap();
        assert_eq!(config.log_level(), level, "{text}");
    }
}

#[test]
fn a_trailing_comment_after_a_value_is_a_comment() {
    let text = "export IN_PIPE_PORT_A=\"7000\" # the in pipe\nIN_PIPE_PORT_B=7001   # bare\nBIND_ADDRESS='::1'\t# tab\nIN_PIPE_HOST=a#b\n";
    let values = parse_env_file(text).unwrap();
    assert_eq!(values["IN_PIPE_PORT_A"], "7000");
    assert_eq!(values["IN_PIPE_PORT_B"], "7001");
    assert_eq!(values["BIND_ADDRESS"], "::1");
    assert_eq!(values["IN_PIPE_HOST"], "a#b", "a # inside a word is part of it, as in the shell");
    for bad in ["A=\"7000\"#glued\n", "A=1 2\n", "A=\"unterminated\n"] {
        let err = parse_env_file(bad).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{bad:?}: {err}");
    }
}

#[test]
fn an_unreadable_env_file_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("ezarch-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A directory where the file should be cannot be read: the error names it.
    let err = read_env_file(Some(&dir)).unwrap_err().to_string();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    let missing = dir.join("missing");
    assert!(read_env_file(Some(&missing)).unwrap_err().to_string().contains("missing"));
    std::fs::remove_dir_all(&dir).unwrap();
}
