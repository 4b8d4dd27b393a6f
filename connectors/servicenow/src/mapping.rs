//! The default mappings (jq programs) from ServiceNow records to payloads, their default parameters
//! and the fields they read. Pure: no I/O. The config can replace a table's program (`mapping:`) or
//! override parameters (`params:`, deep-merged over these defaults).

use serde_json::{Value, json};

/// Which default mapping a table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultMapping {
    /// `cmdb_ci` and its classes → Asset (+ Relationship to vendor/manufacturer Actors).
    ConfigurationItem,
    /// `core_company` → Actor.
    Company,
}

impl DefaultMapping {
    /// The default mapping of a table, if it has one.
    pub fn for_table(table: &str) -> Option<DefaultMapping> {
        if table == "cmdb_ci" || table.starts_with("cmdb_ci_") {
            Some(DefaultMapping::ConfigurationItem)
        } else if table == "core_company" {
            Some(DefaultMapping::Company)
        } else {
            None
        }
    }

    /// The jq program.
    pub fn program(self) -> &'static str {
        match self {
            DefaultMapping::ConfigurationItem => CI_PROGRAM,
            DefaultMapping::Company => COMPANY_PROGRAM,
        }
    }

    /// Default `$params`.
    pub fn params(self) -> Value {
        match self {
            DefaultMapping::ConfigurationItem => json!({
                "class_map": {
                    "cmdb_ci_appl": "Software",
                    "cmdb_ci_business_app": "Software",
                    "cmdb_ci_service": "Software",
                    "cmdb_ci_service_discovered": "Software",
                    "cmdb_ci_service_auto": "Software",
                    "cmdb_ci_server": "Material",
                    "cmdb_ci_linux_server": "Material",
                    "cmdb_ci_unix_server": "Material",
                    "cmdb_ci_win_server": "Material",
                    "cmdb_ci_esx_server": "Material",
                    "cmdb_ci_computer": "Material",
                    "cmdb_ci_vm_instance": "Material",
                    "cmdb_ci_storage_device": "Material",
                    "cmdb_ci_netgear": "Network",
                    "cmdb_ci_ip_router": "Network",
                    "cmdb_ci_ip_switch": "Network",
                    "cmdb_ci_ip_firewall": "Network",
                    "cmdb_ci_lb": "Network",
                    "cmdb_ci_database": "Data",
                    "cmdb_ci_db_instance": "Data",
                    "cmdb_ci_db_ora_instance": "Data",
                    "cmdb_ci_db_mssql_instance": "Data",
                    "cmdb_ci_db_mysql_instance": "Data",
                    "cmdb_ci_db_postgresql_instance": "Data",
                    "cmdb_ci_datacenter": "Building",
                    "cmdb_ci_computer_room": "Building"
                },
                "default_asset_type": null,
                "operational_status": {
                    "1": "InProduction", "2": "Stopped", "3": "InProduction",
                    "4": "InProduction", "5": "InDevelopment", "6": "Stopped"
                },
                "owner_field": "owned_by.name",
                "owner_custom_field": null,
                "relationship_fields": ["vendor", "manufacturer"],
                "countries": countries()
            }),
            DefaultMapping::Company => json!({
                "vendor_type": "B2B",
                "countries": countries()
            }),
        }
    }

    /// Fields requested from the Table API (`sysparm_fields`), dot-walked references included.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            DefaultMapping::ConfigurationItem => &[
                "sys_id",
                "sys_class_name",
                "name",
                "short_description",
                "operational_status",
                "vendor",
                "manufacturer",
                "location.street",
                "location.city",
                "location.zip",
                "location.country",
                "owned_by.name",
                "sys_updated_on",
                "sys_mod_count",
            ],
            DefaultMapping::Company => &[
                "sys_id",
                "name",
                "street",
                "city",
                "zip",
                "country",
                "phone",
                "website",
                "notes",
                "vendor",
                "manufacturer",
                "sys_updated_on",
                "sys_mod_count",
            ],
        }
    }

    /// The default filter of the table (`core_company`: suppliers only).
    pub fn default_filter(self) -> Option<&'static str> {
        match self {
            DefaultMapping::ConfigurationItem => None,
            DefaultMapping::Company => Some("vendor=true^ORmanufacturer=true"),
        }
    }
}

/// Country names ServiceNow instances commonly hold in free-text country fields → ISO 3166-1
/// alpha-2 (looked up first, so `UK` becomes `GB`; other two-letter values pass through upper-cased).
fn countries() -> Value {
    json!({
        "france": "FR", "germany": "DE", "deutschland": "DE", "united states": "US", "usa": "US",
        "united states of america": "US", "united kingdom": "GB", "uk": "GB", "great britain": "GB",
        "spain": "ES", "italy": "IT", "netherlands": "NL", "belgium": "BE", "switzerland": "CH",
        "ireland": "IE", "luxembourg": "LU", "portugal": "PT", "austria": "AT", "poland": "PL",
        "sweden": "SE", "denmark": "DK", "norway": "NO", "finland": "FI", "canada": "CA",
        "japan": "JP", "india": "IN", "china": "CN", "australia": "AU", "brazil": "BR", "singapore": "SG"
    })
}

/// `cmdb_ci*` → Asset, and one Relationship per distinct company in `relationship_fields`.
pub const CI_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def country_code: nz as $c
  | if $c == null then null
    else ($params.countries[$c | ascii_downcase]
          // (if ($c | length) == 2 then ($c | ascii_upcase) else null end)) end;
. as $ci
| ($ci.sys_class_name // "cmdb_ci") as $class
| ($params.class_map[$class] // $params.default_asset_type
   // error("no AssetType for class \($class): add it to params.class_map")) as $type
| ($params.owner_field // null) as $of
| {kind: "asset", id: $ci.sys_id, data: {
    label: ($ci.name | nz // error("CI \($ci.sys_id) has no name")),
    type: $type,
    description: ($ci.short_description | nz),
    address: ($ci["location.street"] | nz),
    city: ($ci["location.city"] | nz),
    zipCode: ($ci["location.zip"] | nz),
    countryCode: ($ci["location.country"] | country_code),
    applicationState: ($params.operational_status[$ci.operational_status // ""] // null),
    customFields: (if $params.owner_custom_field != null and $of != null and ($ci[$of] | nz) != null
                   then {($params.owner_custom_field): $ci[$of]} else {} end)
  }},
  ([ ($params.relationship_fields // [])[] as $f
     | ($ci[$f] | nz) as $company
     | select($company != null)
     | {role: $f, company: $company} ]
   | group_by(.company)[]
   | {kind: "relationship", data: {
       origin: "\($system):asset:\($ci.sys_id)",
       target: "\($system):actor:\(.[0].company)",
       label: (map(.role) | join(", "))
     }})
"#;

/// `core_company` → Actor (a legal person, B2B by default).
pub const COMPANY_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def country_code: nz as $c
  | if $c == null then null
    else ($params.countries[$c | ascii_downcase]
          // (if ($c | length) == 2 then ($c | ascii_upcase) else null end)) end;
{kind: "actor", id: .sys_id, data: {
  actorType: "Morale",
  vendorType: $params.vendor_type,
  companyName: (.name | nz // error("company \(.sys_id) has no name")),
  description: (.notes | nz),
  address: (.street | nz),
  city: (.city | nz),
  zipCode: (.zip | nz),
  countryCode: (.country | country_code),
  phoneNumber: (.phone | nz),
  websiteUrl: (.website | nz)
}}
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::Mapping;

    fn ci() -> Value {
        json!({
            "sys_id": "abc", "sys_class_name": "cmdb_ci_win_server", "name": "win-ad-01",
            "short_description": "AD", "operational_status": "1", "vendor": "ms", "manufacturer": "dell",
            "location.street": "1 Parvis", "location.city": "Puteaux", "location.zip": "92800",
            "location.country": "France", "owned_by.name": "Fred Luddy",
            "sys_updated_on": "2025-05-02 08:36:00", "sys_mod_count": "18"
        })
    }

    #[test]
    fn ci_maps_to_an_asset_and_its_vendor_links() {
        let m = Mapping::compile("cmdb_ci", CI_PROGRAM).unwrap();
        let out = m.run(&ci(), &DefaultMapping::ConfigurationItem.params(), "servicenow").unwrap();
        assert_eq!(out.len(), 3, "{out:?}");
        let asset = &out[0]["data"];
        assert_eq!(asset["type"], "Material");
        assert_eq!(asset["countryCode"], "FR");
        assert_eq!(asset["applicationState"], "InProduction");
        assert_eq!(asset["customFields"], json!({}));
        let targets: Vec<&str> = out[1..].iter().map(|o| o["data"]["target"].as_str().unwrap()).collect();
        assert_eq!(targets, vec!["servicenow:actor:dell", "servicenow:actor:ms"]);
        // Same company as vendor and manufacturer: one link with both roles.
        let mut same = ci();
        same["manufacturer"] = json!("ms");
        let out = m.run(&same, &DefaultMapping::ConfigurationItem.params(), "servicenow").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1]["data"]["label"], "vendor, manufacturer");
    }

    #[test]
    fn params_override_class_map_and_owner() {
        let m = Mapping::compile("cmdb_ci", CI_PROGRAM).unwrap();
        let mut params = DefaultMapping::ConfigurationItem.params();
        merge(&mut params, &json!({"class_map": {"cmdb_ci_win_server": "Software"}, "owner_custom_field": "owner"}));
        assert_eq!(params["class_map"]["cmdb_ci_appl"], "Software", "merge keeps the other classes");
        let out = m.run(&ci(), &params, "servicenow").unwrap();
        assert_eq!(out[0]["data"]["type"], "Software");
        assert_eq!(out[0]["data"]["customFields"]["owner"], "Fred Luddy");
        let mut printer = ci();
        printer["sys_class_name"] = json!("cmdb_ci_printer");
        let err = m.run(&printer, &params, "servicenow").unwrap_err();
        assert!(err.to_string().contains("no AssetType for class cmdb_ci_printer"), "{err}");
    }

    #[test]
    fn company_maps_to_an_actor() {
        let m = Mapping::compile("core_company", COMPANY_PROGRAM).unwrap();
        let rec = json!({"sys_id": "ms", "name": "Microsoft", "country": "USA", "street": "One Microsoft Way",
                          "city": "Redmond", "zip": "98052", "phone": "", "website": "https://www.microsoft.com"});
        let out = m.run(&rec, &DefaultMapping::Company.params(), "servicenow").unwrap();
        assert_eq!(out.len(), 1);
        let a = &out[0]["data"];
        assert_eq!(a["companyName"], "Microsoft");
        assert_eq!(a["countryCode"], "US");
        assert_eq!(a["phoneNumber"], Value::Null);
        assert_eq!(a["actorType"], "Morale");
    }
}
