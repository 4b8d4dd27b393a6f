//! The read-only web page at `/`: per workspace, the count of each entity family and the latest
//! items, plus the request counters — so a person can look at the result of a sync.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use serde_json::Value;

use crate::entities::KINDS;
use crate::state::EmulatorState;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn title(v: &Value, field: &str) -> String {
    let t = v.get(field).and_then(Value::as_str).filter(|s| !s.is_empty());
    t.or_else(|| v.get("label").and_then(Value::as_str)).unwrap_or("—").to_string()
}

/// `GET /`.
pub async fn index(State(state): State<EmulatorState>) -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Dastra emulator</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}h2{margin-top:1.5em}.muted{color:#777}</style>\
         </head><body><h1>Dastra emulator</h1><p class=\"muted\">Read-only view. JSON: <a href=\"/__admin/dump\">/__admin/dump</a>, \
         <a href=\"/__admin/counters\">/__admin/counters</a>, <a href=\"/__admin/requests\">/__admin/requests</a>.</p>",
    );
    let dump = state.dump();
    for ws in dump["workspaces"].as_array().into_iter().flatten() {
        let _ = write!(
            html,
            "<h2>Workspace {} — {}</h2><table><tr><th>Entity</th><th>Count</th><th>Latest</th></tr>",
            ws["id"],
            esc(ws["label"].as_str().unwrap_or(""))
        );
        for kind in KINDS {
            let items = ws["entities"][kind.name].as_array().cloned().unwrap_or_default();
            let latest: Vec<String> = items
                .iter()
                .rev()
                .take(5)
                .map(|v| {
                    format!(
                        "{} <span class=\"muted\">#{}</span>",
                        esc(&title(v, kind.label_field)),
                        esc(&v["id"].to_string())
                    )
                })
                .collect();
            let _ =
                write!(html, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", kind.name, items.len(), latest.join("<br>"));
        }
        html.push_str("</table>");
    }
    let webhooks = dump["webhooks"].as_array().map_or(0, Vec::len);
    let _ = write!(html, "<p>Webhook subscriptions: {webhooks}</p>");
    let counters = state.counters();
    let _ = write!(
        html,
        "<h2>Requests</h2><p>Total {} — 429: {}</p><table><tr><th>Method</th><th>Route</th><th>Status</th><th>Count</th></tr>",
        counters.total, counters.too_many_requests
    );
    for row in &counters.by_route {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.method),
            esc(&row.route),
            row.status,
            row.count
        );
    }
    html.push_str("</table></body></html>");
    Html(html)
}
