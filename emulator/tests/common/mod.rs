//! Shared helpers of the emulator's integration tests: start an emulator on a free port and talk
//! to it over real HTTP with the default key.
#![allow(dead_code, clippy::unwrap_used)]

use dastra_emulator::{EmulatorConfig, RunningEmulator, spawn};
use serde_json::Value;

pub const KEY: &str = "emulator-key";

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    spawn(config).await.unwrap()
}

/// Default config without quota, so functional tests never meet a 429.
pub async fn start_default() -> RunningEmulator {
    start(EmulatorConfig::default().with_quota(Vec::new())).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub struct Api<'a> {
    pub emu: &'a RunningEmulator,
    pub http: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(emu: &'a RunningEmulator) -> Self {
        Self { emu, http: client() }
    }

    pub fn ws(&self, path: &str) -> String {
        self.emu.url(&format!("/v1/ws/1{path}"))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.ws(path)).header("X-API-Key", KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// Encodes `filters` for a query string.
pub fn filters(json: &str) -> String {
    url::form_urlencoded::byte_serialize(json.as_bytes()).collect()
}
