//! The bus-side object store attachments may name (`object: {bucket, name}`): on NATS, the
//! JetStream Object Store of the sink's own NATS connection settings. Kafka has no object store:
//! there such an attachment goes to the DLQ (`attachment_source_unsupported`).

use async_nats::jetstream;
use bytes::Bytes;
use dastra_connect_core::bus::NatsConfig;
use dastra_connect_core::bus::nats;
use tokio::io::AsyncReadExt;

use super::apply::{ObjectError, ObjectStore};

/// Reads objects from JetStream Object Store buckets.
pub struct NatsObjects {
    js: jetstream::Context,
}

impl NatsObjects {
    /// Connects with the bus's settings (TLS, credentials, JetStream domain/prefix).
    pub async fn connect(cfg: &NatsConfig) -> anyhow::Result<Self> {
        let client = nats::connect(cfg).await?;
        Ok(Self { js: nats::jetstream(cfg, client) })
    }
}

#[async_trait::async_trait]
impl ObjectStore for NatsObjects {
    async fn get(&self, bucket: &str, name: &str, max: usize) -> Result<Bytes, ObjectError> {
        use async_nats::jetstream::context::ObjectStoreErrorKind;
        use async_nats::jetstream::object_store::GetErrorKind;
        let store = self.js.get_object_store(bucket).await.map_err(|e| match e.kind() {
            ObjectStoreErrorKind::InvalidBucketName => ObjectError::NotFound,
            ObjectStoreErrorKind::GetStore if e.to_string().contains("not found") => ObjectError::NotFound,
            _ => ObjectError::Unavailable(e.to_string()),
        })?;
        let object = store.get(name).await.map_err(|e| match e.kind() {
            GetErrorKind::NotFound | GetErrorKind::InvalidName => ObjectError::NotFound,
            _ => ObjectError::Unavailable(e.to_string()),
        })?;
        if object.info.size > max {
            return Err(ObjectError::TooLarge);
        }
        let mut buf = Vec::with_capacity(object.info.size);
        let read = object.take(max as u64 + 1).read_to_end(&mut buf).await;
        read.map_err(|e| ObjectError::Unavailable(e.to_string()))?;
        if buf.len() > max {
            return Err(ObjectError::TooLarge);
        }
        Ok(Bytes::from(buf))
    }
}
