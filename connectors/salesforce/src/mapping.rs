//! The default mappings (jq programs) from Salesforce records (REST API JSON: field API names,
//! relationship fields as nested objects, times like `2024-05-01T10:00:07.000+0000`) to payloads,
//! their default parameters, and the fields each object's query selects. Pure: no I/O. The config
//! can replace an object's program (`mapping:`) or override parameters (`params:`, deep-merged over
//! these defaults); a program that needs more fields lists them in `params.extra_fields`.

use serde_json::{Value, json};

use crate::config::SalesforceObject;
use crate::soql::is_field_name;

/// Fields every query of an object selects (only what the default mapping needs).
pub fn base_fields(object: SalesforceObject) -> &'static [&'static str] {
    match object {
        SalesforceObject::Accounts => &[
            "Id",
            "Name",
            "Type",
            "Industry",
            "Description",
            "Phone",
            "Website",
            "BillingStreet",
            "BillingPostalCode",
            "BillingCity",
            "BillingCountryCode",
            "SystemModstamp",
        ],
        // Only what a DSR needs: the request (number, type, state, dates, channel) and the
        // subject's name and e-mail — from the Case's Contact, else the web/e-mail-to-case fields.
        SalesforceObject::Cases => &[
            "Id",
            "CaseNumber",
            "Status",
            "IsClosed",
            "Reason",
            "Type",
            "Origin",
            "CreatedDate",
            "ClosedDate",
            "ContactId",
            "Contact.FirstName",
            "Contact.LastName",
            "Contact.Email",
            "SuppliedName",
            "SuppliedEmail",
            "SystemModstamp",
        ],
        SalesforceObject::Contacts => &[
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "Title",
            "MailingCity",
            "MailingPostalCode",
            "MailingCountryCode",
            "SystemModstamp",
        ],
    }
}

/// The fields an object's queries select: [`base_fields`], the field named by `type_field`
/// (accounts) or `request_type_field` (cases), and `extra_fields`. An error says which parameter is
/// not a field name.
pub fn select_fields(object: SalesforceObject, params: &Value) -> Result<Vec<String>, String> {
    let mut fields: Vec<String> = base_fields(object).iter().map(|s| (*s).to_owned()).collect();
    let mut add = |name: &str, what: &str| -> Result<(), String> {
        if !is_field_name(name) {
            return Err(format!("{what}: `{name}` is not a SOQL field name"));
        }
        if !fields.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            fields.push(name.to_owned());
        }
        Ok(())
    };
    for key in ["type_field", "request_type_field"] {
        match params.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => add(s, key)?,
            Some(_) => return Err(format!("{key} must be a field name")),
        }
    }
    match params.get("extra_fields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for v in list {
                add(v.as_str().ok_or("extra_fields must be a list of field names")?, "extra_fields")?;
            }
        }
        Some(_) => return Err("extra_fields must be a list of field names".into()),
    }
    Ok(fields)
}

/// The default program of an object.
pub fn default_program(object: SalesforceObject) -> &'static str {
    match object {
        SalesforceObject::Accounts => ACCOUNT_PROGRAM,
        SalesforceObject::Cases => CASE_PROGRAM,
        SalesforceObject::Contacts => CONTACT_PROGRAM,
    }
}

/// Default `$params` of an object.
pub fn default_params(object: SalesforceObject) -> Value {
    match object {
        SalesforceObject::Accounts => json!({
            "type_field": "Type",
            // Account Type picklist value → the role tag (customer / partner / vendor).
            "roles": {
                "Customer - Direct": "customer",
                "Customer - Channel": "customer",
                "Channel Partner / Reseller": "partner",
                "Installation Partner": "partner",
                "Technology Partner": "partner",
                "Vendor": "vendor",
                "Supplier": "vendor"
            },
            "skip_types": [],
            "vendor_type": "B2B",
            "industry_as_tag": false,
            "extra_fields": []
        }),
        SalesforceObject::Cases => json!({
            "request_type_field": "Type",
            // Request type (the Case field above) → Dastra purpose.
            "purposes": {
                "Access": "Access",
                "Erasure": "Erasure",
                "Deletion": "Erasure",
                "Rectification": "Rectification",
                "Portability": "Portability",
                "Objection": "Opposition",
                "Restriction": "Restriction"
            },
            // Status of an open Case → Dastra state (unlisted: Open); a closed Case is Closed.
            "states": {"New": "Open", "Working": "Processing", "Escalated": "Processing", "On Hold": "Processing"},
            // Status of a closed Case → Dastra closedReason (unlisted: default_closed_reason).
            "closed_reasons": {"Closed": "Accepted", "Withdrawn": "Cancelled", "Rejected": "NotAdmissible", "Duplicate": "Duplicate"},
            "default_closed_reason": "Accepted",
            // Case Origin → Dastra channel (unlisted: default_channel).
            "channels": {"Web": "Form", "Email": "IncomingEmail", "Phone": "Internal"},
            "default_channel": "Internal",
            "person_category": "Client",
            "locale": "en",
            // GDPR art. 12(3): one month from receipt (extendable by two), counted as a calendar
            // month (the day clamped to the month's end) plus `legal_delay_days`. Without
            // `legal_delay_months`: 1, unless `legal_delay_days` is set (configs written when the
            // deadline was counted in days only keep their meaning: `legal_delay_days: 30` stays 30
            // days, not one month and 30 days).
            "legal_delay_days": 0,
            "extra_fields": []
        }),
        SalesforceObject::Contacts => json!({
            "tags": ["salesforce-contact"],
            "extra_fields": []
        }),
    }
}

/// An Account → an Actor (legal person) tagged with its role.
pub const ACCOUNT_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def field($path): reduce ($path | split(".")[]) as $k (.; if type == "object" then .[$k] else null end);
. as $a
| ($a | field($params.type_field // "Type") | nz) as $type
| if (($params.skip_types // []) | index($type // "")) != null then empty else
  {kind: "actor", id: $a.Id, data: {
    actorType: "Morale",
    vendorType: $params.vendor_type,
    companyName: ($a.Name | nz // error("account \($a.Id) has no name")),
    description: ($a.Description | nz),
    phoneNumber: ($a.Phone | nz),
    websiteUrl: ($a.Website | nz),
    address: ($a.BillingStreet | nz),
    zipCode: ($a.BillingPostalCode | nz),
    city: ($a.BillingCity | nz),
    countryCode: ($a.BillingCountryCode | nz | if . then ascii_upcase else null end),
    tags: ([ ($params.roles[$type // ""] // null),
             (if $params.industry_as_tag then ($a.Industry | nz) else null end) ] | map(select(. != null)))
  }}
  end
"#;

/// A privacy Case → a DataSubjectRequest keyed by the Case Id: purpose from the request type
/// table (an unknown type rejects the record), state and closing reason from `Status`/`IsClosed`,
/// subject from the Contact (else `SuppliedName`/`SuppliedEmail`), deadline = `CreatedDate` +
/// `legal_delay_months` calendar months + `legal_delay_days` (the prelude's `legal_deadline`).
pub const CASE_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def field($path): reduce ($path | split(".")[]) as $k (.; if type == "object" then .[$k] else null end);
def sfdate: nz | if . == null then null
  else (sub("\\.[0-9]+"; "") | sub("(?<h>[+-][0-9]{2})(?<m>[0-9]{2})$"; "\(.h):\(.m)") | sub("\\+00:00$"; "Z") | fromdateiso8601) end;
. as $c
| ($c.CaseNumber // $c.Id) as $n
| ($c | field($params.request_type_field // "Type") | nz) as $rt
| ($params.purposes[$rt // ""] // error("case \($n): request type \($rt | tojson) is not in params.purposes")) as $purpose
| ($c.CreatedDate | sfdate // error("case \($n) has no CreatedDate")) as $created
| ($c.Contact // {}) as $p
| ($c.IsClosed == true) as $closed
| {kind: "dsr", id: $c.Id, data: {
    title: "\($purpose) request (Salesforce case \($n))",
    locale: $params.locale,
    purposes: [$purpose],
    state: (if $closed then "Closed" else ($params.states[$c.Status // ""] // "Open") end),
    closedReason: (if $closed then ($params.closed_reasons[$c.Status // ""] // $params.default_closed_reason) else null end),
    channel: ($params.channels[$c.Origin // ""] // $params.default_channel),
    personCategory: $params.person_category,
    email: (($p.Email | nz) // ($c.SuppliedEmail | nz)),
    givenName: ($p.FirstName | nz),
    familyName: (($p.LastName | nz) // ($c.SuppliedName | nz)),
    userId: ($c.ContactId | nz),
    description: "Salesforce case \($n)",
    dateDemand: ($created * 1000 | floor),
    expiryTime: ($created
      | legal_deadline($params.legal_delay_months // (if ($params.legal_delay_days // 0) > 0 then 0 else 1 end);
                       $params.legal_delay_days // 0) * 1000 | floor)
  }}
"#;

/// A Contact → an Actor (natural person).
pub const CONTACT_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
. as $p
| {kind: "actor", id: $p.Id, data: {
    actorType: "Physical",
    givenName: ($p.FirstName | nz),
    familyName: ($p.LastName | nz // error("contact \($p.Id) has no last name")),
    email: ($p.Email | nz),
    phoneNumber: ($p.Phone | nz),
    contactPosition: ($p.Title | nz),
    zipCode: ($p.MailingPostalCode | nz),
    city: ($p.MailingCity | nz),
    countryCode: ($p.MailingCountryCode | nz | if . then ascii_upcase else null end),
    tags: ($params.tags // [])
  }}
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::{Mapping, StreamKind};

    fn run(object: SalesforceObject, rec: Value, over: Option<Value>) -> Result<Vec<Value>, String> {
        let m = Mapping::compile(object.stream(), default_program(object)).map_err(|e| e.to_string())?;
        let mut p = default_params(object);
        if let Some(o) = over {
            merge(&mut p, &o);
        }
        m.run(&rec, &p, "salesforce").map_err(|e| e.to_string())
    }

    #[test]
    fn account_maps_to_a_legal_person_with_its_role() {
        let a = json!({"attributes": {"type": "Account"}, "Id": "001A", "Name": "Acme SAS", "Type": "Channel Partner / Reseller",
            "Industry": "Retail", "Phone": "+33 1 00", "Website": "https://acme.example", "BillingStreet": "1 rue X",
            "BillingPostalCode": "75001", "BillingCity": "Paris", "BillingCountryCode": "fr", "SystemModstamp": "2024-05-01T10:00:07.000+0000"});
        let out = run(SalesforceObject::Accounts, a.clone(), None).unwrap();
        let d = &out[0]["data"];
        assert_eq!(out[0]["id"], "001A");
        assert_eq!(d["actorType"], "Morale");
        assert_eq!(d["companyName"], "Acme SAS");
        assert_eq!(d["countryCode"], "FR");
        assert_eq!(d["tags"], json!(["partner"]));
        let out = run(SalesforceObject::Accounts, a.clone(), Some(json!({"industry_as_tag": true}))).unwrap();
        assert_eq!(out[0]["data"]["tags"], json!(["partner", "Retail"]));
        let mut custom = a.clone();
        custom["Relationship__c"] = json!("Vendor");
        let out = run(SalesforceObject::Accounts, custom, Some(json!({"type_field": "Relationship__c"}))).unwrap();
        assert_eq!(out[0]["data"]["tags"], json!(["vendor"]));
        assert!(
            run(SalesforceObject::Accounts, a, Some(json!({"skip_types": ["Channel Partner / Reseller"]})))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn privacy_case_maps_to_a_dsr_with_its_deadline() {
        let c = json!({"attributes": {"type": "Case"}, "Id": "500A", "CaseNumber": "00001026", "Status": "Working",
            "IsClosed": false, "Reason": "Privacy Request", "Type": "Deletion", "Origin": "Web",
            "CreatedDate": "2024-05-01T10:00:07.000+0000", "ContactId": "003A",
            "Contact": {"attributes": {"type": "Contact"}, "FirstName": "Jane", "LastName": "Doe", "Email": "jane@example.com"},
            "SuppliedName": null, "SuppliedEmail": null});
        let out = run(SalesforceObject::Cases, c.clone(), None).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["kind"], "dsr");
        assert_eq!(out[0]["id"], "500A");
        let d = &out[0]["data"];
        assert_eq!(d["purposes"], json!(["Erasure"]));
        assert_eq!(d["state"], "Processing");
        assert_eq!(d["closedReason"], Value::Null);
        assert_eq!(d["channel"], "Form");
        assert_eq!((d["givenName"].as_str(), d["familyName"].as_str()), (Some("Jane"), Some("Doe")));
        assert_eq!(d["email"], "jane@example.com");
        assert_eq!(d["dateDemand"], 1_714_557_607_000_i64);
        // One calendar month: 1 May 10:00:07 → 1 June 10:00:07 (31 days).
        assert_eq!(d["expiryTime"], 1_717_236_007_000_i64, "created + 1 calendar month");
        // Closed as withdrawn; no contact: the web-to-case fields; another time zone offset.
        let mut w = c.clone();
        w["IsClosed"] = json!(true);
        w["Status"] = json!("Withdrawn");
        w["Contact"] = Value::Null;
        w["SuppliedName"] = json!("John Roe");
        w["SuppliedEmail"] = json!("john@example.com");
        w["CreatedDate"] = json!("2024-05-01T12:00:07.000+0200");
        let out = run(SalesforceObject::Cases, w.clone(), Some(json!({"legal_delay_days": 90}))).unwrap();
        let d = &out[0]["data"];
        assert_eq!((d["state"].as_str(), d["closedReason"].as_str()), (Some("Closed"), Some("Cancelled")));
        assert_eq!((d["familyName"].as_str(), d["email"].as_str()), (Some("John Roe"), Some("john@example.com")));
        assert_eq!(d["expiryTime"], 1_714_557_607_000_i64 + 90 * 86_400_000);
        // Days only, as configs of earlier builds say it; months and days together when both are set.
        let days = run(SalesforceObject::Cases, w.clone(), Some(json!({"legal_delay_days": 30}))).unwrap();
        assert_eq!(days[0]["data"]["expiryTime"], 1_714_557_607_000_i64 + 30 * 86_400_000);
        let both =
            run(SalesforceObject::Cases, w, Some(json!({"legal_delay_months": 1, "legal_delay_days": 2}))).unwrap();
        assert_eq!(both[0]["data"]["expiryTime"], 1_717_236_007_000_i64 + 2 * 86_400_000, "1 June + 2 days");
        // Received on 31 January of a leap year: the deadline is 29 February, not 1 March (30 days).
        let mut jan = c.clone();
        jan["CreatedDate"] = json!("2024-01-31T10:00:07.000+0000");
        let out = run(SalesforceObject::Cases, jan, None).unwrap();
        assert_eq!(out[0]["data"]["expiryTime"], 1_709_200_807_000_i64, "31 Jan + 1 month = 29 Feb");
        // A request type not in the table is rejected (→ DLQ).
        let mut unknown = c;
        unknown["Type"] = json!("Question");
        let err = run(SalesforceObject::Cases, unknown, None).unwrap_err();
        assert!(
            err.contains("case 00001026: request type") && err.contains("Question") && err.contains("params.purposes"),
            "{err}"
        );
    }

    #[test]
    fn contact_maps_to_a_natural_person() {
        let p = json!({"Id": "003A", "FirstName": "Jane", "LastName": "Doe", "Email": "jane@example.com", "MailingCountryCode": "de"});
        let out = run(SalesforceObject::Contacts, p, None).unwrap();
        assert_eq!(out[0]["data"]["actorType"], "Physical");
        assert_eq!(out[0]["data"]["countryCode"], "DE");
    }

    #[test]
    fn selected_fields_follow_the_params() {
        let f = select_fields(
            SalesforceObject::Cases,
            &json!({"request_type_field": "Privacy_Type__c", "extra_fields": ["Subject", "Type"]}),
        )
        .unwrap();
        assert!(f.contains(&"Privacy_Type__c".to_owned()) && f.contains(&"Subject".to_owned()));
        assert_eq!(f.iter().filter(|x| *x == "Type").count(), 1, "no field twice");
        assert!(select_fields(SalesforceObject::Accounts, &json!({"extra_fields": "Name"})).is_err());
        assert!(select_fields(SalesforceObject::Accounts, &json!({"type_field": "Type, Id"})).is_err());
    }
}
