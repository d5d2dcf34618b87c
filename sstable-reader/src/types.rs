//! CQL types as the SSTable stores them. Statistics.db names each column's type by its Cassandra marshal
//! class (`org.apache.cassandra.db.marshal.MapType(...UTF8Type,...Int32Type)`); schema.cql names it in CQL
//! (`map<text, int>`). Both parse into [`CqlType`], which knows how values of the type are laid out.

use std::fmt;

/// A CQL type. Collections and UDTs are multi-cell (one cell per element) unless wrapped in
/// [`CqlType::Frozen`]; everything nested inside a frozen value is serialized as one blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CqlType {
    Ascii,
    BigInt,
    Blob,
    Boolean,
    Counter,
    Date,
    Decimal,
    Double,
    Duration,
    Float,
    Inet,
    Int,
    SmallInt,
    Text,
    Time,
    Timestamp,
    TimeUuid,
    TinyInt,
    Uuid,
    Varint,
    /// Cassandra's `EmptyType` (hidden columns of COMPACT STORAGE tables): always zero bytes.
    Empty,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    Tuple(Vec<CqlType>),
    Udt(Box<UserType>),
    Frozen(Box<CqlType>),
    /// A clustering column in DESC order; values are laid out as the inner type.
    Reversed(Box<CqlType>),
    /// A multi-component partition key (`CompositeType`).
    Composite(Vec<CqlType>),
    /// Any other marshal class (e.g. a custom type): values are shown as blobs.
    Custom(String),
}

/// A user-defined type: its keyspace, name and fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserType {
    pub keyspace: String,
    pub name: String,
    pub fields: Vec<(String, CqlType)>,
}

/// A type string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse type {input:?} at character {at}: {message}")]
pub struct TypeParseError {
    pub input: String,
    pub at: usize,
    pub message: String,
}

const MARSHAL_PREFIX: &str = "org.apache.cassandra.db.marshal.";

impl CqlType {
    /// The type without `Reversed`/`Frozen` wrappers (how its bytes are laid out).
    pub fn base(&self) -> &CqlType {
        match self {
            CqlType::Reversed(t) | CqlType::Frozen(t) => t.base(),
            t => t,
        }
    }

    /// Whether a column of this type is stored as several cells (non-frozen collection or UDT).
    pub fn is_multi_cell(&self) -> bool {
        matches!(
            self,
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt(_)
        )
    }

    pub fn is_counter(&self) -> bool {
        matches!(self.base(), CqlType::Counter)
    }

    /// `Some(n)` when every value of the type is exactly `n` bytes, so Data.db stores it without a length
    /// (`AbstractType.valueLengthIfFixed`).
    pub fn fixed_length(&self) -> Option<usize> {
        match self {
            CqlType::Boolean => Some(1),
            CqlType::Int | CqlType::Float => Some(4),
            CqlType::BigInt | CqlType::Double | CqlType::Timestamp => Some(8),
            CqlType::Uuid | CqlType::TimeUuid => Some(16),
            CqlType::Empty => Some(0),
            CqlType::Reversed(t) => t.fixed_length(),
            _ => None,
        }
    }

    /// Parses a Cassandra marshal class string as stored in Statistics.db.
    pub fn from_marshal(s: &str) -> Result<CqlType, TypeParseError> {
        let mut p = MarshalParser {
            t: Text { s, pos: 0 },
        };
        let t = p.parse()?;
        p.skip_ws();
        if p.pos != s.len() {
            return Err(p.error("trailing characters"));
        }
        Ok(t)
    }

    /// The marshal class string Cassandra writes for this type (inverse of [`CqlType::from_marshal`]).
    pub fn to_marshal(&self) -> String {
        let simple = |n: &str| format!("{MARSHAL_PREFIX}{n}");
        let list = |ts: &[CqlType]| {
            ts.iter()
                .map(CqlType::to_marshal)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            CqlType::Ascii => simple("AsciiType"),
            CqlType::BigInt => simple("LongType"),
            CqlType::Blob => simple("BytesType"),
            CqlType::Boolean => simple("BooleanType"),
            CqlType::Counter => simple("CounterColumnType"),
            CqlType::Date => simple("SimpleDateType"),
            CqlType::Decimal => simple("DecimalType"),
            CqlType::Double => simple("DoubleType"),
            CqlType::Duration => simple("DurationType"),
            CqlType::Float => simple("FloatType"),
            CqlType::Inet => simple("InetAddressType"),
            CqlType::Int => simple("Int32Type"),
            CqlType::SmallInt => simple("ShortType"),
            CqlType::Text => simple("UTF8Type"),
            CqlType::Time => simple("TimeType"),
            CqlType::Timestamp => simple("TimestampType"),
            CqlType::TimeUuid => simple("TimeUUIDType"),
            CqlType::TinyInt => simple("ByteType"),
            CqlType::Uuid => simple("UUIDType"),
            CqlType::Varint => simple("IntegerType"),
            CqlType::Empty => simple("EmptyType"),
            CqlType::List(t) => format!("{}({})", simple("ListType"), t.to_marshal()),
            CqlType::Set(t) => format!("{}({})", simple("SetType"), t.to_marshal()),
            CqlType::Map(k, v) => format!(
                "{}({},{})",
                simple("MapType"),
                k.to_marshal(),
                v.to_marshal()
            ),
            CqlType::Tuple(ts) => format!("{}({})", simple("TupleType"), list(ts)),
            CqlType::Frozen(t) => format!("{}({})", simple("FrozenType"), t.to_marshal()),
            CqlType::Reversed(t) => format!("{}({})", simple("ReversedType"), t.to_marshal()),
            CqlType::Composite(ts) => format!("{}({})", simple("CompositeType"), list(ts)),
            CqlType::Udt(u) => {
                let mut s = format!(
                    "{}({},{}",
                    simple("UserType"),
                    u.keyspace,
                    hex(u.name.as_bytes())
                );
                for (name, t) in &u.fields {
                    s.push(',');
                    s.push_str(&hex(name.as_bytes()));
                    s.push(':');
                    s.push_str(&t.to_marshal());
                }
                s.push(')');
                s
            }
            CqlType::Custom(c) => c.clone(),
        }
    }

    /// Parses a CQL type (`text`, `map<text, frozen<list<int>>>`, a UDT name resolved by `udt`).
    pub fn from_cql(
        s: &str,
        udt: &dyn Fn(&str) -> Option<UserType>,
    ) -> Result<CqlType, TypeParseError> {
        let mut p = CqlParser {
            t: Text { s, pos: 0 },
            udt,
        };
        let t = p.parse()?;
        p.skip_ws();
        if p.pos != s.len() {
            return Err(p.error("trailing characters"));
        }
        Ok(t)
    }
}

impl fmt::Display for CqlType {
    /// The CQL spelling of the type (`map<text, int>`, `frozen<tuple<int, text>>`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, ts: &[CqlType]| -> fmt::Result {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            Ok(())
        };
        match self {
            CqlType::Ascii => f.write_str("ascii"),
            CqlType::BigInt => f.write_str("bigint"),
            CqlType::Blob => f.write_str("blob"),
            CqlType::Boolean => f.write_str("boolean"),
            CqlType::Counter => f.write_str("counter"),
            CqlType::Date => f.write_str("date"),
            CqlType::Decimal => f.write_str("decimal"),
            CqlType::Double => f.write_str("double"),
            CqlType::Duration => f.write_str("duration"),
            CqlType::Float => f.write_str("float"),
            CqlType::Inet => f.write_str("inet"),
            CqlType::Int => f.write_str("int"),
            CqlType::SmallInt => f.write_str("smallint"),
            CqlType::Text => f.write_str("text"),
            CqlType::Time => f.write_str("time"),
            CqlType::Timestamp => f.write_str("timestamp"),
            CqlType::TimeUuid => f.write_str("timeuuid"),
            CqlType::TinyInt => f.write_str("tinyint"),
            CqlType::Uuid => f.write_str("uuid"),
            CqlType::Varint => f.write_str("varint"),
            CqlType::Empty => f.write_str("empty"),
            CqlType::List(t) => write!(f, "list<{t}>"),
            CqlType::Set(t) => write!(f, "set<{t}>"),
            CqlType::Map(k, v) => write!(f, "map<{k}, {v}>"),
            CqlType::Tuple(ts) => {
                f.write_str("tuple<")?;
                join(f, ts)?;
                f.write_str(">")
            }
            CqlType::Udt(u) => f.write_str(&u.name),
            CqlType::Frozen(t) => write!(f, "frozen<{t}>"),
            CqlType::Reversed(t) => write!(f, "{t}"),
            CqlType::Composite(ts) => {
                f.write_str("composite<")?;
                join(f, ts)?;
                f.write_str(">")
            }
            CqlType::Custom(c) => write!(f, "'{c}'"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The position in a type string both parsers advance, with the small steps they share.
struct Text<'s> {
    s: &'s str,
    pos: usize,
}

impl Text<'_> {
    fn error(&self, message: &str) -> TypeParseError {
        TypeParseError {
            input: self.s.to_string(),
            at: self.pos,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), TypeParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }
}

struct MarshalParser<'s> {
    t: Text<'s>,
}

impl<'s> std::ops::Deref for MarshalParser<'s> {
    type Target = Text<'s>;
    fn deref(&self) -> &Text<'s> {
        &self.t
    }
}

impl std::ops::DerefMut for MarshalParser<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.t
    }
}

impl MarshalParser<'_> {
    fn ident(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '$' | '_' | '-' | '+') {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    fn args(&mut self) -> Result<Vec<CqlType>, TypeParseError> {
        let mut out = Vec::new();
        self.expect('(')?;
        if self.eat(')') {
            return Ok(out);
        }
        loop {
            out.push(self.parse()?);
            if self.eat(')') {
                return Ok(out);
            }
            self.expect(',')?;
        }
    }

    fn one_arg(&mut self) -> Result<CqlType, TypeParseError> {
        let mut a = self.args()?;
        if a.len() != 1 {
            return Err(self.error("expected exactly one type parameter"));
        }
        Ok(a.remove(0))
    }

    fn parse(&mut self) -> Result<CqlType, TypeParseError> {
        let full = self.ident().to_string();
        if full.is_empty() {
            return Err(self.error("expected a type name"));
        }
        let name = full.strip_prefix(MARSHAL_PREFIX).unwrap_or(&full);
        Ok(match name {
            "AsciiType" => CqlType::Ascii,
            "LongType" => CqlType::BigInt,
            "BytesType" => CqlType::Blob,
            "BooleanType" => CqlType::Boolean,
            "CounterColumnType" => CqlType::Counter,
            "SimpleDateType" => CqlType::Date,
            "DecimalType" => CqlType::Decimal,
            "DoubleType" => CqlType::Double,
            "DurationType" => CqlType::Duration,
            "FloatType" => CqlType::Float,
            "InetAddressType" => CqlType::Inet,
            "Int32Type" => CqlType::Int,
            "ShortType" => CqlType::SmallInt,
            "UTF8Type" => CqlType::Text,
            "TimeType" => CqlType::Time,
            "TimestampType" | "DateType" => CqlType::Timestamp,
            "TimeUUIDType" => CqlType::TimeUuid,
            "ByteType" => CqlType::TinyInt,
            "UUIDType" | "LexicalUUIDType" => CqlType::Uuid,
            "IntegerType" => CqlType::Varint,
            "EmptyType" => CqlType::Empty,
            "ListType" => CqlType::List(Box::new(self.one_arg()?)),
            "SetType" => CqlType::Set(Box::new(self.one_arg()?)),
            "MapType" => {
                let mut a = self.args()?;
                if a.len() != 2 {
                    return Err(self.error("MapType takes two type parameters"));
                }
                let v = a.remove(1);
                CqlType::Map(Box::new(a.remove(0)), Box::new(v))
            }
            "TupleType" => CqlType::Tuple(self.args()?),
            "FrozenType" => CqlType::Frozen(Box::new(self.one_arg()?)),
            "ReversedType" => CqlType::Reversed(Box::new(self.one_arg()?)),
            "CompositeType" => CqlType::Composite(self.args()?),
            "UserType" => self.user_type()?,
            _ => {
                // A class of Cassandra's own marshal package (or a bare name, which Cassandra resolves
                // there) that is not decoded above would be read with the wrong layout (a fixed-length
                // `VectorType`, or a damaged name such as `Int32Typd`): refused. Only a well-formed class
                // of another package is a custom type, whose values are length-prefixed blobs.
                if !is_custom_class(&full) {
                    return Err(TypeParseError {
                        input: self.s.to_string(),
                        at: self.pos - full.len(),
                        message: format!(
                            "unknown type class {full:?} (not a Cassandra marshal type this reader \
                             decodes, nor a custom type's fully qualified class name)"
                        ),
                    });
                }
                let start = self.pos - full.len();
                if self.s[self.pos..].starts_with('(') {
                    let mut depth = 0usize;
                    for (i, c) in self.s[self.pos..].char_indices() {
                        match c {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    self.pos += i + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                CqlType::Custom(self.s[start..self.pos].to_string())
            }
        })
    }

    /// `UserType(keyspace,hexname,hexfield:type,...)`.
    fn user_type(&mut self) -> Result<CqlType, TypeParseError> {
        self.expect('(')?;
        let keyspace = self.ident().to_string();
        self.expect(',')?;
        let hex_name = self.ident().to_string();
        let name =
            unhex(&hex_name).ok_or_else(|| self.error("UDT name is not hex-encoded UTF-8"))?;
        let mut fields = Vec::new();
        while self.eat(',') {
            let hex_field = self.ident().to_string();
            let field = unhex(&hex_field)
                .ok_or_else(|| self.error("UDT field name is not hex-encoded UTF-8"))?;
            self.expect(':')?;
            fields.push((field, self.parse()?));
        }
        self.expect(')')?;
        Ok(CqlType::Udt(Box::new(UserType {
            keyspace,
            name,
            fields,
        })))
    }
}

/// Whether `class` names a custom type: a syntactically valid fully qualified Java class name
/// (`com.example.MyType`: dot-separated identifiers, at least a package and a class) outside Cassandra's
/// marshal package. Only a class of another package can be a custom type Cassandra loaded by name.
fn is_custom_class(class: &str) -> bool {
    if class.starts_with(MARSHAL_PREFIX) || class.starts_with("org.apache.cassandra.") {
        return false;
    }
    let mut segments = 0;
    for segment in class.split('.') {
        let mut chars = segment.chars();
        let starts_well = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
        if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

struct CqlParser<'s, 'u> {
    t: Text<'s>,
    udt: &'u dyn Fn(&str) -> Option<UserType>,
}

impl<'s> std::ops::Deref for CqlParser<'s, '_> {
    type Target = Text<'s>;
    fn deref(&self) -> &Text<'s> {
        &self.t
    }
}

impl std::ops::DerefMut for CqlParser<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.t
    }
}

impl CqlParser<'_, '_> {
    fn name(&mut self) -> Result<String, TypeParseError> {
        self.skip_ws();
        if self.s[self.pos..].starts_with('"') {
            let rest = &self.s[self.pos + 1..];
            let end = rest
                .find('"')
                .ok_or_else(|| self.error("unterminated quoted name"))?;
            let n = rest[..end].to_string();
            self.pos += end + 2;
            return Ok(n);
        }
        let start = self.pos;
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(self.error("expected a type name"));
        }
        Ok(self.s[start..self.pos].to_ascii_lowercase())
    }

    fn params(&mut self, n: usize) -> Result<Vec<CqlType>, TypeParseError> {
        self.expect('<')?;
        let mut out = vec![self.parse()?];
        while self.eat(',') {
            out.push(self.parse()?);
        }
        self.expect('>')?;
        if n != 0 && out.len() != n {
            return Err(self.error(&format!("expected {n} type parameter(s)")));
        }
        Ok(out)
    }

    fn parse(&mut self) -> Result<CqlType, TypeParseError> {
        let quoted = {
            self.skip_ws();
            self.s[self.pos..].starts_with('"')
        };
        let name = self.name()?;
        if quoted {
            return self.lookup_udt(&name);
        }
        Ok(match name.as_str() {
            "ascii" => CqlType::Ascii,
            "bigint" => CqlType::BigInt,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "counter" => CqlType::Counter,
            "date" => CqlType::Date,
            "decimal" => CqlType::Decimal,
            "double" => CqlType::Double,
            "duration" => CqlType::Duration,
            "float" => CqlType::Float,
            "inet" => CqlType::Inet,
            "int" => CqlType::Int,
            "smallint" => CqlType::SmallInt,
            "text" | "varchar" => CqlType::Text,
            "time" => CqlType::Time,
            "timestamp" => CqlType::Timestamp,
            "timeuuid" => CqlType::TimeUuid,
            "tinyint" => CqlType::TinyInt,
            "uuid" => CqlType::Uuid,
            "varint" => CqlType::Varint,
            "list" => CqlType::List(Box::new(self.params(1)?.remove(0))),
            "set" => CqlType::Set(Box::new(self.params(1)?.remove(0))),
            "map" => {
                let mut p = self.params(2)?;
                let v = p.remove(1);
                CqlType::Map(Box::new(p.remove(0)), Box::new(v))
            }
            "tuple" => CqlType::Tuple(self.params(0)?),
            "frozen" => CqlType::Frozen(Box::new(self.params(1)?.remove(0))),
            other => self.lookup_udt(other)?,
        })
    }

    fn lookup_udt(&self, name: &str) -> Result<CqlType, TypeParseError> {
        let short = name.rsplit('.').next().unwrap_or(name);
        (self.udt)(short)
            .map(|u| CqlType::Udt(Box::new(u)))
            .ok_or_else(|| self.error(&format!("unknown type {name:?} (no CREATE TYPE for it)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marshal_strings() {
        let t = CqlType::from_marshal(
            "org.apache.cassandra.db.marshal.MapType(org.apache.cassandra.db.marshal.UTF8Type,org.apache.cassandra.db.marshal.Int32Type)",
        )
        .unwrap();
        assert_eq!(
            t,
            CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Int))
        );
        assert!(t.is_multi_cell());
        let f = CqlType::from_marshal("org.apache.cassandra.db.marshal.FrozenType(org.apache.cassandra.db.marshal.ListType(org.apache.cassandra.db.marshal.Int32Type))").unwrap();
        assert!(!f.is_multi_cell());
        assert_eq!(f.to_string(), "frozen<list<int>>");
        let r = CqlType::from_marshal("org.apache.cassandra.db.marshal.ReversedType(org.apache.cassandra.db.marshal.TimestampType)").unwrap();
        assert_eq!(r.fixed_length(), Some(8));
        assert_eq!(r.base(), &CqlType::Timestamp);
    }

    #[test]
    fn parses_user_types() {
        let s = "org.apache.cassandra.db.marshal.UserType(ks,61646472657373,737472656574:org.apache.cassandra.db.marshal.UTF8Type,7a6970:org.apache.cassandra.db.marshal.Int32Type)";
        let t = CqlType::from_marshal(s).unwrap();
        let CqlType::Udt(u) = &t else { panic!("{t:?}") };
        assert_eq!(u.name, "address");
        assert_eq!(u.fields[0].0, "street");
        assert_eq!(u.fields[1], ("zip".to_string(), CqlType::Int));
        assert_eq!(t.to_marshal(), s);
    }

    #[test]
    fn marshal_round_trips() {
        for s in [
            "org.apache.cassandra.db.marshal.CompositeType(org.apache.cassandra.db.marshal.UTF8Type,org.apache.cassandra.db.marshal.Int32Type)",
            "org.apache.cassandra.db.marshal.TupleType(org.apache.cassandra.db.marshal.Int32Type,org.apache.cassandra.db.marshal.DurationType)",
            "org.apache.cassandra.db.marshal.SetType(org.apache.cassandra.db.marshal.InetAddressType)",
        ] {
            assert_eq!(CqlType::from_marshal(s).unwrap().to_marshal(), s);
        }
    }

    #[test]
    fn parses_cql_types() {
        let none = |_: &str| None;
        let t = CqlType::from_cql("map<text, frozen<list<int>>>", &none).unwrap();
        assert_eq!(t.to_string(), "map<text, frozen<list<int>>>");
        assert_eq!(CqlType::from_cql("VARCHAR", &none).unwrap(), CqlType::Text);
        let err = CqlType::from_cql("address", &none).unwrap_err();
        assert!(err.message.contains("address"));
        let addr = |n: &str| {
            (n == "address").then(|| UserType {
                keyspace: "ks".into(),
                name: "address".into(),
                fields: vec![("zip".into(), CqlType::Int)],
            })
        };
        assert!(matches!(
            CqlType::from_cql("frozen<address>", &addr).unwrap(),
            CqlType::Frozen(_)
        ));
    }

    #[test]
    fn bad_strings_are_errors_not_panics() {
        for s in [
            "",
            "org.apache.cassandra.db.marshal.MapType(",
            "ListType(UTF8Type,UTF8Type)",
            "UserType(ks,zz)",
            "MapType(UTF8Type)",
        ] {
            assert!(CqlType::from_marshal(s).is_err(), "{s}");
        }
    }

    #[test]
    fn unknown_marshal_classes_are_errors_and_custom_classes_are_kept() {
        for s in [
            "org.apache.cassandra.db.marshal.Int32Typd",
            "Int32Typd",
            "org.apache.cassandra.db.marshal.VectorType(org.apache.cassandra.db.marshal.FloatType,3)",
            "org.apache.cassandra.db.marshal.ListType(org.apache.cassandra.db.marshal.Int32Typd)",
            "com.example.",
            "com..Bad",
            "9com.example.T",
        ] {
            let err = CqlType::from_marshal(s).unwrap_err();
            let class = s
                .trim_start_matches("org.apache.cassandra.db.marshal.ListType(")
                .split(['(', ')'])
                .next()
                .unwrap();
            assert!(err.to_string().contains(class), "{s}: {err}");
        }
        for s in ["com.example.MyType", "com.example.Geo$Point(x,y)"] {
            assert_eq!(
                CqlType::from_marshal(s).unwrap(),
                CqlType::Custom(s.to_string())
            );
        }
    }
}
