//! The typed client against the emulator: every call decodes what a contract-valid PagerDuty
//! answers (the emulator's responses are checked against the OpenAPI files when `TestPd`
//! drops), and every failure the emulator can produce is classified as PagerDuty documents.

use std::time::Duration;

use futures::TryStreamExt;
use pagerbridge_testkit::{DEMO_DB_ROUTING_KEY, DEMO_ROUTING_KEY, DEMO_V1_SERVICE_KEY, TestPd};
use pagerduty::error::{Disposition, Error, TransportKind};
use pagerduty::events::{ChangeEvent, ChangePayload, Event, EventAction, Link, Severity, V1Event};
use pagerduty::rest::{
    IncidentQuery, IncidentStatus, IncidentUpdate, LogEntryQuery, MaintenanceWindow, NewIncident,
    ServiceStatus, Urgency, WindowFilter,
};
use pagerduty_emulator::{FaultKind, FaultSpec, Scope, Seed};
use serde_json::json;

fn fault(kind: FaultKind) -> FaultSpec {
    FaultSpec {
        kind,
        status: None,
        retry_after: None,
        delay_ms: None,
        count: Some(1),
        seconds: None,
        scope: Scope::All,
    }
}

#[tokio::test]
async fn an_event_round_trip_decodes_into_typed_incidents_alerts_and_log_entries() {
    let pd = TestPd::start().await;
    let (events, rest) = (pd.events(), pd.rest());
    let mut ev = Event::trigger(
        DEMO_ROUTING_KEY,
        "Disk full on db1",
        "db1",
        Severity::Critical,
    )
    .with_dedup_key("disk/db1");
    ev.links = vec![Link {
        href: "https://runbooks.example/disk".into(),
        text: Some("runbook".into()),
    }];
    ev.payload.as_mut().unwrap().custom_details =
        Some(json!({"used": 99.5, "mounts": ["/", "/var"]}));
    let ok = events.send(&ev).await.unwrap();
    assert_eq!(ok.body.dedup_key.as_deref(), Some("disk/db1"));

    let found = rest
        .list_incidents(
            &IncidentQuery {
                incident_key: Some("disk/db1".into()),
                ..Default::default()
            },
            0,
            25,
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let inc = &found.items[0];
    assert_eq!(inc.status, IncidentStatus::Triggered);
    assert_eq!(inc.urgency, Some(Urgency::High));
    assert_eq!(inc.title.as_deref(), Some("Disk full on db1"));
    assert_eq!(inc.service.as_ref().unwrap().id, "PDEMO01");
    assert_eq!(inc.alert_counts.unwrap().triggered, 1);

    let alerts: Vec<_> = rest.incident_alerts(&inc.id).try_collect().await.unwrap();
    assert_eq!(alerts[0].alert_key.as_deref(), Some("disk/db1"));
    assert_eq!(alerts[0].severity, Some(Severity::Critical));
    assert_eq!(
        alerts[0].body.as_ref().unwrap()["details"],
        json!({"used": 99.5, "mounts": ["/", "/var"]})
    );

    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Acknowledge,
            "disk/db1",
        ))
        .await
        .unwrap();
    events
        .send(&Event::update(
            DEMO_ROUTING_KEY,
            EventAction::Resolve,
            "disk/db1",
        ))
        .await
        .unwrap();
    let inc = rest.get_incident(&inc.id).await.unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert!(inc.resolved_at.is_some());

    let logs: Vec<_> = rest
        .incident_log_entries(&inc.id, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    let mut kinds: Vec<&str> = logs.iter().map(|l| l.kind.as_str()).collect();
    kinds.reverse(); // PagerDuty lists newest first
    assert_eq!(
        kinds,
        [
            "trigger_log_entry",
            "acknowledge_log_entry",
            "resolve_log_entry"
        ]
    );
    assert!(logs.iter().all(|l| l.channel_type() == Some("api")));
    assert_eq!(logs[0].agent.as_ref().unwrap().kind, "service_reference");
}

#[tokio::test]
async fn change_and_v1_events_are_accepted() {
    let pd = TestPd::start().await;
    let ok = pd
        .events()
        .send_change(&ChangeEvent {
            routing_key: DEMO_ROUTING_KEY.into(),
            payload: ChangePayload {
                summary: "Deployed v2.3".into(),
                timestamp: None,
                source: Some("ci".into()),
                custom_details: None,
            },
            links: vec![],
            images: vec![],
        })
        .await
        .unwrap();
    assert_eq!(ok.body.message, "Change event processed");
    let v1 = V1Event {
        service_key: DEMO_V1_SERVICE_KEY.into(),
        event_type: EventAction::Trigger,
        incident_key: Some("legacy/1".into()),
        description: Some("old tool says hi".into()),
        details: Some(json!({"k": "v"})),
        client: Some("nagios".into()),
        client_url: None,
        contexts: vec![],
    };
    let ok = pd.events().send_v1(&v1).await.unwrap();
    assert_eq!(
        (ok.status, ok.body.incident_key.as_deref()),
        (200, Some("legacy/1"))
    );
    let incidents: Vec<_> = pd
        .rest()
        .incidents(IncidentQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        incidents.len(),
        1,
        "the change event opened nothing, the v1 trigger one incident"
    );
}

#[tokio::test]
async fn every_rest_call_of_the_client_decodes_the_emulators_answers() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    for i in 0..3 {
        pd.events()
            .send(
                &Event::trigger(
                    DEMO_DB_ROUTING_KEY,
                    format!("slow query {i}"),
                    "db",
                    Severity::Warning,
                )
                .with_dedup_key(format!("q{i}")),
            )
            .await
            .unwrap();
    }
    let mut new = NewIncident::new("Manual incident", "PDEMO01");
    new.urgency = Some(Urgency::Low);
    new.body = Some(pagerduty::rest::IncidentBody::new("typed by a human"));
    let created = rest.create_incident(&new).await.unwrap();
    assert_eq!(created.urgency, Some(Urgency::Low));

    let all: Vec<_> = rest
        .incidents(IncidentQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let db: Vec<_> = rest
        .incidents(IncidentQuery {
            service_ids: vec!["PDEMO02".into()],
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(db.len(), 3);
    assert!(
        db.iter().all(|i| i.urgency == Some(Urgency::Low)),
        "Database maps warning to low urgency"
    );

    let acked = rest
        .update_incident(
            &db[0].id,
            &IncidentUpdate::status(IncidentStatus::Acknowledged),
        )
        .await
        .unwrap();
    assert_eq!(acked.acknowledgements[0].acknowledger.id, "PADA001");
    let bulk: Vec<IncidentUpdate> = db[1..]
        .iter()
        .map(|i| IncidentUpdate {
            id: Some(i.id.clone()),
            ..IncidentUpdate::status(IncidentStatus::Resolved)
        })
        .collect();
    let resolved = rest.update_incidents(&bulk).await.unwrap();
    assert!(
        resolved
            .iter()
            .all(|i| i.status == IncidentStatus::Resolved)
    );

    let note = rest.create_note(&created.id, "on it").await.unwrap();
    assert_eq!(note.user.as_ref().unwrap().id, "PADA001");
    assert_eq!(
        rest.list_notes(&created.id).await.unwrap()[0].content,
        "on it"
    );

    let page = rest
        .list_log_entries(&LogEntryQuery::default(), 0, 5)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    assert!(page.more);
    let logs: Vec<_> = rest
        .log_entries(&LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert!(logs.len() > 5);
    assert_eq!(logs[0].kind, "annotate_log_entry", "newest first");

    let services: Vec<_> = rest.services(None).try_collect().await.unwrap();
    assert_eq!(services.len(), 2);
    let svc = rest.get_service("PDEMO01").await.unwrap();
    // The REST reference: any triggered incident makes a service critical, whatever its urgency.
    assert_eq!(
        svc.status,
        ServiceStatus::Critical,
        "one triggered low-urgency incident"
    );

    let now = jiff::Timestamp::now();
    let window = MaintenanceWindow::new(
        now - jiff::SignedDuration::from_secs(60),
        now + jiff::SignedDuration::from_hours(1),
        Some("db upgrade".into()),
        &["PDEMO02".to_string()],
    );
    let made = rest.create_maintenance_window(&window).await.unwrap();
    assert!(made.id.is_some());
    let ongoing: Vec<_> = rest
        .maintenance_windows(&["PDEMO02".into()], WindowFilter::Ongoing)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ongoing.len(), 1);
    assert_eq!(
        rest.get_service("PDEMO02").await.unwrap().status,
        ServiceStatus::Maintenance
    );

    let users: Vec<_> = rest.users().try_collect().await.unwrap();
    assert!(users.iter().any(|u| u.email == "ada@example.com"));

    let sub = rest
        .create_webhook_subscription(&pagerduty::rest::WebhookSubscription {
            id: None,
            kind: "webhook_subscription".into(),
            active: true,
            delivery_method: pagerduty::rest::DeliveryMethod {
                kind: "http_delivery_method".into(),
                url: "http://127.0.0.1:9/hook".into(),
                secret: None,
                temporarily_disabled: None,
                custom_headers: vec![],
            },
            description: Some("bridge".into()),
            events: vec!["incident.acknowledged".into()],
            filter: pagerduty::rest::SubscriptionFilter {
                kind: "account_reference".into(),
                id: None,
            },
            extra: Default::default(),
        })
        .await
        .unwrap();
    assert!(
        sub.delivery_method
            .secret
            .as_deref()
            .is_some_and(|s| s.len() >= 32),
        "the secret is returned once"
    );
    let subs: Vec<_> = rest.webhook_subscriptions().try_collect().await.unwrap();
    assert!(subs[0].delivery_method.secret.is_none(), "and never again");
}

#[tokio::test]
async fn merging_moves_the_alerts_and_resolves_the_source_with_the_merge_reason() {
    let pd = TestPd::start().await;
    let rest = pd.rest();
    for key in ["disk/db1", "disk/db2"] {
        pd.events()
            .send(
                &Event::trigger(
                    DEMO_ROUTING_KEY,
                    format!("{key} full"),
                    "db",
                    Severity::Error,
                )
                .with_dedup_key(key),
            )
            .await
            .unwrap();
    }
    let id_of = |key: &str| {
        let w = pd.world();
        w.incidents
            .iter()
            .find(|i| i.incident_key == key)
            .map(|i| i.id.clone())
            .unwrap()
    };
    let (target, source) = (id_of("disk/db1"), id_of("disk/db2"));

    let merged = rest
        .merge_incidents(&target, std::slice::from_ref(&source))
        .await
        .unwrap();
    assert_eq!(merged.id, target);
    assert_eq!(merged.status, IncidentStatus::Triggered);
    assert_eq!(merged.alert_counts.unwrap().all, 2);
    assert_eq!(merged.merged_into(), None);

    let src = rest.get_incident(&source).await.unwrap();
    assert_eq!(src.status, IncidentStatus::Resolved);
    assert_eq!(src.merged_into(), Some(target.as_str()));
    assert_eq!(
        src.resolve_reason.as_ref().unwrap()["type"],
        "merge_resolve_reason"
    );
    assert!(
        src.extra.get("resolve_reason").is_none(),
        "typed, not in extra"
    );

    let mut keys: Vec<_> = rest
        .incident_alerts(&target)
        .map_ok(|a| a.alert_key.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["disk/db1", "disk/db2"]);
    let resolve: Vec<_> = rest
        .incident_log_entries(&source, &LogEntryQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(resolve[0].kind, "resolve_log_entry");
    assert_eq!(resolve[0].agent.as_ref().unwrap().id, "PADA001");

    // Refusals are final and say why.
    let e = rest
        .merge_incidents(&target, std::slice::from_ref(&target))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.disposition()),
        (Some(400), Some(2001), Disposition::Final)
    );
    assert!(e.to_string().contains("merged into itself"), "{e}");
    let e = rest
        .merge_incidents(&source, std::slice::from_ref(&target))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some(1001)), "{e}");
    let e = rest
        .merge_incidents(&target, &["PNOPE00".to_string()])
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some(5001)), "{e}");
    let no_from = pagerduty::RestClient::new(&pd.config(), "emulator-account-token").unwrap();
    let e = no_from
        .merge_incidents(&target, std::slice::from_ref(&source))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("\"From\" header"), "{e}");
}

#[tokio::test]
async fn pagerdutys_refusals_are_final_and_keep_their_reasons() {
    let pd = TestPd::start().await;
    let bad = Event::trigger("tooshort", "", "h", Severity::Info);
    let e = pd.events().send(&bad).await.unwrap_err();
    assert_eq!(e.disposition(), Disposition::Final);
    let errs = e.body().unwrap().errors();
    assert!(
        errs.contains(
            &"Length of 'routing_key' is incorrect (should be 32 characters)".to_string()
        ),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"'payload.summary' is missing or blank".to_string()),
        "{errs:?}"
    );

    let e = pd.rest().get_incident("PNOPE00").await.unwrap_err();
    assert_eq!(
        (e.status(), e.disposition()),
        (Some(404), Disposition::Final)
    );

    let no_from = pagerduty::RestClient::new(&pd.config(), "emulator-account-token").unwrap();
    let e = no_from.create_note("PNOPE00", "x").await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("\"From\" header"), "{e}");

    let wrong = pagerduty::RestClient::new(&pd.config(), "not-a-token").unwrap();
    let e = wrong.get_service("PDEMO01").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.disposition()),
        (Some(401), Some(2006), Disposition::Final)
    );
}

#[tokio::test]
async fn injected_outages_are_retryable_with_the_requested_delay() {
    let pd = TestPd::start().await;
    let ev = Event::trigger(DEMO_ROUTING_KEY, "s", "h", Severity::Error).with_dedup_key("k");

    pd.inject(FaultSpec {
        retry_after: Some(7),
        ..fault(FaultKind::RateLimit)
    })
    .unwrap();
    let e = pd.events().send(&ev).await.unwrap_err();
    assert_eq!(
        e.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(7))
        }
    );

    pd.inject(FaultSpec {
        status: Some(503),
        ..fault(FaultKind::Status)
    })
    .unwrap();
    assert_eq!(
        pd.events().send(&ev).await.unwrap_err().disposition(),
        Disposition::Retry { after: None }
    );

    pd.inject(fault(FaultKind::Drop)).unwrap();
    let e = pd.events().send(&ev).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Transport {
                kind: TransportKind::Interrupted,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        pd.world().incidents.is_empty(),
        "a dropped request was not processed"
    );

    // PagerDuty processed it but the answer was lost: the retry must land on the same alert.
    pd.inject(fault(FaultKind::DropAfter)).unwrap();
    assert!(pd.events().send(&ev).await.is_err());
    pd.events().send(&ev).await.unwrap();
    assert_eq!(
        pd.world().incidents.len(),
        1,
        "the dedup key makes the retry harmless"
    );

    pd.inject(FaultSpec {
        delay_ms: Some(1500),
        ..fault(FaultKind::Delay)
    })
    .unwrap();
    let mut cfg = pd.config();
    cfg.timeout = Duration::from_millis(300);
    let e = pagerduty::EventsClient::new(&cfg)
        .unwrap()
        .send(&ev)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn the_emulators_own_rate_limits_read_as_retry_after() {
    let mut seed = Seed::demo();
    seed.settings.events_per_minute = 2;
    seed.settings.rest_requests_per_minute = 2;
    let pd = TestPd::with_seed(seed).await;
    let ev = Event::trigger(DEMO_ROUTING_KEY, "s", "h", Severity::Info);
    pd.events().send(&ev).await.unwrap();
    pd.events().send(&ev).await.unwrap();
    let e = pd.events().send(&ev).await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    assert!(matches!(e.disposition(), Disposition::Retry { .. }));

    let rest = pd.rest();
    rest.get_service("PDEMO01").await.unwrap();
    rest.get_service("PDEMO01").await.unwrap();
    let e = rest.get_service("PDEMO01").await.unwrap_err();
    assert_eq!(e.code(), Some(2020));
    match e.disposition() {
        Disposition::Retry { after: Some(d) } => {
            assert!(d > Duration::ZERO && d <= Duration::from_secs(60), "{d:?}")
        }
        other => panic!("expected a retry with ratelimit-reset, got {other:?}"),
    }
}
