//! Field layouts seen in real deliveries (shared/domain/cadastre.md): the names under which each
//! attribute of a [`Record`] is written.

use clap::ValueEnum;
use serde_json::{Value, json};

use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// VBDLIS / ArcGIS names: `MaXa`, `SoHieuToBanDo`, `SoThuTuThua`, `KyHieuMucDichSuDung`, …
    Vbdlis,
    /// Older local names: `ma_xa`, `so_to`, `so_thua`, `loai_dat`, `Tong_dien_`, `Chu_SD`, …
    Legacy,
    /// Upper-case Oracle names: `MAXA`, `SOHIEUTOBANDO`, `SOTHUTUTHUA`, …
    Upper,
}

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Integer,
    Real,
}

/// Field names and kinds of a layout, in file order. Numbers that real exports store as numbers
/// (sheet and parcel numbers in the VBDLIS layout) are integers here too.
pub fn fields(layout: Layout) -> &'static [(&'static str, FieldKind)] {
    use FieldKind::{Integer, Real, Text};
    match layout {
        Layout::Vbdlis => &[
            ("MaXa", Text),
            ("SoHieuToBanDo", Integer),
            ("SoThuTuThua", Integer),
            ("DienTich", Real),
            ("DienTichPhapLy", Real),
            ("KyHieuMucDichSuDung", Text),
            ("DiaChi", Text),
            ("TenChu", Text),
            ("NamSinhC1", Integer),
            ("SoDinhDanhC1", Text),
            ("TenChu2", Text),
            ("SoHieuGCN", Text),
        ],
        Layout::Legacy => &[
            ("ma_xa", Text),
            ("so_to", Text),
            ("so_thua", Text),
            ("Tong_dien_", Real),
            ("loai_dat", Text),
            ("dia_chi", Text),
            ("Chu_SD", Text),
            ("nam_sinh", Integer),
            ("cccd", Text),
        ],
        Layout::Upper => &[
            ("MAXA", Text),
            ("SOHIEUTOBANDO", Text),
            ("SOTHUTUTHUA", Text),
            ("DIENTICH", Real),
            ("DIENTICHPHAPLY", Real),
            ("KYHIEUMUCDICHSUDUNG", Text),
            ("DIACHI", Text),
            ("TENCHU", Text),
            ("NAMSINHC1", Integer),
            ("SODINHDANHC1", Text),
            ("SOHIEUGCN", Text),
        ],
    }
}

/// The record's values in the layout's field order (null where the record has none).
pub fn values(layout: Layout, r: &Record) -> Vec<Value> {
    let opt = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| json!(s));
    match layout {
        Layout::Vbdlis => vec![
            json!(r.commune_code),
            json!(r.sheet),
            json!(r.number),
            json!(r.area),
            r.legal_area.map_or(Value::Null, |a| json!(a)),
            json!(r.land_use),
            opt(&r.address),
            opt(&r.owner),
            r.owner_birth_year.map_or(Value::Null, |y| json!(y)),
            opt(&r.owner_citizen_id),
            opt(&r.second_owner),
            opt(&r.certificate),
        ],
        Layout::Legacy => vec![
            json!(r.commune_code),
            json!(r.sheet.to_string()),
            json!(r.number.to_string()),
            json!(r.area),
            json!(r.land_use),
            opt(&r.address),
            opt(&r.owner),
            r.owner_birth_year.map_or(Value::Null, |y| json!(y)),
            opt(&r.owner_citizen_id),
        ],
        Layout::Upper => vec![
            json!(r.commune_code),
            json!(r.sheet.to_string()),
            json!(r.number.to_string()),
            json!(r.area),
            r.legal_area.map_or(Value::Null, |a| json!(a)),
            json!(r.land_use),
            opt(&r.address),
            opt(&r.owner),
            r.owner_birth_year.map_or(Value::Null, |y| json!(y)),
            opt(&r.owner_citizen_id),
            opt(&r.certificate),
        ],
    }
}
