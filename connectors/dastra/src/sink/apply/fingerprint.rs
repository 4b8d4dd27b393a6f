//! The source fingerprint of an event: everything its mapping depends on, hashed without mapping
//! it. The ledger keeps the fingerprint of the event whose mapping was last sent, so the commonest
//! event of all, a repeat of unchanged content (snapshot sweeps, re-publishing sources,
//! redeliveries of newer versions with the same content), is recognised with one hash instead of a
//! DTO mapping, two JSON conversions and a hash per field.
//!
//! What the mapping of an upsert depends on, and so what goes in:
//! - the build (a new release may map the same payload differently: its first sight of an entity
//!   takes the full comparison, which still sends nothing unless the mapped content differs);
//! - the entity key (the external key written into Dastra);
//! - the payload without its `snapshot` flag (a sweep re-publishes the content of a live change);
//! - the actor-matching policy, for Actors (it decides where the key goes);
//! - every referenced entity key with the Dastra id it resolves to now (a processing whose asset
//!   was re-created under a new id must be sent again; a missing reference hashes as absent).
//!
//! A false "unchanged" would need two different inputs with the same 64-bit hash for one key; a
//! false "changed" (e.g. after an upgrade) only costs the full comparison.

use std::io::Write;

use dastra_connect_core::event::{ChangeEvent, Payload};
use sha2::{Digest, Sha256};

use super::ApplyCtx;

/// Changes with every release (see the module doc).
const MAPPING_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Feeds serde_json's output straight into the hash (no intermediate text or value).
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fingerprint of an upsert event (hex of 8 bytes), or `None` for deletes and for payloads
/// that cannot be serialised (those take the full path, which reports the error).
pub fn source_fingerprint(ctx: &ApplyCtx<'_>, event: &ChangeEvent) -> Option<String> {
    if event.data.is_deleted() {
        return None;
    }
    let mut h = HashWriter(Sha256::new());
    h.0.update(MAPPING_VERSION.as_bytes());
    h.0.update([0]);
    h.0.update(event.key.as_str().as_bytes());
    h.0.update([0]);
    if matches!(event.data, Payload::Actor(_)) {
        serde_json::to_writer(&mut h, &ctx.policy.actor_key).ok()?;
    }
    if event.data.is_snapshot() {
        let mut data = event.data.clone();
        data.set_snapshot(false);
        data.write_json(&mut h).ok()?;
    } else {
        event.data.write_json(&mut h).ok()?;
    }
    for r in event.data.references() {
        h.0.update([0]);
        h.0.update(r.as_str().as_bytes());
        h.0.update([b'=']);
        if let Some(id) = ctx.ledger.live_id(r) {
            h.0.update(id.as_bytes());
        }
    }
    Some(hex::encode(&h.0.finalize()[..8]))
}
