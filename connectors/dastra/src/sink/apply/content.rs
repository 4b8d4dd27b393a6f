//! Attachment contents and their upload, shared by DSR attachments and Task documents.
//!
//! Content comes from exactly one source: a URL (downloaded under `policy.attachments`), inline
//! Base64 (`contentBase64`, up to `policy.attachments.max_inline_bytes`) or an object of the
//! bus-side store. Uploads are idempotent by content: the ledger entry's links keep, per file name,
//! the Dastra file id (`file:<name>`) and the SHA-256 of what was uploaded (`sha:<name>`). An event
//! whose file has that checksum uploads nothing — also when its URL changed (pre-signed URLs change
//! every time): the content is fetched and hashed, not uploaded. A declared `sha256` equal to the
//! recorded one skips even the fetch. Before an upload the file id is set to `?` in the ledger (the
//! upload may happen without its answer arriving); a retry that finds `?` looks the file up first.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use dastra_connect_core::event::{Attachment, ChangeEvent};
use sha2::{Digest, Sha256};

use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use crate::model::AttachmentUpload;
use crate::sink::config::AttachmentPolicy;
use crate::sink::ledger::LedgerEntry;

/// Largest attachment the sink downloads (Dastra's own upload limit is undocumented).
pub const MAX_ATTACHMENT_BYTES: usize = 25 * 1024 * 1024;

/// Where the files of one Dastra object go.
pub(super) trait Target {
    /// Uploads `content`; answers the Dastra file id.
    async fn upload(&self, a: &Attachment, content: Bytes) -> Result<String, ApplyError>;
    /// After a possibly-lost upload: the id of the file already stored, if any (one request).
    async fn find(&self, a: &Attachment, size: usize) -> Result<Option<String>, ApplyError>;
    /// Detaches a file the payload no longer lists; answers the requests sent.
    async fn remove(&self, file_id: &str) -> Result<u32, ApplyError>;
    /// What follows a stored file (e.g. linking it to its object); answers the requests sent.
    async fn attach(&self, file_id: &str) -> Result<u32, ApplyError>;
}

/// After the upsert of a task or an asset: makes its documents those of `wanted` (uploaded to
/// Dastra's own storage, `POST CloudStorage/Dastra`, and linked with `POST
/// CloudStorage/Dastra/link/{fileId}/{link_type}/{id}`; both inferred, docs/dastra-api.md §3.13).
pub(super) async fn with_documents(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    outcome: Outcome,
    wanted: &[Attachment],
    link_type: &'static str,
) -> Result<Outcome, ApplyError> {
    let has_files = |entry: &LedgerEntry| entry.links.keys().any(|k| k.starts_with("file:"));
    let (mut entry, requests, applied) = match outcome {
        Outcome::Applied { entry, requests } if !wanted.is_empty() || has_files(&entry) => (entry, requests, true),
        Outcome::Skipped { entry: Some(entry), .. } if !wanted.is_empty() || has_files(&entry) => (entry, 0, false),
        other => return Ok(other),
    };
    let Some(id) = entry.id.clone() else { return Ok(Outcome::Applied { entry, requests }) };
    let files = LinkedFiles { ctx, link_type, object_id: id };
    let requests = requests + sync(ctx, event, &files, wanted, &mut entry).await?;
    if requests == 0 && !applied {
        return Ok(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) });
    }
    Ok(Outcome::Applied { entry, requests })
}

/// Documents of one object in Dastra's own storage.
struct LinkedFiles<'a> {
    ctx: &'a ApplyCtx<'a>,
    link_type: &'static str,
    object_id: String,
}

impl Target for LinkedFiles<'_> {
    async fn upload(&self, a: &Attachment, content: Bytes) -> Result<String, ApplyError> {
        let upload = AttachmentUpload {
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            content,
        };
        let stored = self.ctx.client.upload_cloud_file(upload).await?;
        stored.id.filter(|i| !i.is_empty()).ok_or_else(|| {
            ApplyError::invalid("dastra_no_id", format!("Dastra stored {} but returned no id", a.file_name))
        })
    }

    async fn find(&self, a: &Attachment, size: usize) -> Result<Option<String>, ApplyError> {
        // Same name and size: the best a name search can tell (the storage is shared by objects).
        let listed = self.ctx.client.find_cloud_files(&a.file_name).await?;
        Ok(listed
            .into_iter()
            .rev()
            .find(|f| {
                f.file_name.as_deref().or(f.label.as_deref()) == Some(a.file_name.as_str())
                    && f.size.is_none_or(|s| s == size as i64)
            })
            .and_then(|f| f.id))
    }

    async fn remove(&self, _file_id: &str) -> Result<u32, ApplyError> {
        // No documented route unlinks or deletes a stored document: it stays in Dastra.
        Ok(0)
    }

    async fn attach(&self, file_id: &str) -> Result<u32, ApplyError> {
        self.ctx.client.link_cloud_file(file_id, self.link_type, &self.object_id).await?;
        Ok(1)
    }
}

/// Makes the object's files those of `wanted`; answers the requests sent.
pub(super) async fn sync<T: Target>(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    target: &T,
    wanted: &[Attachment],
    entry: &mut LedgerEntry,
) -> Result<u32, ApplyError> {
    let mut requests = 0;
    let names: Vec<&str> = wanted.iter().map(|a| a.file_name.as_str()).collect();
    let gone: Vec<String> = entry
        .links
        .keys()
        .filter_map(|k| k.strip_prefix("file:"))
        .filter(|n| !names.contains(n))
        .map(str::to_owned)
        .collect();
    for name in gone {
        if let Some(file) = entry.links.get(&format!("file:{name}")).filter(|f| f.as_str() != "?").cloned() {
            requests += target.remove(&file).await?;
        }
        entry.links.remove(&format!("file:{name}"));
        entry.links.remove(&format!("sha:{name}"));
    }
    for a in wanted {
        let file_key = format!("file:{}", a.file_name);
        let sha_key = format!("sha:{}", a.file_name);
        let known = entry.links.get(&file_key).cloned();
        let known_sha = entry.links.get(&sha_key).cloned();
        let live = known.as_deref().is_some_and(|k| k != "?");
        let declared = a.sha256.as_deref().map(str::to_ascii_lowercase);
        if live {
            // Declared checksum already uploaded: not even fetched.
            if declared.is_some() && declared == known_sha {
                continue;
            }
            // Entries written before content hashing kept `url:<url>` for files without a checksum.
            if declared.is_none() && !a.url.is_empty() && known_sha.as_deref() == Some(&format!("url:{}", a.url)) {
                continue;
            }
        }
        let (content, sha) = fetch(ctx, a).await?;
        if live && known_sha.as_deref() == Some(sha.as_str()) {
            // Same content from a new place (a new pre-signed URL): nothing to upload.
            continue;
        }
        if known.as_deref() == Some("?") {
            // An earlier upload may have happened: look before uploading again.
            requests += 1;
            if let Some(fid) = target.find(a, content.len()).await? {
                requests += target.attach(&fid).await?;
                entry.links.insert(file_key, fid);
                entry.links.insert(sha_key, sha);
                continue;
            }
        } else if let Some(old) = known.as_deref() {
            // Content changed: replace the file.
            requests += target.remove(old).await?;
        }
        // Mark the upload as possibly done before sending it (kept at the previous version).
        entry.links.insert(file_key.clone(), "?".into());
        let mut marker = entry.clone();
        marker.version = ctx.ledger.get(&event.key).and_then(|e| e.version);
        ctx.ledger.put(&event.key, &marker).await?;
        requests += 1;
        let fid = target.upload(a, content).await?;
        requests += target.attach(&fid).await?;
        entry.links.insert(file_key, fid);
        entry.links.insert(sha_key, sha);
    }
    Ok(requests)
}

/// What can be refused without fetching anything (a URL outside the policy, inline content over
/// the limit or not Base64, an object store the bus lacks): checked before the object is written,
/// so such an event creates nothing.
pub(super) fn precheck(ctx: &ApplyCtx<'_>, wanted: &[Attachment]) -> Result<(), ApplyError> {
    let policy = &ctx.policy.attachments;
    for a in wanted {
        if !a.url.is_empty() {
            policy
                .check(&a.url)
                .map_err(|why| ApplyError::invalid("attachment_not_allowed", format!("{}: {why}", a.file_name)))?;
        } else if let Some(b64) = &a.content_base64 {
            inline(policy, a, b64)?;
        } else if a.object.is_some() && ctx.objects.is_none() && !ctx.client.is_dry_run() {
            return Err(unsupported(a));
        }
    }
    Ok(())
}

fn unsupported(a: &Attachment) -> ApplyError {
    ApplyError::invalid(
        "attachment_source_unsupported",
        format!(
            "{}: names an object-store object, but this sink's bus has no object store (only NATS JetStream \
             has one; use url or contentBase64)",
            a.file_name
        ),
    )
}

/// The attachment's content and its hex SHA-256, checked against the declared checksum.
pub(super) async fn fetch(ctx: &ApplyCtx<'_>, a: &Attachment) -> Result<(Bytes, String), ApplyError> {
    let policy = &ctx.policy.attachments;
    if ctx.client.is_dry_run() && (!a.url.is_empty() || a.object.is_some()) {
        // A plan fetches nothing: the upload is counted, its content empty (inline content is
        // decoded and checked as usual, it costs no I/O).
        return Ok((Bytes::new(), a.sha256.clone().unwrap_or_default().to_ascii_lowercase()));
    }
    let content = if !a.url.is_empty() {
        download(policy, a).await?
    } else if let Some(b64) = &a.content_base64 {
        inline(policy, a, b64)?
    } else if let Some(object) = &a.object {
        let Some(store) = ctx.objects else { return Err(unsupported(a)) };
        store.get(&object.bucket, &object.name, MAX_ATTACHMENT_BYTES).await.map_err(|e| match e {
            ObjectError::NotFound => ApplyError::Fetch {
                retryable: false,
                message: format!("{}: object {}/{} not found", a.file_name, object.bucket, object.name),
            },
            ObjectError::TooLarge => ApplyError::Fetch {
                retryable: false,
                message: format!("{}: larger than {MAX_ATTACHMENT_BYTES} bytes", a.file_name),
            },
            ObjectError::Unavailable(why) => {
                ApplyError::Fetch { retryable: true, message: format!("{}: object store: {why}", a.file_name) }
            }
        })?
    } else {
        return Err(ApplyError::invalid(
            "attachment_no_content",
            format!("{}: needs one of url, contentBase64 or object", a.file_name),
        ));
    };
    let sha = hex::encode(Sha256::digest(&content));
    if let Some(expected) = &a.sha256
        && !expected.eq_ignore_ascii_case(&sha)
    {
        return Err(ApplyError::invalid(
            "attachment_checksum",
            format!("{}: content has SHA-256 {sha}, the event says {expected}", a.file_name),
        ));
    }
    Ok((content, sha))
}

/// Decodes inline content, refusing it over the policy's limit (checked before decoding).
fn inline(policy: &AttachmentPolicy, a: &Attachment, b64: &str) -> Result<Bytes, ApplyError> {
    let too_large = || {
        ApplyError::invalid(
            "attachment_too_large",
            format!(
                "{}: inline content is larger than policy.attachments.max_inline_bytes ({} bytes)",
                a.file_name, policy.max_inline_bytes
            ),
        )
    };
    let b64 = b64.trim();
    if b64.len() / 4 * 3 > policy.max_inline_bytes.saturating_add(3) {
        return Err(too_large());
    }
    let bytes = STANDARD.decode(b64).map_err(|e| {
        ApplyError::invalid("attachment_content", format!("{}: contentBase64 is not valid Base64 ({e})", a.file_name))
    })?;
    if bytes.len() > policy.max_inline_bytes {
        return Err(too_large());
    }
    Ok(Bytes::from(bytes))
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        // Redirects only within the host the policy allowed (at most 5): a cross-host redirect
        // ends as a 3xx answer, refused below.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt.previous().first().map(|u| u.host_str()) == Some(attempt.url().host_str());
            if attempt.previous().len() > 5 || !same_host { attempt.stop() } else { attempt.follow() }
        });
        reqwest::Client::builder()
            .redirect(redirects)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// Fetches an attachment's content from its URL, checking the policy and the size.
async fn download(policy: &AttachmentPolicy, a: &Attachment) -> Result<Bytes, ApplyError> {
    let fetch = |retryable: bool, message: String| ApplyError::Fetch { retryable, message };
    let url = policy
        .check(&a.url)
        .map_err(|why| ApplyError::invalid("attachment_not_allowed", format!("{}: {why}", a.file_name)))?;
    // reqwest's errors name the URL: keep them out of messages (pre-signed URLs carry credentials).
    let response =
        http().get(url).send().await.map_err(|e| fetch(true, format!("{}: {}", a.file_name, e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        // 4xx: the URL is wrong or expired (permanent); 5xx: try again later.
        return Err(fetch(status.is_server_error(), format!("{}: HTTP {status}", a.file_name)));
    }
    if response.content_length().is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64) {
        return Err(fetch(false, format!("{}: larger than {MAX_ATTACHMENT_BYTES} bytes", a.file_name)));
    }
    let body = response.bytes().await.map_err(|e| fetch(true, format!("{}: {}", a.file_name, e.without_url())))?;
    if body.len() > MAX_ATTACHMENT_BYTES {
        return Err(fetch(false, format!("{}: larger than {MAX_ATTACHMENT_BYTES} bytes", a.file_name)));
    }
    Ok(body)
}

/// Why an object could not be read from the bus-side store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// No such bucket or object (permanent).
    NotFound,
    /// Larger than the limit (permanent).
    TooLarge,
    /// The store could not be reached (tried again).
    Unavailable(String),
}

/// The bus-side object store attachments may name (`object: {bucket, name}`).
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's bytes, refusing more than `max` bytes.
    async fn get(&self, bucket: &str, name: &str, max: usize) -> Result<Bytes, ObjectError>;
}
