# ERP `suppliers` row (Debezium `after`/`before`) → a Dastra Actor (a legal entity, vendor).
# $params.tags: tags added to every supplier. A supplier without a country is rejected (DLQ).
if (.country // "") == "" then error("supplier \(.id) has no country")
else {
  kind: "actor",
  id: (.id | tostring),
  data: {
    actorType: "Morale",
    companyName: .name,
    email: .email,
    countryCode: .country,
    tags: ($params.tags // [])
  }
}
end
