//! The settings' own tests: defaults, ranges, unknown keys, the base directory.

use std::path::Path;

use super::*;

#[test]
fn the_defaults_are_valid_and_bind_loopback() {
    let s = Settings::default();
    s.validate().unwrap();
    assert!(s.api.bind.ip().is_loopback());
}

#[test]
fn an_out_of_range_value_names_its_field() {
    let mut s = Settings::default();
    s.worker.concurrency = 0;
    assert!(s.validate().unwrap_err().to_string().contains("`worker.concurrency`"));
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
fn the_deploy_example_loads_and_aws_kms_needs_a_key_id() {
    figment::Jail::expect_with(|jail| {
        let example = include_str!("../../../../deploy/mailroom.example.toml");
        jail.create_file("m.toml", example)?;
        jail.set_env("DATABASE_URL", "postgres://u@db/mailroom");
        let s = Settings::load(Some(Path::new("m.toml"))).unwrap();
        assert_eq!((s.vault.provider.as_str(), s.vault.aws.key_id.as_str()), ("aws-kms", "alias/mailroom"));
        jail.set_env("MAILROOM_VAULT__AWS__KEY_ID", "");
        let err = Settings::load(Some(Path::new("m.toml"))).unwrap_err().to_string();
        assert!(err.contains("vault.aws.key_id"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
fn a_file_value_of_the_wrong_type_names_its_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("m.toml", "[worker]\nconcurrency = \"many\"")?;
        let err = Settings::load(Some(Path::new("m.toml"))).unwrap_err().to_string();
        assert!(err.contains("concurrency"), "{err}");
        jail.set_env("MAILROOM_WORKER__CONCURRENCY", "7");
        jail.create_file("ok.toml", "")?;
        assert_eq!(Settings::load(Some(Path::new("ok.toml"))).unwrap().worker.concurrency, 7);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
fn a_mistyped_key_in_the_file_is_refused_with_the_nearest_valid_one() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("m.toml", "[worker]\nconcurency = 4")?;
        let err = Settings::load(Some(Path::new("m.toml"))).unwrap_err().to_string();
        assert!(err.contains("`worker.concurency`"), "{err}");
        assert!(err.contains("did you mean `worker.concurrency`?"), "{err}");
        jail.create_file("t.toml", "[vault.aws]\nkey_id = \"k\"\nregoin = \"eu-west-1\"")?;
        let err = Settings::load(Some(Path::new("t.toml"))).unwrap_err().to_string();
        assert!(err.contains("did you mean `vault.aws.region`?"), "{err}");
        jail.create_file("u.toml", "[nonsense]\nx = 1")?;
        let err = Settings::load(Some(Path::new("u.toml"))).unwrap_err().to_string();
        assert!(err.contains("unknown configuration key `nonsense`"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
fn a_mistyped_environment_variable_is_refused_with_the_nearest_valid_one() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("MAILROOM_WORKER__CONCURENCY", "4");
        let err = Settings::load(None).unwrap_err().to_string();
        assert!(err.contains("`MAILROOM_WORKER__CONCURENCY` in the environment"), "{err}");
        assert!(err.contains("did you mean `MAILROOM_WORKER__CONCURRENCY`?"), "{err}");
        jail.set_env("MAILROOM_WORKER__CONCURENCY", "");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        // The file flag's variable and every real key pass.
        jail.set_env("MAILROOM_CONFIG", "m.toml");
        jail.set_env("MAILROOM_WORKER__CONCURRENCY", "4");
        jail.set_env("MAILROOM_VAULT__AWS__REGION", "eu-west-1");
        jail.create_file("m.toml", "")?;
        assert_eq!(Settings::load(Some(Path::new("m.toml"))).unwrap().worker.concurrency, 4);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type.
fn relative_paths_resolve_against_the_file_s_directory_or_state_dir() {
    figment::Jail::expect_with(|jail| {
        let dir = jail.directory().to_path_buf();
        jail.create_dir("etc")?;
        jail.create_file("etc/m.toml", "[vault]\nmaster_key_file = \"keys/master.key\"")?;
        let s = Settings::load(Some(Path::new("etc/m.toml"))).unwrap();
        assert_eq!(s.vault.master_key_file, dir.join("etc/keys/master.key"));
        jail.set_env("MAILROOM_STATE_DIR", "/var/lib/mailroom");
        let s = Settings::load(Some(Path::new("etc/m.toml"))).unwrap();
        assert_eq!(s.vault.master_key_file, Path::new("/var/lib/mailroom/keys/master.key"));
        assert!(s.paths().iter().all(|(_, p)| p.is_absolute()));
        jail.set_env("MAILROOM_STATE_DIR", "relative");
        let err = Settings::load(None).unwrap_err().to_string();
        assert!(err.contains("`state_dir` must be an absolute path"), "{err}");
        Ok(())
    });
}

#[test]
fn the_redacted_view_shows_secrets_as_stars() {
    let mut s = Settings::default();
    s.database.url = secrecy::SecretString::from("postgres://u:hunter2@db/m");
    let shown = s.redacted().to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(s.redacted()["database"]["url"], "***");
    assert_eq!(s.redacted()["oauth"]["google"]["client_secret"], "");
}
