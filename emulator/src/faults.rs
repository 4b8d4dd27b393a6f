//! Fault injection: error statuses, latency, a timeout after the write was applied (the ambiguous
//! create), dropped connections — for every Dastra route or those matching a method and a path
//! regex, with a probability drawn from the seeded randomness and an optional count.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this status (500, 502, 503…) without touching the data.
    Error {
        /// HTTP status to answer.
        status: u16,
    },
    /// Wait before handling the request normally.
    Latency {
        /// Added delay in milliseconds.
        ms: u64,
    },
    /// Apply the request, then hold the answer for `hang_ms` and close the connection without a
    /// response (in-process use without a connection answers 504 instead).
    TimeoutAfterWrite {
        /// How long to hold before closing; choose it above the client's timeout.
        hang_ms: u64,
    },
    /// Close the connection without answering and without applying the request.
    DropConnection,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The fault.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// HTTP method to match (any when absent), case-insensitive.
    #[serde(default)]
    pub method: Option<String>,
    /// Regex on the request path, matched case-insensitively (any when absent).
    #[serde(default)]
    pub route: Option<String>,
    /// Regex on the request body's text (any when absent): a fault for one object inside a batch
    /// request, e.g. `"ids":\[[^\]]*\b42\b`.
    #[serde(default)]
    pub body: Option<String>,
    /// Probability in [0, 1] that a matching request gets the fault (default 1).
    #[serde(default = "one")]
    pub rate: f64,
    /// Apply to at most this many requests, then the rule retires (unlimited when absent).
    #[serde(default)]
    pub count: Option<u64>,
}

fn one() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule applying `kind` to every request.
    pub fn always(kind: FaultKind) -> Self {
        Self { kind, method: None, route: None, body: None, rate: 1.0, count: None }
    }

    /// Builder: restrict to a method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Builder: restrict to a path regex.
    pub fn route(mut self, regex: &str) -> Self {
        self.route = Some(regex.to_string());
        self
    }

    /// Builder: restrict to requests whose body matches a regex.
    pub fn body(mut self, regex: &str) -> Self {
        self.body = Some(regex.to_string());
        self
    }

    /// Builder: probability.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Builder: number of requests.
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }
}

struct Active {
    rule: FaultRule,
    route: Option<regex::Regex>,
    body: Option<regex::Regex>,
    hits: u64,
}

/// The faults to apply to one request, decided before it is handled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Sum of latencies to add first.
    pub latency: Duration,
    /// Error status to answer instead of handling.
    pub error: Option<u16>,
    /// Drop the connection instead of handling.
    pub drop: bool,
    /// Handle, then hold for this long and drop the connection.
    pub timeout_after_write: Option<Duration>,
}

impl Decision {
    /// Names of the faults applied (for the request log).
    pub fn labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.latency.is_zero() {
            out.push(format!("latency:{}ms", self.latency.as_millis()));
        }
        if let Some(s) = self.error {
            out.push(format!("error:{s}"));
        }
        if self.drop {
            out.push("drop_connection".into());
        }
        if self.timeout_after_write.is_some() {
            out.push("timeout_after_write".into());
        }
        out
    }
}

/// The active rules and the seeded sampler.
pub struct Faults {
    rules: Vec<Active>,
    rng: StdRng,
    seed: u64,
}

impl Faults {
    /// No faults, sampling seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rules: Vec::new(), rng: StdRng::seed_from_u64(seed), seed }
    }

    /// Adds a rule; `Err` if its route regex or rate is invalid.
    pub fn add(&mut self, rule: FaultRule) -> Result<(), String> {
        if !(0.0..=1.0).contains(&rule.rate) {
            return Err(format!("rate {} is not within [0, 1]", rule.rate));
        }
        if let FaultKind::Error { status } = rule.kind
            && !(100..=599).contains(&status)
        {
            return Err(format!("status {status} is not an HTTP status"));
        }
        let route = match &rule.route {
            Some(r) => Some(
                regex::RegexBuilder::new(r).case_insensitive(true).build().map_err(|e| format!("route regex: {e}"))?,
            ),
            None => None,
        };
        let body = match &rule.body {
            Some(r) => Some(regex::Regex::new(r).map_err(|e| format!("body regex: {e}"))?),
            None => None,
        };
        self.rules.push(Active { rule, route, body, hits: 0 });
        Ok(())
    }

    /// Removes every rule and re-seeds the sampler (so a reset run is reproducible).
    pub fn clear(&mut self) {
        self.rules.clear();
        self.rng = StdRng::seed_from_u64(self.seed);
    }

    /// The rules with their hit counts.
    pub fn list(&self) -> Vec<(FaultRule, u64)> {
        self.rules.iter().map(|a| (a.rule.clone(), a.hits)).collect()
    }

    /// Decides the faults of one request.
    pub fn decide(&mut self, method: &str, path: &str, body: &[u8]) -> Decision {
        let mut d = Decision::default();
        for a in &mut self.rules {
            if a.rule.count.is_some_and(|c| a.hits >= c) {
                continue;
            }
            if a.rule.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
                continue;
            }
            if a.route.as_ref().is_some_and(|r| !r.is_match(path)) {
                continue;
            }
            if a.body.as_ref().is_some_and(|r| !r.is_match(&String::from_utf8_lossy(body))) {
                continue;
            }
            if a.rule.rate < 1.0 && self.rng.random::<f64>() >= a.rule.rate {
                continue;
            }
            a.hits += 1;
            match a.rule.kind {
                FaultKind::Latency { ms } => d.latency += Duration::from_millis(ms),
                FaultKind::Error { status } => d.error = d.error.or(Some(status)),
                FaultKind::DropConnection => d.drop = true,
                FaultKind::TimeoutAfterWrite { hang_ms } => {
                    d.timeout_after_write = Some(Duration::from_millis(hang_ms));
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_and_retire() -> Result<(), String> {
        let mut f = Faults::new(1);
        f.add(FaultRule::always(FaultKind::Error { status: 503 }).method("POST").route("/assets$").count(2))?;
        assert_eq!(f.decide("GET", "/v1/ws/1/Assets", b"").error, None);
        assert_eq!(f.decide("POST", "/v1/ws/1/Assets", b"").error, Some(503));
        assert_eq!(f.decide("post", "/v1/ws/1/assets", b"").error, Some(503));
        assert_eq!(f.decide("POST", "/v1/ws/1/Assets", b"").error, None, "count exhausted");
        assert!(f.add(FaultRule::always(FaultKind::DropConnection).route("(")).is_err());
        Ok(())
    }

    #[test]
    fn a_body_regex_picks_one_object_of_a_batch() -> Result<(), String> {
        let mut f = Faults::new(1);
        f.add(FaultRule::always(FaultKind::Error { status: 400 }).method("PATCH").body(r#""ids":\[[^\]]*\b42\b"#))?;
        assert_eq!(f.decide("PATCH", "/v1/ws/1/Assets", br#"{"ids":[7,42,9],"patch":[]}"#).error, Some(400));
        assert_eq!(f.decide("PATCH", "/v1/ws/1/Assets", br#"{"ids":[7,420],"patch":[]}"#).error, None);
        assert_eq!(f.decide("PATCH", "/v1/ws/1/Assets", b"").error, None);
        assert!(f.add(FaultRule::always(FaultKind::DropConnection).body("(")).is_err());
        Ok(())
    }

    #[test]
    fn sampling_is_seeded() -> Result<(), String> {
        let run = |seed| -> Result<Vec<bool>, String> {
            let mut f = Faults::new(seed);
            f.add(FaultRule::always(FaultKind::Error { status: 500 }).rate(0.5))?;
            Ok((0..64).map(|_| f.decide("GET", "/x", b"").error.is_some()).collect())
        };
        assert_eq!(run(7)?, run(7)?);
        let hits = run(7)?.iter().filter(|b| **b).count();
        assert!((10..54).contains(&hits), "about half: {hits}");
        Ok(())
    }
}
