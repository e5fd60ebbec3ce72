//! The audit log's hash chain: appended rows chain, concurrent writers (two
//! handles on one file, as the daemon and a CLI command) never fork it, and
//! an edited, removed or re-hashed row is named by `verify_chain`.

use serde_json::json;

use super::{TestResult, both, temp_place, temp_store};
use crate::store::Backend;
use crate::store::{
    AuditEntry, ChainBreak, GENESIS, Store, canonical_json, row_hash, verify_chain,
};

fn entry(i: usize) -> AuditEntry {
    AuditEntry::new("ci", "deployer", "deploy")
        .environment("production")
        .deployment(i as i64)
        .target(&format!("v{i}"))
        .details(json!({ "z": i, "a": { "y": [1, 2], "b": null } }))
}

#[test]
fn the_hash_is_the_documented_one() {
    // docs/security.md gives this example; anyone can recompute it.
    assert_eq!(
        row_hash(
            1,
            1000,
            "ci",
            "deployer",
            "deploy",
            Some("production"),
            Some(7),
            Some("v2"),
            &canonical_json(&json!({ "b": [2, { "c": null }], "a": 1 })),
            GENESIS,
        ),
        "d2effde06b20eda167a5233b7a5444c64ec1b94b97ca4af617ebb58289281562"
    );
    assert_eq!(
        canonical_json(&json!({ "b": { "d": 1, "c": "x\"y" }, "a": [true, 1.5] })),
        r#"{"a":[true,1.5],"b":{"c":"x\"y","d":1}}"#
    );
}

both!(appended_rows_chain_and_verify);
async fn appended_rows_chain_and_verify(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(store.append_audit(entry(i)).await?);
    }
    assert_eq!(written[0].id, 1);
    assert_eq!(written[0].prev_hash, GENESIS);
    for pair in written.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].id, pair[0].id + 1);
    }
    let read = store.audit(0, None, 100).await?;
    assert_eq!(read, written, "read back as written");
    assert_eq!(verify_chain(&read, None), Ok(()));
    // Paging: the second half verifies from the first half's last row.
    assert_eq!(
        verify_chain(&read[3..], Some((read[2].id, read[2].hash.as_str()))),
        Ok(())
    );
    let latest = store.audit_latest(None, 2).await?;
    assert_eq!(latest, written[3..], "the newest two, oldest first");
    Ok(())
}

both!(concurrent_writers_on_one_file_never_fork_the_chain);
async fn concurrent_writers_on_one_file_never_fork_the_chain(backend: Backend) -> TestResult {
    let place = temp_place(backend).await?;
    let url = place.url.clone();
    let daemon = Store::open(&url).await?;
    let cli = Store::open(&url).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            daemon.clone()
        } else {
            cli.clone()
        };
        tasks.spawn(async move { store.append_audit(entry(i)).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let rows = daemon.audit(0, None, 100).await?;
    assert_eq!(rows.len(), 40);
    assert_eq!(verify_chain(&rows, None), Ok(()));
    Ok(())
}

both!(an_edited_removed_or_rehashed_row_is_named);
async fn an_edited_removed_or_rehashed_row_is_named(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    for i in 0..5 {
        store.append_audit(entry(i)).await?;
    }

    // Edited: row 3 now says someone else did it.
    sqlx::query("UPDATE audit_log SET who = 'mallory' WHERE id = 3")
        .execute(&store.pool)
        .await?;
    let rows = store.audit(0, None, 100).await?;
    let broken = verify_chain(&rows, None).expect_err("an edited row breaks the chain");
    assert!(
        matches!(broken, ChainBreak::Altered { id: 3, .. }),
        "{broken:?}"
    );
    assert!(broken.to_string().contains("audit row 3"), "{broken}");

    // Re-hashed too: row 3 fits its own hash, row 4 no longer follows it.
    let row3 = rows[2].clone();
    sqlx::query("UPDATE audit_log SET hash = $1 WHERE id = 3")
        .bind(row3.computed_hash())
        .execute(&store.pool)
        .await?;
    let rows = store.audit(0, None, 100).await?;
    let broken = verify_chain(&rows, None).expect_err("row 4 does not follow");
    assert!(
        matches!(
            broken,
            ChainBreak::Unlinked {
                id: 4,
                previous: 3,
                ..
            }
        ),
        "{broken:?}"
    );

    // Removed: row 2 gone, row 3 is named.
    let (_dir, store) = temp_store(backend).await?;
    for i in 0..4 {
        store.append_audit(entry(i)).await?;
    }
    sqlx::query("DELETE FROM audit_log WHERE id = 2")
        .execute(&store.pool)
        .await?;
    let broken = verify_chain(&store.audit(0, None, 100).await?, None).expect_err("a gap");
    assert_eq!(broken.row(), 3);
    assert!(broken.to_string().contains("row 2 is missing"), "{broken}");

    // Details that are no longer JSON still read, and fail.
    sqlx::query("UPDATE audit_log SET details = 'not json' WHERE id = 4")
        .execute(&store.pool)
        .await?;
    let rows = store.audit(0, None, 100).await?;
    assert_eq!(
        verify_chain(&rows[2..], Some((rows[1].id, rows[1].hash.as_str()))).map_err(|b| b.row()),
        Err(4)
    );
    Ok(())
}
