//! A plain HTML view of the emulated account, for a person trying pagerbridge in a browser.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use pagerduty::rest::IncidentStatus;

use crate::Shared;
use crate::server::Id;
use crate::world::{World, rest_time};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/ui/incidents/{id}", get(incident))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#f3f3f3}.triggered{color:#b00}.acknowledged{color:#b60}.resolved{color:#070}\
code{background:#f6f6f6;padding:0 .2em}";

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=refresh content=5><title>{}</title><style>{STYLE}</style></head>\
         <body>{body}</body></html>",
        esc(title)
    ))
}

async fn index(State(s): State<Arc<Shared>>) -> Html<String> {
    let w = s.world();
    let now = Timestamp::now();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>PagerDuty emulator</h1><p>Events: <code>POST {0}/v2/enqueue</code> · REST: <code>{0}/incidents</code> \
         · admin: <code>{0}/_emulator/state</code>. This page refreshes every 5 s.</p>",
        esc(&w.base_url)
    );
    b.push_str(
        "<h2>Services</h2><table><tr><th>Service</th><th>Status</th><th>Integration keys</th></tr>",
    );
    for (i, svc) in w.services.iter().enumerate() {
        let _ = write!(
            b,
            "<tr id=\"service-{}\"><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&svc.id),
            esc(&svc.name),
            w.service_status(i, now),
            svc.integrations
                .iter()
                .map(|k| esc(k))
                .collect::<Vec<_>>()
                .join("</code> <code>")
        );
    }
    b.push_str("</table><h2>Incidents</h2>");
    incidents_table(&w, &mut b);
    b.push_str("<h2>Users</h2><table><tr><th>Name</th><th>Email</th></tr>");
    for u in &w.users {
        let _ = write!(
            b,
            "<tr id=\"user-{}\"><td>{}</td><td>{}</td></tr>",
            esc(&u.id),
            esc(&u.name),
            esc(&u.email)
        );
    }
    b.push_str("</table>");
    layout("PagerDuty emulator", &b)
}

fn incidents_table(w: &World, b: &mut String) {
    if w.incidents.is_empty() {
        b.push_str("<p>No incidents yet.</p>");
        return;
    }
    b.push_str("<table><tr><th>#</th><th>Title</th><th>Status</th><th>Urgency</th><th>Service</th><th>Created</th><th>Alerts</th><th>Key</th></tr>");
    for inc in w.incidents.iter().rev().take(500) {
        let _ = write!(
            b,
            "<tr><td><a href=\"/ui/incidents/{id}\">{n}</a></td><td>{title}</td><td class=\"{st}\">{st}</td>\
             <td>{urg}</td><td>{svc}</td><td>{created}</td><td>{alerts}</td><td><code>{key}</code></td></tr>",
            id = esc(&inc.id),
            n = inc.number,
            title = esc(&inc.title),
            st = inc.status.as_str(),
            urg = inc.urgency.as_str(),
            svc = esc(&w.services[inc.service].name),
            created = rest_time(inc.created_at),
            alerts = inc.alerts.len(),
            key = esc(&inc.incident_key),
        );
    }
    b.push_str("</table>");
}

async fn incident(State(s): State<Arc<Shared>>, Id(id): Id) -> Response {
    let w = s.world();
    let Some(i) = w.incident_by_id(&id) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            layout(
                "Not found",
                "<p>No such incident. <a href=\"/\">Back</a></p>",
            ),
        )
            .into_response();
    };
    let inc = &w.incidents[i];
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/\">All incidents</a></p><h1>#{} {}</h1><p>Status: <span class=\"{st}\">{st}</span> · \
         urgency {} · service {} · key <code>{}</code> · created {}</p>",
        inc.number,
        esc(&inc.title),
        inc.urgency.as_str(),
        esc(&w.services[inc.service].name),
        esc(&inc.incident_key),
        rest_time(inc.created_at),
        st = inc.status.as_str(),
    );
    if inc.status == IncidentStatus::Acknowledged {
        let who: Vec<&str> = inc
            .acknowledgements
            .iter()
            .map(|(_, a)| w.agent_name(*a))
            .collect();
        let _ = write!(b, "<p>Acknowledged by {}</p>", esc(&who.join(", ")));
    }
    b.push_str("<h2>Log</h2><table><tr><th>When</th><th>What</th><th>Channel</th></tr>");
    for l in w.logs.iter().filter(|l| l.incident == i) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            rest_time(l.created_at),
            esc(&l.summary),
            esc(l.channel.get("type").and_then(|v| v.as_str()).unwrap_or(""))
        );
    }
    b.push_str("</table><h2>Alerts</h2><table><tr><th>Key</th><th>Severity</th><th>Status</th><th>Triggers</th><th>Details</th></tr>");
    for &a in &inc.alerts {
        let al = &w.alerts[a];
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(&al.dedup_key),
            al.severity.as_str(),
            if al.resolved { "resolved" } else { "triggered" },
            al.trigger_count,
            esc(&serde_json::to_string_pretty(&al.details).unwrap_or_default())
        );
    }
    b.push_str("</table><h2>Notes</h2><ul>");
    for n in w.notes.iter().filter(|n| n.incident == i) {
        let _ = write!(
            b,
            "<li>{} — {}: {}</li>",
            rest_time(n.created_at),
            esc(&w.users[n.user].name),
            esc(&n.content)
        );
    }
    b.push_str("</ul>");
    layout(&format!("#{} {}", inc.number, inc.title), &b).into_response()
}
