//! The table of emulated entity families: path segment, id type, which OpenAPI schema validates a
//! create / a replace, which one shapes responses, list shape, webhook events and list filters.
//! Everything generic (CRUD, paging, filters, JSON Patch) is driven by this table.

/// Identifier type of an entity (SPEC-2022, docs/dastra-api.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// int32 ids, allocated 1, 2, 3… per workspace.
    Int,
    /// uuid ids, generated from the seeded randomness.
    Uuid,
}

/// What a write answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the entity shaped by this schema.
    Body(&'static str),
    /// 200 with an empty body: SPEC-2022 declares no body, and docs/dastra-api.md §7 #7 recommends not
    /// inventing one so that clients cannot come to depend on it.
    Empty,
}

/// Shape of `GET <collection>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    /// `{items,total,size,page}`; items shaped by the given item schema.
    Paged(&'static str),
    /// A bare JSON array of the given item schema (Tags, GenericRelationships…).
    Array(&'static str),
}

/// How a list query parameter filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMode {
    /// Field equals the value (case-insensitive for strings).
    Equal,
    /// Repeated parameter (`x[]=a&x[]=b` or `x=a&x=b`): field is one of the values.
    AnyOf,
    /// The field is an array containing one of the values.
    ArrayContainsAny,
}

/// Webhook events of an entity family (`NotificationChannel` names, docs/dastra-api.md §7 #13).
#[derive(Debug, Clone, Copy)]
pub struct Events {
    /// On create.
    pub created: &'static str,
    /// On PUT / PATCH / workflow moves.
    pub updated: &'static str,
    /// When `state` changes.
    pub state_changed: &'static str,
    /// On archive.
    pub archived: &'static str,
    /// On delete, if Dastra has such an event.
    pub deleted: Option<&'static str>,
}

/// One entity family under `/v1/ws/{workspaceId}/`.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// Collection segment as Dastra spells it (matched case-insensitively).
    pub name: &'static str,
    /// Identifier type.
    pub id: IdType,
    /// Schema validating `POST <collection>`.
    pub create_schema: &'static str,
    /// Schema validating `PUT <collection>/{id}` and the result of a JSON Patch.
    pub update_schema: &'static str,
    /// Schema shaping `GET <collection>/{id}`.
    pub output_schema: &'static str,
    /// Answer of POST.
    pub create_answer: Answer,
    /// Answer of PUT.
    pub put_answer: Answer,
    /// Answer of DELETE.
    pub delete_answer: Answer,
    /// Shape of GET on the collection.
    pub list: ListShape,
    /// Whether `customFields` are accepted (CF: processing records, DSRs, tasks, assets, actors,
    /// datasets, data fields…).
    pub custom_fields: bool,
    /// Fields the 2022 document lacks but Dastra has since added: `(name, maxLength)`.
    pub extensions: &'static [(&'static str, usize)],
    /// Field shown as the item's title on the web page.
    pub label_field: &'static str,
    /// Webhook events, if any.
    pub events: Option<Events>,
    /// Dedicated list query parameters: `(parameter, field, mode)`.
    pub params: &'static [(&'static str, &'static str, ParamMode)],
    /// Whether the generic CRUD routes serve this family (false = special routes only).
    pub generic: bool,
}

use Answer::{Body, Empty};
use ParamMode::{AnyOf, ArrayContainsAny, Equal};

const COMMON: Kind = Kind {
    name: "",
    id: IdType::Int,
    create_schema: "",
    update_schema: "",
    output_schema: "",
    create_answer: Empty,
    put_answer: Empty,
    delete_answer: Empty,
    list: ListShape::Array(""),
    custom_fields: false,
    extensions: &[],
    label_field: "label",
    events: None,
    params: &[],
    generic: true,
};

/// Every emulated family, in the order the web page lists them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "Assets",
        create_schema: "AssetDto",
        update_schema: "AssetDto",
        output_schema: "AssetDto",
        create_answer: Body("AssetDto"),
        put_answer: Body("AssetDto"),
        list: ListShape::Paged("AssetDto"),
        custom_fields: true,
        // docs/dastra-api.md §7 #11: Assets carry a `ref` (used by Dastra's LeanIX/ServiceNow connectors)
        // that SPEC-2022 lacks; its limit is unknown, 50 like DataProcessing.ref is the guess.
        extensions: &[("ref", 50)],
        params: &[("types", "type", AnyOf), ("ids", "id", AnyOf)],
        ..COMMON
    },
    Kind {
        name: "Actors",
        create_schema: "ActorDto",
        update_schema: "ActorDto",
        output_schema: "ActorDto",
        create_answer: Body("ActorDto"),
        list: ListShape::Paged("ActorDto"),
        custom_fields: true,
        label_field: "displayName",
        params: &[("types", "actorType", AnyOf), ("countries", "countryCode", AnyOf), ("ids", "id", AnyOf)],
        ..COMMON
    },
    Kind {
        // No schema is published for Contracts: provisional shape of docs/dastra-api.md §7 #10.
        name: "Contracts",
        id: IdType::Uuid,
        create_schema: "EmulatorContractDto",
        update_schema: "EmulatorContractDto",
        output_schema: "EmulatorContractDto",
        create_answer: Body("EmulatorContractDto"),
        put_answer: Body("EmulatorContractDto"),
        list: ListShape::Paged("EmulatorContractDto"),
        custom_fields: true,
        params: &[("areaId", "areaId", Equal), ("archived", "archived", Equal), ("ids", "id", AnyOf)],
        ..COMMON
    },
    Kind {
        name: "DataProcessings",
        id: IdType::Uuid,
        create_schema: "DataProcessingCreationDto",
        update_schema: "DataProcessingUpdateDto",
        output_schema: "DataProcessingDto",
        create_answer: Body("DataProcessingDto"),
        put_answer: Body("DataProcessingDto"),
        list: ListShape::Paged("DataProcessingDto"),
        custom_fields: true,
        events: Some(Events {
            created: "ProcessingCreation",
            updated: "ProcessingModification",
            state_changed: "ProcessingStateChange",
            archived: "ProcessingArchived",
            deleted: Some("ProcessingDeleted"),
        }),
        params: &[
            ("areaId", "areaId", Equal),
            ("archived", "archived", Equal),
            ("type", "processingType", Equal),
            ("states", "state", AnyOf),
            ("ids", "id", AnyOf),
        ],
        ..COMMON
    },
    Kind {
        name: "DataFields",
        id: IdType::Uuid,
        create_schema: "DataFieldDto",
        update_schema: "DataFieldDto",
        output_schema: "DataFieldDto",
        create_answer: Body("DataFieldDto"),
        put_answer: Body("DataFieldDto"),
        delete_answer: Body("DataFieldDto"),
        list: ListShape::Paged("DataFieldDto"),
        custom_fields: true,
        params: &[("cats", "personalDataCategory", AnyOf), ("types", "dataType", AnyOf)],
        ..COMMON
    },
    Kind {
        // Datasets: groups of DataFields with their retention rules.
        name: "DataRetentionRules",
        id: IdType::Uuid,
        create_schema: "DataRetentionRuleDto",
        update_schema: "DataRetentionRuleUpdateDto",
        output_schema: "DataRetentionRuleDto",
        create_answer: Body("DataRetentionRuleDto"),
        put_answer: Body("DataRetentionRuleDto"),
        delete_answer: Body("DataRetentionRuleDto"),
        list: ListShape::Paged("DataRetentionRuleDto"),
        custom_fields: true,
        ..COMMON
    },
    Kind {
        name: "DataSubjectRequests",
        create_schema: "DataSubjectRequestDto",
        update_schema: "DataSubjectRequestDto",
        output_schema: "DataSubjectRequestDto",
        create_answer: Body("DataSubjectRequestLightDto"),
        put_answer: Body("DataSubjectRequestDto"),
        list: ListShape::Paged("DataSubjectRequestDto"),
        custom_fields: true,
        label_field: "title",
        events: Some(Events {
            created: "DataSubjectCreation",
            updated: "DataSubjectUpdate",
            state_changed: "DataSubjectStateChange",
            archived: "DataSubjectArchived",
            deleted: None,
        }),
        params: &[
            ("states", "state", AnyOf),
            ("purposes", "purposes", ArrayContainsAny),
            ("areaId", "areaId", Equal),
            ("archived", "archived", Equal),
            ("workflows", "workFlowStepId", AnyOf),
            ("widgetId", "widgetId", Equal),
            ("ids", "id", AnyOf),
        ],
        ..COMMON
    },
    Kind {
        name: "Tasks",
        create_schema: "TaskCreateUpdateDto",
        update_schema: "TaskCreateUpdateDto",
        output_schema: "TaskDto",
        create_answer: Body("TaskDto"),
        put_answer: Body("TaskDto"),
        list: ListShape::Paged("TaskDto"),
        custom_fields: true,
        events: Some(Events {
            created: "TaskCreation",
            updated: "TaskEdit",
            state_changed: "TaskChangeState",
            archived: "TaskArchived",
            deleted: None,
        }),
        params: &[
            ("states", "state", AnyOf),
            ("prios", "priority", AnyOf),
            ("objectType", "objectType", Equal),
            ("objectIds", "objectId", AnyOf),
            ("areaId", "areaId", Equal),
            ("archived", "archived", Equal),
            ("parentId", "parentId", Equal),
            ("workflows", "workFlowStepId", AnyOf),
            ("ids", "id", AnyOf),
        ],
        ..COMMON
    },
    Kind {
        name: "Areas",
        create_schema: "AreaBaseDto",
        update_schema: "AreaBaseDto",
        output_schema: "AreaDto",
        create_answer: Body("AreaDto"),
        list: ListShape::Paged("AreaDto"),
        params: &[("ref", "ref", Equal), ("type", "type", Equal), ("parentId", "parentId", Equal)],
        ..COMMON
    },
    Kind {
        name: "Teams",
        create_schema: "TeamDto",
        update_schema: "TeamDto",
        output_schema: "TeamDto",
        list: ListShape::Paged("TeamItemDto"),
        params: &[("ref", "ref", Equal)],
        ..COMMON
    },
    Kind {
        // Workspace users (2024 route): read-only through the API — users arrive by invitation or
        // SCIM (docs/dastra-api.md §3.9); the admin API seeds them (`POST /__admin/users/{ws}`).
        name: "Users",
        create_schema: "UserDto",
        update_schema: "UserDto",
        output_schema: "UserDto",
        list: ListShape::Paged("UserDto"),
        label_field: "email",
        params: &[("ids", "id", AnyOf)],
        generic: false,
        ..COMMON
    },
    Kind {
        // Dastra's own document storage (provider `Dastra`; routes from the 2024 list, bodies
        // inferred, docs/dastra-api.md §3.13).
        name: "CloudStorage",
        id: IdType::Uuid,
        create_schema: "CloudAttachmentDto",
        update_schema: "CloudAttachmentDto",
        output_schema: "CloudAttachmentDto",
        list: ListShape::Paged("CloudAttachmentDto"),
        generic: false,
        ..COMMON
    },
    Kind {
        name: "Tags",
        create_schema: "TagDto",
        update_schema: "TagDto",
        output_schema: "TagDto",
        create_answer: Body("TagDto"),
        put_answer: Body("TagDto"),
        list: ListShape::Array("TagDto"),
        params: &[("type", "type", Equal)],
        ..COMMON
    },
    Kind {
        name: "GenericRelationships",
        id: IdType::Uuid,
        create_schema: "GenericRelationShipCreationDto",
        update_schema: "GenericRelationShipLinkedObjectDto",
        output_schema: "GenericRelationShipLinkedObjectDto",
        list: ListShape::Array("GenericRelationShipLinkedObjectDto"),
        events: Some(Events {
            created: "AddGenericRelation",
            updated: "AddGenericRelation",
            state_changed: "AddGenericRelation",
            archived: "RemoveGenericRelation",
            deleted: Some("RemoveGenericRelation"),
        }),
        generic: false,
        ..COMMON
    },
    Kind {
        name: "DataProcessingRelationships",
        id: IdType::Uuid,
        create_schema: "DataProcessingRelationShipDto",
        update_schema: "DataProcessingRelationShipDto",
        output_schema: "DataProcessingRelationShipDto",
        list: ListShape::Array("DataProcessingRelationShipDto"),
        generic: false,
        ..COMMON
    },
    Kind {
        name: "DataSubjectAttachments",
        id: IdType::Uuid,
        create_schema: "DataSubjectAttachmentDto",
        update_schema: "DataSubjectAttachmentDto",
        output_schema: "DataSubjectAttachmentDto",
        list: ListShape::Array("DataSubjectAttachmentDto"),
        label_field: "fileName",
        generic: false,
        ..COMMON
    },
];

/// Finds a family by its path segment, case-insensitively.
pub fn kind(segment: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name.eq_ignore_ascii_case(segment))
}
