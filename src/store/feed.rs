//! The event feed: both histories — the deployments' `events` and the
//! `environment_events` — read as one list after a [`FeedCursor`], for
//! `GET /v1/events/stream` (server-sent events) and `cutover events`.
//!
//! A cursor is a pair of row ids, the last seen of each table, so a reader
//! that resumes from one misses nothing and sees nothing twice: SQLite has
//! one writer, so each table's ids become visible in increasing order. The
//! two tables are merged by time (deployments' first at the same
//! millisecond), each kept in its own id order.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::codec;
use super::{Store, StoreError};

/// Where a reader of the feed stands: the last deployment event and the
/// last environment event it has seen. Written `D-E` (e.g. `42-7`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCursor {
    /// The last `events.id` seen.
    pub deployment_event: i64,
    /// The last `environment_events.id` seen.
    pub environment_event: i64,
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.deployment_event, self.environment_event)
    }
}

impl std::str::FromStr for FeedCursor {
    type Err = String;

    fn from_str(s: &str) -> Result<FeedCursor, String> {
        let bad = || {
            format!(
                "{s:?} is not an event cursor: it is two numbers joined by `-` (the `id` of an event, e.g. 42-7)"
            )
        };
        let (d, e) = s.trim().split_once('-').ok_or_else(bad)?;
        let number = |t: &str| t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(bad);
        Ok(FeedCursor {
            deployment_event: number(d)?,
            environment_event: number(e)?,
        })
    }
}

/// Which history an event comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedSource {
    /// An event of a deployment.
    Deployment {
        /// The deployment.
        deployment_id: i64,
        /// The version it brings.
        version: String,
    },
    /// An event of the environment outside deployments.
    Environment,
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The cursor just after this event (resume from it to get the next).
    pub cursor: FeedCursor,
    /// Where it comes from.
    pub source: FeedSource,
    /// Its row id in its own table.
    pub id: i64,
    /// The environment.
    pub environment: String,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details.
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    environment: String,
    deployment_id: Option<i64>,
    version: Option<String>,
    at: i64,
    kind: String,
    message: String,
    data: String,
}

macro_rules! deployment_events {
    () => {
        "SELECT e.id, d.environment, e.deployment_id, d.version, e.at, e.kind, e.message, e.data
         FROM events e JOIN deployments d ON d.id = e.deployment_id
         WHERE e.id > $1 AND ($2 IS NULL OR d.environment = $2)"
    };
}
macro_rules! environment_events {
    () => {
        "SELECT id, environment, NULL AS deployment_id, NULL AS version, at, kind, message, data
         FROM environment_events
         WHERE id > $1 AND ($2 IS NULL OR environment = $2)"
    };
}
const OLDEST_FIRST: [&str; 2] = [
    concat!(deployment_events!(), " ORDER BY 1 ASC LIMIT $3"),
    concat!(environment_events!(), " ORDER BY 1 ASC LIMIT $3"),
];
const NEWEST_FIRST: [&str; 2] = [
    concat!(deployment_events!(), " ORDER BY 1 DESC LIMIT $3"),
    concat!(environment_events!(), " ORDER BY 1 DESC LIMIT $3"),
];

impl Store {
    /// Up to `limit` events after `after` (of `environment` only, if
    /// given), oldest first.
    pub async fn feed_after(
        &self,
        after: FeedCursor,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        let limit = i64::from(limit.max(1));
        let [d, e] = OLDEST_FIRST;
        let deployments = self
            .feed_rows(d, after.deployment_event, environment, limit)
            .await?;
        let environments = self
            .feed_rows(e, after.environment_event, environment, limit)
            .await?;
        // A list cut at `limit` may go on after its last row: the other is
        // taken only up to that time, so the merged order holds across calls.
        let cut = |rows: &VecDeque<Row>| {
            (rows.len() as i64 >= limit).then(|| rows.back().map_or(i64::MAX, |r| r.at))
        };
        let until = match (cut(&deployments), cut(&environments)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => i64::MAX,
        };
        let mut events = merge(after, deployments, environments, until)?;
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(events)
    }

    /// The latest `limit` events (of `environment` only, if given), oldest
    /// first, and the cursor after the newest event (where a follower
    /// resumes; the start of the feed when there is none).
    pub async fn feed_latest(
        &self,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<FeedEvent>, FeedCursor), StoreError> {
        // One row at least, for the head.
        let rows = i64::from(limit.max(1));
        let [d, e] = NEWEST_FIRST;
        let oldest_first = |rows: VecDeque<Row>| rows.into_iter().rev().collect::<VecDeque<Row>>();
        let deployments = oldest_first(self.feed_rows(d, 0, environment, rows).await?);
        let environments = oldest_first(self.feed_rows(e, 0, environment, rows).await?);
        let head = FeedCursor {
            deployment_event: deployments.back().map_or(0, |r| r.id),
            environment_event: environments.back().map_or(0, |r| r.id),
        };
        // The merged list's last `limit` events take a suffix of each list;
        // a table with no event among them was read up to its newest.
        let all = merge(FeedCursor::default(), deployments, environments, i64::MAX)?;
        let skip = all
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut kept: Vec<FeedEvent> = all.into_iter().skip(skip).collect();
        let first_of = |deployment: bool| {
            kept.iter()
                .find(|e| matches!(e.source, FeedSource::Deployment { .. }) == deployment)
                .map(|e| e.id)
        };
        let base = FeedCursor {
            deployment_event: first_of(true).map_or(head.deployment_event, |id| id - 1),
            environment_event: first_of(false).map_or(head.environment_event, |id| id - 1),
        };
        let mut cursor = base;
        for event in &mut kept {
            match event.source {
                FeedSource::Deployment { .. } => cursor.deployment_event = event.id,
                FeedSource::Environment => cursor.environment_event = event.id,
            }
            event.cursor = cursor;
        }
        Ok((kept, head))
    }

    async fn feed_rows(
        &self,
        sql: &'static str,
        after: i64,
        environment: Option<&str>,
        limit: i64,
    ) -> Result<VecDeque<Row>, StoreError> {
        Ok(sqlx::query_as::<_, Row>(sql)
            .bind(after)
            .bind(environment)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .into())
    }
}

/// Merges the two lists (each in id order) by time, up to `until`
/// (milliseconds), stamping each event with the cursor after it.
fn merge(
    mut cursor: FeedCursor,
    mut deployments: VecDeque<Row>,
    mut environments: VecDeque<Row>,
    until: i64,
) -> Result<Vec<FeedEvent>, StoreError> {
    let mut out = Vec::new();
    loop {
        let take_deployment = match (deployments.front(), environments.front()) {
            (Some(d), Some(e)) => d.at <= e.at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let queue = if take_deployment {
            &mut deployments
        } else {
            &mut environments
        };
        // The earlier of the two heads is past `until`: so is the other.
        let Some(row) = queue.pop_front().filter(|r| r.at <= until) else {
            break;
        };
        let source = match (row.deployment_id, row.version) {
            (Some(deployment_id), Some(version)) => {
                cursor.deployment_event = row.id;
                FeedSource::Deployment {
                    deployment_id,
                    version,
                }
            }
            _ => {
                cursor.environment_event = row.id;
                FeedSource::Environment
            }
        };
        out.push(FeedEvent {
            cursor,
            source,
            id: row.id,
            environment: row.environment,
            at: codec::timestamp(row.at, "feed.at")?,
            kind: row.kind,
            message: row.message,
            data: codec::json(&row.data, "feed.data")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{DeploymentKind, NewDeployment};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.expect("open");
        (dir, store)
    }

    async fn deployment(store: &Store, env: &str) -> i64 {
        store
            .create_deployment(&NewDeployment {
                environment: env.into(),
                version: "v2".into(),
                previous_version: None,
                strategy: "canary".into(),
                kind: DeploymentKind::Deploy,
                requested_by: "t".into(),
            })
            .await
            .expect("create")
    }

    fn kinds(events: &[FeedEvent]) -> Vec<String> {
        events.iter().map(|e| e.message.clone()).collect()
    }

    #[test]
    fn a_cursor_reads_back_and_bad_ones_say_what_they_should_be() {
        let c: FeedCursor = "42-7".parse().expect("parses");
        assert_eq!(c.to_string(), "42-7");
        for bad in ["", "42", "a-b", "-1-2", "1-"] {
            let err = bad.parse::<FeedCursor>().expect_err(bad);
            assert!(err.contains("two numbers"), "{err}");
        }
    }

    #[tokio::test]
    async fn both_histories_read_as_one_list_resumable_without_loss_or_repeat() {
        let (_dir, store) = store().await;
        let prod = deployment(&store, "prod").await;
        let staging = deployment(&store, "staging").await;
        let kind = cutover_core::EventKind::Step;
        // Apart in time, so that the merged order is the order written.
        let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));
        store
            .add_event(prod, kind, "p1", json!({}))
            .await
            .expect("add");
        tick().await;
        store
            .add_environment_event("prod", "certificate_loaded", "c1", json!({}))
            .await
            .expect("add");
        tick().await;
        store
            .add_event(staging, kind, "s1", json!({}))
            .await
            .expect("add");
        tick().await;
        store
            .add_event(prod, kind, "p2", json!({}))
            .await
            .expect("add");
        tick().await;
        store
            .add_environment_event("prod", "certificate_reloaded", "c2", json!({}))
            .await
            .expect("add");

        let all = store
            .feed_after(FeedCursor::default(), None, 100)
            .await
            .expect("feed");
        assert_eq!(kinds(&all), ["p1", "c1", "s1", "p2", "c2"]);
        assert_eq!(all.last().expect("some").cursor.to_string(), "3-2");
        // Two at a time, each from the last cursor: the same list.
        let mut cursor = FeedCursor::default();
        let mut paged = Vec::new();
        loop {
            let page = store.feed_after(cursor, None, 2).await.expect("feed");
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            paged.extend(page);
        }
        assert_eq!(kinds(&paged), kinds(&all));
        // One environment only.
        let prod_only = store
            .feed_after(FeedCursor::default(), Some("prod"), 100)
            .await
            .expect("feed");
        assert_eq!(kinds(&prod_only), ["p1", "c1", "p2", "c2"]);
        // The latest three, and a cursor that resumes after them.
        let (latest, head) = store.feed_latest(None, 3).await.expect("latest");
        assert_eq!(kinds(&latest), ["s1", "p2", "c2"]);
        assert_eq!(head.to_string(), "3-2");
        assert_eq!(latest[0].cursor.to_string(), "2-1");
        let after_first = store
            .feed_after(latest[0].cursor, None, 100)
            .await
            .expect("feed");
        assert_eq!(kinds(&after_first), ["p2", "c2"]);
        let (none, head_alone) = store.feed_latest(None, 0).await.expect("head");
        assert!(none.is_empty());
        assert_eq!(head_alone, head);
        assert!(
            store
                .feed_after(head, None, 100)
                .await
                .expect("feed")
                .is_empty()
        );
    }
}
