//! Two daemons on one shared PostgreSQL store: each runs its own sync task, and every
//! write-back is still carried out once, in order for each problem.
//!
//! The database comes from `pagerbridge_testkit::postgres` (a throwaway cluster unless
//! `PAGERBRIDGE_TEST_POSTGRES_URL` names a server); without PostgreSQL the test prints
//! `SKIPPED: <why>` and passes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use pagerbridge_model::MonitorRef;
use pagerbridge_store::postgres::PgStore;
use pagerbridge_store::{NewWriteback, SyncStore, WritebackState};
use pagerbridge_sync::plan::MonitorRoute;
use pagerbridge_sync::worker::{Backoff, MonitorTarget, Sync};
use pagerbridge_sync::writeback::{Action, Adapter, Applied, Change, Kind, Request, WriteError};
use pagerbridge_testkit::postgres::fresh_database_or_skip;
use serde_json::json;

/// What the monitor saw: (host, replica, step), in the order applied.
type Log = Arc<Mutex<Vec<(String, &'static str, u64)>>>;

/// A monitor that records who applied what, slowly enough for the replicas to race.
struct Recording {
    replica: &'static str,
    log: Log,
}

#[async_trait::async_trait]
impl Adapter for Recording {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let MonitorRef::Object { host, .. } = req.target else {
            return Err(WriteError::fail("not an object"));
        };
        let step: u64 = req.change.comment.parse().unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.log
            .lock()
            .unwrap()
            .push((host.clone(), self.replica, step));
        Ok(Applied {
            memo: None,
            detail: self.replica.into(),
        })
    }
}

fn replica(store: &PgStore, name: &'static str, log: &Log) -> Arc<Sync> {
    let target = MonitorTarget {
        route: MonitorRoute {
            name: "icinga".into(),
            policy: Kind::Webhook.default_policy(),
            sources: vec!["icinga".into()],
        },
        adapter: Arc::new(Recording {
            replica: name,
            log: log.clone(),
        }),
    };
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(1),
        give_up_after: Duration::from_secs(60),
    };
    Arc::new(
        Sync::new(
            Arc::new(store.clone()),
            vec![target],
            HashMap::new(),
            backoff,
        )
        .with_owner(name),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_carry_out_each_write_back_once_and_in_order() {
    let Some(url) = fresh_database_or_skip().await else {
        return;
    };
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    // Eight problems, five changes each (acknowledgement, notes, resolve), queued in order.
    let now = Timestamp::now();
    let items: Vec<NewWriteback> = (0..5)
        .flat_map(|step| {
            (0..8).map(move |p| {
                let change = Change {
                    action: if step == 0 {
                        Action::Acknowledge
                    } else {
                        Action::Comment
                    },
                    author: "Ada".into(),
                    comment: step.to_string(),
                    incident_id: format!("PINC{p}"),
                    incident_url: None,
                    expires_at: None,
                    at: now,
                };
                let target = MonitorRef::Object {
                    host: format!("host-{p}"),
                    service: None,
                    problem_id: None,
                    last_problem_id: None,
                };
                NewWriteback {
                    monitor: "icinga".into(),
                    routing_key: "r0utingkey0000000000000000000001".into(),
                    dedup_key: format!("host-{p}"),
                    change: json!({"change": change, "target": target}),
                    due: now,
                }
            })
        })
        .collect();
    a.enqueue_writebacks(&items).await.unwrap();

    let log: Log = Arc::default();
    let replicas = [
        replica(&a, "replica-a", &log),
        replica(&b, "replica-b", &log),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = a
            .list_writebacks(Some(WritebackState::Done), 100)
            .await
            .unwrap()
            .len();
        if done == items.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {} done",
            items.len()
        );
        let (x, y) = tokio::join!(
            replicas[0].dispatch_writebacks(Timestamp::now()),
            replicas[1].dispatch_writebacks(Timestamp::now())
        );
        x.unwrap();
        y.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), items.len(), "each carried out once: {log:?}");
    let mut per_host: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (host, _, step) in &log {
        per_host.entry(host).or_default().push(*step);
    }
    for (host, steps) in per_host {
        assert_eq!(steps, [0, 1, 2, 3, 4], "{host}: out of order or twice");
    }
    let who: HashSet<&str> = log.iter().map(|(_, r, _)| *r).collect();
    assert_eq!(who.len(), 2, "both replicas took part: {who:?}");
}
