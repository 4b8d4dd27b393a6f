//! Webhook delivery as Dastra describes it (docs/dastra-api.md §5, §7 #12): POST of
//! `{webhookId, signatureUrl, userId, eventType, eventName, data, date}` with header
//! `Dastra-Signature` = Base64(HMAC-SHA256(UTF-8 signature key, raw body)), 10 s timeout, no retry,
//! and the subscription blocked (`inError`) once its error count exceeds the threshold.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

/// The signature header name.
pub const SIGNATURE_HEADER: &str = "Dastra-Signature";

/// Base64(HMAC-SHA256(key, body)).
pub fn sign(key: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty signature would be rejected
    // by any receiver, which is the visible outcome we want if it ever did.
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A readable label of a `NotificationChannel` value ("DataSubjectCreation" → "Data subject creation").
pub fn event_name(event: &str) -> String {
    let mut out = String::new();
    for (i, c) in event.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The body Dastra posts (`WebhookPayload`).
pub fn payload(webhook_id: i64, url: &str, user_id: i64, event: &str, data: &Value, date: &str) -> Value {
    json!({
        "webhookId": webhook_id,
        "signatureUrl": url,
        "userId": user_id,
        "eventType": event,
        "eventName": event_name(event),
        "data": data,
        "date": date,
    })
}

/// The record of one delivery attempt, kept for `/__admin/webhook-deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Webhook id.
    pub webhook_id: i64,
    /// Event type.
    pub event_type: String,
    /// Target URL.
    pub url: String,
    /// Exact body sent.
    pub body: String,
    /// `Dastra-Signature` sent.
    pub signature: String,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    /// Transport error or non-200 description.
    pub error: Option<String>,
    /// Whether it counted as a success (HTTP 200 only).
    pub ok: bool,
}

/// Sends one webhook POST; success is HTTP 200 only (WH: "anything other than 200 is a failure").
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    signature: &str,
) -> (Option<u16>, Option<String>) {
    let result = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().as_u16() == 200 => (Some(200), None),
        Ok(r) => (Some(r.status().as_u16()), Some(format!("The endpoint answered HTTP {}", r.status().as_u16()))),
        Err(e) if e.is_timeout() => (None, Some("The endpoint did not answer within the timeout".into())),
        Err(_) => (None, Some("The endpoint could not be reached".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let bytes: Vec<u8> = (0..expected_hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&expected_hex[i..i + 2], 16).ok())
            .collect();
        assert_eq!(sign("Jefe", b"what do ya want for nothing?"), STANDARD.encode(bytes));
    }

    #[test]
    fn names() {
        assert_eq!(event_name("DataSubjectCreation"), "Data subject creation");
    }
}
