//! The canonical cadastral parcel model of landdb: parcels, their keys and codes, the national
//! parcel ID, VN-2000 zones, and the reference data (administrative units, land-use codes, zones)
//! they are checked against. Plain types and pure functions; the only I/O is reading reference files.

pub mod area;
pub mod citizen;
pub mod codes;
pub mod grid;
pub mod national_id;
pub mod parcel;
pub mod planar;
pub mod reference;
pub mod zone;

pub use citizen::{CitizenId, CitizenIdError};
pub use codes::{CodeError, CommuneCode, LandUseCode, ProvinceCode};
pub use national_id::NationalParcelId;
pub use parcel::{BatchId, FeedPosition, Parcel, ParcelKey, ParcelVersion, RightHolder, VersionId};
pub use reference::{ReferenceData, ReferenceError};
pub use zone::Vn2000Zone;
