//! The default mappings (jq programs) from HubSpot CRM objects (`{id, properties: {…}, createdAt,
//! updatedAt, archived}`; every property value is a string or null) to payloads, and their default
//! parameters. Pure: no I/O. The config can replace an object's program (`mapping:`) or override
//! parameters (`params:`, deep-merged over these defaults). `params.properties` lists the
//! properties the source asks HubSpot for: a replaced program that reads another property adds it
//! there.
//!
//! A ticket arrives with the contact associated with it under `contact` (`{id, properties: {email,
//! firstname, lastname, phone}}`, absent when it has none), added by the source before mapping.

use serde_json::{Value, json};

use crate::config::HubSpotObject;

/// The default program of an object.
pub fn default_program(object: HubSpotObject) -> &'static str {
    match object {
        HubSpotObject::Companies => COMPANY_PROGRAM,
        HubSpotObject::Tickets => TICKET_PROGRAM,
        HubSpotObject::Contacts => CONTACT_PROGRAM,
    }
}

/// Country names as HubSpot's free-text `country` property usually holds them → ISO 3166-1 alpha-2.
/// Two-letter values are taken as codes; extend the table with `params.country_codes`.
fn country_codes() -> Value {
    json!({
        "france": "FR", "germany": "DE", "deutschland": "DE", "united kingdom": "GB", "uk": "GB",
        "great britain": "GB", "united states": "US", "usa": "US", "united states of america": "US",
        "spain": "ES", "españa": "ES", "italy": "IT", "italia": "IT", "belgium": "BE", "belgique": "BE",
        "netherlands": "NL", "the netherlands": "NL", "switzerland": "CH", "suisse": "CH", "ireland": "IE",
        "luxembourg": "LU", "portugal": "PT", "austria": "AT", "sweden": "SE", "denmark": "DK",
        "norway": "NO", "finland": "FI", "poland": "PL", "canada": "CA"
    })
}

/// Default `$params` of an object.
pub fn default_params(object: HubSpotObject) -> Value {
    match object {
        HubSpotObject::Companies => json!({
            "properties": ["name", "domain", "website", "phone", "address", "address2", "city", "zip",
                           "country", "description", "type", "lifecyclestage", "hs_lastmodifieddate"],
            "vendor_type": "B2B",
            "role_property": "type",
            "roles": {"PARTNER": "partner", "RESELLER": "partner", "VENDOR": "vendor", "PROSPECT": "prospect"},
            "lifecycle_tags": {"customer": "customer", "evangelist": "customer"},
            "country_codes": country_codes()
        }),
        HubSpotObject::Tickets => json!({
            "properties": ["subject", "content", "hs_pipeline", "hs_pipeline_stage", "createdate",
                           "closed_date", "hs_lastmodifieddate", "dsr_request_type"],
            "contact_properties": ["email", "firstname", "lastname", "phone"],
            "purpose_property": "dsr_request_type",
            "purposes": {
                "access": ["Access"], "erasure": ["Erasure"], "rectification": ["Rectification"],
                "portability": ["Portability"], "objection": ["Opposition"], "restriction": ["Restriction"]
            },
            "stages": {},
            "closed_reason": "Accepted",
            "locale": "en",
            "channel": "Internal",
            "legal_delay_months": 1,
            "legal_delay_days": 0
        }),
        HubSpotObject::Contacts => json!({
            "properties": ["email", "firstname", "lastname", "phone", "jobtitle", "company", "city", "zip",
                           "country", "lastmodifieddate"],
            "vendor_type": "B2C",
            "country_codes": country_codes()
        }),
    }
}

/// A company → an Actor (legal person, B2B); `type` and `lifecyclestage` become tags (partner,
/// vendor, prospect, customer).
pub const COMPANY_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def country: nz | if . == null then null
  elif length == 2 then ascii_upcase
  else ($params.country_codes[ascii_downcase] // null) end;
. as $r | ($r.properties // {}) as $p
| {kind: "actor", id: $r.id, data: {
    actorType: "Morale",
    vendorType: $params.vendor_type,
    companyName: ($p.name | nz // error("company \($r.id) has no name")),
    description: ($p.description | nz),
    websiteUrl: (($p.website | nz) // ($p.domain | nz | if . then "https://\(.)" else null end)),
    phoneNumber: ($p.phone | nz),
    address: ([$p.address, $p.address2] | map(nz) | map(select(. != null)) | if length == 0 then null else join(", ") end),
    zipCode: ($p.zip | nz),
    city: ($p.city | nz),
    countryCode: ($p.country | country),
    tags: ([ ($params.roles[$p[$params.role_property] // ""] // null),
             ($params.lifecycle_tags[$p.lifecyclestage // ""] // null) ]
           | map(select(. != null)) | unique)
  }}
"#;

/// A ticket of the privacy pipeline → a DataSubjectRequest (`refId` = the entity key
/// `<system>:dsr:<ticket id>`, so a stage change updates the same request). The request type
/// (`params.purpose_property`, `;`-separated when several) maps to purposes through
/// `params.purposes`: a ticket whose type maps to none is rejected (→ DLQ). The stage maps to a
/// state (and closing reason) through `params.stages`; a stage not listed is `Closed` when the
/// ticket has a `closed_date`, `Open` otherwise. The deadline (`expiryTime`) is the creation date
/// plus `legal_delay_months` calendar months (the day clamped to the month's end: 31 January → 28/29
/// February) plus `legal_delay_days`.
pub const TICKET_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def epoch: .[0:19] + "Z" | fromdateiso8601;
. as $r | ($r.properties // {}) as $p | ($r.contact.properties // {}) as $c
| ($p[$params.purpose_property] | nz) as $type
| ([($type // "") | split(";")[] | ascii_downcase | ltrimstr(" ") | rtrimstr(" ") | select(. != "")
    | ($params.purposes[.] // [])[]] | unique) as $purposes
| if ($purposes | length) == 0
  then error("ticket \($r.id): request type `\($type // "")` (property \($params.purpose_property)) maps to no purpose; add it to params.purposes")
  else . end
| ($params.stages[$p.hs_pipeline_stage // ""] // {}) as $stage
| ($stage.state // (if ($p.closed_date | nz) != null then "Closed" else "Open" end)) as $state
| ($p.createdate | nz // $r.createdAt | nz // error("ticket \($r.id) has no createdate")) as $created
| {kind: "dsr", id: $r.id, data: {
    title: ($p.subject | nz // "HubSpot ticket \($r.id)"),
    locale: $params.locale,
    purposes: $purposes,
    state: $state,
    channel: $params.channel,
    closedReason: (if $state == "Closed" then ($stage.closed_reason // $params.closed_reason) else null end),
    email: ($c.email | nz),
    givenName: ($c.firstname | nz),
    familyName: ($c.lastname | nz),
    phoneNumber: ($c.phone | nz),
    message: ($p.content | nz),
    userId: ($r.contact.id // null),
    demandId: "HubSpot ticket \($r.id)",
    dateDemand: ($created | epoch * 1000 | floor),
    expiryTime: ($created | epoch | legal_deadline($params.legal_delay_months // 0; $params.legal_delay_days // 0) * 1000 | floor)
  }}
"#;

/// A contact → an Actor (natural person, B2C). Off by default: contacts are personal data.
pub const CONTACT_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def country: nz | if . == null then null
  elif length == 2 then ascii_upcase
  else ($params.country_codes[ascii_downcase] // null) end;
. as $r | ($r.properties // {}) as $p
| if ($p.email | nz) == null and ($p.lastname | nz) == null
  then error("contact \($r.id) has neither an email nor a last name") else . end
| {kind: "actor", id: "contact-\($r.id)", data: {
    actorType: "Physical",
    vendorType: $params.vendor_type,
    givenName: ($p.firstname | nz),
    familyName: ($p.lastname | nz),
    email: ($p.email | nz),
    phoneNumber: ($p.phone | nz),
    contactPosition: ($p.jobtitle | nz),
    description: ($p.company | nz),
    zipCode: ($p.zip | nz),
    city: ($p.city | nz),
    countryCode: ($p.country | country)
  }}
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::event::{EntityKind, Payload};
    use dastra_connect_core::source::{Mapping, StreamKind};

    fn run(object: HubSpotObject, rec: Value, over: Option<Value>) -> Result<Vec<Value>, String> {
        let m = Mapping::compile(object.stream(), default_program(object)).map_err(|e| e.to_string())?;
        let mut p = default_params(object);
        if let Some(o) = over {
            merge(&mut p, &o);
        }
        m.run(&rec, &p, "hubspot").map_err(|e| e.to_string())
    }

    fn ticket(props: Value) -> Value {
        json!({"id": "5001", "createdAt": "2025-01-31T09:30:00.123Z", "updatedAt": "2025-02-01T10:00:00.000Z",
               "archived": false, "properties": props,
               "contact": {"id": "801", "properties": {"email": "jane@example.com", "firstname": "Jane", "lastname": "Doe", "phone": ""}}})
    }

    #[test]
    fn company_maps_to_a_b2b_actor_with_role_tags() {
        let c = json!({"id": "1201", "properties": {"name": "Acme SAS", "domain": "acme.fr", "website": "",
            "phone": "+33 1 23 45 67 89", "address": "1 rue de Rivoli", "address2": "", "city": "Paris", "zip": "75001",
            "country": "France", "type": "VENDOR", "lifecyclestage": "customer"}});
        let out = run(HubSpotObject::Companies, c.clone(), None).unwrap();
        let a = &out[0]["data"];
        assert_eq!(out[0]["id"], "1201");
        assert_eq!(a["companyName"], "Acme SAS");
        assert_eq!(a["websiteUrl"], "https://acme.fr");
        assert_eq!(a["countryCode"], "FR");
        assert_eq!(a["address"], "1 rue de Rivoli");
        assert_eq!(a["tags"], json!(["customer", "vendor"]));
        Payload::from_json_value(EntityKind::Actor, a.clone()).unwrap();
        let out = run(HubSpotObject::Companies, c, Some(json!({"roles": {"VENDOR": "supplier"}}))).unwrap();
        assert_eq!(out[0]["data"]["tags"], json!(["customer", "supplier"]));
        let err = run(HubSpotObject::Companies, json!({"id": "9", "properties": {"name": ""}}), None).unwrap_err();
        assert!(err.contains("company 9 has no name"), "{err}");
    }

    #[test]
    fn ticket_maps_to_a_dsr_with_purposes_state_and_a_calendar_month_deadline() {
        let t = ticket(json!({"subject": "Delete my data", "content": "Please erase my account",
            "hs_pipeline": "31582647", "hs_pipeline_stage": "71234561", "createdate": "2025-01-31T09:30:00.123Z",
            "closed_date": null, "dsr_request_type": "erasure;Access"}));
        let out = run(HubSpotObject::Tickets, t.clone(), None).unwrap();
        let d = &out[0]["data"];
        assert_eq!(out[0]["kind"], "dsr");
        assert_eq!(out[0]["id"], "5001");
        assert_eq!(d["purposes"], json!(["Access", "Erasure"]));
        assert_eq!(d["state"], "Open");
        assert_eq!(d["closedReason"], Value::Null);
        assert_eq!(d["email"], "jane@example.com");
        assert_eq!(d["givenName"], "Jane");
        assert_eq!(d["phoneNumber"], Value::Null);
        assert_eq!(d["userId"], "801");
        assert_eq!(d["dateDemand"], 1_738_315_800_000_i64, "2025-01-31T09:30:00Z");
        // One calendar month after 31 January 2025 is 28 February (clamped), same time of day.
        assert_eq!(d["expiryTime"], 1_740_735_000_000_i64, "2025-02-28T09:30:00Z");
        let p = Payload::from_json_value(EntityKind::DataSubjectRequest, d.clone()).unwrap();
        let Payload::DataSubjectRequest(dsr) = p else { panic!() };
        assert_eq!(dsr.expiry_time.unwrap().to_rfc3339(), "2025-02-28T09:30:00+00:00");

        // A mapped closed stage, and a delay in days on top.
        let mut closed = t.clone();
        closed["properties"]["hs_pipeline_stage"] = json!("71234564");
        let over = json!({"stages": {"71234564": {"state": "Closed", "closed_reason": "WrongIdentity"}},
                          "legal_delay_months": 0, "legal_delay_days": 30});
        let out = run(HubSpotObject::Tickets, closed, Some(over)).unwrap();
        assert_eq!(out[0]["data"]["state"], "Closed");
        assert_eq!(out[0]["data"]["closedReason"], "WrongIdentity");
        assert_eq!(out[0]["data"]["expiryTime"], 1_738_315_800_000_i64 + 30 * 86_400_000);
        // An unlisted stage with a closed date is closed with the default reason.
        let mut done = t.clone();
        done["properties"]["closed_date"] = json!("2025-02-10T08:00:00.000Z");
        let out = run(HubSpotObject::Tickets, done, None).unwrap();
        assert_eq!(
            (out[0]["data"]["state"].as_str(), out[0]["data"]["closedReason"].as_str()),
            (Some("Closed"), Some("Accepted"))
        );
        // A request type that maps to nothing is rejected with the reason.
        let mut odd = t;
        odd["properties"]["dsr_request_type"] = json!("complaint");
        let err = run(HubSpotObject::Tickets, odd, None).unwrap_err();
        assert!(err.contains("ticket 5001: request type `complaint`"), "{err}");
    }

    #[test]
    fn contact_maps_to_a_natural_person() {
        let c = json!({"id": "801", "properties": {"email": "jane@example.com", "firstname": "Jane", "lastname": "Doe",
            "jobtitle": "CTO", "company": "Acme", "country": "de"}});
        let out = run(HubSpotObject::Contacts, c, None).unwrap();
        assert_eq!(out[0]["id"], "contact-801");
        let a = &out[0]["data"];
        assert_eq!((a["actorType"].as_str(), a["vendorType"].as_str()), (Some("Physical"), Some("B2C")));
        assert_eq!(a["countryCode"], "DE");
        Payload::from_json_value(EntityKind::Actor, a.clone()).unwrap();
        assert!(run(HubSpotObject::Contacts, json!({"id": "2", "properties": {}}), None).is_err());
    }
}
