//! Row predicates: the `where` syntax of funnel definitions, compiled once into a tree that is
//! evaluated against a [`RowView`] without allocating.
//!
//! Syntax (a TOML inline table; several keys in one table are AND-ed):
//! ```toml
//! where = { "props.plan" = "pro" }                       # equality (also: props = { plan = "pro" })
//! where = { "props.plan" = ["pro", "team"] }             # an array means `in`
//! where = { "props.price" = { ">" = 10, "<=" = 100 } }   # operators: = != in not_in < <= > >= prefix
//! where = { referrer = { prefix = "https://ads." } }
//! where = { or = [ { name = "a" }, { name = "b" } ], not = { "props.test" = "1" } }
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use serde_json::json;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::DefinitionError;
use crate::row::{ColumnRef, RowView, Table, Value};

/// Where a predicate reads its value from.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A column of the row's table.
    Column(ColumnRef),
    /// A key of a `map<text,text>` column.
    Property {
        /// The map column.
        map: ColumnRef,
        /// The key.
        key: String,
    },
}

impl Field {
    /// The field's value in `row` (`Value::Null` when absent).
    pub fn get<'r, R: RowView + ?Sized>(&self, row: &'r R) -> Value<'r> {
        match self {
            Field::Column(c) => row.column(c),
            Field::Property { map, key } => match row.property(map, key) {
                Some(s) => Value::Str(s),
                None => Value::Null,
            },
        }
    }

    /// `column` or `map.key`, as written in definitions.
    pub fn display(&self) -> String {
        match self {
            Field::Column(c) => c.name.clone(),
            Field::Property { map, key } => format!("{}.{}", map.name, key),
        }
    }
}

/// A literal in a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text.
    Str(String),
    /// A number (integers and floats).
    Num(f64),
}

impl Literal {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Literal::Str(s) => json!(s),
            Literal::Num(n) => json!(n),
        }
    }
}

/// A comparison operator with its operand(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `=`
    Eq(Literal),
    /// `!=` (true when the value is missing)
    Ne(Literal),
    /// `in`
    In(Vec<Literal>),
    /// `not_in` (true when the value is missing)
    NotIn(Vec<Literal>),
    /// `<`
    Lt(Literal),
    /// `<=`
    Le(Literal),
    /// `>`
    Gt(Literal),
    /// `>=`
    Ge(Literal),
    /// `prefix`: text starts with
    Prefix(String),
}

/// A compiled predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Always true.
    True,
    /// A comparison of one field.
    Cmp(Field, Op),
    /// All of.
    And(Vec<Predicate>),
    /// Any of.
    Or(Vec<Predicate>),
    /// Negation.
    Not(Box<Predicate>),
}

/// Compares a value with a literal: text with text lexicographically, numbers numerically (text
/// values are parsed as numbers when the literal is a number). `None` when incomparable/missing.
fn compare(value: Value<'_>, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Null, _) => None,
        (Value::Str(s), Literal::Str(l)) => Some(s.cmp(l.as_str())),
        (Value::Str(s), Literal::Num(n)) => s.trim().parse::<f64>().ok()?.partial_cmp(n),
        (Value::Int(i), Literal::Num(n)) => (i as f64).partial_cmp(n),
        (Value::Float(f), Literal::Num(n)) => f.partial_cmp(n),
        (Value::Int(i), Literal::Str(l)) => (i as f64).partial_cmp(&l.trim().parse::<f64>().ok()?),
        (Value::Float(f), Literal::Str(l)) => f.partial_cmp(&l.trim().parse::<f64>().ok()?),
    }
}

impl Op {
    fn eval(&self, value: Value<'_>) -> bool {
        let is = |lit: &Literal, want: &[Ordering]| {
            compare(value, lit).is_some_and(|o| want.contains(&o))
        };
        match self {
            Op::Eq(l) => is(l, &[Ordering::Equal]),
            Op::Ne(l) => !is(l, &[Ordering::Equal]),
            Op::In(ls) => ls.iter().any(|l| is(l, &[Ordering::Equal])),
            Op::NotIn(ls) => !ls.iter().any(|l| is(l, &[Ordering::Equal])),
            Op::Lt(l) => is(l, &[Ordering::Less]),
            Op::Le(l) => is(l, &[Ordering::Less, Ordering::Equal]),
            Op::Gt(l) => is(l, &[Ordering::Greater]),
            Op::Ge(l) => is(l, &[Ordering::Greater, Ordering::Equal]),
            Op::Prefix(p) => matches!(value, Value::Str(s) if s.starts_with(p.as_str())),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let list =
            |ls: &[Literal]| serde_json::Value::Array(ls.iter().map(Literal::to_json).collect());
        match self {
            Op::Eq(l) => json!(["=", l.to_json()]),
            Op::Ne(l) => json!(["!=", l.to_json()]),
            Op::In(ls) => json!(["in", list(ls)]),
            Op::NotIn(ls) => json!(["not_in", list(ls)]),
            Op::Lt(l) => json!(["<", l.to_json()]),
            Op::Le(l) => json!(["<=", l.to_json()]),
            Op::Gt(l) => json!([">", l.to_json()]),
            Op::Ge(l) => json!([">=", l.to_json()]),
            Op::Prefix(p) => json!(["prefix", p]),
        }
    }
}

impl Predicate {
    /// Evaluates the predicate on a row.
    pub fn eval<R: RowView + ?Sized>(&self, row: &R) -> bool {
        match self {
            Predicate::True => true,
            Predicate::Cmp(field, op) => op.eval(field.get(row)),
            Predicate::And(ps) => ps.iter().all(|p| p.eval(row)),
            Predicate::Or(ps) => ps.iter().any(|p| p.eval(row)),
            Predicate::Not(p) => !p.eval(row),
        }
    }

    /// Calls `f` with every field the predicate compares, depth first (a field compared twice comes
    /// twice).
    pub fn for_each_field<'p>(&'p self, f: &mut impl FnMut(&'p Field)) {
        match self {
            Predicate::True => {}
            Predicate::Cmp(field, _) => f(field),
            Predicate::And(ps) | Predicate::Or(ps) => ps.iter().for_each(|p| p.for_each_field(f)),
            Predicate::Not(p) => p.for_each_field(f),
        }
    }

    /// AND of two predicates, flattening `True` and nested ANDs.
    pub fn and(self, other: Predicate) -> Predicate {
        match (self, other) {
            (Predicate::True, p) | (p, Predicate::True) => p,
            (Predicate::And(mut a), Predicate::And(b)) => {
                a.extend(b);
                Predicate::And(a)
            }
            (Predicate::And(mut a), p) => {
                a.push(p);
                Predicate::And(a)
            }
            (p, Predicate::And(mut b)) => {
                b.insert(0, p);
                Predicate::And(b)
            }
            (a, b) => Predicate::And(vec![a, b]),
        }
    }

    /// Canonical JSON form (part of the definition version hash).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Predicate::True => json!(true),
            Predicate::Cmp(Field::Column(c), op) => json!({"column": c.name, "op": op.to_json()}),
            Predicate::Cmp(Field::Property { map, key }, op) => {
                json!({"map": map.name, "key": key, "op": op.to_json()})
            }
            Predicate::And(ps) => {
                json!({"and": ps.iter().map(Predicate::to_json).collect::<Vec<_>>()})
            }
            Predicate::Or(ps) => {
                json!({"or": ps.iter().map(Predicate::to_json).collect::<Vec<_>>()})
            }
            Predicate::Not(p) => json!({"not": p.to_json()}),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => f.write_str(s),
            Literal::Num(n) => write!(f, "{n}"),
        }
    }
}

/// `a, b, c`.
fn list(f: &mut fmt::Formatter<'_>, ls: &[Literal]) -> fmt::Result {
    for (i, l) in ls.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{l}")?;
    }
    Ok(())
}

/// For people: `props.plan in (pro, team) and not (tracker = fb)`; `True` is empty.
impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, ps: &[Predicate], sep: &str| {
            for (i, p) in ps.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                match p {
                    Predicate::And(_) | Predicate::Or(_) => write!(f, "({p})")?,
                    _ => write!(f, "{p}")?,
                }
            }
            Ok(())
        };
        match self {
            Predicate::True => Ok(()),
            Predicate::Cmp(field, op) => {
                let field = field.display();
                match op {
                    Op::Eq(l) => write!(f, "{field} = {l}"),
                    Op::Ne(l) => write!(f, "{field} != {l}"),
                    Op::In(ls) => {
                        write!(f, "{field} in (")?;
                        list(f, ls)?;
                        f.write_str(")")
                    }
                    Op::NotIn(ls) => {
                        write!(f, "{field} not in (")?;
                        list(f, ls)?;
                        f.write_str(")")
                    }
                    Op::Lt(l) => write!(f, "{field} < {l}"),
                    Op::Le(l) => write!(f, "{field} <= {l}"),
                    Op::Gt(l) => write!(f, "{field} > {l}"),
                    Op::Ge(l) => write!(f, "{field} >= {l}"),
                    Op::Prefix(p) => write!(f, "{field} starts with {p}"),
                }
            }
            Predicate::And(ps) => joined(f, ps, " and "),
            Predicate::Or(ps) => joined(f, ps, " or "),
            Predicate::Not(p) => write!(f, "not ({p})"),
        }
    }
}

/// Column names per table; compiled predicates refer to columns by their position here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    names: [Vec<String>; 2],
}

impl Columns {
    /// The column named `name` of `table`, registered on first use.
    pub fn intern(&mut self, table: Table, name: &str) -> ColumnRef {
        let names = &mut self.names[table.index()];
        let id = match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.to_string());
                names.len() - 1
            }
        };
        ColumnRef {
            id: u16::try_from(id).unwrap_or(u16::MAX),
            name: name.to_string(),
        }
    }

    /// All column names of `table` that definitions use, indexed by `ColumnRef::id`.
    pub fn of(&self, table: Table) -> &[String] {
        &self.names[table.index()]
    }
}

/// Parses `where` tables; holds what error messages need.
pub(crate) struct WhereParser<'a> {
    pub text: &'a str,
    pub origin: &'a str,
    pub columns: &'a mut Columns,
    pub table: Table,
}

const OPERATORS: [&str; 9] = ["=", "!=", "in", "not_in", "<", "<=", ">", ">=", "prefix"];

impl WhereParser<'_> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> DefinitionError {
        DefinitionError::at(self.text, self.origin, span, msg)
    }

    /// Parses a `where` value (a table whose keys are AND-ed).
    pub fn parse(&mut self, value: &Spanned<DeValue<'_>>) -> Result<Predicate, DefinitionError> {
        match value.get_ref() {
            DeValue::Table(t) => self.table_pred(t),
            other => Err(self.err(
                value.span(),
                format!(
                    "a condition must be a table like {{ \"props.plan\" = \"pro\" }}, found {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn table_pred(&mut self, t: &DeTable<'_>) -> Result<Predicate, DefinitionError> {
        let mut parts = Vec::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            match key {
                "and" | "or" => {
                    let DeValue::Array(items) = v.get_ref() else {
                        return Err(self.err(
                            v.span(),
                            format!("`{key}` takes an array of conditions, e.g. {key} = [ {{ name = \"a\" }}, {{ name = \"b\" }} ]"),
                        ));
                    };
                    let mut subs = Vec::new();
                    for item in items.iter() {
                        subs.push(self.parse(item)?);
                    }
                    if subs.is_empty() {
                        return Err(
                            self.err(v.span(), format!("`{key}` needs at least one condition"))
                        );
                    }
                    parts.push(if key == "and" {
                        Predicate::And(subs)
                    } else {
                        Predicate::Or(subs)
                    });
                }
                "not" => parts.push(Predicate::Not(Box::new(self.parse(v)?))),
                _ => parts.push(self.field_pred(key, k.span(), v)?),
            }
        }
        Ok(match parts.len() {
            0 => Predicate::True,
            1 => parts.pop().unwrap_or(Predicate::True),
            _ => Predicate::And(parts),
        })
    }

    fn field(&mut self, path: &str, span: Range<usize>) -> Result<Field, DefinitionError> {
        match path.split_once('.') {
            Some((map, key)) if !map.is_empty() && !key.is_empty() => Ok(Field::Property {
                map: self.columns.intern(self.table, map),
                key: key.to_string(),
            }),
            Some(_) => Err(self.err(
                span,
                format!("bad field `{path}`: write `column` or `map_column.key`"),
            )),
            None if path.is_empty() => Err(self.err(span, "empty field name")),
            None => Ok(Field::Column(self.columns.intern(self.table, path))),
        }
    }

    fn field_pred(
        &mut self,
        path: &str,
        span: Range<usize>,
        v: &Spanned<DeValue<'_>>,
    ) -> Result<Predicate, DefinitionError> {
        match v.get_ref() {
            DeValue::Table(t) => {
                let all_ops = t
                    .iter()
                    .all(|(k, _)| OPERATORS.contains(&k.get_ref().as_ref()));
                if all_ops && !t.is_empty() {
                    let field = self.field(path, span)?;
                    let mut parts = Vec::new();
                    for (k, opv) in t.iter() {
                        let op = self.op(k.get_ref(), opv)?;
                        parts.push(Predicate::Cmp(field.clone(), op));
                    }
                    Ok(if parts.len() == 1 {
                        parts.pop().unwrap_or(Predicate::True)
                    } else {
                        Predicate::And(parts)
                    })
                } else if !path.contains('.') {
                    // `props = { plan = "pro" }`: keys of a map column.
                    let mut parts = Vec::new();
                    for (k, sub) in t.iter() {
                        if OPERATORS.contains(&k.get_ref().as_ref()) {
                            return Err(self.err(
                                k.span(),
                                format!(
                                    "cannot mix operator `{}` with map keys under `{path}`",
                                    k.get_ref()
                                ),
                            ));
                        }
                        let sub_path = format!("{path}.{}", k.get_ref());
                        parts.push(self.field_pred(&sub_path, k.span(), sub)?);
                    }
                    if parts.is_empty() {
                        return Err(self.err(span, format!("empty condition for `{path}`")));
                    }
                    Ok(if parts.len() == 1 {
                        parts.pop().unwrap_or(Predicate::True)
                    } else {
                        Predicate::And(parts)
                    })
                } else {
                    let unknown = t
                        .iter()
                        .find(|(k, _)| !OPERATORS.contains(&k.get_ref().as_ref()))
                        .map(|(k, _)| (k.get_ref().to_string(), k.span()));
                    let (name, sp) = unknown.unwrap_or_default();
                    Err(self.err(
                        sp,
                        format!(
                            "unknown operator `{name}` (use one of: {})",
                            OPERATORS.join(", ")
                        ),
                    ))
                }
            }
            DeValue::Array(_) => {
                let field = self.field(path, span)?;
                Ok(Predicate::Cmp(field, Op::In(self.literals(v)?)))
            }
            _ => {
                let field = self.field(path, span)?;
                Ok(Predicate::Cmp(field, Op::Eq(self.literal(v)?)))
            }
        }
    }

    fn op(&self, name: &str, v: &Spanned<DeValue<'_>>) -> Result<Op, DefinitionError> {
        Ok(match name {
            "=" => Op::Eq(self.literal(v)?),
            "!=" => Op::Ne(self.literal(v)?),
            "in" => Op::In(self.literals(v)?),
            "not_in" => Op::NotIn(self.literals(v)?),
            "<" => Op::Lt(self.literal(v)?),
            "<=" => Op::Le(self.literal(v)?),
            ">" => Op::Gt(self.literal(v)?),
            ">=" => Op::Ge(self.literal(v)?),
            "prefix" => match v.get_ref() {
                DeValue::String(s) => Op::Prefix(s.to_string()),
                other => {
                    return Err(self.err(
                        v.span(),
                        format!("`prefix` takes a string, found {}", other.type_str()),
                    ))
                }
            },
            _ => {
                return Err(self.err(
                    v.span(),
                    format!(
                        "unknown operator `{name}` (use one of: {})",
                        OPERATORS.join(", ")
                    ),
                ))
            }
        })
    }

    pub fn literal(&self, v: &Spanned<DeValue<'_>>) -> Result<Literal, DefinitionError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(Literal::Str(s.to_string())),
            DeValue::Boolean(b) => Ok(Literal::Str(b.to_string())),
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                    .map_err(|e| self.err(v.span(), format!("bad integer: {e}")))?;
                Ok(Literal::Num(n as f64))
            }
            DeValue::Float(f) => {
                let n: f64 = f
                    .as_str()
                    .replace('_', "")
                    .parse()
                    .map_err(|e| self.err(v.span(), format!("bad number: {e}")))?;
                Ok(Literal::Num(n))
            }
            other => Err(self.err(
                v.span(),
                format!("expected a string or a number, found {}", other.type_str()),
            )),
        }
    }

    fn literals(&self, v: &Spanned<DeValue<'_>>) -> Result<Vec<Literal>, DefinitionError> {
        match v.get_ref() {
            DeValue::Array(items) if !items.is_empty() => {
                items.iter().map(|i| self.literal(i)).collect()
            }
            DeValue::Array(_) => Err(self.err(
                v.span(),
                "an empty list matches nothing; remove the condition",
            )),
            other => Err(self.err(
                v.span(),
                format!(
                    "expected a list like [\"a\", \"b\"], found {}",
                    other.type_str()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::OwnedRow;

    fn compile(src: &str) -> Result<Predicate, DefinitionError> {
        let doc = DeTable::parse(src).unwrap();
        let (_, v) = doc.get_ref().iter().next().unwrap();
        let mut cols = Columns::default();
        WhereParser {
            text: src,
            origin: "t.toml",
            columns: &mut cols,
            table: Table::Events,
        }
        .parse(v)
    }

    fn row() -> OwnedRow {
        OwnedRow::event(
            1000,
            "purchase",
            &[
                ("plan", "pro"),
                ("price", "42.5"),
                ("ref", "https://ads.x/1"),
            ],
        )
    }

    #[test]
    fn operators_evaluate_as_documented() {
        let r = row();
        let cases = [
            (r#"w = { name = "purchase" }"#, true),
            (r#"w = { name = "install" }"#, false),
            (r#"w = { "props.plan" = ["pro", "team"] }"#, true),
            (r#"w = { props = { plan = "team" } }"#, false),
            (r#"w = { "props.plan" = { "!=" = "free" } }"#, true),
            (r#"w = { "props.missing" = { "!=" = "free" } }"#, true),
            (r#"w = { "props.missing" = "free" }"#, false),
            (r#"w = { "props.price" = { ">" = 10, "<=" = 42.5 } }"#, true),
            (r#"w = { "props.price" = { "<" = 42 } }"#, false),
            (r#"w = { "props.plan" = { "<" = 10 } }"#, false),
            (r#"w = { "props.ref" = { prefix = "https://ads." } }"#, true),
            (r#"w = { "props.plan" = { not_in = ["free"] } }"#, true),
            (
                r#"w = { or = [ { name = "a" }, { "props.plan" = "pro" } ] }"#,
                true,
            ),
            (
                r#"w = { and = [ { name = "purchase" }, { "props.plan" = "free" } ] }"#,
                false,
            ),
            (r#"w = { not = { name = "purchase" } }"#, false),
            (r#"w = { ts = { ">=" = 1000 } }"#, true),
        ];
        for (src, want) in cases {
            assert_eq!(compile(src).unwrap().eval(&r), want, "{src}");
        }
    }

    #[test]
    fn unknown_operator_is_reported_at_its_position() {
        let src = "w = { \"props.a\" = { like = \"x\" } }";
        let err = compile(src).unwrap_err();
        assert_eq!((err.line, err.column), (1, 21), "{err}");
        assert!(err.message.contains("like"), "{err}");
    }

    #[test]
    fn wrong_types_are_reported() {
        let err = compile("w = { a = { in = \"x\" } }").unwrap_err();
        assert!(err.message.contains("list"), "{err}");
        let err = compile("\n\nw = { a = { prefix = 3 } }").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(compile("w = { or = { a = 1 } }").is_err());
    }
}
