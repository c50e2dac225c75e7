//! What the client puts on the wire, byte for byte where it matters, and how it reads every
//! answer shape PagerDuty is documented or observed to send. A recording server stands in for
//! PagerDuty here because these tests are about exact requests, not PagerDuty's behaviour
//! (that is tested against the emulator).

use std::time::Duration;

use futures::TryStreamExt;
use pagerbridge_testkit::{Canned, Recorder};
use pagerduty::client::{ClientConfig, ProxyConfig};
use pagerduty::error::{Api, Disposition, Error, ErrorBody, TransportKind};
use pagerduty::events::{
    ChangeEvent, ChangePayload, Event, EventAction, Image, Link, Severity, V1Context, V1Event,
};
use pagerduty::rest::{IncidentQuery, IncidentStatus, IncidentUpdate, NewIncident, Urgency};
use pagerduty::{EventsClient, RestClient};
use serde_json::json;

const RK: &str = "e93facc04764012d7bfb002500d5d1a6";

fn config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::single_host(base).unwrap();
    c.timeout = Duration::from_secs(5);
    c
}

fn accepted() -> Canned {
    Canned::json(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": "k1"}),
    )
}

#[tokio::test]
async fn trigger_carries_every_field_of_the_contract() {
    let rec = Recorder::start(accepted()).await;
    let client = EventsClient::new(&config(&rec.url())).unwrap();
    let mut ev = Event::trigger(
        RK,
        "DISK at 99% on db1",
        "db1.example.com",
        Severity::Critical,
    )
    .with_dedup_key("srv01/mysql");
    ev.client = Some("Sample Monitoring".into());
    ev.client_url = Some("https://monitoring.example.com".into());
    ev.links = vec![Link {
        href: "https://a.example/x".into(),
        text: Some("runbook".into()),
    }];
    ev.images = vec![Image {
        src: "https://i.example/chart.png".into(),
        href: Some("https://i.example".into()),
        alt: Some("chart".into()),
    }];
    let p = ev.payload.as_mut().unwrap();
    p.timestamp = Some("2015-07-17T08:42:58.315+0000".into());
    p.component = Some("mysql".into());
    p.group = Some("prod-datapipe".into());
    p.class = Some("disk".into());
    p.custom_details = Some(json!({"free space": "1%", "load": [0.75, {"nested": null}], "n": 3}));

    let ok = client.send(&ev).await.unwrap();
    assert_eq!(ok.status, 202);
    assert_eq!(ok.body.dedup_key.as_deref(), Some("k1"));

    let r = &rec.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/v2/enqueue");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(format!("pagerbridge/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(
        r.header("authorization").is_none(),
        "the Events API takes no token header"
    );
    assert_eq!(
        r.json(),
        json!({
            "routing_key": RK, "event_action": "trigger", "dedup_key": "srv01/mysql",
            "payload": {"summary": "DISK at 99% on db1", "source": "db1.example.com", "severity": "critical",
                "timestamp": "2015-07-17T08:42:58.315+0000", "component": "mysql", "group": "prod-datapipe",
                "class": "disk", "custom_details": {"free space": "1%", "load": [0.75, {"nested": null}], "n": 3}},
            "client": "Sample Monitoring", "client_url": "https://monitoring.example.com",
            "links": [{"href": "https://a.example/x", "text": "runbook"}],
            "images": [{"src": "https://i.example/chart.png", "href": "https://i.example", "alt": "chart"}]
        })
    );
}

#[tokio::test]
async fn acknowledge_resolve_change_and_v1_use_their_endpoints() {
    let rec = Recorder::start(accepted()).await;
    let client = EventsClient::new(&config(&rec.url())).unwrap();
    client
        .send(&Event::update(RK, EventAction::Acknowledge, "k1"))
        .await
        .unwrap();
    client
        .send(&Event::update(RK, EventAction::Resolve, "k1"))
        .await
        .unwrap();
    rec.push(Canned::json(
        202,
        json!({"status": "success", "message": "Change event processed"}),
    ));
    client
        .send_change(&ChangeEvent {
            routing_key: RK.into(),
            payload: ChangePayload {
                summary: "deploy 220".into(),
                timestamp: None,
                source: Some("ci".into()),
                custom_details: Some(json!({"build": 220})),
            },
            links: vec![],
            images: vec![],
        })
        .await
        .unwrap();
    rec.push(Canned::json(
        200,
        json!({"status": "success", "message": "Event processed", "incident_key": "ik"}),
    ));
    let v1 = client
        .send_v1(&V1Event {
            service_key: RK.into(),
            event_type: EventAction::Trigger,
            incident_key: Some("ik".into()),
            description: Some("d".into()),
            details: Some(json!({"a": 1})),
            client: None,
            client_url: None,
            contexts: vec![V1Context::Link {
                href: "https://x".into(),
                text: None,
            }],
        })
        .await
        .unwrap();
    assert_eq!(v1.body.incident_key.as_deref(), Some("ik"));

    let reqs = rec.requests();
    let uris: Vec<&str> = reqs.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/v2/enqueue",
            "/v2/enqueue",
            "/v2/change/enqueue",
            "/generic/2010-04-15/create_event.json"
        ]
    );
    assert_eq!(
        reqs[0].json(),
        json!({"routing_key": RK, "event_action": "acknowledge", "dedup_key": "k1"})
    );
    assert_eq!(reqs[1].json()["event_action"], "resolve");
    assert_eq!(
        reqs[2].json(),
        json!({"routing_key": RK, "payload": {"summary": "deploy 220", "source": "ci", "custom_details": {"build": 220}}})
    );
    assert_eq!(
        reqs[3].json(),
        json!({"service_key": RK, "event_type": "trigger", "incident_key": "ik", "description": "d",
            "details": {"a": 1}, "contexts": [{"type": "link", "href": "https://x"}]})
    );
}

#[tokio::test]
async fn rest_calls_send_token_version_and_from_headers() {
    let rec = Recorder::start(Canned::json(
        200,
        json!({
            "incidents": [], "limit": 100, "offset": 0, "more": false, "total": null
        }),
    ))
    .await;
    let rest = RestClient::new(&config(&rec.url()), "tok3n")
        .unwrap()
        .with_from("ada@example.com");
    let q = IncidentQuery {
        statuses: vec![IncidentStatus::Triggered, IncidentStatus::Acknowledged],
        service_ids: vec!["PSVC1".into(), "PSVC2".into()],
        urgencies: vec![Urgency::High],
        incident_key: Some("a/b c".into()),
        ..Default::default()
    };
    let page = rest.list_incidents(&q, 0, 100).await.unwrap();
    assert!(page.items.is_empty() && !page.more);

    let r = &rec.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.uri,
        "/incidents?statuses%5B%5D=triggered&statuses%5B%5D=acknowledged&service_ids%5B%5D=PSVC1\
         &service_ids%5B%5D=PSVC2&urgencies%5B%5D=high&incident_key=a%2Fb+c&offset=0&limit=100"
    );
    assert_eq!(r.header("authorization"), Some("Token token=tok3n"));
    assert_eq!(
        r.header("accept"),
        Some("application/vnd.pagerduty+json;version=2")
    );
    assert_eq!(r.header("from"), Some("ada@example.com"));
    assert!(
        format!("{rest:?}").find("tok3n").is_none(),
        "Debug must not print the token"
    );
}

#[tokio::test]
async fn write_bodies_have_pagerdutys_shapes() {
    let incident = json!({"id": "PINC1", "type": "incident", "status": "acknowledged"});
    let rec = Recorder::start(Canned::json(200, json!({"incident": incident}))).await;
    let rest = RestClient::new(&config(&rec.url()), "t")
        .unwrap()
        .with_from("ada@example.com");

    let mut upd = IncidentUpdate::status(IncidentStatus::Resolved);
    upd.resolution = Some("fixed the disk".into());
    rest.update_incident("PINC1", &upd).await.unwrap();

    rec.push(Canned::json(
        200,
        json!({"incidents": [incident, incident]}),
    ));
    let bulk: Vec<IncidentUpdate> = ["P1", "P2"]
        .iter()
        .map(|id| IncidentUpdate {
            id: Some((*id).into()),
            ..IncidentUpdate::status(IncidentStatus::Acknowledged)
        })
        .collect();
    assert_eq!(rest.update_incidents(&bulk).await.unwrap().len(), 2);

    rec.push(Canned::json(201, json!({"incident": incident})));
    let mut new = NewIncident::new("The server is on fire", "PSVC1");
    new.urgency = Some(Urgency::Low);
    new.incident_key = Some("fire-1".into());
    new.body = Some(pagerduty::rest::IncidentBody::new("smoke seen"));
    rest.create_incident(&new).await.unwrap();

    rec.push(Canned::json(200, json!({"note": {"id": "PN", "content": "looking", "user": {"id": "PU", "type": "user_reference"}}})));
    let note = rest.create_note("PINC1", "looking").await.unwrap();
    assert_eq!(note.content, "looking");

    let reqs = rec.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].uri.as_str()),
        ("PUT", "/incidents/PINC1")
    );
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(
        reqs[0].json(),
        json!({"incident": {"type": "incident_reference", "status": "resolved", "resolution": "fixed the disk"}})
    );
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].uri.as_str()),
        ("PUT", "/incidents")
    );
    assert_eq!(
        reqs[1].json(),
        json!({"incidents": [
            {"id": "P1", "type": "incident_reference", "status": "acknowledged"},
            {"id": "P2", "type": "incident_reference", "status": "acknowledged"}]})
    );
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].uri.as_str()),
        ("POST", "/incidents")
    );
    assert_eq!(
        reqs[2].json(),
        json!({"incident": {"type": "incident", "title": "The server is on fire",
            "service": {"id": "PSVC1", "type": "service_reference"}, "urgency": "low",
            "incident_key": "fire-1", "body": {"type": "incident_body", "details": "smoke seen"}}})
    );
    assert_eq!(reqs[3].uri, "/incidents/PINC1/notes");
    assert_eq!(reqs[3].json(), json!({"note": {"content": "looking"}}));
    for r in &reqs {
        assert_eq!(r.header("from"), Some("ada@example.com"));
    }
}

#[tokio::test]
async fn merge_sends_references_and_reads_the_target_back_when_answered_with_a_reference() {
    // The published contract answers a merge with a reference to the target only.
    let reference = json!({"incident": {"id": "PT", "type": "incident_reference",
        "summary": "[#1] target", "self": "https://api.pagerduty.com/incidents/PT"}});
    let rec = Recorder::start(Canned::json(500, json!({}))).await;
    rec.push(Canned::json(200, reference));
    rec.push(Canned::json(
        200,
        json!({"incident": {"id": "PT", "type": "incident", "status": "triggered",
        "alert_counts": {"all": 2, "triggered": 2, "resolved": 0}, "resolve_reason": null}}),
    ));
    let rest = RestClient::new(&config(&rec.url()), "t")
        .unwrap()
        .with_from("ada@example.com");
    let target = rest
        .merge_incidents("PT", &["PS1".to_string(), "PS2".to_string()])
        .await
        .unwrap();
    assert_eq!(target.id, "PT");
    assert_eq!(target.status, IncidentStatus::Triggered);
    assert_eq!(target.alert_counts.unwrap().all, 2);
    assert_eq!(target.resolve_reason, None);

    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].uri.as_str()),
        ("PUT", "/incidents/PT/merge")
    );
    assert_eq!(reqs[0].header("from"), Some("ada@example.com"));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let body = reqs[0].json();
    assert_eq!(
        body,
        json!({"source_incidents": [
            {"id": "PS1", "type": "incident_reference"},
            {"id": "PS2", "type": "incident_reference"}]})
    );
    pagerduty_contract::Contract::bundled()
        .validate_request("PUT", "/incidents/PT/merge", &body)
        .expect("the merge body is the contract's");
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].uri.as_str()),
        ("GET", "/incidents/PT")
    );

    // A whole incident in the answer is taken as it is, without a second request.
    rec.push(Canned::json(
        200,
        json!({"incident": {"id": "PT", "type": "incident", "status": "acknowledged"}}),
    ));
    let target = rest
        .merge_incidents("PT", &["PS3".to_string()])
        .await
        .unwrap();
    assert_eq!(target.status, IncidentStatus::Acknowledged);
    assert_eq!(rec.requests().len(), 3);

    // No sources: refused before anything is sent.
    let err = rest.merge_incidents("PT", &[]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
    assert_eq!(rec.requests().len(), 3);
}

#[tokio::test]
async fn ids_cannot_redirect_a_call_to_another_endpoint() {
    let rec = Recorder::start(Canned::json(
        200,
        json!({"incident": {"id": "x", "type": "incident", "status": "triggered"}}),
    ))
    .await;
    let rest = RestClient::new(&config(&rec.url()), "t").unwrap();
    rest.get_incident("../services?x=1").await.unwrap();
    assert_eq!(rec.requests()[0].uri, "/incidents/..%2Fservices%3Fx%3D1");
}

#[tokio::test]
async fn bulk_update_refuses_more_than_250_before_sending() {
    let rec = Recorder::start(Canned::json(200, json!({"incidents": []}))).await;
    let rest = RestClient::new(&config(&rec.url()), "t").unwrap();
    let many: Vec<IncidentUpdate> = (0..251)
        .map(|i| IncidentUpdate {
            id: Some(format!("P{i}")),
            ..IncidentUpdate::status(IncidentStatus::Resolved)
        })
        .collect();
    let err = rest.update_incidents(&many).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidRequest(m) if m.contains("251") && m.contains("250")),
        "{err}"
    );
    let missing = vec![IncidentUpdate::status(IncidentStatus::Resolved)];
    let err = rest.update_incidents(&missing).await.unwrap_err();
    assert!(err.to_string().contains("incidents[0].id"), "{err}");
    assert!(rec.requests().is_empty());
}

#[tokio::test]
async fn list_all_follows_offset_limit_and_more() {
    let rec = Recorder::start(Canned::json(200, json!({}))).await;
    let user = |i: usize| json!({"id": format!("PU{i}"), "type": "user", "name": format!("u{i}"), "email": format!("u{i}@x.example")});
    rec.push(Canned::json(200, json!({"users": (0..100).map(user).collect::<Vec<_>>(), "limit": 100, "offset": 0, "more": true})));
    rec.push(Canned::json(200, json!({"users": (100..130).map(user).collect::<Vec<_>>(), "limit": 100, "offset": 100, "more": false})));
    let rest = RestClient::new(&config(&rec.url()), "t").unwrap();
    let users: Vec<_> = rest.users().try_collect().await.unwrap();
    assert_eq!(users.len(), 130);
    assert_eq!(users[129].email, "u129@x.example");
    let uris: Vec<String> = rec.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(
        uris,
        ["/users?offset=0&limit=100", "/users?offset=100&limit=100"]
    );
}

async fn rest_error(canned: Canned) -> Error {
    let rec = Recorder::start(canned).await;
    let rest = RestClient::new(&config(&rec.url()), "t").unwrap();
    rest.get_incident("P1").await.unwrap_err()
}

#[tokio::test]
async fn rest_errors_keep_pagerdutys_body_in_every_shape() {
    let e = rest_error(Canned::json(
        404,
        json!({"error": {"message": "Not Found", "code": 2100}}),
    ))
    .await;
    assert_eq!((e.status(), e.code()), (Some(404), Some(2100)));
    assert_eq!(e.disposition(), Disposition::Final);

    // `errors` as a string, as some endpoints send it.
    let e = rest_error(Canned::json(400, json!({"error": {"message": "Invalid Input Provided", "code": 2001, "errors": "Status is invalid"}}))).await;
    assert_eq!(e.body().unwrap().errors(), ["Status is invalid"]);

    // `error` as an array.
    let e = rest_error(Canned::json(400, json!({"error": ["one", "two"]}))).await;
    assert_eq!(e.body().unwrap().errors(), ["one", "two"]);

    // A bare-text 401 from PagerDuty's edge.
    let mut text = Canned::json(401, json!(null));
    text.body = b"Unauthorized".to_vec();
    text.headers = vec![("content-type".into(), "text/plain".into())];
    let e = rest_error(text).await;
    assert_eq!(
        e.body(),
        Some(&ErrorBody::Text {
            text: "Unauthorized".into()
        })
    );
    assert_eq!(e.disposition(), Disposition::Final);
    assert!(
        e.to_string().contains("401") && e.to_string().contains("Unauthorized"),
        "{e}"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_after_the_delay_pagerduty_asks_for() {
    let e = rest_error(
        Canned::json(
            429,
            json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}}),
        )
        .header("ratelimit-limit", "960")
        .header("ratelimit-remaining", "0")
        .header("ratelimit-reset", "12"),
    )
    .await;
    assert_eq!(
        e.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(12))
        }
    );
    assert!(
        matches!(&e, Error::Api { rate_limit, .. } if rate_limit.limit == Some(960) && rate_limit.remaining == Some(0))
    );

    // A 429 with neither headers nor body, as PagerDuty sometimes sends.
    let mut bare = Canned::json(429, json!(null));
    bare.body.clear();
    let e = rest_error(bare).await;
    assert_eq!(e.disposition(), Disposition::Retry { after: None });
    assert_eq!(e.body(), Some(&ErrorBody::Empty));

    let e = rest_error(
        Canned::json(503, json!({"error": {"message": "Service Unavailable"}}))
            .header("retry-after", "3"),
    )
    .await;
    assert_eq!(
        e.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(3))
        }
    );
}

#[tokio::test]
async fn events_outcomes_are_classified_as_pagerduty_documents() {
    let rec = Recorder::start(accepted()).await;
    let client = EventsClient::new(&config(&rec.url())).unwrap();
    let ev = Event::trigger(RK, "s", "h", Severity::Info);

    rec.push(Canned::json(
        400,
        json!({"status": "invalid event", "message": "Event object is invalid",
        "errors": ["'payload.severity' is missing or blank"]}),
    ));
    let e = client.send(&ev).await.unwrap_err();
    assert_eq!(e.disposition(), Disposition::Final);
    assert!(matches!(
        &e,
        Error::Api {
            api: Api::EventsV2,
            status: 400,
            ..
        }
    ));
    assert_eq!(
        e.body().unwrap().errors(),
        ["'payload.severity' is missing or blank"]
    );

    rec.push(
        Canned::json(
            429,
            json!({"status": "throttle event", "message": "slow down"}),
        )
        .header("retry-after", "7"),
    );
    let e = client.send(&ev).await.unwrap_err();
    assert_eq!(
        e.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(7))
        }
    );

    rec.push(Canned::json(
        502,
        json!({"status": "error", "message": "Bad Gateway"}),
    ));
    assert_eq!(
        client.send(&ev).await.unwrap_err().disposition(),
        Disposition::Retry { after: None }
    );

    // v1 throttles with 403.
    rec.push(Canned::json(
        403,
        json!({"status": "throttle event", "message": "slow down"}),
    ));
    let v1 = V1Event {
        service_key: RK.into(),
        event_type: EventAction::Resolve,
        incident_key: Some("k".into()),
        description: None,
        details: None,
        client: None,
        client_url: None,
        contexts: vec![],
    };
    assert_eq!(
        client.send_v1(&v1).await.unwrap_err().disposition(),
        Disposition::Retry { after: None }
    );

    // A success without dedup_key cannot be correlated later: refused, and not retried (PagerDuty
    // did take the event).
    rec.push(Canned::json(
        202,
        json!({"status": "success", "message": "Event processed"}),
    ));
    let e = client.send(&ev).await.unwrap_err();
    assert!(matches!(&e, Error::Decode { status: 202, .. }), "{e}");
    assert_eq!(e.disposition(), Disposition::Final);

    let mut html = Canned::json(202, json!(null));
    html.body = b"<html>ok</html>".to_vec();
    rec.push(html);
    assert!(matches!(
        client.send(&ev).await.unwrap_err(),
        Error::Decode { .. }
    ));
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transport_errors_worth_retrying() {
    let rec = Recorder::start(accepted().delayed(Duration::from_secs(3))).await;
    let mut cfg = config(&rec.url());
    cfg.timeout = Duration::from_millis(200);
    let client = EventsClient::new(&cfg).unwrap();
    let ev = Event::trigger(RK, "s", "h", Severity::Info);
    let e = client.send(&ev).await.unwrap_err();
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
    assert_eq!(e.disposition(), Disposition::Retry { after: None });

    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = EventsClient::new(&config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let e = client.send(&ev).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(&port.to_string()),
        "the error names where it tried: {e}"
    );
}

#[tokio::test]
async fn explicit_proxy_is_used_unless_no_proxy_matches() {
    let proxy = Recorder::start(accepted()).await;
    let target = Recorder::start(accepted()).await;
    let mut cfg = config(&target.url());
    cfg.proxy = ProxyConfig::Explicit {
        url: proxy.url(),
        no_proxy: None,
    };
    let ev = Event::trigger(RK, "s", "h", Severity::Info);
    EventsClient::new(&cfg).unwrap().send(&ev).await.unwrap();
    // A forward proxy receives the absolute URL of the real destination.
    assert_eq!(
        proxy.requests()[0].uri,
        format!("{}/v2/enqueue", target.url())
    );
    assert!(target.requests().is_empty());

    cfg.proxy = ProxyConfig::Explicit {
        url: proxy.url(),
        no_proxy: Some("127.0.0.1".into()),
    };
    EventsClient::new(&cfg).unwrap().send(&ev).await.unwrap();
    assert_eq!(
        target.requests().len(),
        1,
        "NO_PROXY hosts are reached directly"
    );
    assert_eq!(proxy.requests().len(), 1);

    cfg.proxy = ProxyConfig::Explicit {
        url: "not a url".into(),
        no_proxy: None,
    };
    let err = EventsClient::new(&cfg).unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("proxy URL")),
        "{err}"
    );
}

#[tokio::test]
async fn eu_region_and_defaults_point_at_pagerdutys_hosts() {
    let c = ClientConfig::default();
    assert_eq!(c.events_url.as_str(), "https://events.pagerduty.com/");
    assert_eq!(c.rest_url.as_str(), "https://api.pagerduty.com/");
    let eu = ClientConfig::eu();
    assert_eq!(eu.events_url.host_str(), Some("events.eu.pagerduty.com"));
    assert_eq!(eu.rest_url.host_str(), Some("api.eu.pagerduty.com"));
    assert!(c.user_agent.starts_with("pagerbridge/"));
}
