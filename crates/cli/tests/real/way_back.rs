//! Shared by the write-back tests (`real_writeback_*.rs`): what responders do in PagerDuty
//! (acknowledge, add a note, resolve) carried back into a real monitor by the daemon.
//!
//! The emulator plays PagerDuty: the test acts as its demo user ([`RESPONDER`]) through the
//! REST API, and the emulator tells the daemon through its own Webhooks v3 subscription,
//! signed with the secret it gave at creation, or the daemon polls its log entries. The daemon
//! is the real binary (`pagerbridge serve`); its SQLite database is read beside it to count
//! the write-backs it did and the events it sent.
//!
//! Beside the responders' changes, [`Scenario`] proves the daemon's own repairs with a real
//! monitor: the reconciler re-sending a resolve PagerDuty refused ([`Scenario::lost_resolve`]),
//! and the maintenance watch acknowledging a problem PagerDuty opened no incident for
//! ([`Scenario::in_maintenance`]).

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use pagerbridge_store::sqlite::SqliteStore;
use pagerbridge_store::{
    EventRecord, ListQuery, MappedIncident, MonitorState, State, Store, SyncStore, WritebackRecord,
    WritebackState,
};
use pagerbridge_testkit::{DEMO_ROUTING_KEY, TestPd};
use pagerduty::events::EventAction;
use pagerduty::rest::{Incident as PdIncident, IncidentStatus, IncidentUpdate, MaintenanceWindow};
use pagerduty_emulator::seed::DEMO_API_TOKEN;

use super::Bridge;

/// The emulator's demo user, whom `TestPd::rest()` acts as (its `From` header).
pub const RESPONDER: &str = "Ada Operator";

/// The route of the docs' `[sync.webhooks]` (its default).
pub const WEBHOOK_PATH: &str = "/webhooks/pagerduty";

/// The reconciler every 10 s: a recovery counts as settled after one pass, so a lost resolve
/// is sent again 10 to 20 s after the recovery.
pub const RECONCILER: &str = "[sync.reconciler]\ninterval = \"10s\"\n";

/// The maintenance watch asking PagerDuty every 5 s.
pub const MAINTENANCE: &str = "[sync.maintenance]\nrefresh = \"5s\"\n";

/// How PagerDuty's changes reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// The emulator's Webhooks v3 subscription posts them to the daemon.
    Webhooks,
    /// No subscription: the daemon polls the emulator's log entries (`[sync.poller]`).
    Poller,
}

/// The emulator, a directory, and the port the daemon will listen on, chosen before it starts
/// so that the emulator's subscription (made first: its signing secret goes into the daemon's
/// configuration) can point at it.
pub struct WayBack {
    pub pd: TestPd,
    pub tmp: tempfile::TempDir,
    pub port: u16,
    /// The subscription's signing secret (None when polling).
    pub secret: Option<String>,
    pub way: Way,
}

impl WayBack {
    pub async fn start(tmp: tempfile::TempDir, way: Way) -> WayBack {
        let pd = TestPd::start().await;
        let port = super::free_port();
        let secret = match way {
            Way::Webhooks => Some(
                pd.subscribe_webhooks(&format!("http://127.0.0.1:{port}{WEBHOOK_PATH}"))
                    .await,
            ),
            Way::Poller => None,
        };
        WayBack {
            pd,
            tmp,
            port,
            secret,
            way,
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Where [`Bridge::start`] writes the daemon's configuration: the monitors' notification
    /// commands name it before the daemon runs.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("pagerbridge.toml")
    }

    /// The daemon's configuration: [`super::bridge_config_on`] the chosen port, write-backs
    /// retried quickly, when polling the poller every 5 s with the REST API token, then
    /// `extra` (the snippets).
    pub fn config(&self, extra: &str) -> String {
        self.config_with("", extra)
    }

    /// [`WayBack::config`] with `repairs` before `extra`: sections of the daemon's own
    /// repairs ([`RECONCILER`], [`MAINTENANCE`]), which read PagerDuty's REST API and so come
    /// with the API token whatever the way.
    pub fn config_with(&self, repairs: &str, extra: &str) -> String {
        let poller = match self.way {
            Way::Poller => "[sync.poller]\nenabled = true\ninterval = \"5s\"\n\n",
            Way::Webhooks => "",
        };
        let config = format!(
            "{}\n[sync.writeback]\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n\n\
             {poller}{repairs}\n{extra}",
            super::bridge_config_on(&self.pd.url(), self.port)
        );
        if self.way == Way::Webhooks && repairs.is_empty() {
            return config;
        }
        super::substitute(
            &config,
            "[pagerduty]\n",
            &format!("[pagerduty]\napi_token = \"{DEMO_API_TOKEN}\"\n"),
        )
    }

    /// Starts the daemon on `config` with `env` (and, on the webhook way, the subscription's
    /// secret in `PAGERDUTY_WEBHOOK_SECRET`, as the snippets read it) and checks that it
    /// listens where the subscription points.
    pub async fn start_bridge(
        &self,
        config: &str,
        user: Option<&str>,
        env: &[(&str, &str)],
    ) -> Bridge {
        let mut env = env.to_vec();
        if let Some(secret) = &self.secret {
            env.push(("PAGERDUTY_WEBHOOK_SECRET", secret));
        }
        let bridge = Bridge::start(self.dir(), config, user, &env).await;
        assert_eq!(
            bridge.url,
            format!("http://127.0.0.1:{}", self.port),
            "the daemon listens on the port chosen for it\n{}",
            bridge.proc.log_tail(20)
        );
        bridge
    }

    /// The docs' write-back snippet `name` as this way uses it. With webhooks, verbatim: it
    /// reads the subscription's secret from `PAGERDUTY_WEBHOOK_SECRET`, which
    /// [`WayBack::start_bridge`] gives the daemon alone. The monitors' notification commands
    /// load the same file (`pagerbridge send --config`) in the monitor's environment, without
    /// it: that they still work is part of what is proven. When polling, only its
    /// `[[monitors]]` part.
    pub fn writeback_snippet(&self, name: &str) -> String {
        let text = super::snippet(name);
        if self.way == Way::Poller {
            return monitors_part(&text);
        }
        assert!(
            text.contains(&format!("path = \"{WEBHOOK_PATH}\"")),
            "the subscription points at the snippet's route:\n{text}"
        );
        assert!(
            text.contains("secrets = [{ env = \"PAGERDUTY_WEBHOOK_SECRET\" }]"),
            "the snippet reads the secret from the environment:\n{text}"
        );
        text
    }

    /// On the polling way, that PagerDuty's changes can only reach the daemon by polling.
    pub fn assert_way(&self) {
        assert_way(&self.pd, self.way);
    }
}

/// On the polling way, that the emulator has no webhook subscription: PagerDuty's changes can
/// only reach the daemon by polling.
pub fn assert_way(pd: &TestPd, way: Way) {
    if way == Way::Poller {
        assert!(
            pd.world().subscriptions.is_empty(),
            "no webhook subscription: the changes can only come by polling"
        );
    }
}

/// Only the `[[monitors]]` part of a write-back snippet (without its `[sync.webhooks]`), for
/// the polling way.
pub fn monitors_part(snippet: &str) -> String {
    let at = snippet
        .find("[[monitors]]")
        .unwrap_or_else(|| panic!("the snippet has no [[monitors]] entry:\n{snippet}"));
    snippet[at..].to_owned()
}

/// The daemon's database, read beside it.
pub struct Db(SqliteStore);

impl Db {
    /// Opens the database of the daemon started in `dir` (`data/pagerbridge.db`, as
    /// [`super::bridge_config`] says), once the daemon made it.
    pub async fn open(dir: &Path) -> Db {
        let path = dir.join("data/pagerbridge.db");
        assert!(
            path.exists(),
            "the daemon's database {} exists once it listens",
            path.display()
        );
        Db(SqliteStore::open_brief(&path)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display())))
    }

    /// Every write-back, oldest first.
    pub async fn writebacks(&self) -> Vec<WritebackRecord> {
        let mut all = self
            .0
            .list_writebacks(None, 1000)
            .await
            .expect("list the write-backs");
        all.reverse();
        all
    }

    /// The incident map's row for `dedup_key`.
    pub async fn incident(&self, dedup_key: &str) -> Option<MappedIncident> {
        let rows = self
            .0
            .incidents_by_dedup_key(dedup_key)
            .await
            .expect("read the incident map");
        assert!(rows.len() <= 1, "one map row per problem: {rows:?}");
        rows.into_iter().next()
    }

    /// The outbox's events for `dedup_key`, whatever their state, oldest first.
    pub async fn events(&self, dedup_key: &str) -> Vec<EventRecord> {
        let mut all = self
            .0
            .list(&ListQuery {
                states: vec![
                    State::Pending,
                    State::Delivered,
                    State::Dead,
                    State::Coalesced,
                    State::Dropped,
                ],
                routing_key: None,
                dedup_key: Some(dedup_key.to_owned()),
                before_id: None,
                limit: 1000,
            })
            .await
            .expect("list the outbox");
        all.sort_by_key(|e| e.id);
        all
    }

    /// Nothing left to do: every stored change processed, no write-back waiting, no event queued.
    pub async fn idle(&self) -> bool {
        let pending = self.0.inbox_pending(1).await.expect("read the inbox");
        let waiting = self
            .0
            .list_writebacks(Some(WritebackState::Pending), 1)
            .await
            .expect("list the write-backs");
        // PagerDuty acts on an event before the dispatcher records its delivery.
        let queued = pagerbridge_store::Store::list(
            &self.0,
            &pagerbridge_store::ListQuery {
                states: vec![pagerbridge_store::State::Pending],
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .expect("list the outbox");
        pending.is_empty() && waiting.is_empty() && queued.is_empty()
    }
}

/// `action` of each write-back, and how it ended, for assertions and messages.
pub fn summary(writebacks: &[WritebackRecord]) -> Vec<(String, WritebackState)> {
    writebacks
        .iter()
        .map(|w| {
            (
                w.change["change"]["action"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                w.state,
            )
        })
        .collect()
}

/// `source`, `action` and state of each event of the outbox, for assertions and messages.
pub fn events_summary(events: &[EventRecord]) -> Vec<(String, Option<EventAction>, State)> {
    events
        .iter()
        .map(|e| (e.source.clone(), e.action, e.state))
        .collect()
}

/// Waits until the emulator has delivered every webhook it queued (answered 2xx) and the
/// daemon has processed every change and carried out every write-back; when the daemon polls,
/// after a whole poll that starts from now on.
pub async fn settle(pd: &TestPd, way: Way, db: &Db, report: impl Fn() -> String) {
    if way == Way::Poller {
        a_poll_later(pd, &report).await;
    }
    super::wait_until(
        "PagerDuty's changes to be delivered and processed",
        &report,
        async || {
            let deliveries = pd.deliveries();
            let delivered = deliveries
                .iter()
                .all(|d| d.state == pagerduty_emulator::webhooks::DeliveryState::Delivered);
            (delivered && db.idle().await).then_some(())
        },
    )
    .await;
    for d in pd.deliveries() {
        assert!(
            matches!(d.last_status, Some(200 | 202)),
            "the daemon takes every signed delivery: {d:?}\n{}",
            report()
        );
    }
}

/// Waits for at least one whole poll of the emulator's log entries that starts from now on.
pub async fn a_poll_later(pd: &TestPd, report: impl Fn() -> String) {
    let polls = || {
        pd.exchanges()
            .iter()
            .filter(|x| x.method == "GET" && x.path.starts_with("/log_entries"))
            .count()
    };
    let before = polls();
    // The poll in flight now may have started before the caller's change; the one after it
    // did not.
    super::wait_for("two more polls of PagerDuty's log entries", report, || {
        (polls() >= before + 2).then_some(())
    })
    .await;
}

/// The incident the emulator opened for `key`, as its REST API shows it.
pub async fn the_incident(pd: &TestPd, key: &str, report: impl Fn() -> String) -> PdIncident {
    let id = super::wait_for("the problem to open an incident", report, || {
        pd.world()
            .incidents
            .iter()
            .find(|i| i.incident_key == key)
            .map(|i| i.id.clone())
    })
    .await;
    pd.rest()
        .get_incident(&id)
        .await
        .expect("GET /incidents/{id}")
}

pub async fn acknowledge(pd: &TestPd, id: &str) {
    let inc = pd
        .rest()
        .update_incident(id, &IncidentUpdate::status(IncidentStatus::Acknowledged))
        .await
        .expect("the responder acknowledges");
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
}

pub async fn resolve(pd: &TestPd, id: &str) {
    let inc = pd
        .rest()
        .update_incident(id, &IncidentUpdate::status(IncidentStatus::Resolved))
        .await
        .expect("the responder resolves");
    assert_eq!(inc.status, IncidentStatus::Resolved);
}

pub async fn add_note(pd: &TestPd, id: &str, text: &str) {
    pd.rest()
        .create_note(id, text)
        .await
        .expect("the responder adds a note");
}

/// A comment on the problem in a Nagios-family monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The acknowledgement's own comment (entry type 4), as opposed to a user's comment (1).
    pub ack: bool,
    pub author: String,
    pub text: String,
}

/// How the test sees a Nagios-family monitor (Icinga 2, Nagios 4) holding one service.
pub trait Monitor {
    /// The service fails (CRITICAL), as its check says.
    async fn fail(&self);
    /// The service is OK again, as its check says.
    async fn recover(&self);
    /// Whether the service's problem is acknowledged.
    async fn acknowledged(&self) -> bool;
    /// Whether the service is CRITICAL.
    async fn critical(&self) -> bool;
    /// The service's comments, oldest first.
    async fn comments(&self) -> Vec<Comment>;
    /// Whether the monitor's acknowledgements can end by themselves (Icinga 2's `expiry`).
    const EXPIRING_ACKS: bool = false;
    /// When the service's acknowledgement ends by itself (None: it does not).
    async fn acknowledgement_expiry(&self) -> Option<Timestamp> {
        None
    }
    /// The monitor's logs and state, for failure messages.
    fn report(&self) -> String;
}

/// What the Nagios-family tests check: one incident per problem, the way back for each of
/// PagerDuty's changes, and how many write-backs the daemon did.
pub struct Scenario<'a, M: Monitor> {
    pub pd: &'a TestPd,
    pub bridge: &'a Bridge,
    pub db: &'a Db,
    pub monitor: &'a M,
    /// The dedup key of the service's problem (`host/service`).
    pub key: &'a str,
    pub way: Way,
}

impl<M: Monitor> Scenario<'_, M> {
    pub fn report(&self) -> String {
        format!(
            "{}\n{}\n--- pagerbridge.log:\n{}",
            super::emulator_report(self.pd),
            self.monitor.report(),
            self.bridge.proc.log_tail(40)
        )
    }

    async fn settle(&self) {
        settle(self.pd, self.way, self.db, || self.report()).await;
    }

    /// Waits (for `what`) until the monitor shows the problem acknowledged; returns the
    /// acknowledgement's comment.
    async fn the_acknowledgement(&self, what: &str) -> Comment {
        super::wait_until(
            what,
            || self.report(),
            async || {
                if !self.monitor.acknowledged().await {
                    return None;
                }
                self.monitor.comments().await.into_iter().find(|c| c.ack)
            },
        )
        .await
    }

    /// The responder acknowledges, adds a note and resolves, each shown in the monitor
    /// ([`Scenario::acknowledge`], [`Scenario::annotate`], [`Scenario::resolve`]).
    pub async fn responder_changes(&self) {
        let inc = self.open().await;
        self.acknowledge(&inc).await;
        self.annotate(&inc).await;
        self.resolve(&inc).await;
    }

    /// The responder acknowledges: [`Scenario::acknowledge`]. On the polling way, the only
    /// way the acknowledgement can reach the daemon.
    pub async fn acknowledgement(&self) {
        let inc = self.open().await;
        self.acknowledge(&inc).await;
    }

    /// The monitor's problem opens one incident; its (the integration's) trigger is written
    /// back nowhere. Returns the incident.
    pub async fn open(&self) -> PdIncident {
        assert_way(self.pd, self.way);
        self.monitor.fail().await;
        let inc = the_incident(self.pd, self.key, || self.report()).await;
        assert_eq!(inc.status, IncidentStatus::Triggered, "{}", self.report());
        self.settle().await;
        let done = self.db.writebacks().await;
        assert!(
            done.is_empty(),
            "the incident's trigger (by the integration) is not written back: {:?}\n{}",
            summary(&done),
            self.report()
        );
        inc
    }

    /// The responder acknowledges in PagerDuty: the monitor shows the acknowledgement, by the
    /// responder, with the incident's link. The monitor's own ACKNOWLEDGEMENT notification
    /// (the snippet's `notify` turned on) goes to PagerDuty through `pagerbridge send`, and
    /// comes back as nothing: one acknowledgement, one write-back.
    pub async fn acknowledge(&self, inc: &PdIncident) {
        let url = inc.html_url.as_deref().expect("incidents have a page");
        acknowledge(self.pd, &inc.id).await;
        let ack = self
            .the_acknowledgement("the acknowledgement made in PagerDuty to show in the monitor")
            .await;
        assert_eq!(
            ack.author,
            RESPONDER,
            "the acknowledgement's author is the responder\n{}",
            self.report()
        );
        assert_eq!(
            ack.text,
            format!("Acknowledged in PagerDuty by {RESPONDER} {url}"),
            "the acknowledgement's comment says who and links the incident\n{}",
            self.report()
        );

        // The echo: the monitor reports its acknowledgement like any other; PagerDuty gets
        // it from the integration.
        super::wait_for(
            "the monitor's ACKNOWLEDGEMENT notification to reach PagerDuty",
            || self.report(),
            || {
                super::actions_for(self.pd, self.key)
                    .iter()
                    .any(|a| a == "acknowledge")
                    .then_some(())
            },
        )
        .await;
        self.settle().await;
        let done = self.db.writebacks().await;
        assert_eq!(
            summary(&done),
            [("acknowledge".to_owned(), WritebackState::Done)],
            "one write-back: the responder's acknowledgement, not its echo\n{}",
            self.report()
        );
        let comments = self.monitor.comments().await;
        assert_eq!(
            comments,
            [ack],
            "the monitor has the one acknowledgement and nothing else\n{}",
            self.report()
        );
        let incidents = super::incidents_with_key(self.pd, self.key);
        assert_eq!(
            incidents.iter().map(|i| i.status).collect::<Vec<_>>(),
            [IncidentStatus::Acknowledged],
            "still one incident, acknowledged: {incidents:?}\n{}",
            self.report()
        );
        let row = self.db.incident(self.key).await;
        let row = row.unwrap_or_else(|| panic!("no map row for {}\n{}", self.key, self.report()));
        assert_eq!(
            (
                row.incident_id.as_deref(),
                row.pd_status.as_deref(),
                row.monitor_state
            ),
            (
                Some(inc.id.as_str()),
                Some("acknowledged"),
                pagerbridge_store::MonitorState::Acknowledged
            ),
            "the map knows the incident, acknowledged on both sides\n{}",
            self.report()
        );
    }

    /// The responder adds a note: a comment in the monitor, by the responder.
    pub async fn annotate(&self, inc: &PdIncident) {
        let url = inc.html_url.as_deref().expect("incidents have a page");
        let note = "Replacing the disk, back within the hour";
        add_note(self.pd, &inc.id, note).await;
        let text = format!("PagerDuty note by {RESPONDER}: {note} {url}");
        let found = super::wait_until(
            "the note made in PagerDuty to show as a comment",
            || self.report(),
            async || {
                let comments = self.monitor.comments().await;
                comments.iter().any(|c| c.text == text).then_some(comments)
            },
        )
        .await;
        self.settle().await;
        let comments = self.monitor.comments().await;
        assert_eq!(comments, found, "{}", self.report());
        assert_eq!(
            comments
                .iter()
                .filter(|c| !c.ack)
                .cloned()
                .collect::<Vec<_>>(),
            [Comment {
                ack: false,
                author: RESPONDER.to_owned(),
                text,
            }],
            "one comment with the note, by the responder\n{}",
            self.report()
        );
        assert_eq!(
            summary(&self.db.writebacks().await),
            [
                ("acknowledge".to_owned(), WritebackState::Done),
                ("comment".to_owned(), WritebackState::Done)
            ],
            "{}",
            self.report()
        );
    }

    /// The responder resolves: by default a comment saying so; the problem stays, as only
    /// the monitor's own check can end it.
    pub async fn resolve(&self, inc: &PdIncident) {
        let url = inc.html_url.as_deref().expect("incidents have a page");
        resolve(self.pd, &inc.id).await;
        let text = format!("Resolved in PagerDuty by {RESPONDER} {url}");
        super::wait_until(
            "the resolve in PagerDuty to show as a comment",
            || self.report(),
            async || {
                self.monitor
                    .comments()
                    .await
                    .iter()
                    .any(|c| c.text == text)
                    .then_some(())
            },
        )
        .await;
        self.settle().await;
        let comments = self.monitor.comments().await;
        let resolved: Vec<&Comment> = comments.iter().filter(|c| c.text == text).collect();
        assert_eq!(
            resolved,
            [&Comment {
                ack: false,
                author: RESPONDER.to_owned(),
                text: text.clone(),
            }],
            "one comment for the resolve, by the responder\n{}",
            self.report()
        );
        assert_eq!(
            comments.len(),
            3,
            "the acknowledgement, the note and the resolve: {comments:?}\n{}",
            self.report()
        );
        assert!(
            self.monitor.critical().await && self.monitor.acknowledged().await,
            "the problem stays, acknowledged, until the monitor's check recovers\n{}",
            self.report()
        );
        assert_eq!(
            summary(&self.db.writebacks().await),
            [
                ("acknowledge".to_owned(), WritebackState::Done),
                ("comment".to_owned(), WritebackState::Done),
                ("comment".to_owned(), WritebackState::Done)
            ],
            "{}",
            self.report()
        );
        let incidents = super::incidents_with_key(self.pd, self.key);
        assert_eq!(
            incidents.iter().map(|i| i.status).collect::<Vec<_>>(),
            [IncidentStatus::Resolved],
            "one incident, resolved: {incidents:?}\n{}",
            self.report()
        );
    }

    /// The problem opens an incident; the monitor's recovery reaches PagerDuty refused (a
    /// `400`: the emulator's next event fails), so its resolve becomes a dead letter and the
    /// incident stays open; the reconciler ([`RECONCILER`]) sees the problem recovered and the
    /// incident open, and sends the resolve again: the incident ends resolved, by the outbox's
    /// event of source `reconciler`. Nothing is written back: the resolve is the
    /// integration's.
    pub async fn lost_resolve(&self) {
        let inc = self.open().await;
        let report = || self.report();
        let sent = self.db.events(self.key).await;
        // What the monitor's notification commands (`pagerbridge send`) store.
        let monitor = sent.first().map(|e| e.source.clone()).unwrap_or_default();
        assert_eq!(
            events_summary(&sent),
            [(
                monitor.clone(),
                Some(EventAction::Trigger),
                State::Delivered
            )],
            "the problem's trigger, delivered\n{}",
            report()
        );
        // The next event is the recovery's resolve.
        self.pd.refuse_next_events(400, 1);
        self.monitor.recover().await;
        let dead = super::wait_until(
            "the recovery's resolve to become a dead letter",
            report,
            async || {
                self.db
                    .events(self.key)
                    .await
                    .into_iter()
                    .find(|e| e.state == State::Dead)
            },
        )
        .await;
        assert_eq!(
            (dead.action, dead.last_status, dead.source.as_str()),
            (Some(EventAction::Resolve), Some(400), monitor.as_str()),
            "PagerDuty refused the monitor's resolve: {dead:?}\n{}",
            report()
        );
        let open = self.pd.rest().get_incident(&inc.id).await;
        assert_eq!(
            open.expect("GET /incidents/{id}").status,
            IncidentStatus::Triggered,
            "the resolve was lost: the incident is still open\n{}",
            report()
        );
        let row = self.db.incident(self.key).await.expect("still mapped");
        assert_eq!(
            row.monitor_state,
            MonitorState::Recovered,
            "the map knows the monitor recovered\n{}",
            report()
        );

        super::wait_until(
            "the reconciler to resolve the incident",
            report,
            async || {
                let inc = self.pd.rest().get_incident(&inc.id).await;
                let inc = inc.expect("GET /incidents/{id}");
                (inc.status == IncidentStatus::Resolved).then_some(())
            },
        )
        .await;
        self.settle().await;
        assert_eq!(
            events_summary(&self.db.events(self.key).await),
            [
                (
                    monitor.clone(),
                    Some(EventAction::Trigger),
                    State::Delivered
                ),
                (monitor.clone(), Some(EventAction::Resolve), State::Dead),
                (
                    "reconciler".to_owned(),
                    Some(EventAction::Resolve),
                    State::Delivered
                ),
            ],
            "the reconciler sent the resolve again, and PagerDuty took it\n{}",
            report()
        );
        let incidents = super::incidents_with_key(self.pd, self.key);
        assert_eq!(
            incidents.iter().map(|i| i.status).collect::<Vec<_>>(),
            [IncidentStatus::Resolved],
            "one incident, resolved: {incidents:?}\n{}",
            report()
        );
        let done = self.db.writebacks().await;
        assert!(
            done.is_empty(),
            "the resolve (by the integration) is not written back: {:?}\n{}",
            summary(&done),
            report()
        );
        assert!(
            !self.monitor.critical().await && self.monitor.comments().await.is_empty(),
            "the monitor shows the service OK, untouched\n{}",
            report()
        );
    }

    /// A maintenance window (with `description`) on the PagerDuty service of the routing key
    /// the monitor notifies, made through the REST API; then the problem. PagerDuty takes its
    /// event and opens no incident; the maintenance watch ([`MAINTENANCE`]) finds the
    /// window and the problem is acknowledged in the monitor, by `PagerDuty`, with the
    /// window's description and end (and, where acknowledgements can end by themselves, one
    /// that ends with the window). Once: later checks add nothing.
    pub async fn in_maintenance(&self, description: &str) {
        let report = || self.report();
        let (service_id, service_name) = self.pd.service_of(DEMO_ROUTING_KEY);
        let now = Timestamp::now();
        // Whole seconds, as monitors keep them.
        let end = Timestamp::from_second(now.as_second() + 90 * 60).expect("a time");
        let window = self
            .pd
            .rest()
            .create_maintenance_window(&MaintenanceWindow::new(
                now - SignedDuration::from_mins(1),
                end,
                Some(description.to_owned()),
                std::slice::from_ref(&service_id),
            ))
            .await
            .expect("the responder creates a maintenance window");
        assert_eq!(window.end_time, end, "{window:?}");

        self.monitor.fail().await;
        let ack = self
            .the_acknowledgement("the maintenance watch to acknowledge the problem in the monitor")
            .await;
        assert_eq!(
            ack,
            Comment {
                ack: true,
                author: "PagerDuty".to_owned(),
                text: format!(
                    "PagerDuty service {service_name} is in maintenance until {end}: \
                     {description}"
                ),
            },
            "acknowledged by PagerDuty, with the window's end and description\n{}",
            report()
        );
        if M::EXPIRING_ACKS {
            assert_eq!(
                self.monitor.acknowledgement_expiry().await,
                Some(end),
                "the acknowledgement ends with the window\n{}",
                report()
            );
        }
        assert!(
            super::actions_for(self.pd, self.key)
                .iter()
                .any(|a| a == "trigger"),
            "PagerDuty took the problem's trigger\n{}",
            report()
        );
        assert_eq!(
            super::incidents_with_key(self.pd, self.key),
            [],
            "the service is in maintenance: PagerDuty opened no incident\n{}",
            report()
        );

        // Once per window: a later check (every `refresh`, 5 s) acknowledges nothing more.
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        self.settle().await;
        assert_eq!(
            summary(&self.db.writebacks().await),
            [("acknowledge".to_owned(), WritebackState::Done)],
            "one write-back: the maintenance's acknowledgement\n{}",
            report()
        );
        assert_eq!(
            self.monitor.comments().await,
            [ack],
            "the monitor has the one acknowledgement and nothing else\n{}",
            report()
        );
        assert_eq!(
            super::incidents_with_key(self.pd, self.key),
            [],
            "still no incident\n{}",
            report()
        );
    }
}
