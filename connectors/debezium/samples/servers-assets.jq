# Inventory `servers` row → a Dastra Asset of type Material, keyed by the row id.
{
  kind: "asset",
  id: (.id | tostring),
  data: {
    label: .hostname,
    type: "Material",
    description: ("Server in " + (.datacenter // "an unknown datacenter"))
  }
}
