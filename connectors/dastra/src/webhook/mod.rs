//! The webhook receiver: accepts Dastra webhooks, verifies `Dastra-Signature`, and publishes each one
//! to `<prefix>.events` before answering 200 (Dastra never retries, so a 200 must mean "stored").

mod backfill;
mod config;
mod dedupe;
mod receiver;
mod signature;

pub use config::{BackfillConfig, WebhookReceiverConfig};
pub use dedupe::{DateRefusal, Dedupe};
pub use receiver::{WebhookReceiver, event_id, router};
pub use signature::{sign, verify};
