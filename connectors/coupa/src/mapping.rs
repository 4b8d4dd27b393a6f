//! The default mappings (jq programs) from Coupa records (JSON, dashed field names) to payloads and
//! their default parameters. Pure: no I/O. The config can replace a resource's program (`mapping:`)
//! or override parameters (`params:`, deep-merged over these defaults).

use serde_json::{Value, json};

use crate::config::CoupaResource;

/// The default program of a resource.
pub fn default_program(resource: CoupaResource) -> &'static str {
    match resource {
        CoupaResource::Suppliers => SUPPLIER_PROGRAM,
        CoupaResource::Contracts => CONTRACT_PROGRAM,
    }
}

/// Default `$params` of a resource.
pub fn default_params(resource: CoupaResource) -> Value {
    match resource {
        CoupaResource::Suppliers => json!({
            "vendor_type": "B2B",
            "registration_field": "tax-id",
            "skip_statuses": [],
            "status_tags": {"inactive": "coupa-inactive", "draft": "coupa-draft"},
            "commodity_as_tag": true
        }),
        CoupaResource::Contracts => json!({
            "skip_statuses": [],
            "status_as_tag": true,
            "amount_custom_field": null
        }),
    }
}

/// A supplier → an Actor (legal person, B2B). A supplier whose status is in `skip_statuses`
/// produces nothing (its Actor, if published before, is then deleted).
pub const SUPPLIER_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def phone: if . == null then null
  else ([.["country-code"], .["area-code"], .number, (.extension | nz | if . then "x\(.)" else null end)]
        | map(nz) | map(select(. != null)) | map(tostring) | if length == 0 then null else join(" ") end) end;
. as $s
| if (($params.skip_statuses // []) | index($s.status // "")) != null then empty else
  ($s["primary-contact"] // {}) as $c
  | ($s["primary-address"] // {}) as $a
  | {kind: "actor", id: $s.id, data: {
      actorType: "Morale",
      vendorType: $params.vendor_type,
      companyName: ($s.name | nz // error("supplier \($s.id) has no name")),
      description: ($s["display-name"] | nz | if . != null and . != $s.name then . else null end),
      immatriculationNumber: ($s[$params.registration_field // ""] | nz),
      email: ($c.email | nz),
      contactName: ([$c["name-given"], $c["name-family"]] | map(nz) | map(select(. != null)) | if length == 0 then null else join(" ") end),
      phoneNumber: (($c["phone-work"] // $c["phone-mobile"]) | phone),
      websiteUrl: ($s.website | nz),
      address: ([$a.street1, $a.street2] | map(nz) | map(select(. != null)) | if length == 0 then null else join(", ") end),
      zipCode: ($a["postal-code"] | nz),
      city: ($a.city | nz),
      countryCode: ($a.country.code | nz | if . then ascii_upcase else null end),
      tags: ([ (if $params.commodity_as_tag then ($s.commodity.name | nz) else null end),
               ($params.status_tags[$s.status // ""] // null) ] | map(select(. != null)))
    }}
  end
"#;

/// A contract → a Contract whose `supplier` is the supplier's Actor key.
pub const CONTRACT_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def ms: nz | if . == null then null
  elif test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$") then (. + "T00:00:00Z" | fromdateiso8601 * 1000 | floor)
  else (fromdateiso8601 * 1000 | floor) end;
. as $k
| if (($params.skip_statuses // []) | index($k.status // "")) != null then empty else
  ($k["start-date"] | ms) as $start
  | ($k["end-date"] | ms) as $end
  | if $start != null and $end != null and $end < $start
    then error("contract \($k.id) ends (\($k["end-date"])) before it starts (\($k["start-date"]))") else . end
  | {kind: "contract", id: $k.id, data: {
      label: ($k.name | nz // error("contract \($k.id) has no name")),
      description: ([($k.description | nz), ($k.number | nz | if . then "Coupa contract \(.)" else null end)]
                    | map(select(. != null)) | if length == 0 then null else join(" — ") end),
      supplier: ($k.supplier.id | if . == null then null else "\($system):actor:\(.)" end),
      startDate: $start,
      endDate: $end,
      tags: (if $params.status_as_tag and ($k.status | nz) != null then [$k.status] else [] end),
      customFields: (if $params.amount_custom_field != null and $k["maximum-value"] != null
                     then {($params.amount_custom_field): "\($k["maximum-value"]) \($k.currency.code // "")" | rtrimstr(" ")}
                     else {} end)
    }}
  end
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::{Mapping, StreamKind};

    fn run(resource: CoupaResource, rec: Value, over: Option<Value>) -> Result<Vec<Value>, String> {
        let m = Mapping::compile(resource.stream(), default_program(resource)).map_err(|e| e.to_string())?;
        let mut p = default_params(resource);
        if let Some(o) = over {
            merge(&mut p, &o);
        }
        m.run(&rec, &p, "coupa").map_err(|e| e.to_string())
    }

    #[test]
    fn supplier_maps_to_a_b2b_actor() {
        let s = json!({"id": 17, "name": "OVH SAS", "display-name": "OVHcloud", "status": "active", "tax-id": "FR22424761419",
            "website": "https://www.ovhcloud.com", "commodity": {"name": "IT Services"},
            "primary-contact": {"email": "dpo@ovhcloud.com", "name-given": "Anne", "name-family": "Martin",
                                "phone-work": {"country-code": "33", "area-code": "9", "number": "72101007", "extension": ""}},
            "primary-address": {"street1": "2 rue Kellermann", "street2": "", "city": "Roubaix", "postal-code": "59100",
                                "country": {"code": "fr", "name": "France"}}});
        let out = run(CoupaResource::Suppliers, s.clone(), None).unwrap();
        assert_eq!(out.len(), 1);
        let a = &out[0]["data"];
        assert_eq!(out[0]["id"], 17);
        assert_eq!(a["vendorType"], "B2B");
        assert_eq!(a["companyName"], "OVH SAS");
        assert_eq!(a["description"], "OVHcloud");
        assert_eq!(a["immatriculationNumber"], "FR22424761419");
        assert_eq!(a["contactName"], "Anne Martin");
        assert_eq!(a["phoneNumber"], "33 9 72101007");
        assert_eq!(a["address"], "2 rue Kellermann");
        assert_eq!(a["countryCode"], "FR");
        assert_eq!(a["tags"], json!(["IT Services"]));
        let mut inactive = s;
        inactive["status"] = json!("inactive");
        assert!(
            run(CoupaResource::Suppliers, inactive.clone(), Some(json!({"skip_statuses": ["inactive"]})))
                .unwrap()
                .is_empty()
        );
        let out = run(CoupaResource::Suppliers, inactive, None).unwrap();
        assert_eq!(out[0]["data"]["tags"], json!(["IT Services", "coupa-inactive"]));
    }

    #[test]
    fn contract_maps_with_its_supplier_and_dates() {
        let k = json!({"id": 5, "name": "Hosting MSA", "number": "CT-2024-005", "status": "published",
            "start-date": "2024-01-01T00:00:00-08:00", "end-date": "2026-12-31", "supplier": {"id": 17, "name": "OVH SAS"},
            "maximum-value": "120000.00", "currency": {"code": "EUR"}});
        let out = run(CoupaResource::Contracts, k.clone(), Some(json!({"amount_custom_field": "ceiling"}))).unwrap();
        let c = &out[0]["data"];
        assert_eq!(c["supplier"], "coupa:actor:17");
        assert_eq!(c["startDate"], 1_704_096_000_000_i64);
        assert_eq!(c["endDate"], 1_798_675_200_000_i64);
        assert_eq!(c["description"], "Coupa contract CT-2024-005");
        assert_eq!(c["tags"], json!(["published"]));
        assert_eq!(c["customFields"]["ceiling"], "120000.00 EUR");
        let mut bad = k;
        bad["end-date"] = json!("2023-01-01");
        let err = run(CoupaResource::Contracts, bad, None).unwrap_err();
        assert!(err.contains("contract 5 ends (2023-01-01) before it starts"), "{err}");
    }
}
