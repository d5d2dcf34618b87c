//! Table schemas. Column names and types come from Statistics.db's serialization header; key column
//! names come from a `schema.cql` (snapshot layout) or `--schema FILE` with Cassandra's CREATE TABLE /
//! CREATE TYPE statements. Without one, key columns are named `pk0, pk1…` and `ck0, ck1…`.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::statistics::SerializationHeader;
use crate::types::{CqlType, UserType};

/// Where a column lives in a CQL row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    PartitionKey,
    Clustering,
    Static,
    Regular,
}

/// One column: its name, type, kind and index among the columns of its kind (Data.db order).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    #[serde(serialize_with = "display")]
    pub ty: CqlType,
    pub kind: ColumnKind,
    pub index: usize,
    /// Clustering column in DESC order.
    pub reversed: bool,
}

fn display<S: serde::Serializer>(t: &CqlType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// The columns of a table, each kind in Data.db order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSchema {
    pub keyspace: Option<String>,
    pub table: Option<String>,
    pub partition_key: Vec<Column>,
    pub clustering: Vec<Column>,
    pub statics: Vec<Column>,
    pub regulars: Vec<Column>,
}

impl TableSchema {
    /// Builds the schema of an SSTable from its header, naming key columns from `cql` when given.
    /// Types always come from the header: they are what the data was written with.
    pub fn from_header(
        h: &SerializationHeader,
        cql: Option<&CqlTable>,
    ) -> std::result::Result<TableSchema, String> {
        let pk_types: Vec<CqlType> = match &h.key_type {
            CqlType::Composite(ts) => ts.clone(),
            t => vec![t.clone()],
        };
        let (pk_names, ck_names): (Vec<String>, Vec<(String, bool)>) = match cql {
            Some(t) => {
                if t.partition_key.len() != pk_types.len() {
                    return Err(format!(
                        "schema of {} has {} partition key column(s), the SSTable has {}",
                        t.name,
                        t.partition_key.len(),
                        pk_types.len()
                    ));
                }
                if t.clustering.len() != h.clustering_types.len() {
                    return Err(format!(
                        "schema of {} has {} clustering column(s), the SSTable has {}",
                        t.name,
                        t.clustering.len(),
                        h.clustering_types.len()
                    ));
                }
                (t.partition_key.clone(), t.clustering.clone())
            }
            None => (
                (0..pk_types.len()).map(|i| format!("pk{i}")).collect(),
                h.clustering_types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("ck{i}"), matches!(t, CqlType::Reversed(_))))
                    .collect(),
            ),
        };
        let cols = |v: &[(String, CqlType)], kind| -> Vec<Column> {
            v.iter()
                .enumerate()
                .map(|(index, (name, ty))| Column {
                    name: name.clone(),
                    ty: ty.clone(),
                    kind,
                    index,
                    reversed: false,
                })
                .collect()
        };
        Ok(TableSchema {
            keyspace: cql.and_then(|t| t.keyspace.clone()),
            table: cql.map(|t| t.name.clone()),
            partition_key: pk_types
                .into_iter()
                .zip(pk_names)
                .enumerate()
                .map(|(index, (ty, name))| Column {
                    name,
                    ty,
                    kind: ColumnKind::PartitionKey,
                    index,
                    reversed: false,
                })
                .collect(),
            clustering: h
                .clustering_types
                .iter()
                .zip(ck_names)
                .enumerate()
                .map(|(index, (ty, (name, desc)))| Column {
                    name,
                    ty: ty.clone(),
                    kind: ColumnKind::Clustering,
                    index,
                    reversed: desc || matches!(ty, CqlType::Reversed(_)),
                })
                .collect(),
            statics: cols(&h.static_columns, ColumnKind::Static),
            regulars: cols(&h.regular_columns, ColumnKind::Regular),
        })
    }

    /// Columns in `SELECT *` order: partition key, clustering, then static and regular columns by name.
    pub fn select_order(&self) -> Vec<&Column> {
        let mut rest: Vec<&Column> = self.statics.iter().chain(&self.regulars).collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        self.partition_key
            .iter()
            .chain(&self.clustering)
            .chain(rest)
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.partition_key
            .iter()
            .chain(&self.clustering)
            .chain(&self.statics)
            .chain(&self.regulars)
            .find(|c| c.name == name)
    }

    /// Whether two SSTables of one table agree (same columns and types).
    pub fn compatible_with(&self, other: &TableSchema) -> bool {
        self.partition_key == other.partition_key && self.clustering == other.clustering
    }
}

/// A CREATE TABLE statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlTable {
    pub keyspace: Option<String>,
    pub name: String,
    /// (name, type, static) in declaration order.
    pub columns: Vec<(String, CqlType, bool)>,
    pub partition_key: Vec<String>,
    /// (name, DESC) in clustering order.
    pub clustering: Vec<(String, bool)>,
}

/// The CREATE TABLE and CREATE TYPE statements of a schema file; other statements are ignored.
#[derive(Debug, Clone, Default)]
pub struct CqlSchema {
    pub tables: Vec<CqlTable>,
    pub types: Vec<UserType>,
}

impl CqlSchema {
    /// Reads and parses a schema file.
    pub fn read(path: &std::path::Path) -> Result<CqlSchema> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        CqlSchema::parse(&text, &path.display().to_string())
    }

    /// The table named `name` (without keyspace), or the only table when `name` is `None`.
    pub fn table(&self, name: Option<&str>) -> Option<&CqlTable> {
        match name {
            Some(n) => self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(n)),
            None if self.tables.len() == 1 => self.tables.first(),
            None => None,
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<CqlSchema> {
        let tokens = tokenize(text, origin)?;
        let mut p = Parser {
            t: &tokens,
            i: 0,
            origin,
        };
        let mut raw_types: Vec<RawType> = Vec::new();
        let mut raw_tables = Vec::new();
        while !p.done() {
            if p.kw("create") {
                if p.kw("type") {
                    p.if_not_exists();
                    let (ks, name) = p.qualified_name()?;
                    p.sym('(')?;
                    let mut fields = Vec::new();
                    loop {
                        let f = p.name()?;
                        let (ty, at) = p.type_text()?;
                        fields.push((f, ty, at));
                        if p.sym_opt(')') {
                            break;
                        }
                        p.sym(',')?;
                    }
                    raw_types.push((ks, name, fields));
                    p.skip_statement();
                    continue;
                }
                if p.kw("table") || (p.kw("columnfamily")) {
                    p.if_not_exists();
                    raw_tables.push(p.table_body()?);
                    continue;
                }
            }
            p.skip_statement();
        }
        // Resolve UDTs (which may nest) by name, then table column types.
        let mut types: HashMap<String, UserType> = HashMap::new();
        let mut pending = raw_types;
        let mut progress = true;
        while !pending.is_empty() && progress {
            progress = false;
            let mut still = Vec::new();
            for (ks, name, fields) in pending {
                let lookup = |n: &str| types.get(n).cloned();
                let resolved: std::result::Result<Vec<_>, _> = fields
                    .iter()
                    .map(|(f, ty, _)| CqlType::from_cql(ty, &lookup).map(|t| (f.clone(), t)))
                    .collect();
                match resolved {
                    Ok(fields) => {
                        types.insert(
                            name.clone(),
                            UserType {
                                keyspace: ks.clone().unwrap_or_default(),
                                name: name.clone(),
                                fields,
                            },
                        );
                        progress = true;
                    }
                    Err(_) => still.push((ks, name, fields)),
                }
            }
            pending = still;
        }
        if let Some((_, name, fields)) = pending.first() {
            let lookup = |n: &str| types.get(n).cloned();
            for (_, ty, at) in fields {
                if let Err(e) = CqlType::from_cql(ty, &lookup) {
                    return Err(schema_error(
                        origin,
                        at,
                        format!("in type {name}: {}", e.message),
                    ));
                }
            }
        }
        let lookup = |n: &str| types.get(n).cloned();
        let mut tables = Vec::new();
        for rt in raw_tables {
            let mut columns = Vec::new();
            for (name, ty, is_static, at) in rt.columns {
                let t = CqlType::from_cql(&ty, &lookup)
                    .map_err(|e| schema_error(origin, &at, e.message))?;
                columns.push((name, t, is_static));
            }
            for k in rt
                .partition_key
                .iter()
                .chain(rt.clustering.iter().map(|(n, _)| n))
            {
                if !columns.iter().any(|(n, _, _)| n == k) {
                    return Err(schema_error(
                        origin,
                        &rt.at,
                        format!("primary key column {k:?} is not a column of {}", rt.name),
                    ));
                }
            }
            tables.push(CqlTable {
                keyspace: rt.keyspace,
                name: rt.name,
                columns,
                partition_key: rt.partition_key,
                clustering: rt.clustering,
            });
        }
        Ok(CqlSchema {
            tables,
            types: types.into_values().collect(),
        })
    }
}

fn schema_error(origin: &str, at: &Tok, message: String) -> Error {
    Error::Schema {
        origin: origin.to_string(),
        line: at.line,
        column: at.col,
        message,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokKind {
    Word,
    Quoted,
    Str,
    Sym(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    kind: TokKind,
    text: String,
    line: usize,
    col: usize,
}

fn tokenize(text: &str, origin: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, c);
        } else if (c == '-' && chars.get(i + 1) == Some(&'-'))
            || (c == '/' && chars.get(i + 1) == Some(&'/'))
        {
            while i < chars.len() && chars[i] != '\n' {
                let ch = chars[i];
                advance(&mut i, &mut line, &mut col, ch);
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                let ch = chars[i];
                advance(&mut i, &mut line, &mut col, ch);
            }
            if i >= chars.len() {
                return Err(Error::Schema {
                    origin: origin.into(),
                    line: tl,
                    column: tc,
                    message: "unterminated comment".into(),
                });
            }
            advance(&mut i, &mut line, &mut col, '*');
            advance(&mut i, &mut line, &mut col, '/');
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            advance(&mut i, &mut line, &mut col, c);
            loop {
                match chars.get(i) {
                    None => {
                        return Err(Error::Schema {
                            origin: origin.into(),
                            line: tl,
                            column: tc,
                            message: format!("unterminated {c}…{c}"),
                        })
                    }
                    Some(&q) if q == c => {
                        advance(&mut i, &mut line, &mut col, q);
                        if chars.get(i) == Some(&c) {
                            s.push(c);
                            advance(&mut i, &mut line, &mut col, c);
                        } else {
                            break;
                        }
                    }
                    Some(&x) => {
                        s.push(x);
                        advance(&mut i, &mut line, &mut col, x);
                    }
                }
            }
            out.push(Tok {
                kind: if c == '"' {
                    TokKind::Quoted
                } else {
                    TokKind::Str
                },
                text: s,
                line: tl,
                col: tc,
            });
        } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '+' {
            let mut s = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | '+'))
            {
                s.push(chars[i]);
                let ch = chars[i];
                advance(&mut i, &mut line, &mut col, ch);
            }
            out.push(Tok {
                kind: TokKind::Word,
                text: s,
                line: tl,
                col: tc,
            });
        } else {
            advance(&mut i, &mut line, &mut col, c);
            out.push(Tok {
                kind: TokKind::Sym(c),
                text: c.to_string(),
                line: tl,
                col: tc,
            });
        }
    }
    Ok(out)
}

/// A CREATE TYPE before its field types are resolved: keyspace, name, (field, type text, position).
type RawType = (Option<String>, String, Vec<(String, String, Tok)>);

struct RawTable {
    keyspace: Option<String>,
    name: String,
    columns: Vec<(String, String, bool, Tok)>,
    partition_key: Vec<String>,
    clustering: Vec<(String, bool)>,
    at: Tok,
}

struct Parser<'t> {
    t: &'t [Tok],
    i: usize,
    origin: &'t str,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.t.len()
    }

    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn here(&self) -> Tok {
        self.peek().cloned().unwrap_or_else(|| {
            self.t.last().cloned().unwrap_or(Tok {
                kind: TokKind::Sym(' '),
                text: String::new(),
                line: 1,
                col: 1,
            })
        })
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        let at = self.here();
        let found = if self.done() {
            "end of file".to_string()
        } else {
            format!("{:?}", at.text)
        };
        schema_error(self.origin, &at, format!("{}, found {found}", msg.into()))
    }

    fn kw(&mut self, k: &str) -> bool {
        match self.peek() {
            Some(t) if t.kind == TokKind::Word && t.text.eq_ignore_ascii_case(k) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    fn sym_opt(&mut self, c: char) -> bool {
        match self.peek() {
            Some(t) if t.kind == TokKind::Sym(c) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    fn sym(&mut self, c: char) -> Result<()> {
        if self.sym_opt(c) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{c}'")))
        }
    }

    fn if_not_exists(&mut self) {
        let save = self.i;
        if !(self.kw("if") && self.kw("not") && self.kw("exists")) {
            self.i = save;
        }
    }

    fn name(&mut self) -> Result<String> {
        match self.peek() {
            Some(t) if t.kind == TokKind::Quoted => {
                let n = t.text.clone();
                self.i += 1;
                Ok(n)
            }
            Some(t) if t.kind == TokKind::Word => {
                let n = t.text.to_ascii_lowercase();
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.err("expected a name")),
        }
    }

    fn qualified_name(&mut self) -> Result<(Option<String>, String)> {
        let at = self.here();
        if at.kind == TokKind::Word && at.text.contains('.') {
            self.i += 1;
            let lower = at.text.to_ascii_lowercase();
            let (ks, n) = lower.split_once('.').unwrap_or(("", &lower));
            return Ok((Some(ks.to_string()), n.to_string()));
        }
        let first = self.name()?;
        if self.sym_opt('.') {
            let second = self.name()?;
            return Ok((Some(first), second));
        }
        // A quoted keyspace followed by `."table"` tokenizes as Quoted, Word(".x") or Sym('.').
        if let Some(t) = self.peek() {
            if t.kind == TokKind::Word && t.text.starts_with('.') {
                let n = t.text[1..].to_ascii_lowercase();
                self.i += 1;
                return Ok((Some(first), n));
            }
        }
        Ok((None, first))
    }

    /// Collects a type's text up to a ',' or ')' at depth 0 (or STATIC / PRIMARY).
    fn type_text(&mut self) -> Result<(String, Tok)> {
        let at = self.here();
        let mut s = String::new();
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            match &t.kind {
                TokKind::Sym('<') => depth += 1,
                TokKind::Sym('>') => depth -= 1,
                TokKind::Sym(',') | TokKind::Sym(')') if depth == 0 => break,
                TokKind::Word
                    if depth == 0
                        && !s.is_empty()
                        && (t.text.eq_ignore_ascii_case("static")
                            || t.text.eq_ignore_ascii_case("primary")) =>
                {
                    break
                }
                TokKind::Sym(';') => break,
                _ => {}
            }
            if t.kind == TokKind::Quoted {
                s.push('"');
                s.push_str(&t.text);
                s.push('"');
            } else {
                s.push_str(&t.text);
            }
            self.i += 1;
        }
        if s.is_empty() {
            return Err(self.err("expected a type"));
        }
        Ok((s, at))
    }

    fn name_list(&mut self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        self.sym('(')?;
        if self.sym_opt(')') {
            return Ok(v);
        }
        loop {
            v.push(self.name()?);
            if self.sym_opt(')') {
                return Ok(v);
            }
            self.sym(',')?;
        }
    }

    fn table_body(&mut self) -> Result<RawTable> {
        let at = self.here();
        let (keyspace, name) = self.qualified_name()?;
        self.sym('(')?;
        let mut columns = Vec::new();
        let mut partition_key = Vec::new();
        let mut clustering: Vec<(String, bool)> = Vec::new();
        loop {
            if self.kw("primary") {
                if !self.kw("key") {
                    return Err(self.err("expected KEY after PRIMARY"));
                }
                self.sym('(')?;
                if self
                    .peek()
                    .map(|t| t.kind == TokKind::Sym('('))
                    .unwrap_or(false)
                {
                    partition_key = self.name_list()?;
                } else {
                    partition_key = vec![self.name()?];
                }
                while self.sym_opt(',') {
                    clustering.push((self.name()?, false));
                }
                self.sym(')')?;
            } else {
                let col_at = self.here();
                let cname = self.name()?;
                let (ty, _) = self.type_text()?;
                let mut is_static = false;
                loop {
                    if self.kw("static") {
                        is_static = true;
                    } else if self.kw("primary") {
                        if !self.kw("key") {
                            return Err(self.err("expected KEY after PRIMARY"));
                        }
                        partition_key = vec![cname.clone()];
                    } else {
                        break;
                    }
                }
                columns.push((cname, ty, is_static, col_at));
            }
            if self.sym_opt(')') {
                break;
            }
            self.sym(',')?;
        }
        if partition_key.is_empty() {
            return Err(schema_error(
                self.origin,
                &at,
                format!("table {name} has no PRIMARY KEY"),
            ));
        }
        // WITH options: only CLUSTERING ORDER BY matters here.
        while !self.done() && !self.sym_opt(';') {
            if self.kw("clustering") {
                if self.kw("order") && self.kw("by") {
                    self.sym('(')?;
                    loop {
                        let n = self.name()?;
                        let desc = if self.kw("desc") {
                            true
                        } else {
                            self.kw("asc");
                            false
                        };
                        if let Some(c) = clustering.iter_mut().find(|(cn, _)| *cn == n) {
                            c.1 = desc;
                        }
                        if self.sym_opt(')') {
                            break;
                        }
                        self.sym(',')?;
                    }
                }
            } else {
                self.i += 1;
            }
        }
        Ok(RawTable {
            keyspace,
            name,
            columns,
            partition_key,
            clustering,
            at,
        })
    }

    fn skip_statement(&mut self) {
        while !self.done() {
            let t = &self.t[self.i];
            self.i += 1;
            if t.kind == TokKind::Sym(';') {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        CREATE KEYSPACE tracking WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'};
        -- a comment
        CREATE TYPE IF NOT EXISTS tracking.geo (lat double, "Lon" double);
        CREATE TABLE IF NOT EXISTS tracking.events (
          app_id text, actor_id text, ts timestamp, event_id timeuuid,
          name text, ip inet, props map<text,text>, where_ frozen<geo>, s int static,
          PRIMARY KEY ((app_id, actor_id), ts, event_id))
          WITH CLUSTERING ORDER BY (ts DESC, event_id ASC) AND default_time_to_live = 5184000;
        INSERT INTO tracking.events (app_id) VALUES ('x;y');
    "#;

    #[test]
    fn parses_tables_and_types() {
        let s = CqlSchema::parse(SCHEMA, "schema.cql").unwrap();
        let t = s.table(Some("events")).unwrap();
        assert_eq!(t.keyspace.as_deref(), Some("tracking"));
        assert_eq!(t.partition_key, vec!["app_id", "actor_id"]);
        assert_eq!(
            t.clustering,
            vec![("ts".to_string(), true), ("event_id".to_string(), false)]
        );
        let props = t.columns.iter().find(|c| c.0 == "props").unwrap();
        assert_eq!(props.1.to_string(), "map<text, text>");
        let geo = t.columns.iter().find(|c| c.0 == "where_").unwrap();
        let CqlType::Frozen(inner) = &geo.1 else {
            panic!()
        };
        let CqlType::Udt(u) = inner.as_ref() else {
            panic!()
        };
        assert_eq!(u.fields[1].0, "Lon");
        assert!(t.columns.iter().any(|c| c.0 == "s" && c.2));
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = CqlSchema::parse(
            "CREATE TABLE t (\n  a text,\n  b nosuchtype,\n  PRIMARY KEY (a));",
            "x.cql",
        )
        .unwrap_err();
        match err {
            Error::Schema {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((line, column), (3, 3), "{message}");
                assert!(message.contains("nosuchtype"));
            }
            e => panic!("{e}"),
        }
        let err = CqlSchema::parse("CREATE TABLE t (a text);", "x.cql").unwrap_err();
        assert!(err.to_string().contains("PRIMARY KEY"), "{err}");
        let err =
            CqlSchema::parse("CREATE TABLE t (a text, PRIMARY KEY (b));", "x.cql").unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
    }
}
