//! What became of each record, with machine-readable reasons.

use serde::{Deserialize, Serialize};

/// The outcome of one record. `AcceptedWithWarnings` and `Repaired` are not also `Accepted`:
/// the four always add up to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    AcceptedWithWarnings,
    Repaired,
    Rejected,
}

/// Why a record was rejected, repaired or warned about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    // Rejections.
    NullGeometry,
    EmptyGeometry,
    NotPolygon,
    SelfIntersection,
    InvalidGeometry,
    /// A coordinate that is not a finite number or lies beyond any plane coordinate on Earth.
    CoordinateOutOfRange,
    /// More vertices or rings than any parcel has (the limit keeps every check bounded).
    TooManyVertices,
    OutsideVietnam,
    MissingKey,
    InvalidCommuneCode,
    UnknownCommune,
    DuplicateKeyInUpload,
    DuplicateKeyInStore,
    InvalidValue,
    /// A value of a type the field cannot hold (a boolean, array or object as a code or number, a
    /// number that is not a whole number where one is needed).
    WrongType,
    /// A control character (NUL…) in a field of the natural key.
    ControlCharacter,
    /// A field that occurs twice in one record: which value is meant cannot be told.
    DuplicateField,
    NoCrs,
    /// The record's commune lies outside the area the uploading agency may change.
    OutsideUploaderArea,
    // Repairs (the geometry was changed, and how is recorded).
    UnclosedRing,
    RingOrientation,
    DuplicateVertices,
    Spike,
    // Warnings.
    AreaMismatch,
    ZeroArea,
    Overlap,
    UnknownLandUse,
    LegacyLandUse,
    ObsoleteCommuneCode,
    CrsInferred,
    /// Control characters (NUL…) removed from a text field other than the key.
    ControlCharactersRemoved,
    /// A right holder's citizen ID that is not one (12 digits, a province, a past birth year):
    /// kept as given, but no lookup by citizen finds it. The reason never quotes the ID.
    InvalidCitizenId,
}

impl ReasonCode {
    pub fn severity(self) -> Verdict {
        use ReasonCode::*;
        match self {
            UnclosedRing | RingOrientation | DuplicateVertices | Spike => Verdict::Repaired,
            AreaMismatch
            | ZeroArea
            | Overlap
            | UnknownLandUse
            | LegacyLandUse
            | ObsoleteCommuneCode
            | CrsInferred
            | ControlCharactersRemoved
            | InvalidCitizenId => Verdict::AcceptedWithWarnings,
            _ => Verdict::Rejected,
        }
    }
}

/// One reason, with what exactly was found (or changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    /// The source field concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub detail: String,
}

impl Reason {
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self { code, field: None, detail: detail.into() }
    }

    pub fn on(code: ReasonCode, field: &str, detail: impl Into<String>) -> Self {
        Self { code, field: Some(field.to_owned()), detail: detail.into() }
    }
}

/// The verdict that a set of reasons adds up to: any rejection rejects; else any repair means
/// repaired; else any warning; else accepted.
pub fn verdict_of(reasons: &[Reason]) -> Verdict {
    let worst = |v: Verdict| reasons.iter().any(|r| r.code.severity() == v);
    if worst(Verdict::Rejected) {
        Verdict::Rejected
    } else if worst(Verdict::Repaired) {
        Verdict::Repaired
    } else if worst(Verdict::AcceptedWithWarnings) {
        Verdict::AcceptedWithWarnings
    } else {
        Verdict::Accepted
    }
}
