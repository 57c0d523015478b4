//! Migrations are embedded, run at start, and safe when several replicas start at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support::TestDatabase;

#[tokio::test]
async fn replicas_starting_together_all_migrate_successfully() {
    let db = TestDatabase::new().await;
    let url = db.url.clone();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { service_kit::db::connect(&url, 2, device_svc::MIGRATIONS).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every replica starts");
    }
    let database = service_kit::db::connect(&url, 1, device_svc::MIGRATIONS).await.unwrap();
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&database.pool)
        .await
        .unwrap();
    assert_eq!(applied, [(1,), (2,)], "each migration is recorded once");
}

#[tokio::test]
async fn a_bad_database_url_is_an_error_not_a_panic() {
    let err = service_kit::db::connect("mysql://nope", 1, device_svc::MIGRATIONS)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");
    let err = service_kit::db::connect("sqlite:///nonexistent-dir/x.db", 1, device_svc::MIGRATIONS)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
