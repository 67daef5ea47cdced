//! SQL failures as the domain sees them: a unique violation is named by the rule it broke
//! (PostgreSQL by constraint name, SQLite by table and column), and a violation of a rule the
//! domain does not tell apart is a fault, not a conflict.

use auth_center::domain::error::{StoreError, Unique};
use auth_center::domain::keys::generate_ed25519;
use auth_center::domain::ports::User;
use auth_center::startup::connect_database;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violations_are_named_by_their_constraint_on_sqlite() {
    unique_violations_are_named_by_their_constraint(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violations_are_named_by_their_constraint_on_postgres() {
    unique_violations_are_named_by_their_constraint(Db::Postgres).await
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "not a hash".into(),
        roles: Vec::new(),
        disabled: false,
        created_ms: 0,
    }
}

async fn unique_violations_are_named_by_their_constraint(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend {
        db,
        sessions: Sessions::Memory,
    };
    let db = connect_database(&test_config(backend, &dir)).await.unwrap();
    db.create_user(&user("u1", "anna"), "skeleton-of-anna")
        .await
        .unwrap();

    let taken = db
        .create_user(&user("u2", "anna"), "another-skeleton")
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(Unique::Username))),
        "{taken:?}"
    );
    let look_alike = db
        .create_user(&user("u3", "anne"), "skeleton-of-anna")
        .await;
    assert!(
        matches!(
            look_alike,
            Err(StoreError::Conflict(Unique::UsernameSkeleton))
        ),
        "{look_alike:?}"
    );
    // The primary key is unique too, but no rule of the domain: a fault, with its cause.
    let same_id = db
        .create_user(&user("u1", "bert"), "skeleton-of-bert")
        .await;
    let Err(StoreError::Other(cause)) = same_id else {
        panic!("{same_id:?}");
    };
    assert!(cause.to_string().contains("users"), "{cause}");

    let scheduled = generate_ed25519(0, 1, Some("predecessor".into())).unwrap();
    db.insert_signing_key(&scheduled).await.unwrap();
    let again = generate_ed25519(0, 1, Some("predecessor".into())).unwrap();
    let twice = db.insert_signing_key(&again).await;
    assert!(
        matches!(twice, Err(StoreError::Conflict(Unique::KeySuccessor))),
        "{twice:?}"
    );
    // Nothing of the refused rows was written.
    assert!(db.user_by_id("u2").await.unwrap().is_none());
    assert!(db.user_by_id("u3").await.unwrap().is_none());
    assert_eq!(db.signing_keys().await.unwrap().len(), 1);
}
