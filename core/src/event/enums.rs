//! Dastra's enumerations used in payloads, with variants spelled exactly as Dastra's API spells them
//! (`openapi-2022.json`, serialised as PascalCase strings).
//!
//! Why Avro enums rather than strings: every value below is a valid Avro name
//! (`[A-Za-z_][A-Za-z0-9_]*`, checked for each symbol by the schema tests), so the schemas can use
//! Avro enums whose symbols are exactly these names. A producer then cannot publish a value Dastra
//! would reject, independent tools (fastavro, the Confluent client) see the closed set, and the
//! sink copies the symbol to Dastra's JSON unchanged. The cost: adding a symbol is a schema change
//! that readers must learn first (consumers upgrade before producers), which matches how rarely
//! Dastra adds values. The Rust enums here are the same sets; the schema tests check that each Rust
//! enum and its Avro enum list the same symbols in the same order.

macro_rules! dastra_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("Dastra value `", stringify!($variant), "`.")]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in Dastra's (and the Avro enum's) order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value exactly as Dastra spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = super::EventError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| super::EventError::InvalidEnum {
                        enum_name: stringify!($name),
                        value: super::key::truncate(s),
                    })
            }
        }

        impl super::enums::DastraEnum for $name {
            const NAME: &'static str = stringify!($name);
            fn symbols() -> Vec<&'static str> {
                $name::ALL.iter().map(|v| v.as_str()).collect()
            }
        }
    };
}

/// Implemented by every Dastra enum: its name and symbols, used by the schema consistency tests.
pub trait DastraEnum {
    /// The Avro / Dastra name of the enum.
    const NAME: &'static str;
    /// All symbols in order.
    fn symbols() -> Vec<&'static str>;
}

dastra_enum!(
    /// Dastra `AssetType`.
    AssetType { Software, Building, Network, Material, Data, People, Process }
);
dastra_enum!(
    /// Dastra `ApplicationState`.
    ApplicationState { InProduction, InDevelopment, Stopped }
);
dastra_enum!(
    /// Dastra `ApplicationType`.
    ApplicationType { Software, WebApp, Saas, Module, Other }
);
dastra_enum!(
    /// Dastra's `HostingType`, `DevelopmentType`, `MaintenanceType` and `SupportType` (one set of
    /// symbols, one Avro enum named `SourcingType`).
    SourcingType { InHouse, OutSourced }
);
dastra_enum!(
    /// Dastra `ActorType`: `Physical` = natural person, `Morale` = legal person.
    ActorType { Physical, Morale }
);
dastra_enum!(
    /// Dastra `VendorType`.
    VendorType { B2B, B2C }
);
dastra_enum!(
    /// Dastra `ProcessingType`: `Default` = controller record, `Vendor` = processor record.
    ProcessingType { Default, Vendor }
);
dastra_enum!(
    /// Dastra `ProcessingState`.
    ProcessingState { Study, BeingDeployed, InProduction, Stopped }
);
dastra_enum!(
    /// Dastra `RecipientType` (role of an actor on a processing).
    RecipientType { InternalService, Vendor, ThirdParty, JointController, DataSubject, PublicOrganism, InstitutionalPartner, AuthorizedThirdParty }
);
dastra_enum!(
    /// Dastra `JobTitle`.
    JobTitle { Other, JointController, DataProtectionOfficerRepresentative, DataController, DataProtectionOfficer, ProcessImplementationManager, Processor, DataControllerRepresentative, Referent, ChiefInformationSecurityOfficer }
);
dastra_enum!(
    /// Dastra `LegalBasis`.
    LegalBasis { Consent, Contract, LegalCommitment, SafeGuardVitalInterest, PublicInterest, LegitimateInterest, Other }
);
dastra_enum!(
    /// Dastra `PersonCategoryType`.
    PersonCategoryType { Prospect, Client, FormerClient, ParticularPerson, Employee, Candidate, ExternalProvider, ExternalServiceProvider, Other, TemporaryWorker, Agent, ElectedRepresentative, PublicServiceUser, Visitors, OldEmployee, EndUsers, Citizen, Patient, HealthProfessional, Students, AgedPeople, Member, Beneficiary, Child, InternetUsers }
);
dastra_enum!(
    /// Dastra `SensitiveDataFieldLegalJustification`.
    SensitiveDataFieldLegalJustification { ExplicitConsent, NecessaryPurpose, VitalInterest, PoliticalLegitimateActivity, ManifestlyPublic, DefenseOfLegalClaims, SubstantialPublicInterest, Medicine, PublicHealth, StatisticResearch, Other }
);
dastra_enum!(
    /// Dastra `PersonalDataCategory`.
    PersonalDataCategory { CivilStatus, PersonalLife, ProfessionalLife, EconomicFinancialData, ConnectionData, GeoLocationData, InternetData, EthnicalData, PoliticalOpinions, ReligiousBeliefs, TradeUnionMembership, GeneticData, BiometricData, HealthData, SexualOrientations, CriminalConvictions, CriminalData, Other, NIR }
);
dastra_enum!(
    /// Dastra `GenericDataType` (a DataField's `dataType`).
    GenericDataType { String, Number, UniqueIdentifier, Date, Object, Document, Matrix, Geolocation }
);
dastra_enum!(
    /// Dastra `RelationShipType` (processing-to-processing links).
    RelationShipType { Child, Parent, Related, HasDuplicate, DuplicateOf, Master, Slave, Inheritor, Tutor }
);
dastra_enum!(
    /// Dastra `DataSubjectPurposeType` (a DSR's `purposes`).
    DataSubjectPurposeType { Unknown, Information, Access, Rectification, Erasure, Restriction, Opposition, Portability, AdvanceDirectives, AutomatedDecision }
);
dastra_enum!(
    /// Dastra `DataSubjectRequestState`.
    DataSubjectRequestState { Open, IdentityValidation, Processing, Active, Closed }
);
dastra_enum!(
    /// Dastra `DataSubjectRequestSource` (a DSR's `channel`).
    DataSubjectRequestSource { Internal, Form, Widget, POP3, IMAP, Import, Zapier, IncomingEmail }
);
dastra_enum!(
    /// Dastra `ClosedReason`.
    ClosedReason { None, Accepted, Duplicate, WrongIdentity, NotAdmissible, Other, Cancelled, FiledAway }
);
dastra_enum!(
    /// Dastra `TaskState`.
    TaskState { Open, Active, Closed, Archived }
);
dastra_enum!(
    /// Dastra `Priority`.
    Priority { High, Medium, Low }
);
dastra_enum!(
    /// Dastra `DataSetSource` (where a dataset's data is collected: from the data subject or not).
    DataSetSource { Direct, Indirect, DirectAndIndirect }
);

/// Calls `f(name, symbols)` for every enum above; used by tests that compare them with the Avro
/// schemas and with the OpenAPI document.
pub fn for_each_enum(mut f: impl FnMut(&'static str, Vec<&'static str>)) {
    fn call<E: DastraEnum>(f: &mut impl FnMut(&'static str, Vec<&'static str>)) {
        f(E::NAME, E::symbols());
    }
    call::<AssetType>(&mut f);
    call::<ApplicationState>(&mut f);
    call::<ApplicationType>(&mut f);
    call::<SourcingType>(&mut f);
    call::<ActorType>(&mut f);
    call::<VendorType>(&mut f);
    call::<ProcessingType>(&mut f);
    call::<ProcessingState>(&mut f);
    call::<RecipientType>(&mut f);
    call::<JobTitle>(&mut f);
    call::<LegalBasis>(&mut f);
    call::<PersonCategoryType>(&mut f);
    call::<SensitiveDataFieldLegalJustification>(&mut f);
    call::<PersonalDataCategory>(&mut f);
    call::<GenericDataType>(&mut f);
    call::<RelationShipType>(&mut f);
    call::<DataSubjectPurposeType>(&mut f);
    call::<DataSubjectRequestState>(&mut f);
    call::<DataSubjectRequestSource>(&mut f);
    call::<ClosedReason>(&mut f);
    call::<TaskState>(&mut f);
    call::<Priority>(&mut f);
    call::<DataSetSource>(&mut f);
}
