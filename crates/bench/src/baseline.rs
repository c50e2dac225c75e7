//! The physical limit: a server that reads the body and answers 202 without storing, so the
//! same load against it shows what HTTP alone costs on this machine.

use std::io::Write;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pagerduty::events::MAX_EVENT_BYTES;
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#;

/// Serves until killed. With `validate`, also does the relay's CPU work short of storing:
/// PagerDuty's validation and the re-serialisation of the event (what the outbox would keep).
pub async fn serve(listen: SocketAddr, validate: bool) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/v2/enqueue",
            post(move |body: Body| enqueue(body, validate)),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    let _ = writeln!(
        std::io::stdout(),
        "baseline listening on http://{addr}{}",
        if validate { " (validating)" } else { "" }
    );
    let _ = std::io::stdout().flush();
    // SIGTERM ends it cleanly, as it does the daemon.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await?;
    Ok(())
}

async fn enqueue(body: Body, validate: bool) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_EVENT_BYTES + 1).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let answer = if validate {
        match pagerduty::events::validate_event(&bytes) {
            Ok(ev) => {
                let stored = serde_json::to_vec(&ev).expect("events serialise");
                std::hint::black_box(stored);
                serde_json::to_vec(&serde_json::json!({
                    "status": "success", "message": "Event processed",
                    "dedup_key": ev.dedup_key.unwrap_or_default()
                }))
                .expect("serialises")
            }
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    } else {
        ANSWER.as_bytes().to_vec()
    };
    let mut r = (StatusCode::ACCEPTED, answer).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
