//! HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. One test in its own binary: the
//! environment is process-wide, so nothing else may run beside it.

use std::time::Duration;

use pagerbridge_testkit::{Canned, Recorder};
use pagerduty::EventsClient;
use pagerduty::client::{ClientConfig, ProxyConfig};
use pagerduty::events::{Event, Severity};
use serde_json::json;

const RK: &str = "e93facc04764012d7bfb002500d5d1a6";

#[tokio::test]
async fn environment_proxies_are_honoured_and_can_be_overridden() {
    let proxy = Recorder::start(Canned::json(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": "k"}),
    ))
    .await;
    let ev = Event::trigger(RK, "s", "h", Severity::Info);
    // SAFETY: this binary has this single test, so no other thread reads the environment.
    unsafe {
        for v in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "NO_PROXY",
            "ALL_PROXY",
        ] {
            std::env::remove_var(v);
        }
        std::env::set_var("HTTPS_PROXY", proxy.url());
        std::env::set_var("HTTP_PROXY", proxy.url());
    }

    // PagerDuty's real, https host: the client must ask the proxy for a tunnel to it.
    let cfg = ClientConfig {
        timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let _ = EventsClient::new(&cfg).unwrap().send(&ev).await;
    let reqs = proxy.requests();
    assert_eq!(reqs[0].method, "CONNECT");
    assert_eq!(reqs[0].uri, "events.pagerduty.com:443");

    // NO_PROXY exempts a host: the events go straight to it.
    let target = Recorder::start(Canned::json(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": "k"}),
    ))
    .await;
    unsafe { std::env::set_var("NO_PROXY", "127.0.0.1") };
    let direct = ClientConfig::single_host(&target.url()).unwrap();
    EventsClient::new(&direct).unwrap().send(&ev).await.unwrap();
    assert_eq!(target.requests().len(), 1);
    assert_eq!(proxy.requests().len(), 1, "the proxy saw nothing new");

    // An explicit setting wins over the environment: Direct ignores HTTPS_PROXY.
    unsafe { std::env::remove_var("NO_PROXY") };
    let mut cfg = ClientConfig::single_host(&target.url()).unwrap();
    cfg.proxy = ProxyConfig::Direct;
    EventsClient::new(&cfg).unwrap().send(&ev).await.unwrap();
    assert_eq!(target.requests().len(), 2);
    assert_eq!(proxy.requests().len(), 1);

    // And without NO_PROXY, the environment's proxy is used for a plain-http host too.
    let cfg = ClientConfig::single_host(&target.url()).unwrap();
    EventsClient::new(&cfg).unwrap().send(&ev).await.unwrap();
    assert_eq!(proxy.requests().len(), 2);
    assert_eq!(
        proxy.requests()[1].uri,
        format!("{}/v2/enqueue", target.url())
    );
}
