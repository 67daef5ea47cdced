//! Usernames that look alike across scripts (Unicode UTS #39): a mixed-script name is
//! refused, and a name whose skeleton matches an existing user's is taken, on both SQL
//! backends (the skeleton's UNIQUE index lives in SQL; the session store does not matter).

use auth_center::domain::AuthError;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::helpers::*;

/// One `#[tokio::test]` per SQL backend, with in-memory sessions.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        crate::for_every_backend!(@db on_sqlite, Sqlite, Memory; $($name),*);
        crate::for_every_backend!(@db on_postgres, Postgres, Memory; $($name),*);
    };
}

on_both_databases!(
    a_username_that_looks_like_an_existing_one_is_taken_on_register_admin_create_and_the_cli,
    two_look_alikes_registering_at_once_get_one_account,
    existing_users_get_a_skeleton_at_startup_and_look_alikes_among_them_do_not_block_it,
);

const SQLITE: Backend = Backend {
    db: Db::Sqlite,
    sessions: Sessions::Memory,
};

/// Creates a user through the domain, as `auth-center user create` does.
async fn cli_create(app: &TestApp, username: &str) -> Result<(), AuthError> {
    app.auth
        .create_user(username, SecretString::from(PASSWORD.to_string()), vec![])
        .await
        .map(|_| ())
}

async fn admin_create(app: &TestApp, admin: &Tokens, username: &str) -> reqwest::Response {
    app.post_json_bearer(
        "/v1/admin/users",
        &admin.access_token,
        &json!({ "username": username, "password": PASSWORD }),
    )
    .await
}

/// `name` is refused with `status` and `code` by registration and admin creation and with
/// an error matching `cli_error` through the CLI path; it stays no user. Returns the message
/// of the registration's refusal.
async fn refused_on_every_path(
    app: &TestApp,
    admin: &Tokens,
    name: &str,
    (status, code): (StatusCode, &str),
    cli_error: fn(&AuthError) -> bool,
) -> String {
    let r = app.register(name, PASSWORD).await;
    let got = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(code)),
        "{name}: {body}"
    );
    assert_error(admin_create(app, admin, name).await, status, code).await;
    let cli = cli_create(app, name).await;
    assert!(cli.as_ref().is_err_and(cli_error), "{name}: {cli:?}");
    // Login is by canonical username and unchanged: no such user.
    assert_error(
        app.login(name, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    body["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_mixed_script_username_is_refused_everywhere_and_nothing_is_written() {
    let app = spawn_app(SQLITE).await;
    let admin = app.admin_login("root").await;
    // "bіgbird" with a Cyrillic і, "раураl" with Cyrillic р, а, у and a Latin l.
    for name in ["b\u{456}gbird", "\u{440}\u{430}\u{443}\u{440}\u{430}l"] {
        let message = refused_on_every_path(
            &app,
            &admin,
            name,
            (StatusCode::BAD_REQUEST, "invalid_request"),
            |e| matches!(e, AuthError::InvalidInput(_)),
        )
        .await;
        assert!(message.contains("script"), "{name}: {message}");
    }
    // Nothing was written: the Latin names are free. Digits, punctuation and a single
    // script other than Latin are fine.
    for name in [
        "bigbird",
        "paypal",
        "ape_1.x@example.com",
        "\u{44e}\u{440}\u{438}\u{439}",
        "山田",
    ] {
        assert_eq!(
            app.register(name, PASSWORD).await.status(),
            StatusCode::CREATED,
            "{name}"
        );
    }
}

async fn a_username_that_looks_like_an_existing_one_is_taken_on_register_admin_create_and_the_cli(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let admin = app.admin_login("root").await;
    let latin_ape = "ape";
    let cyrillic_ape = "\u{430}\u{440}\u{435}"; // аре, all Cyrillic
    let cyrillic_cop = "\u{441}\u{43e}\u{440}"; // сор, all Cyrillic
    let originals = [latin_ape, cyrillic_cop, "ape1", "modern", "op"];
    for name in originals {
        app.create_user_with_roles(name, &[]).await;
    }
    let look_alikes = [
        cyrillic_ape.to_string(),
        cyrillic_ape.to_uppercase(), // canonicalised to аре
        "cop".into(),                // Latin, after the Cyrillic one
        "\u{3bf}\u{3c1}".into(),     // ορ, all Greek
        "apel".into(),               // l and 1 share a prototype
        "rnodern".into(),            // so do m and rn
    ];
    for name in &look_alikes {
        refused_on_every_path(
            &app,
            &admin,
            name,
            (StatusCode::CONFLICT, "username_taken"),
            |e| matches!(e, AuthError::UsernameTaken),
        )
        .await;
    }
    // The originals still log in by their canonical names.
    for name in originals {
        app.login_ok(name).await;
    }
}

async fn two_look_alikes_registering_at_once_get_one_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let latin = "coco";
    let cyrillic = "\u{441}\u{43e}\u{441}\u{43e}"; // сосо
    let (a, b) = tokio::join!(
        app.register(latin, PASSWORD),
        app.register(cyrillic, PASSWORD)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let logged_in = [
        app.login(latin, PASSWORD).await.status(),
        app.login(cyrillic, PASSWORD).await.status(),
    ];
    assert_eq!(
        logged_in.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{logged_in:?}"
    );
}

/// The users table, straight from SQL, as an operator would see it.
enum Sql {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Sql {
    async fn connect(app: &TestApp) -> Self {
        let url = app.config.database_url.expose_secret();
        match app.backend.db {
            Db::Sqlite => Sql::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap()),
            Db::Postgres => Sql::Postgres(sqlx::PgPool::connect(url).await.unwrap()),
        }
    }

    async fn execute(&self, statement: &str, binds: &[&str]) {
        // Test-only SQL, built from constants.
        let statement = || sqlx::AssertSqlSafe(statement.to_string());
        match self {
            Sql::Sqlite(pool) => {
                let mut q = sqlx::query(statement());
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(pool).await.unwrap();
            }
            Sql::Postgres(pool) => {
                let mut q = sqlx::query(statement());
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(pool).await.unwrap();
            }
        }
    }

    /// `(username, username_skeleton)` of every user, oldest first.
    async fn skeletons(&self) -> Vec<(String, Option<String>)> {
        let sql = "SELECT username, username_skeleton FROM users ORDER BY created_ms, id";
        match self {
            Sql::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Sql::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }
}

async fn existing_users_get_a_skeleton_at_startup_and_look_alikes_among_them_do_not_block_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.register_and_login("ape1").await;
    let sql = Sql::connect(&app).await;
    // Rows from before skeletons existed: none has one, and two pairs look alike. They are
    // written straight into SQL, as the code of that time allowed.
    sql.execute("UPDATE users SET username_skeleton = NULL", &[])
        .await;
    let legacy = |name: &'static str, offset: &'static str| {
        let sql = &sql;
        async move {
            sql.execute(
                &format!(
                    "INSERT INTO users (id, username, password_hash, roles, disabled, created_ms) \
                     SELECT $1, $2, password_hash, '', disabled, created_ms + {offset} \
                     FROM users WHERE username = 'ape1'"
                ),
                &[&uuid::Uuid::new_v4().to_string(), name],
            )
            .await
        }
    };
    legacy("\u{430}\u{440}\u{435}1", "1").await; // аре1, Cyrillic, younger than ape1
    legacy("b\u{456}gbird", "2").await; // bіgbird, mixed script
    legacy("apel", "3").await; // Latin, youngest of the three look-alikes

    // A restart fills in the skeletons and does not fail on the look-alikes.
    let restarted = app.second_instance().await;
    assert_eq!(
        sql.skeletons().await,
        vec![
            ("ape1".to_string(), Some("apel".to_string())),
            ("\u{430}\u{440}\u{435}1".to_string(), None),
            ("b\u{456}gbird".to_string(), Some("bigbird".to_string())),
            ("apel".to_string(), None),
        ],
        "the oldest of the look-alikes keeps the skeleton"
    );
    // Every existing user still logs in; new look-alikes are taken.
    for name in ["ape1", "\u{430}\u{440}\u{435}1", "b\u{456}gbird", "apel"] {
        restarted.login_ok(name).await;
    }
    // ("ape|" is Latin with a common character; | and 1 share a prototype.)
    for name in ["bigbird", "ape|"] {
        assert_error(
            restarted.register(name, PASSWORD).await,
            StatusCode::CONFLICT,
            "username_taken",
        )
        .await;
    }
    // The look-alikes left without a skeleton do not stop later starts either.
    let again = restarted.second_instance().await;
    again.login_ok("apel").await;
}
