//! Settings from files (`*_FILE`, how Docker and Kubernetes hand out secrets), through the
//! real binary and its real environment.

use std::process::Command;

/// Runs `auth-center migrate` with exactly `env` as its settings.
fn migrate(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auth-center"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_URL_FILE")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn the_database_url_is_read_from_the_file_database_url_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-file.db");
    let secret = dir.path().join("database_url");
    // As `echo "$URL" > file` writes it: with a trailing newline.
    std::fs::write(&secret, format!("sqlite:{}\n", db.display())).unwrap();
    let out = migrate(&[("DATABASE_URL_FILE", secret.to_str().unwrap())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the database named in the file was created");
}

#[test]
fn a_nested_setting_can_come_from_a_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested.db");
    let issuer = dir.path().join("issuer");
    std::fs::write(&issuer, "https://auth.example.com\n").unwrap();
    let refused = dir.path().join("grace");
    std::fs::write(&refused, "999999\n").unwrap();
    let out = migrate(&[
        ("DATABASE_URL", &format!("sqlite:{}", db.display())),
        ("AUTH_ISSUER_FILE", issuer.to_str().unwrap()),
        ("AUTH_SESSIONS__GRACE_MS_FILE", refused.to_str().unwrap()),
    ]);
    // The file's value is checked like the variable's: out of range, and said so.
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sessions.grace_ms"), "{stderr}");
}

#[test]
fn setting_a_variable_and_its_file_variable_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("database_url");
    std::fs::write(&secret, "sqlite:x.db").unwrap();
    let out = migrate(&[
        ("DATABASE_URL", "sqlite:y.db"),
        ("DATABASE_URL_FILE", secret.to_str().unwrap()),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("both DATABASE_URL and DATABASE_URL_FILE are set"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_secret_file_is_refused_naming_the_variable_and_the_file() {
    let out = migrate(&[("REDIS_URL_FILE", "/nonexistent/redis_url")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REDIS_URL_FILE") && stderr.contains("/nonexistent/redis_url"),
        "{stderr}"
    );
}
