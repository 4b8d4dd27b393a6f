//! String enums of the Dastra API, with exactly the member names of `openapi-2022.json`
//! (PascalCase strings on the wire). A value the 2022 document does not know is kept as
//! `Unrecognized(String)` on read and written back unchanged, so reading a newer payload never fails.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a string enum whose wire names are the variant names, plus an `Unrecognized` fallback.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* #[allow(missing_docs)] $variant,)+
            /// A value not in the 2022 document (kept verbatim; never produced by the sink's mappings).
            Unrecognized(String),
        }

        impl $name {
            /// Every documented value, in the order of the OpenAPI document.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The spec schema name of this enum.
            pub const SCHEMA: &'static str = stringify!($name);

            /// The wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                    $name::Unrecognized(s) => s.as_str(),
                }
            }

            /// Parses a wire name; ASP.NET accepts enum names case-insensitively, so do we.
            pub fn parse(s: &str) -> Self {
                $(if s.eq_ignore_ascii_case(stringify!($variant)) { return $name::$variant; })+
                $name::Unrecognized(s.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Dastra documents string enums; an integer would be the numeric C# value, which we
                // cannot map without the declaration order being guaranteed, so keep it verbatim.
                let v = serde_json::Value::deserialize(d)?;
                Ok(match v {
                    serde_json::Value::String(s) => $name::parse(&s),
                    other => $name::Unrecognized(other.to_string()),
                })
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": [$(stringify!($variant)),+] })
            }
        }
    };
}

string_enum!(
    /// `AssetType`.
    AssetType { Software, Building, Network, Material, Data, People, Process }
);
string_enum!(
    /// `ApplicationState`.
    ApplicationState { InProduction, InDevelopment, Stopped }
);
string_enum!(
    /// `ApplicationType`.
    ApplicationType { Software, WebApp, Saas, Module, Other }
);
string_enum!(
    /// `HostingType`.
    HostingType { InHouse, OutSourced }
);
string_enum!(
    /// `DevelopmentType`.
    DevelopmentType { InHouse, OutSourced }
);
string_enum!(
    /// `MaintenanceType`.
    MaintenanceType { InHouse, OutSourced }
);
string_enum!(
    /// `SupportType`.
    SupportType { InHouse, OutSourced }
);
string_enum!(
    /// `ActorType`: natural (`Physical`) or legal (`Morale`) person.
    ActorType { Physical, Morale }
);
string_enum!(
    /// `VendorType`.
    VendorType { B2B, B2C }
);
string_enum!(
    /// `AccessLevel`.
    AccessLevel { None, Restricted, Full }
);
string_enum!(
    /// `ProcessingType`: controller record (`Default`) or processor record (`Vendor`).
    ProcessingType { Default, Vendor }
);
string_enum!(
    /// `DataProcessingState`.
    DataProcessingState { Active, Draft, Archived, Deleted }
);
string_enum!(
    /// `ProcessingState`.
    ProcessingState { Study, BeingDeployed, InProduction, Stopped }
);
string_enum!(
    /// `AccessType` (how a data-subject right is served).
    AccessType { None, ManualOrOnDemand, Automatic, NonApplicable }
);
string_enum!(
    /// `LegalBasis`.
    LegalBasis { Consent, Contract, LegalCommitment, SafeGuardVitalInterest, PublicInterest, LegitimateInterest, Other }
);
string_enum!(
    /// `DataProcessingActorType`.
    DataProcessingActorType { Recipient, DataController, Stakeholder, Referent }
);
string_enum!(
    /// `RecipientType`.
    RecipientType { InternalService, Vendor, ThirdParty, JointController, DataSubject, PublicOrganism, InstitutionalPartner, AuthorizedThirdParty }
);
string_enum!(
    /// `SensitiveDataFieldLegalJustification`.
    SensitiveDataFieldLegalJustification {
        ExplicitConsent, NecessaryPurpose, VitalInterest, PoliticalLegitimateActivity, ManifestlyPublic,
        DefenseOfLegalClaims, SubstantialPublicInterest, Medicine, PublicHealth, StatisticResearch, Other
    }
);
string_enum!(
    /// `PersonalDataCategory`.
    PersonalDataCategory {
        CivilStatus, PersonalLife, ProfessionalLife, EconomicFinancialData, ConnectionData, GeoLocationData,
        InternetData, EthnicalData, PoliticalOpinions, ReligiousBeliefs, TradeUnionMembership, GeneticData,
        BiometricData, HealthData, SexualOrientations, CriminalConvictions, CriminalData, Other, NIR
    }
);
string_enum!(
    /// `GenericDataType`.
    GenericDataType { String, Number, UniqueIdentifier, Date, Object, Document, Matrix, Geolocation }
);
string_enum!(
    /// `RelationShipObjectType` (what a generic relationship links).
    RelationShipObjectType { Actor, SecurityMeasure, DataBreach, Asset, DataRetentionRule, Risk }
);
string_enum!(
    /// `RelationShipType` (processing ↔ processing).
    RelationShipType { Child, Parent, Related, HasDuplicate, DuplicateOf, Master, Slave, Inheritor, Tutor }
);
string_enum!(
    /// `DataSubjectRequestState`.
    DataSubjectRequestState { Open, IdentityValidation, Processing, Active, Closed }
);
string_enum!(
    /// `DataSubjectPurposeType` (which right a DSR exercises).
    DataSubjectPurposeType {
        Unknown, Information, Access, Rectification, Erasure, Restriction, Opposition, Portability,
        AdvanceDirectives, AutomatedDecision
    }
);
string_enum!(
    /// `PersonCategoryType`.
    PersonCategoryType {
        Prospect, Client, FormerClient, ParticularPerson, Employee, Candidate, ExternalProvider,
        ExternalServiceProvider, Other, TemporaryWorker, Agent, ElectedRepresentative, PublicServiceUser,
        Visitors, OldEmployee, EndUsers, Citizen, Patient, HealthProfessional, Students, AgedPeople, Member,
        Beneficiary, Child, InternetUsers
    }
);
string_enum!(
    /// `DataSubjectRequestSource` (the DSR's `channel`).
    DataSubjectRequestSource { Internal, Form, Widget, POP3, IMAP, Import, Zapier, IncomingEmail }
);
string_enum!(
    /// `ClosedReason`.
    ClosedReason { None, Accepted, Duplicate, WrongIdentity, NotAdmissible, Other, Cancelled, FiledAway }
);
string_enum!(
    /// `TaskObjectType` (what a task is attached to).
    TaskObjectType {
        DataProcessing, DataSubject, DataBreach, AuditResponse, Actor, Asset, DataRetentionRule, RiskEvaluation,
        ControlPoint, SecurityMeasure
    }
);
string_enum!(
    /// `Priority` of a task (spec schema name `Priority`; renamed here so it is not confused with the
    /// quota limiter's priority classes).
    TaskPriority { High, Medium, Low }
);
string_enum!(
    /// `TaskState`.
    TaskState { Open, Active, Closed, Archived }
);
string_enum!(
    /// `AreaType`: a legal entity or a department.
    AreaType { Entity, Area }
);
string_enum!(
    /// `TagType`.
    TagType { DataProcessing, DataSubject, DataBreach, Task, Actor, SecurityMeasure, Asset, Risk, DataRetentionRule, AuditTemplate }
);
string_enum!(
    /// `WorkSpaceState`.
    WorkSpaceState { Active, Archived, Deleted }
);
string_enum!(
    /// `DataSetSource` (a dataset's data is collected from the data subject or not).
    DataSetSource { Direct, Indirect, DirectAndIndirect }
);
string_enum!(
    /// `SafeGuardType` (of a transfer outside the EU).
    SafeGuardType { EUStandardContractualClause, BindingCorporateRules, PrivacyShield, AdequatCountry, Derogation, None, Other, EUStandard }
);

/// Every enum with its spec schema name and documented values, for the test that compares them with
/// `openapi-2022.json` (the spec calls `TaskPriority` `Priority`).
pub fn all_enums() -> Vec<(&'static str, Vec<String>)> {
    fn names<T: ToString>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }
    vec![
        (AssetType::SCHEMA, names(AssetType::ALL)),
        (ApplicationState::SCHEMA, names(ApplicationState::ALL)),
        (ApplicationType::SCHEMA, names(ApplicationType::ALL)),
        (HostingType::SCHEMA, names(HostingType::ALL)),
        (DevelopmentType::SCHEMA, names(DevelopmentType::ALL)),
        (MaintenanceType::SCHEMA, names(MaintenanceType::ALL)),
        (SupportType::SCHEMA, names(SupportType::ALL)),
        (ActorType::SCHEMA, names(ActorType::ALL)),
        (VendorType::SCHEMA, names(VendorType::ALL)),
        (AccessLevel::SCHEMA, names(AccessLevel::ALL)),
        (ProcessingType::SCHEMA, names(ProcessingType::ALL)),
        (DataProcessingState::SCHEMA, names(DataProcessingState::ALL)),
        (ProcessingState::SCHEMA, names(ProcessingState::ALL)),
        (AccessType::SCHEMA, names(AccessType::ALL)),
        (LegalBasis::SCHEMA, names(LegalBasis::ALL)),
        (DataProcessingActorType::SCHEMA, names(DataProcessingActorType::ALL)),
        (RecipientType::SCHEMA, names(RecipientType::ALL)),
        (SensitiveDataFieldLegalJustification::SCHEMA, names(SensitiveDataFieldLegalJustification::ALL)),
        (PersonalDataCategory::SCHEMA, names(PersonalDataCategory::ALL)),
        (GenericDataType::SCHEMA, names(GenericDataType::ALL)),
        (RelationShipObjectType::SCHEMA, names(RelationShipObjectType::ALL)),
        (RelationShipType::SCHEMA, names(RelationShipType::ALL)),
        (DataSubjectRequestState::SCHEMA, names(DataSubjectRequestState::ALL)),
        (DataSubjectPurposeType::SCHEMA, names(DataSubjectPurposeType::ALL)),
        (PersonCategoryType::SCHEMA, names(PersonCategoryType::ALL)),
        (DataSubjectRequestSource::SCHEMA, names(DataSubjectRequestSource::ALL)),
        (ClosedReason::SCHEMA, names(ClosedReason::ALL)),
        (TaskObjectType::SCHEMA, names(TaskObjectType::ALL)),
        ("Priority", names(TaskPriority::ALL)),
        (TaskState::SCHEMA, names(TaskState::ALL)),
        (AreaType::SCHEMA, names(AreaType::ALL)),
        (TagType::SCHEMA, names(TagType::ALL)),
        (WorkSpaceState::SCHEMA, names(WorkSpaceState::ALL)),
        (SafeGuardType::SCHEMA, names(SafeGuardType::ALL)),
        (DataSetSource::SCHEMA, names(DataSetSource::ALL)),
        (JobTitle::SCHEMA, names(JobTitle::ALL)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_round_trip_and_known_values_parse_case_insensitively() {
        let t: AssetType = serde_json::from_str("\"software\"").unwrap_or(AssetType::Data);
        assert_eq!(t, AssetType::Software);
        let u: AssetType = serde_json::from_str("\"Spaceship\"").unwrap_or(AssetType::Data);
        assert_eq!(u, AssetType::Unrecognized("Spaceship".into()));
        assert_eq!(serde_json::to_string(&u).ok().as_deref(), Some("\"Spaceship\""));
        assert_eq!(serde_json::to_string(&ActorType::Morale).ok().as_deref(), Some("\"Morale\""));
    }
}

string_enum!(
    /// `JobTitle` of an actor within a processing.
    JobTitle {
        Other, JointController, DataProtectionOfficerRepresentative, DataController, DataProtectionOfficer,
        ProcessImplementationManager, Processor, DataControllerRepresentative, Referent,
        ChiefInformationSecurityOfficer
    }
);
