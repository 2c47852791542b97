//! The store's contract, run against every backend: each test is written once over
//! `&dyn ServerStore` and instantiated per backend by `on_every_backend!`. SQLite runs on a
//! file in a private directory (so the reader pool is used); PostgreSQL on a database of its
//! own in the test process's throw-away cluster (`postgres::testing`).

pub(crate) mod data;
mod feedback;
mod fleet;
mod incidents;

use std::sync::Arc;

use super::secrets::Keyring;
use super::sqlite::SqliteStore;
use super::store::ServerStore;

/// A store to test, with what keeps it alive (its directory or database).
pub(crate) struct TestStore {
    pub store: Arc<dyn ServerStore>,
    _guard: Box<dyn std::any::Any + Send>,
}

pub(crate) fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (s, _) =
        SqliteStore::open_sealed(&dir.path().join("server.db"), Keyring::ephemeral().unwrap())
            .expect("opening the SQLite store");
    TestStore {
        store: Arc::new(s),
        _guard: Box::new(dir),
    }
}

/// A store on a database of its own in the shared throw-away cluster.
pub(crate) async fn postgres() -> TestStore {
    let url = super::postgres::testing::database().await;
    let (s, _) = super::postgres::PgStore::open_sealed(
        &url,
        super::postgres::POOL_SIZE,
        Keyring::ephemeral().unwrap(),
    )
    .await
    .expect("opening the PostgreSQL store");
    TestStore {
        store: Arc::new(s),
        _guard: Box::new(()),
    }
}

macro_rules! on_every_backend {
    ($($m:ident :: $t:ident),* $(,)?) => {$(
        mod $t {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::sqlite();
                super::$m::$t(&*db.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = super::postgres().await;
                super::$m::$t(&*db.store).await;
            }
        }
    )*};
}

on_every_backend!(
    data::ingest_is_idempotent_by_batch_and_by_anomaly_id,
    data::a_reused_id_with_other_content_is_kept_as_a_conflict_never_dropped,
    data::the_feed_follows_receipt_order_not_agent_time,
    data::filters_acks_and_hosts,
    data::retention_drops_old_data_and_dead_sessions,
    data::lockout_totp_steps_and_recovery_codes,
    data::retention_is_per_table,
    data::concurrent_retries_store_once_and_counters_count,
    feedback::verdicts_are_delivered_to_their_host_only_in_order_and_once,
    fleet::enrolment_spends_tokens_rotates_keys_and_refuses_retired_hosts,
    fleet::heartbeats_move_states_once_per_change,
    fleet::pages_follow_cursors_and_time_ranges,
    incidents::later_states_replace_earlier_ones_and_never_go_backwards,
    incidents::pages_follow_a_cursor_in_either_order_with_filters,
);
