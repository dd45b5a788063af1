//! `filter` (OGC API – Features Part 3): a CQL2 expression in text or JSON, parsed by the `cql2`
//! crate and compiled here into a [`Filter`] over parcels. Only the queryables can be named, and
//! only those the caller may see; an operator or a form this server cannot evaluate is a 400 that
//! names it — never a filter that quietly matches everything.
//!
//! Spatial operators take the parcel's `geometry` and a literal (WKT, GeoJSON or BBOX, in CRS84);
//! temporal ones take `valid_from`, `valid_to` or `INTERVAL(valid_from, valid_to)` (when the
//! version was valid) and a literal instant or interval. Temporal filters are answered from the
//! history in the store, the rest from the engine.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use cql2::Expr;
use geo::{BoundingRect, Geometry, Intersects, Rect, Relate};

use crate::crs::OutputCrs;
use landdb_engine::Parcel;
use serde_json::{Value, json};

use crate::access::Access;
use crate::features::Field;
use crate::ogc::ApiError;

/// What a filter, a sort or a schema can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queryable {
    Version,
    Field(Field),
    Geometry,
    ValidFrom,
    ValidTo,
}

impl Queryable {
    /// Every queryable the caller may see.
    pub fn visible(access: &Access) -> Vec<Queryable> {
        let mut all = vec![Queryable::Version, Queryable::Geometry];
        all.extend(Field::visible(access).into_iter().map(Queryable::Field));
        all.extend([Queryable::ValidFrom, Queryable::ValidTo]);
        all
    }

    pub fn name(self) -> &'static str {
        match self {
            Queryable::Version => "version",
            Queryable::Field(f) => f.name(),
            Queryable::Geometry => "geometry",
            Queryable::ValidFrom => "valid_from",
            Queryable::ValidTo => "valid_to",
        }
    }

    /// A name the caller may not see is unknown, as one that does not exist: nothing given away.
    pub fn named(name: &str, access: &Access, parameter: &str) -> Result<Queryable, ApiError> {
        let visible = Queryable::visible(access);
        let name = name.trim();
        // `id` is what OGC clients call the feature id: the version here.
        let name = if name == "id" { "version" } else { name };
        visible.iter().copied().find(|q| q.name() == name).ok_or_else(|| {
            let names: Vec<&str> = visible.iter().map(|q| q.name()).collect();
            ApiError::bad_parameter(format!(
                "{parameter}: `{name}` is not a queryable of parcels; they are {}",
                names.join(", ")
            ))
        })
    }

    fn kind(self) -> Kind {
        match self {
            Queryable::Version | Queryable::Field(Field::AreaM2) => Kind::Number,
            Queryable::Geometry => Kind::Geometry,
            Queryable::ValidFrom | Queryable::ValidTo => Kind::Instant,
            Queryable::Field(_) => Kind::Text,
        }
    }

    /// The JSON Schema of the queryable, for `/queryables`.
    pub fn schema(self) -> Value {
        let (schema, title) = match self {
            Queryable::Version => (json!({ "type": "integer" }), "the parcel version (the feature id)"),
            Queryable::Geometry => (
                json!({ "format": "geometry-multipolygon", "x-ogc-role": "primary-geometry" }),
                "the parcel's boundary (CRS84)",
            ),
            Queryable::ValidFrom => (
                json!({ "type": "string", "format": "date-time", "x-ogc-role": "primary-instant" }),
                "when this version became valid",
            ),
            Queryable::ValidTo => (
                json!({ "type": "string", "format": "date-time" }),
                "when this version stopped being valid (null: current)",
            ),
            Queryable::Field(f) => match f {
                Field::NationalId => (json!({ "type": "string" }), "the national parcel ID"),
                Field::Commune => (json!({ "type": "string", "pattern": "^[0-9]{5}$" }), "the commune code"),
                Field::Sheet => (json!({ "type": "string" }), "the map sheet number (tờ bản đồ)"),
                Field::Number => (json!({ "type": "string" }), "the parcel number on the sheet (số thửa)"),
                Field::LandUse => (
                    json!({ "type": "string" }),
                    "a land-use code; a comparison holds when any of the parcel's codes satisfies it",
                ),
                Field::AreaM2 => (json!({ "type": "number" }), "the area in square metres"),
                Field::Address => (json!({ "type": "string" }), "the address (personal data)"),
            },
        };
        let mut schema = schema;
        schema["title"] = json!(title);
        schema
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Geometry,
    Instant,
}

/// A value a comparison works on. Instants are microseconds since 1970.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Number(f64),
    Text(String),
    Instant(i64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Comparison::Eq => o == Ordering::Equal,
            Comparison::Ne => o != Ordering::Equal,
            Comparison::Lt => o == Ordering::Less,
            Comparison::Le => o != Ordering::Greater,
            Comparison::Gt => o == Ordering::Greater,
            Comparison::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpatialOp {
    Intersects,
    Disjoint,
    Within,
    Contains,
    Equals,
    Touches,
    Overlaps,
    Crosses,
}

/// Allen's relations between the version's validity and a literal period (CQL2's `t_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TemporalOp {
    Before,
    After,
    Meets,
    MetBy,
    Overlaps,
    OverlappedBy,
    Starts,
    StartedBy,
    During,
    Contains,
    Finishes,
    FinishedBy,
    Equals,
    Disjoint,
    Intersects,
}

/// Which instants of a version a temporal operator looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TemporalSubject {
    ValidFrom,
    ValidTo,
    Validity,
}

#[derive(Debug, Clone)]
enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Compare { field: Queryable, op: Comparison, value: Literal, case_insensitive: bool },
    Like { field: Queryable, pattern: String, case_insensitive: bool },
    Between { field: Queryable, low: Literal, high: Literal },
    In { field: Queryable, values: Vec<Literal>, case_insensitive: bool },
    IsNull(Queryable),
    Spatial { op: SpatialOp, geometry: Geometry<f64> },
    Temporal { op: TemporalOp, subject: TemporalSubject, start: i64, end: i64 },
}

/// When a version was valid: from, and up to (none: still current). Microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub from: i64,
    pub to: Option<i64>,
}

impl Validity {
    pub fn new(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Self {
        Validity { from: from.timestamp_micros(), to: to.map(|t| t.timestamp_micros()) }
    }
}

/// A geometry given in `crs` (in its axis order), in CRS84. A box becomes the polygon of its
/// corners first: in a projection its edges need not follow meridians and parallels.
fn in_crs84(geometry: Geometry<f64>, crs: &OutputCrs) -> Result<Geometry<f64>, ApiError> {
    use geo::MapCoords;
    if crs.uri == crate::ogc::CRS84 {
        return Ok(geometry);
    }
    let geometry = match geometry {
        Geometry::Rect(r) => Geometry::Polygon(r.to_polygon()),
        other => other,
    };
    let reader = crs.reader()?;
    geometry.try_map_coords(|c| reader.position(c.x, c.y).map(|(x, y)| geo::coord! { x: x, y: y }))
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    /// A box every matching parcel meets, when the filter implies one: the candidates come from
    /// the R-tree instead of a scan.
    pub bound: Option<Rect<f64>>,
    /// Whether the filter asks about validity: then it is answered from the store's history.
    pub temporal: bool,
}

/// The longest filter read: a commune's boundary as a WKT polygon fits many times over.
pub const MAX_FILTER_BYTES: usize = 256 << 10;
/// The deepest nesting of arrays and objects a CQL2 JSON filter may have: the parsers recurse
/// once a level, and a stack overflow would take the whole server down, not only the request.
pub const MAX_FILTER_DEPTH: usize = 64;
/// The deepest nesting of parentheses in CQL2 text. The text parser backtracks into every level
/// of an expression that fails to parse, twice the work a level: 14 levels took 80 ms, 30 would
/// take hours of a worker thread. A real filter nests a few (a multipolygon in S_INTERSECTS is
/// four, under three groups of AND/OR seven): ten is room enough, and its worst case is a few
/// milliseconds.
pub const MAX_TEXT_DEPTH: usize = 10;
/// The most `NOT`s a filter may hold: each nests one level without a bracket.
pub const MAX_FILTER_NOTS: usize = 64;

/// Checks the shape of a filter's text before any parser sees it: its length, how deep its
/// brackets nest and how many `NOT`s it has (outside quoted strings, in either language).
pub fn within_limits(raw: &str, language: Language) -> Result<(), String> {
    if raw.len() > MAX_FILTER_BYTES {
        return Err(format!("{} bytes is longer than the {MAX_FILTER_BYTES} a filter may be", raw.len()));
    }
    let (mut depth, mut deepest, mut nots) = (0usize, 0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let count_word = |word: &mut String, nots: &mut usize| {
        if word.eq_ignore_ascii_case("not") {
            *nots += 1;
        }
        word.clear();
    };
    let mut escaped = false;
    for c in raw.chars() {
        if let Some(q) = quote {
            // Inside a string: CQL2 text doubles its quote, JSON escapes with a backslash.
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            if word.len() < 8 {
                word.push(c);
            }
            continue;
        }
        count_word(&mut word, &mut nots);
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return Err("a bracket closes that was never opened".to_owned()),
            },
            _ => {}
        }
    }
    count_word(&mut word, &mut nots);
    let most = match language {
        Language::Text => MAX_TEXT_DEPTH,
        Language::Json => MAX_FILTER_DEPTH,
    };
    if deepest > most {
        return Err(format!("it nests {deepest} levels of brackets; a filter may nest {most}"));
    }
    if depth != 0 {
        return Err("its brackets do not close".to_owned());
    }
    if nots > MAX_FILTER_NOTS {
        return Err(format!("it has {nots} NOTs; a filter may have {MAX_FILTER_NOTS}"));
    }
    Ok(())
}

/// Reads a filter in `language`, within the depth and size limits that keep a hostile one from
/// stopping the server: the one way a filter's text reaches the CQL2 parser.
pub fn parse_expression(raw: &str, language: Language) -> Result<Expr, ApiError> {
    let bad = |why: String| ApiError::bad_parameter(format!("filter: {why}"));
    within_limits(raw, language).map_err(bad)?;
    match language {
        Language::Text => cql2::parse_text(raw).map_err(|e| bad(format!("not valid CQL2 text: {e}"))),
        Language::Json => cql2::parse_json(raw).map_err(|e| bad(format!("not valid CQL2 JSON: {e}"))),
    }
}

/// The languages of `filter-lang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Text,
    Json,
}

impl Language {
    pub fn parse(raw: Option<&str>) -> Result<Language, ApiError> {
        match raw {
            None | Some("cql2-text" | "cql-text") => Ok(Language::Text),
            Some("cql2-json" | "cql-json") => Ok(Language::Json),
            Some(other) => Err(ApiError::bad_parameter(format!(
                "filter-lang={other}: this server reads cql2-text (also spelled cql-text) and cql2-json"
            ))),
        }
    }
}

impl Filter {
    /// Parses and compiles `raw`.
    pub fn parse(raw: &str, language: Language, access: &Access) -> Result<Filter, ApiError> {
        Filter::parse_in(raw, language, access, &OutputCrs::crs84())
    }

    /// Parses and compiles `raw`, whose geometries are in `crs` (`filter-crs`): they are taken
    /// into CRS84 once, here, vertex by vertex (a parcel-sized polygon's straight edges stay
    /// within millimetres of straight in a VN-2000 zone).
    pub fn parse_in(raw: &str, language: Language, access: &Access, crs: &OutputCrs) -> Result<Filter, ApiError> {
        let expr = parse_expression(raw, language)?;
        let root = compile(&expr, access, crs)?;
        let bound = bound(&root);
        let temporal = is_temporal(&root);
        Ok(Filter { root, bound, temporal })
    }

    /// The parcels meeting `polygon` (WKT, in `crs`): an export's `polygon`.
    pub fn intersecting(polygon: &str, access: &Access, crs: &OutputCrs) -> Result<Filter, ApiError> {
        Filter::parse_in(&format!("S_INTERSECTS(geometry, {polygon})"), Language::Text, access, crs)
    }

    /// Whether the parcel matches; `validity` is known for versions read from the history.
    pub fn matches(&self, parcel: &Parcel<'_>, validity: Option<Validity>) -> bool {
        let mut subject = Subject { parcel, validity, geometry: None };
        evaluate(&self.root, &mut subject)
    }
}

struct Subject<'p, 'a> {
    parcel: &'p Parcel<'a>,
    validity: Option<Validity>,
    geometry: Option<Geometry<f64>>,
}

impl Subject<'_, '_> {
    fn geometry(&mut self) -> &Geometry<f64> {
        let parcel = self.parcel;
        self.geometry.get_or_insert_with(|| Geometry::MultiPolygon(parcel.geometry()))
    }

    /// The values of a queryable (land use can have several; an absent one has none).
    fn values(&self, q: Queryable) -> Vec<Literal> {
        let p = self.parcel;
        match q {
            Queryable::Version => vec![Literal::Number(p.version().0 as f64)],
            Queryable::Geometry => vec![],
            Queryable::ValidFrom => self.validity.map(|v| Literal::Instant(v.from)).into_iter().collect(),
            Queryable::ValidTo => self.validity.and_then(|v| v.to).map(Literal::Instant).into_iter().collect(),
            Queryable::Field(f) => match f {
                Field::NationalId => vec![Literal::Text(p.national_id().as_str().to_owned())],
                Field::Commune => vec![Literal::Text(p.commune().as_str().to_owned())],
                Field::Sheet => vec![Literal::Text(p.key().sheet)],
                Field::Number => vec![Literal::Text(p.key().number)],
                Field::LandUse => p.land_use().iter().map(|c| Literal::Text(c.as_str().to_owned())).collect(),
                Field::AreaM2 => vec![Literal::Number(p.area_m2())],
                Field::Address => p.address().map(Literal::Text).into_iter().collect(),
            },
        }
    }
}

/// Orders a parcel's value against a literal: numbers as numbers (a text that reads as a number,
/// like a sheet number, compares as one), texts as texts, instants as instants.
fn order(value: &Literal, literal: &Literal, case_insensitive: bool) -> Option<Ordering> {
    match (value, literal) {
        (Literal::Number(a), Literal::Number(b)) => a.partial_cmp(b),
        (Literal::Text(a), Literal::Number(b)) => a.trim().parse::<f64>().ok()?.partial_cmp(b),
        (Literal::Text(a), Literal::Text(b)) if case_insensitive => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Literal::Text(a), Literal::Text(b)) => Some(a.cmp(b)),
        (Literal::Instant(a), Literal::Instant(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn evaluate(node: &Node, s: &mut Subject<'_, '_>) -> bool {
    match node {
        Node::Const(b) => *b,
        Node::And(nodes) => nodes.iter().all(|n| evaluate(n, s)),
        Node::Or(nodes) => nodes.iter().any(|n| evaluate(n, s)),
        Node::Not(n) => !evaluate(n, s),
        Node::Compare { field, op, value, case_insensitive } => {
            s.values(*field).iter().any(|v| order(v, value, *case_insensitive).is_some_and(|o| op.holds(o)))
        }
        Node::Like { field, pattern, case_insensitive } => s.values(*field).iter().any(|v| match v {
            Literal::Text(t) if *case_insensitive => like(&t.to_lowercase(), &pattern.to_lowercase()),
            Literal::Text(t) => like(t, pattern),
            _ => false,
        }),
        Node::Between { field, low, high } => s.values(*field).iter().any(|v| {
            order(v, low, false).is_some_and(|o| o != Ordering::Less)
                && order(v, high, false).is_some_and(|o| o != Ordering::Greater)
        }),
        Node::In { field, values, case_insensitive } => s
            .values(*field)
            .iter()
            .any(|v| values.iter().any(|l| order(v, l, *case_insensitive) == Some(Ordering::Equal))),
        Node::IsNull(field) => s.values(*field).is_empty(),
        Node::Spatial { op, geometry } => {
            let parcel = s.geometry();
            match op {
                SpatialOp::Intersects => parcel.intersects(geometry),
                SpatialOp::Disjoint => !parcel.intersects(geometry),
                _ => {
                    let m = parcel.relate(geometry);
                    match op {
                        SpatialOp::Within => m.is_within(),
                        SpatialOp::Contains => m.is_contains(),
                        SpatialOp::Equals => m.is_equal_topo(),
                        SpatialOp::Touches => m.is_touches(),
                        SpatialOp::Overlaps => m.is_overlaps(),
                        SpatialOp::Crosses => m.is_crosses(),
                        SpatialOp::Intersects | SpatialOp::Disjoint => false,
                    }
                }
            }
        }
        Node::Temporal { op, subject, start, end } => {
            let Some(v) = s.validity else { return false };
            let (a0, a1) = match subject {
                TemporalSubject::ValidFrom => (v.from, v.from),
                TemporalSubject::ValidTo => match v.to {
                    Some(t) => (t, t),
                    // A current version has no end yet: nothing to compare.
                    None => return false,
                },
                TemporalSubject::Validity => (v.from, v.to.unwrap_or(i64::MAX)),
            };
            allen(*op, (a0, a1), (*start, *end))
        }
    }
}

/// Allen's interval relations on closed intervals (an instant is a zero-length one).
fn allen(op: TemporalOp, (a0, a1): (i64, i64), (b0, b1): (i64, i64)) -> bool {
    let intersects = a0 <= b1 && a1 >= b0;
    match op {
        TemporalOp::Before => a1 < b0,
        TemporalOp::After => a0 > b1,
        TemporalOp::Meets => a1 == b0,
        TemporalOp::MetBy => a0 == b1,
        TemporalOp::Overlaps => a0 < b0 && b0 < a1 && a1 < b1,
        TemporalOp::OverlappedBy => b0 < a0 && a0 < b1 && b1 < a1,
        TemporalOp::Starts => a0 == b0 && a1 < b1,
        TemporalOp::StartedBy => a0 == b0 && a1 > b1,
        TemporalOp::During => a0 > b0 && a1 < b1,
        TemporalOp::Contains => a0 < b0 && a1 > b1,
        TemporalOp::Finishes => a0 > b0 && a1 == b1,
        TemporalOp::FinishedBy => a0 < b0 && a1 == b1,
        TemporalOp::Equals => a0 == b0 && a1 == b1,
        TemporalOp::Disjoint => !intersects,
        TemporalOp::Intersects => intersects,
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` one character, `\` escapes the next.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Greedy matching with backtracking to the last `%`: linear in practice.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (literal, width) = match p.get(pi) {
            Some('\\') => (p.get(pi + 1).copied(), 2),
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('_') => (None, 1),
            Some(c) => (Some(*c), 1),
            None => (Some('\0'), 0),
        };
        let matched = width > 0 && literal.is_none_or(|c| c == t[ti]);
        if matched {
            ti += 1;
            pi += width;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '%')
}

fn compile(expr: &Expr, access: &Access, crs: &OutputCrs) -> Result<Node, ApiError> {
    let bad = |why: String| ApiError::bad_parameter(format!("filter: {why}"));
    let text = |e: &Expr| e.to_text().unwrap_or_else(|_| format!("{e:?}"));
    match expr {
        Expr::Bool(b) => Ok(Node::Const(*b)),
        Expr::Operation { op, args } => {
            let args: Vec<&Expr> = args.iter().map(AsRef::as_ref).collect();
            let arity = |n: usize| -> Result<(), ApiError> {
                if args.len() == n {
                    Ok(())
                } else {
                    Err(bad(format!("`{op}` takes {n} arguments, not {}", args.len())))
                }
            };
            match op.as_str() {
                "and" => Ok(Node::And(args.iter().map(|a| compile(a, access, crs)).collect::<Result<_, _>>()?)),
                "or" => Ok(Node::Or(args.iter().map(|a| compile(a, access, crs)).collect::<Result<_, _>>()?)),
                "not" => {
                    arity(1)?;
                    Ok(Node::Not(Box::new(compile(args[0], access, crs)?)))
                }
                "=" | "<>" | "<" | "<=" | ">" | ">=" => {
                    arity(2)?;
                    let (mut op, (field, ci1), (value, ci2)) =
                        (comparison(op), operand(args[0], access)?, operand(args[1], access)?);
                    // `5 < area_m2` reads as `area_m2 > 5`.
                    let (field, value) = match (field, value) {
                        (Operand::Property(f), Operand::Literal(v)) => (f, v),
                        (Operand::Literal(v), Operand::Property(f)) => {
                            op = converse(op);
                            (f, v)
                        }
                        _ => return Err(bad(format!("`{}` must compare a queryable with a value", text(expr)))),
                    };
                    let value = typed(field, value)?;
                    Ok(Node::Compare { field, op, value, case_insensitive: ci1 || ci2 })
                }
                "like" => {
                    arity(2)?;
                    match (operand(args[0], access)?, operand(args[1], access)?) {
                        ((Operand::Property(field), ci1), (Operand::Literal(Literal::Text(pattern)), ci2))
                            if field.kind() == Kind::Text =>
                        {
                            Ok(Node::Like { field, pattern, case_insensitive: ci1 || ci2 })
                        }
                        _ => Err(bad(format!("`{}`: LIKE takes a text queryable and a text pattern", text(expr)))),
                    }
                }
                "between" => {
                    arity(3)?;
                    match (operand(args[0], access)?.0, operand(args[1], access)?.0, operand(args[2], access)?.0) {
                        (Operand::Property(field), Operand::Literal(low), Operand::Literal(high)) => {
                            Ok(Node::Between { field, low: typed(field, low)?, high: typed(field, high)? })
                        }
                        _ => Err(bad(format!("`{}`: BETWEEN takes a queryable and two values", text(expr)))),
                    }
                }
                "in" => {
                    arity(2)?;
                    let (Operand::Property(field), ci) = operand(args[0], access)? else {
                        return Err(bad(format!("`{}`: IN takes a queryable and a list", text(expr))));
                    };
                    let Expr::Array(items) = args[1] else {
                        return Err(bad(format!("`{}`: IN takes a list of values", text(expr))));
                    };
                    let values = items
                        .iter()
                        .map(|i| match operand(i, access)? {
                            (Operand::Literal(v), _) => typed(field, v),
                            _ => Err(bad(format!("`{}`: IN takes a list of values", text(expr)))),
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(Node::In { field, values, case_insensitive: ci })
                }
                "isNull" => {
                    arity(1)?;
                    match operand(args[0], access)? {
                        (Operand::Property(field), _) => Ok(Node::IsNull(field)),
                        _ => Err(bad(format!("`{}`: IS NULL takes a queryable", text(expr)))),
                    }
                }
                op if op.starts_with("s_") => {
                    arity(2)?;
                    let spatial = spatial_op(op).ok_or_else(|| bad(format!("unknown spatial operator `{op}`")))?;
                    let is_geometry = |e: &Expr| matches!(e, Expr::Property { property } if property == "geometry");
                    let (literal, spatial) = if is_geometry(args[0]) {
                        (args[1], spatial)
                    } else if is_geometry(args[1]) {
                        // `S_WITHIN(POLYGON(…), geometry)` is `S_CONTAINS(geometry, POLYGON(…))`.
                        let swapped = match spatial {
                            SpatialOp::Within => SpatialOp::Contains,
                            SpatialOp::Contains => SpatialOp::Within,
                            other => other,
                        };
                        (args[0], swapped)
                    } else {
                        return Err(bad(format!(
                            "`{}`: a spatial operator takes `geometry` and a geometry literal",
                            text(expr)
                        )));
                    };
                    let geometry = Geometry::<f64>::try_from(literal.clone()).map_err(|_| {
                        bad(format!("`{}` is not a geometry (give WKT, GeoJSON or BBOX in {})", text(literal), crs.uri))
                    })?;
                    let geometry =
                        in_crs84(geometry, crs).map_err(|e| bad(format!("`{}`: {}", text(literal), e.description)))?;
                    // CRS84: a coordinate past ±180° or ±90° is a mistake (metres given as
                    // degrees, the axes swapped), not a place.
                    use geo::CoordsIter;
                    if geometry
                        .coords_iter()
                        .any(|c| !(-180.0..=180.0).contains(&c.x) || !(-90.0..=90.0).contains(&c.y))
                    {
                        return Err(bad(format!(
                            "`{}` lies outside longitude -180 to 180 and latitude -90 to 90: geometries in filter are in CRS84 (longitude first)",
                            text(literal)
                        )));
                    }
                    Ok(Node::Spatial { op: spatial, geometry })
                }
                op if op.starts_with("t_") => {
                    arity(2)?;
                    let temporal = temporal_op(op).ok_or_else(|| bad(format!("unknown temporal operator `{op}`")))?;
                    let subject = temporal_subject(args[0], access)
                        .ok_or_else(|| bad(format!("`{}`: a temporal operator takes valid_from, valid_to or INTERVAL(valid_from, valid_to) first", text(expr))))?;
                    let (start, end) = period(args[1]).ok_or_else(|| {
                        bad(format!(
                            "`{}` is not an instant or interval: give TIMESTAMP('…'), DATE('…') or INTERVAL(…)",
                            text(args[1])
                        ))
                    })?;
                    Ok(Node::Temporal { op: temporal, subject, start, end })
                }
                "casei" | "accenti" => {
                    Err(bad(format!("`{op}` belongs inside a comparison, as in casei(commune) = casei('…')")))
                }
                other => Err(bad(format!(
                    "the operator `{other}` is not supported here; use comparisons, LIKE, BETWEEN, IN, IS NULL, AND/OR/NOT, s_* and t_* operators"
                ))),
            }
        }
        other => Err(bad(format!("`{}` is not a condition", text(other)))),
    }
}

enum Operand {
    Property(Queryable),
    Literal(Literal),
}

/// A queryable or a value; `casei(…)` around either makes the comparison case-insensitive.
fn operand(expr: &Expr, access: &Access) -> Result<(Operand, bool), ApiError> {
    let bad = |why: String| ApiError::bad_parameter(format!("filter: {why}"));
    Ok(match expr {
        Expr::Property { property } => (Operand::Property(Queryable::named(property, access, "filter")?), false),
        Expr::Float(f) => (Operand::Literal(Literal::Number(*f)), false),
        Expr::Literal(s) => (Operand::Literal(Literal::Text(s.clone())), false),
        Expr::Null => (Operand::Literal(Literal::Null), false),
        Expr::Timestamp { .. } | Expr::Date { .. } => match period(expr) {
            Some((t, _)) => (Operand::Literal(Literal::Instant(t)), false),
            None => return Err(bad(format!("`{}` is not a valid instant", expr.to_text().unwrap_or_default()))),
        },
        Expr::Operation { op, args } if op == "casei" && args.len() == 1 => (operand(&args[0], access)?.0, true),
        other => {
            return Err(bad(format!(
                "`{}` cannot be compared: give a queryable or a literal value",
                other.to_text().unwrap_or_else(|_| format!("{other:?}"))
            )));
        }
    })
}

/// Checks a literal against the queryable's type.
fn typed(field: Queryable, value: Literal) -> Result<Literal, ApiError> {
    let ok = matches!(
        (field.kind(), &value),
        (Kind::Number, Literal::Number(_))
            | (Kind::Text, Literal::Text(_) | Literal::Number(_))
            | (Kind::Instant, Literal::Instant(_))
    );
    if ok {
        return Ok(value);
    }
    let expected = match field.kind() {
        Kind::Number => "a number",
        Kind::Text => "a text ('…') or a number",
        Kind::Instant => "TIMESTAMP('…') or DATE('…')",
        Kind::Geometry => "a spatial operator (s_intersects and the others)",
    };
    Err(ApiError::bad_parameter(format!("filter: `{}` is compared with {expected}", field.name())))
}

fn comparison(op: &str) -> Comparison {
    match op {
        "<>" => Comparison::Ne,
        "<" => Comparison::Lt,
        "<=" => Comparison::Le,
        ">" => Comparison::Gt,
        ">=" => Comparison::Ge,
        _ => Comparison::Eq,
    }
}

fn converse(op: Comparison) -> Comparison {
    match op {
        Comparison::Lt => Comparison::Gt,
        Comparison::Le => Comparison::Ge,
        Comparison::Gt => Comparison::Lt,
        Comparison::Ge => Comparison::Le,
        other => other,
    }
}

fn spatial_op(op: &str) -> Option<SpatialOp> {
    Some(match op {
        "s_intersects" => SpatialOp::Intersects,
        "s_disjoint" => SpatialOp::Disjoint,
        "s_within" => SpatialOp::Within,
        "s_contains" => SpatialOp::Contains,
        "s_equals" => SpatialOp::Equals,
        "s_touches" => SpatialOp::Touches,
        "s_overlaps" => SpatialOp::Overlaps,
        "s_crosses" => SpatialOp::Crosses,
        _ => return None,
    })
}

fn temporal_op(op: &str) -> Option<TemporalOp> {
    Some(match op {
        "t_before" => TemporalOp::Before,
        "t_after" => TemporalOp::After,
        "t_meets" => TemporalOp::Meets,
        "t_metBy" => TemporalOp::MetBy,
        "t_overlaps" => TemporalOp::Overlaps,
        "t_overlappedBy" => TemporalOp::OverlappedBy,
        "t_starts" => TemporalOp::Starts,
        "t_startedBy" => TemporalOp::StartedBy,
        "t_during" => TemporalOp::During,
        "t_contains" => TemporalOp::Contains,
        "t_finishes" => TemporalOp::Finishes,
        "t_finishedBy" => TemporalOp::FinishedBy,
        "t_equals" => TemporalOp::Equals,
        "t_disjoint" => TemporalOp::Disjoint,
        "t_intersects" => TemporalOp::Intersects,
        _ => return None,
    })
}

fn temporal_subject(expr: &Expr, access: &Access) -> Option<TemporalSubject> {
    let property = |e: &Expr| match e {
        Expr::Property { property } => Queryable::named(property, access, "filter").ok(),
        _ => None,
    };
    match expr {
        Expr::Interval { interval } if interval.len() == 2 => (property(&interval[0]) == Some(Queryable::ValidFrom)
            && property(&interval[1]) == Some(Queryable::ValidTo))
        .then_some(TemporalSubject::Validity),
        e => match property(e)? {
            Queryable::ValidFrom => Some(TemporalSubject::ValidFrom),
            Queryable::ValidTo => Some(TemporalSubject::ValidTo),
            _ => None,
        },
    }
}

/// A literal instant (as a zero-length period) or interval, in microseconds; `..` is open.
fn period(expr: &Expr) -> Option<(i64, i64)> {
    fn instant(e: &Expr, open: i64) -> Option<i64> {
        match e {
            Expr::Literal(s) if s == ".." => Some(open),
            Expr::Literal(s) => parse_instant(s),
            Expr::Timestamp { timestamp } => instant(timestamp, open),
            Expr::Date { date } => instant(date, open),
            _ => None,
        }
    }
    match expr {
        Expr::Interval { interval } if interval.len() == 2 => {
            Some((instant(&interval[0], i64::MIN)?, instant(&interval[1], i64::MAX)?))
        }
        e => instant(e, i64::MIN).map(|t| (t, t)),
    }
}

/// An RFC 3339 instant or a date (its midnight, UTC), in microseconds.
pub fn parse_instant(raw: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// A box that meets no parcel: what boxes that share nothing narrow a query to.
pub fn nowhere() -> Rect<f64> {
    Rect::new((1e9, 1e9), (1e9, 1e9))
}

/// The box around both boxes.
pub fn union(a: Rect<f64>, b: Rect<f64>) -> Rect<f64> {
    Rect::new(
        (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
        (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
    )
}

/// The part two boxes share, if they share anything.
pub fn overlap(a: Rect<f64>, b: Rect<f64>) -> Option<Rect<f64>> {
    let min = (a.min().x.max(b.min().x), a.min().y.max(b.min().y));
    let max = (a.max().x.min(b.max().x), a.max().y.min(b.max().y));
    (min.0 <= max.0 && min.1 <= max.1).then(|| Rect::new(min, max))
}

/// A box every match meets, if the filter implies one.
fn bound(node: &Node) -> Option<Rect<f64>> {
    match node {
        Node::Spatial { op: SpatialOp::Disjoint, .. } => None,
        Node::Spatial { geometry, .. } => geometry.bounding_rect(),
        Node::And(nodes) => nodes.iter().filter_map(bound).reduce(|a, b| overlap(a, b).unwrap_or_else(nowhere)),
        Node::Or(nodes) => {
            let bounds: Option<Vec<Rect<f64>>> = nodes.iter().map(bound).collect();
            bounds?.into_iter().reduce(union)
        }
        _ => None,
    }
}

fn is_temporal(node: &Node) -> bool {
    match node {
        Node::Temporal { .. } => true,
        Node::Compare { field, .. } | Node::Between { field, .. } | Node::In { field, .. } | Node::IsNull(field) => {
            matches!(field, Queryable::ValidFrom | Queryable::ValidTo)
        }
        Node::And(n) | Node::Or(n) => n.iter().any(is_temporal),
        Node::Not(n) => is_temporal(n),
        _ => false,
    }
}

/// `sortby`: queryables, each optionally prefixed `+` (ascending, the default) or `-`.
#[derive(Debug, Clone, Default)]
pub struct SortBy {
    keys: Vec<(Queryable, bool)>,
}

impl SortBy {
    pub fn parse(raw: Option<&str>, access: &Access) -> Result<Option<SortBy>, ApiError> {
        let Some(raw) = raw else { return Ok(None) };
        let mut keys = Vec::new();
        for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (name, descending) = match term.as_bytes()[0] {
                b'-' => (&term[1..], true),
                b'+' => (&term[1..], false),
                _ => (term, false),
            };
            let q = Queryable::named(name, access, "sortby")?;
            if matches!(q, Queryable::Geometry | Queryable::ValidFrom | Queryable::ValidTo) {
                return Err(ApiError::bad_parameter(format!(
                    "sortby: parcels cannot be sorted by `{name}`; sort by version or a property"
                )));
            }
            keys.push((q, descending));
        }
        if keys.is_empty() {
            return Err(ApiError::bad_parameter("sortby: name at least one property, as sortby=-area_m2"));
        }
        Ok(Some(SortBy { keys }))
    }

    /// Orders two parcels; the version breaks ties, so the order is total and pages are stable.
    pub fn compare(&self, a: &Parcel<'_>, b: &Parcel<'_>) -> Ordering {
        let (sa, sb) = (
            Subject { parcel: a, validity: None, geometry: None },
            Subject { parcel: b, validity: None, geometry: None },
        );
        for (q, descending) in &self.keys {
            let (va, vb) = (sa.values(*q), sb.values(*q));
            // Absent values sort last, in either direction.
            let o = match (va.first(), vb.first()) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater,
                (Some(_), None) => return Ordering::Less,
                (Some(x), Some(y)) => natural(x, y),
            };
            let o = if *descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.version().cmp(&b.version())
    }
}

/// Numbers as numbers, texts that read as numbers (sheet and parcel numbers) as numbers before
/// other texts.
fn natural(a: &Literal, b: &Literal) -> Ordering {
    let n = |l: &Literal| match l {
        Literal::Number(n) => Some(*n),
        Literal::Text(t) => t.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (n(a), n(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => match (a, b) {
            (Literal::Text(x), Literal::Text(y)) => x.cmp(y),
            _ => Ordering::Equal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that overflowed the parser's stack and aborted the server (400 nested parentheses,
    /// 2,000 chained NOTs), and their JSON kin, are refused as bad parameters.
    #[test]
    fn deep_filters_are_refused_not_parsed() {
        let access = Access::nation(true);
        let deep = format!("{}area_m2 > 1{}", "(".repeat(400), ")".repeat(400));
        let nots = format!("{}area_m2 > 1", "NOT ".repeat(2_000));
        let json = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let long = format!("number IN ({})", vec!["'1'"; 100_000].join(","));
        for (raw, language) in [
            (deep.as_str(), Language::Text),
            (nots.as_str(), Language::Text),
            (json.as_str(), Language::Json),
            (long.as_str(), Language::Text),
        ] {
            let e = Filter::parse(raw, language, &access).expect_err("refused");
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{}", e.description);
        }
        // Brackets and NOTs inside strings are text, and real filters pass.
        Filter::parse("address LIKE '((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((%' AND NOT (number = '1')", Language::Text, &access)
            .expect("a quoted bracket is text");
        Filter::parse(
            "S_INTERSECTS(geometry, MULTIPOLYGON(((108.2 16.0, 108.3 16.0, 108.3 16.1, 108.2 16.0))))",
            Language::Text,
            &access,
        )
        .expect("a polygon");
        Filter::parse(
            "NOT (area_m2 > 1 AND (number = '1' OR (sheet = '2' AND S_INTERSECTS(geometry, MULTIPOLYGON(((108.2 16.0, 108.3 16.0, 108.3 16.1, 108.2 16.0)))))))",
            Language::Text,
            &access,
        )
        .expect("seven levels, as a real filter may have");
    }

    /// The text parser's work doubles a level of an expression that fails: at the depth allowed
    /// it stays within a few milliseconds (this was the way to pin a worker thread for hours).
    #[test]
    fn the_deepest_failing_text_filter_is_quick() {
        let access = Access::nation(true);
        let n = MAX_TEXT_DEPTH;
        for raw in [format!("{}a +{}", "(".repeat(n), ")".repeat(n)), format!("{}area_m2", "(".repeat(n))] {
            let started = std::time::Instant::now();
            assert!(Filter::parse(&raw, Language::Text, &access).is_err());
            assert!(started.elapsed() < std::time::Duration::from_millis(500), "{raw}: {:?}", started.elapsed());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever text a caller sends as a filter, the answer is a filter or a 400: never a
        /// panic or an abort (the test process would die with it).
        #[test]
        fn any_filter_text_parses_or_is_refused(raw in "[ ()\\[\\]{}\"',.:%_\\-+*/<>=!a-zA-Z0-9]{0,200}", nested in 0usize..200) {
            let access = Access::nation(true);
            let wrapped = format!("{}{raw}{}", "(".repeat(nested), ")".repeat(nested));
            for candidate in [raw.as_str(), wrapped.as_str()] {
                for language in [Language::Text, Language::Json] {
                    if let Err(e) = Filter::parse(candidate, language, &access) {
                        proptest::prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
                    }
                }
            }
        }

        /// Made of the language's own words, in any order and nesting.
        #[test]
        fn any_filter_of_cql2_words_parses_or_is_refused(words in proptest::collection::vec(proptest::sample::select(vec![
            "NOT", "AND", "OR", "(", ")", "area_m2", "number", "'1'", "1", "=", "<", "LIKE", "IN", "BETWEEN", "IS", "NULL",
            "S_INTERSECTS", "geometry", "POINT(108 16)", ",", "casei", "T_INTERSECTS", "valid_from", "TIMESTAMP('2020-01-01T00:00:00Z')",
            "-", "+", "*", "[", "]", "DATE('2020-01-01')", "true", "false", "A_CONTAINS", "land_use",
        ]), 0..120)) {
            let access = Access::nation(true);
            let raw = words.join(" ");
            if let Err(e) = Filter::parse(&raw, Language::Text, &access) {
                proptest::prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            }
        }
    }

    #[test]
    fn like_matches_sql_semantics() {
        for (text, pattern, expected) in [
            ("Hải Châu", "Hải%", true),
            ("Hải Châu", "%Châu", true),
            ("Hải Châu", "%i C%", true),
            ("Hải Châu", "H_i Châu", true),
            ("Hải Châu", "H_Châu", false),
            ("ODT", "OD", false),
            ("ODT", "ODT%", true),
            ("50%", "50\\%", true),
            ("500", "50\\%", false),
            ("", "%", true),
            ("abcabc", "%abc", true),
            ("abcab", "%abc", false),
        ] {
            assert_eq!(like(text, pattern), expected, "{text} LIKE {pattern}");
        }
    }

    #[test]
    fn allen_relations_partition_the_cases() {
        use TemporalOp::*;
        let exclusive = [
            Before,
            After,
            Meets,
            MetBy,
            Overlaps,
            OverlappedBy,
            Starts,
            StartedBy,
            During,
            Contains,
            Finishes,
            FinishedBy,
            Equals,
        ];
        // For proper intervals exactly one of Allen's thirteen relations holds.
        for a in [(0, 10), (5, 15), (10, 20), (0, 20), (2, 8), (20, 30), (0, 5)] {
            for b in [(0, 10), (5, 15), (10, 20), (0, 20), (2, 8), (20, 30), (0, 5)] {
                let holding: Vec<_> = exclusive.iter().filter(|op| allen(**op, a, b)).collect();
                assert_eq!(holding.len(), 1, "{a:?} {b:?}: {holding:?}");
                assert_eq!(allen(Intersects, a, b), !allen(Disjoint, a, b));
            }
        }
    }

    /// A polygon given in a VN-2000 zone (`filter-crs`), or latitude first in EPSG:4326, is
    /// the same place as in CRS84.
    #[test]
    fn geometries_in_another_crs_are_taken_into_crs84() {
        let reference = landdb_model::ReferenceData::embedded().expect("reference data");
        let access = Access::nation(false);
        let ring = [(108.20, 16.05), (108.23, 16.05), (108.23, 16.08), (108.20, 16.08), (108.20, 16.05)];
        let zone = reference.zones().into_iter().find(|z| z.central_meridian == 107.75).expect("Đà Nẵng's zone");
        let crs = OutputCrs::parse(&format!("EPSG:{}", zone.epsg), &reference).expect("the zone");
        let to_zone = crs.transformer().expect("PROJ").expect("a projection");
        let vertices: Vec<String> = ring
            .iter()
            .map(|&(x, y)| {
                let c = to_zone.coord(geo::coord! { x: x, y: y }).expect("in the zone");
                format!("{} {}", c.x, c.y)
            })
            .collect();
        let in_zone = format!("S_INTERSECTS(geometry, POLYGON(({})))", vertices.join(", "));
        let f = Filter::parse_in(&in_zone, Language::Text, &access, &crs).expect("parsed");
        let bound = f.bound.expect("a bound");
        for (got, want) in
            [(bound.min().x, 108.20), (bound.min().y, 16.05), (bound.max().x, 108.23), (bound.max().y, 16.08)]
        {
            assert!((got - want).abs() < 1e-8, "{got} against {want}");
        }
        // The same polygon in metres but read as CRS84 is refused as out of range.
        assert!(Filter::parse(&in_zone, Language::Text, &access).is_err());
        let wgs84 = OutputCrs::parse("EPSG:4326", &reference).expect("EPSG:4326");
        let f = Filter::parse_in(
            "S_INTERSECTS(geometry, BBOX(16.05, 108.2, 16.08, 108.23))",
            Language::Text,
            &access,
            &wgs84,
        )
        .expect("parsed");
        let bound = f.bound.expect("a bound");
        assert_eq!((bound.min().x, bound.min().y, bound.max().x, bound.max().y), (108.2, 16.05, 108.23, 16.08));
    }

    #[test]
    fn unknown_withheld_and_unsupported_are_refused_by_name() {
        let anonymous = Access::nation(false);
        for (raw, why) in [
            ("colour = 'red'", "`colour` is not a queryable"),
            ("address = 'x'", "`address` is not a queryable"),
            ("area_m2 = 'big'", "`area_m2` is compared with a number"),
            ("area_m2 + 1 > 5", "cannot be compared"),
            ("S_INTERSECTS(commune, POINT(1 2))", "takes `geometry`"),
            ("area_m2 >", "not valid CQL2 text"),
            ("T_AFTER(version, TIMESTAMP('2020-01-01T00:00:00Z'))", "valid_from, valid_to"),
        ] {
            let e = Filter::parse(raw, Language::Text, &anonymous).expect_err(raw);
            assert!(e.description.contains(why), "{raw}: {e}");
        }
        let personal = Access::nation(true);
        assert!(Filter::parse("address LIKE '%Hải%'", Language::Text, &personal).is_ok());
        assert!(Language::parse(Some("cql-text")).is_ok());
        assert!(Language::parse(Some("sql")).is_err());
    }

    #[test]
    fn bounds_come_from_spatial_terms() {
        let a = Access::nation(false);
        let f = Filter::parse("S_INTERSECTS(geometry, BBOX(108, 16, 108.1, 16.1)) AND area_m2 > 5", Language::Text, &a)
            .expect("parsed");
        assert_eq!(f.bound, Some(Rect::new((108.0, 16.0), (108.1, 16.1))));
        let f = Filter::parse("S_INTERSECTS(geometry, BBOX(108, 16, 108.1, 16.1)) OR area_m2 > 5", Language::Text, &a)
            .expect("parsed");
        assert_eq!(f.bound, None);
        let f =
            Filter::parse("NOT S_DISJOINT(geometry, BBOX(108, 16, 108.1, 16.1))", Language::Text, &a).expect("parsed");
        assert_eq!(f.bound, None);
        assert!(!f.temporal);
        let f = Filter::parse(
            "T_INTERSECTS(INTERVAL(valid_from, valid_to), INTERVAL('2020-01-01', '..'))",
            Language::Text,
            &a,
        )
        .expect("parsed");
        assert!(f.temporal);
    }
}
