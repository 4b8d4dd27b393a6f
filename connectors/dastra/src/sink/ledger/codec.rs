//! The compact binary encoding of a ledger entry (format 1). The JSON of earlier builds spent most
//! of an entry on repeated text: every field name in full and every hash as 16 hex digits. Here an
//! entry is one magic byte, the state, the optional strings (id, version, hash, fingerprint,
//! attempt) and two sections of `name → string` pairs (per-field hashes, links).
//!
//! - Names (DTO fields, link roles) are one byte: an index into [`NAMES`], a frozen list of the
//!   names the sink writes; any other name is written inline (`0xFF`, length, UTF-8). The list is
//!   append-only: an index, once written, means that name forever.
//! - Strings keep their exact text (so `cmp_sequence` sees the same versions, ids compare equal)
//!   but take the cheapest exact form: a canonical decimal (integer ids) or a zero-padded decimal
//!   (20-digit versions) as a LEB128 varint, a lowercase hyphenated UUID as 16 bytes, lowercase hex
//!   of even length (hashes) as its bytes, anything else as UTF-8 text.
//! - Format: `0xD1` (never the first byte of a JSON text, so both encodings are told apart by it),
//!   state (`0` intent, `1` live, `2` deleted), five optional strings (id, version, hash, src,
//!   attempt), the field section and the link section (each: varint count, then the pairs).

use std::collections::BTreeMap;

use dastra_connect_core::codec::varint::{self, VarintError};

use super::{EntryState, FieldHashes, LedgerEntry};

/// The first byte of an entry in format 1.
pub(super) const MAGIC: u8 = 0xD1;

const T_NONE: u8 = 0x00;
const T_TEXT: u8 = 0x01;
const T_DECIMAL: u8 = 0x02;
const T_PADDED: u8 = 0x03;
const T_UUID: u8 = 0x04;
/// `T_HEX + n` (n ≤ 32): n raw bytes whose lowercase hex is the string.
const T_HEX: u8 = 0x20;
const MAX_HEX: usize = 32;
/// A name not in [`NAMES`]: length and UTF-8 follow.
const INLINE_NAME: u8 = 0xFF;

/// Field and link names written as one byte (their index). Frozen: append only, never reorder, at
/// most 255 names (`0xFF` marks an inline name).
/// The first 193 are the top-level members of the DTOs the sink writes (Dastra's OpenAPI document)
/// and the roles of relationship links.
pub(super) const NAMES: &[&str] = &[
    "accessLevel",
    "actorType",
    "additionalDatas",
    "address",
    "advanceDirectives",
    "advanceDirectivesDescription",
    "applicationState",
    "applicationType",
    "archived",
    "archivedDate",
    "archivingPolicy",
    "area",
    "areaId",
    "assessmentScoring",
    "assets",
    "assignedToUser",
    "assignedToUserId",
    "attachments",
    "automaticDecision",
    "baseActiveDescription",
    "baseActiveLegalBasis",
    "baseActiveOverride",
    "baseActiveRetentionDuration",
    "channel",
    "children",
    "city",
    "closedByUser",
    "closedReason",
    "closedReasonDescription",
    "closingTime",
    "color",
    "companyName",
    "complex",
    "contactName",
    "contactPosition",
    "countryCode",
    "creator",
    "creatorUser",
    "crossReferencing",
    "customFields",
    "dataControllers",
    "dataFields",
    "dataProcessings",
    "dataRetentionRules",
    "dataSetSource",
    "dataType",
    "dateActivated",
    "dateArchived",
    "dateClosed",
    "dateCreation",
    "dateDeployment",
    "dateEnd",
    "dateIdentityValidated",
    "datePublication",
    "dateStart",
    "dateUpdate",
    "dateUserNotified",
    "deadline",
    "definition",
    "demandId",
    "description",
    "descriptionHtml",
    "descriptionPlainText",
    "destructionDescription",
    "destructionLegalBasis",
    "destructionOverride",
    "developmentType",
    "displayName",
    "dpaSignatureDate",
    "dpiaDate",
    "dpiaExemption",
    "dpiaExemptionJustification",
    "editable",
    "email",
    "emailValidationDate",
    "entity",
    "exclusionBenefitRightContract",
    "expiryTime",
    "familyName",
    "from",
    "fromType",
    "givenName",
    "hostingType",
    "id",
    "identityValidated",
    "immatriculationNumber",
    "innovativeUse",
    "intermediateArchivingDescription",
    "intermediateArchivingLegalBasis",
    "intermediateArchivingOverride",
    "intermediateArchivingRetentionDuration",
    "isDPIARequired",
    "iteration",
    "iterationId",
    "label",
    "largeScaleCollection",
    "locale",
    "logoUrl",
    "mailValidated",
    "maintenanceType",
    "mergeType",
    "mergedFrom",
    "message",
    "nbMessages",
    "nbMessagesNotViewed",
    "nbReferences",
    "nbSubTasks",
    "nbSubTasksClosed",
    "objectId",
    "objectType",
    "objectTypeDetails",
    "operator",
    "operatorId",
    "order",
    "owner",
    "ownerId",
    "parentId",
    "personCategories",
    "personCategory",
    "personalDataCategory",
    "phoneNumber",
    "priority",
    "processingState",
    "processingType",
    "progression",
    "project",
    "projectId",
    "purposes",
    "quality",
    "readonly",
    "recipients",
    "ref",
    "refId",
    "referenceId",
    "referrerUrl",
    "relationShipType",
    "remainingDays",
    "removed",
    "required",
    "resolutionMessage",
    "reverse",
    "rightOfAccess",
    "rightOfAccessDescription",
    "rightOfDataPortability",
    "rightOfDataPortabilityDescription",
    "rightOfErasure",
    "rightOfErasureDescription",
    "rightOfInformation",
    "rightOfInformationDescription",
    "rightOfOpposition",
    "rightOfOppositionDescription",
    "rightOfRectification",
    "rightOfRectificationDescription",
    "rightOfRestriction",
    "rightOfRestrictionDescription",
    "riskLevel",
    "route",
    "securityMeasures",
    "sendNotification",
    "sensitiveData",
    "sensitiveDataFieldLegalJustification",
    "sensitiveDataFieldLegalJustificationDescription",
    "sensitivity",
    "signatories",
    "sourceDescription",
    "specialCategoryData",
    "stakeHolders",
    "state",
    "subjectRightProcessDescription",
    "supportType",
    "systematicMonitoring",
    "tags",
    "technicalDefinition",
    "title",
    "to",
    "toType",
    "type",
    "userId",
    "userNotified",
    "users",
    "vendorType",
    "versionDescription",
    "visible",
    "vulnerablePeople",
    "websiteUrl",
    "widgetId",
    "workFlowStep",
    "workFlowStepId",
    "workSpace",
    "workSpaceId",
    "workflowStep",
    "workspaceId",
    "zipCode",
];

/// Why bytes could not be read as an entry.
#[derive(Debug)]
pub(super) struct DecodeError(&'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "binary ledger entry: {}", self.0)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Writes `s` in its cheapest exact form.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits && let Ok(v) = s.parse::<u64>() {
        if s == "0" || !s.starts_with('0') {
            out.push(T_DECIMAL);
            varint::put(out, v);
            return;
        }
        if s.len() <= usize::from(u8::MAX) {
            out.push(T_PADDED);
            out.push(s.len() as u8);
            varint::put(out, v);
            return;
        }
    }
    if s.len() == 36
        && let Ok(u) = uuid::Uuid::parse_str(s)
        && u.hyphenated().to_string() == s
    {
        out.push(T_UUID);
        out.extend_from_slice(u.as_bytes());
        return;
    }
    if s.len().is_multiple_of(2) && s.len() / 2 <= MAX_HEX && is_lower_hex(s) {
        let mut bytes = [0u8; MAX_HEX];
        let bytes = &mut bytes[..s.len() / 2];
        if hex::decode_to_slice(s, bytes).is_ok() {
            out.push(T_HEX + bytes.len() as u8);
            out.extend_from_slice(bytes);
            return;
        }
    }
    out.push(T_TEXT);
    varint::put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.push(T_NONE),
    }
}

/// The index of every name in [`NAMES`].
fn name_index(name: &str) -> Option<u8> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, u8>> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| NAMES.iter().enumerate().map(|(i, n)| (*n, i as u8)).collect()).get(name).copied()
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    match name_index(name) {
        Some(i) => out.push(i),
        None => {
            out.push(INLINE_NAME);
            varint::put(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// The section of `name → string` pairs (count, then the pairs in the map's order).
pub(super) fn encode_pairs<'a>(out: &mut Vec<u8>, len: usize, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    varint::put(out, len as u64);
    for (k, v) in pairs {
        put_name(out, k);
        put_str(out, v);
    }
}

/// Encodes `entry` in format 1.
pub(super) fn encode(entry: &LedgerEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(MAGIC);
    out.push(match entry.state {
        EntryState::Intent => 0,
        EntryState::Live => 1,
        EntryState::Deleted => 2,
    });
    for s in [&entry.id, &entry.version, &entry.hash, &entry.src, &entry.attempt] {
        put_opt(&mut out, s.as_deref());
    }
    match entry.fields.encoded() {
        Some(section) => out.extend_from_slice(section),
        None => out.push(0),
    }
    encode_pairs(&mut out, entry.links.len(), entry.links.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    out
}

/// A reader over the bytes of an entry.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.at).ok_or(DecodeError("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or(DecodeError("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        varint::read(self.bytes, &mut self.at).map_err(|e| match e {
            VarintError::Truncated => DecodeError("truncated"),
            VarintError::Overflow => DecodeError("varint overflow"),
        })
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))
    }

    fn text(&mut self, n: usize) -> Result<String, DecodeError> {
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError("text is not UTF-8"))
    }

    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        let tag = self.byte()?;
        Ok(match tag {
            T_NONE => None,
            T_TEXT => {
                let n = self.length()?;
                Some(self.text(n)?)
            }
            T_DECIMAL => Some(self.varint()?.to_string()),
            T_PADDED => {
                let width = usize::from(self.byte()?);
                Some(format!("{:0width$}", self.varint()?))
            }
            T_UUID => {
                let raw = self.take(16)?;
                let u = uuid::Uuid::from_slice(raw).map_err(|_| DecodeError("bad uuid"))?;
                Some(u.hyphenated().to_string())
            }
            t if (T_HEX..=T_HEX + MAX_HEX as u8).contains(&t) => Some(hex::encode(self.take(usize::from(t - T_HEX))?)),
            _ => return Err(DecodeError("unknown string tag")),
        })
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        self.opt_str()?.ok_or(DecodeError("a pair has no value"))
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        match self.byte()? {
            INLINE_NAME => {
                let n = self.length()?;
                self.text(n)
            }
            i => NAMES.get(usize::from(i)).map(|n| (*n).to_owned()).ok_or(DecodeError("unknown name index")),
        }
    }

    /// Reads a pair section into a map.
    pub(super) fn pairs(&mut self) -> Result<BTreeMap<String, String>, DecodeError> {
        let n = self.length()?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k = self.name()?;
            let v = self.str()?;
            map.insert(k, v);
        }
        Ok(map)
    }

    fn skip_str(&mut self) -> Result<(), DecodeError> {
        match self.byte()? {
            T_NONE => return Err(DecodeError("a pair has no value")),
            T_TEXT => {
                let n = self.length()?;
                self.take(n)?;
            }
            T_DECIMAL => {
                self.varint()?;
            }
            T_PADDED => {
                self.byte()?;
                self.varint()?;
            }
            T_UUID => {
                self.take(16)?;
            }
            t if (T_HEX..=T_HEX + MAX_HEX as u8).contains(&t) => {
                self.take(usize::from(t - T_HEX))?;
            }
            _ => return Err(DecodeError("unknown string tag")),
        }
        Ok(())
    }

    /// Skips a pair section (checking its shape), answering its bytes: field hashes stay encoded
    /// and are read only for a PATCH.
    fn pairs_raw(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.at;
        let n = self.length()?;
        for _ in 0..n {
            match self.byte()? {
                INLINE_NAME => {
                    let len = self.length()?;
                    std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("text is not UTF-8"))?;
                }
                i if usize::from(i) < NAMES.len() => {}
                _ => return Err(DecodeError("unknown name index")),
            }
            self.skip_str()?;
        }
        Ok(&self.bytes[start..self.at])
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Decodes an entry in format 1 (`bytes` starts with [`MAGIC`]).
pub(super) fn decode(bytes: &[u8]) -> Result<LedgerEntry, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.byte()? != MAGIC {
        return Err(DecodeError("not format 1"));
    }
    let state = match r.byte()? {
        0 => EntryState::Intent,
        1 => EntryState::Live,
        2 => EntryState::Deleted,
        _ => return Err(DecodeError("unknown state")),
    };
    let id = r.opt_str()?;
    let version = r.opt_str()?;
    let hash = r.opt_str()?;
    let src = r.opt_str()?;
    let attempt = r.opt_str()?;
    let fields = FieldHashes::from_encoded(r.pairs_raw()?);
    let links = r.pairs()?;
    if !r.done() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(LedgerEntry { state, id, version, hash, fields, links, src, attempt })
}
