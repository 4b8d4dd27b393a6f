//! The default mappings (jq programs) from NetBox objects to payloads and their default parameters.
//! Pure: no I/O. The config can replace an object type's program (`mapping:`) or override
//! parameters (`params:`, deep-merged over these defaults).
//!
//! External ids carry the object type (`device-12`, `vm-7`, `site-3`, `tenant-5`): NetBox numbers
//! each table on its own, and devices, virtual machines and sites all become Assets.

use serde_json::{Value, json};

use crate::config::NetBoxObject;

/// The default program of an object type.
pub fn default_program(object: NetBoxObject) -> &'static str {
    match object {
        NetBoxObject::Devices => DEVICE_PROGRAM,
        NetBoxObject::VirtualMachines => VM_PROGRAM,
        NetBoxObject::Sites => SITE_PROGRAM,
        NetBoxObject::Tenants => TENANT_PROGRAM,
    }
}

fn status_map() -> Value {
    json!({
        "active": "InProduction", "planned": "InDevelopment", "staged": "InDevelopment",
        "staging": "InDevelopment", "offline": "Stopped", "failed": "Stopped", "inventory": "Stopped",
        "decommissioning": "Stopped", "retired": "Stopped"
    })
}

/// Default `$params` of an object type.
pub fn default_params(object: NetBoxObject) -> Value {
    let links = json!({"link_site": true, "link_tenant": true, "site_label": "hosted at", "tenant_label": "tenant"});
    let mut p = match object {
        NetBoxObject::Devices => json!({
            "role_map": {
                "server": "Material", "storage": "Material", "pdu": "Material", "console-server": "Material",
                "router": "Network", "core-switch": "Network", "access-switch": "Network", "switch": "Network",
                "firewall": "Network", "load-balancer": "Network", "wireless-ap": "Network"
            },
            "default_asset_type": "Material",
            "status_map": status_map(),
            "serial_custom_field": null
        }),
        NetBoxObject::VirtualMachines => json!({
            "role_map": {"database": "Data", "application-server": "Software", "web-server": "Software"},
            "default_asset_type": "Material",
            "status_map": status_map()
        }),
        NetBoxObject::Sites => json!({
            "asset_type": "Building",
            "status_map": status_map(),
            "countries": countries()
        }),
        NetBoxObject::Tenants => json!({"vendor_type": "B2B"}),
    };
    if object != NetBoxObject::Tenants {
        merge(&mut p, &links);
    }
    p
}

/// Region names or slugs commonly used for countries in NetBox → ISO 3166-1 alpha-2.
fn countries() -> Value {
    json!({
        "france": "FR", "fr": "FR", "germany": "DE", "de": "DE", "united states": "US", "us": "US", "usa": "US",
        "united kingdom": "GB", "uk": "GB", "gb": "GB", "spain": "ES", "italy": "IT", "netherlands": "NL",
        "belgium": "BE", "switzerland": "CH", "ireland": "IE", "luxembourg": "LU", "portugal": "PT",
        "poland": "PL", "sweden": "SE", "canada": "CA", "japan": "JP", "singapore": "SG"
    })
}

/// `/api/dcim/devices/` → Asset (type by role) + links to its site and tenant.
pub const DEVICE_PROGRAM: &str = concat!(
    r#"
def nz: if . == null or . == "" then null else . end;
def tag_names: [(.tags // [])[] | (.name // .slug // empty)];
def status_value: (.status | if type == "object" then .value else . end) // "";
def links($origin):
  (if $params.link_site and (.site | nz) != null
   then {kind: "relationship", data: {origin: $origin, target: "\($system):asset:site-\(.site.id)", label: $params.site_label}}
   else empty end),
  (if $params.link_tenant and (.tenant | nz) != null
   then {kind: "relationship", data: {origin: $origin, target: "\($system):actor:tenant-\(.tenant.id)", label: $params.tenant_label}}
   else empty end);
"#,
    r#"
. as $d
| (($d.role // $d.device_role // {}).slug // "") as $role
| {kind: "asset", id: "device-\($d.id)", data: {
    label: ($d.name | nz // error("device \($d.id) has no name (NetBox allows unnamed devices; Dastra needs a label)")),
    type: ($params.role_map[$role] // $params.default_asset_type
           // error("no AssetType for device role `\($role)`: add it to params.role_map")),
    description: ([($d.description | nz), ($d.device_type | if . then "\(.manufacturer.name // "") \(.model // "")" else null end)]
                  | map(select(. != null)) | if length == 0 then null else join(" — ") end),
    applicationState: ($params.status_map[$d | status_value] // null),
    tags: ($d | tag_names),
    customFields: (if $params.serial_custom_field != null and ($d.serial | nz) != null
                   then {($params.serial_custom_field): $d.serial} else {} end)
  }},
  ($d | links("\($system):asset:device-\($d.id)"))
"#
);

/// `/api/virtualization/virtual-machines/` → Asset + links to its site and tenant.
pub const VM_PROGRAM: &str = concat!(
    r#"
def nz: if . == null or . == "" then null else . end;
def tag_names: [(.tags // [])[] | (.name // .slug // empty)];
def status_value: (.status | if type == "object" then .value else . end) // "";
def links($origin):
  (if $params.link_site and (.site | nz) != null
   then {kind: "relationship", data: {origin: $origin, target: "\($system):asset:site-\(.site.id)", label: $params.site_label}}
   else empty end),
  (if $params.link_tenant and (.tenant | nz) != null
   then {kind: "relationship", data: {origin: $origin, target: "\($system):actor:tenant-\(.tenant.id)", label: $params.tenant_label}}
   else empty end);
"#,
    r#"
. as $v
| (($v.role // {}).slug // "") as $role
| {kind: "asset", id: "vm-\($v.id)", data: {
    label: ($v.name | nz // error("virtual machine \($v.id) has no name")),
    type: ($params.role_map[$role] // $params.default_asset_type
           // error("no AssetType for VM role `\($role)`: add it to params.role_map")),
    description: ([($v.description | nz), ($v.cluster | if . then "cluster \(.name)" else null end)]
                  | map(select(. != null)) | if length == 0 then null else join(" — ") end),
    applicationState: ($params.status_map[$v | status_value] // null),
    tags: ($v | tag_names)
  }},
  ($v | links("\($system):asset:vm-\($v.id)"))
"#
);

/// `/api/dcim/sites/` → Asset of type Building + link to its tenant.
pub const SITE_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def status_value: (.status | if type == "object" then .value else . end) // "";
. as $s
| {kind: "asset", id: "site-\($s.id)", data: {
    label: ($s.name | nz // error("site \($s.id) has no name")),
    type: $params.asset_type,
    description: ([($s.description | nz), ($s.facility | nz | if . then "facility \(.)" else null end)]
                  | map(select(. != null)) | if length == 0 then null else join(" — ") end),
    address: ($s.physical_address | nz | if . then (split("\n") | map(select(. != "")) | join(", ")) else null end),
    countryCode: (($s.region // {}) as $r
                  | $params.countries[($r.slug // "") | ascii_downcase] // $params.countries[($r.name // "") | ascii_downcase] // null),
    applicationState: ($params.status_map[$s | status_value] // null),
    tags: [($s.tags // [])[] | (.name // .slug // empty)]
  }},
  (if $params.link_tenant and ($s.tenant | nz) != null
   then {kind: "relationship", data: {origin: "\($system):asset:site-\($s.id)",
                                      target: "\($system):actor:tenant-\($s.tenant.id)", label: $params.tenant_label}}
   else empty end)
"#;

/// `/api/tenancy/tenants/` → Actor (a legal person).
pub const TENANT_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
{kind: "actor", id: "tenant-\(.id)", data: {
  actorType: "Morale",
  vendorType: $params.vendor_type,
  companyName: (.name | nz // error("tenant \(.id) has no name")),
  description: (.description | nz),
  tags: [(.tags // [])[] | (.name // .slug // empty)]
}}
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::{Mapping, StreamKind};

    fn run(object: NetBoxObject, rec: Value, params: Option<Value>) -> Result<Vec<Value>, String> {
        let m = Mapping::compile(object.stream(), default_program(object)).map_err(|e| e.to_string())?;
        let mut p = default_params(object);
        if let Some(o) = params {
            merge(&mut p, &o);
        }
        m.run(&rec, &p, "netbox").map_err(|e| e.to_string())
    }

    #[test]
    fn device_maps_to_an_asset_and_its_links() {
        let dev = json!({"id": 12, "name": "par-db-01", "role": {"id": 1, "slug": "server", "name": "Server"},
            "device_type": {"model": "PowerEdge R650", "manufacturer": {"name": "Dell"}},
            "status": {"value": "active", "label": "Active"}, "site": {"id": 3, "name": "Paris DC1"},
            "tenant": {"id": 5, "name": "Payroll"}, "serial": "SN123", "tags": [{"name": "gdpr", "slug": "gdpr"}],
            "description": "", "last_updated": "2025-06-01T09:00:00.123456Z"});
        let out = run(NetBoxObject::Devices, dev.clone(), None).unwrap();
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0]["id"], "device-12");
        assert_eq!(out[0]["data"]["type"], "Material");
        assert_eq!(out[0]["data"]["description"], "Dell PowerEdge R650");
        assert_eq!(out[0]["data"]["applicationState"], "InProduction");
        assert_eq!(out[0]["data"]["tags"], json!(["gdpr"]));
        assert_eq!(out[1]["data"]["target"], "netbox:asset:site-3");
        assert_eq!(out[2]["data"]["target"], "netbox:actor:tenant-5");
        let out = run(
            NetBoxObject::Devices,
            dev.clone(),
            Some(json!({"role_map": {"server": "Data"}, "link_site": false,
            "serial_custom_field": "serial"})),
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["data"]["type"], "Data");
        assert_eq!(out[0]["data"]["customFields"]["serial"], "SN123");
        let mut unnamed = dev;
        unnamed["name"] = Value::Null;
        let err = run(NetBoxObject::Devices, unnamed, None).unwrap_err();
        assert!(err.contains("device 12 has no name"), "{err}");
    }

    #[test]
    fn old_device_role_field_and_sites_and_tenants() {
        let dev =
            json!({"id": 1, "name": "sw1", "device_role": {"slug": "access-switch"}, "status": {"value": "planned"}});
        let out = run(NetBoxObject::Devices, dev, None).unwrap();
        assert_eq!(out[0]["data"]["type"], "Network");
        assert_eq!(out[0]["data"]["applicationState"], "InDevelopment");
        let site = json!({"id": 3, "name": "Paris DC1", "region": {"slug": "fr", "name": "France"},
            "physical_address": "1 rue de la Paix\n75002 Paris\n", "status": {"value": "active"}, "tenant": null});
        let out = run(NetBoxObject::Sites, site, None).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["data"]["countryCode"], "FR");
        assert_eq!(out[0]["data"]["address"], "1 rue de la Paix, 75002 Paris");
        assert_eq!(out[0]["data"]["type"], "Building");
        let out = run(NetBoxObject::Tenants, json!({"id": 5, "name": "Payroll", "description": "HR"}), None).unwrap();
        assert_eq!(out[0]["kind"], "actor");
        assert_eq!(out[0]["data"]["vendorType"], "B2B");
    }
}
