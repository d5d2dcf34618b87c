//! Cassandra 3.11 tables, one per CQL type plus all-types and iris (`cassandra-3.11-types`), dump to the
//! values of the INSERT statements in their `cql/*.cql` files (timeuuid `now()` aside). The statements
//! are parsed here, so the expectation is the fixture's own source, not a copy of our output.

mod common;

use std::collections::BTreeMap;

use common::{dump_with, shared};
use serde_json::Value;
use sstable_reader::{CqlSchema, ReadOptions};

/// A CQL literal as it appears in an INSERT.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(String),
    Word(String),
    Call(String, Vec<Lit>),
    Map(Vec<(Lit, Lit)>),
    Set(Vec<Lit>),
    List(Vec<Lit>),
    Tuple(Vec<Lit>),
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> u8 {
        self.ws();
        self.s.get(self.i).copied().unwrap_or(0)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == c {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn list(&mut self, close: u8) -> Vec<Lit> {
        let mut v = Vec::new();
        if self.eat(close) {
            return v;
        }
        loop {
            v.push(self.lit());
            if self.eat(close) {
                return v;
            }
            assert!(self.eat(b','), "expected , at {}", self.i);
        }
    }
    fn lit(&mut self) -> Lit {
        match self.peek() {
            b'\'' => {
                self.i += 1;
                let start = self.i;
                while self.s[self.i] != b'\'' {
                    self.i += 1;
                }
                self.i += 1;
                Lit::Str(String::from_utf8(self.s[start..self.i - 1].to_vec()).unwrap())
            }
            b'[' => {
                self.i += 1;
                Lit::List(self.list(b']'))
            }
            b'(' => {
                self.i += 1;
                Lit::Tuple(self.list(b')'))
            }
            b'{' => {
                self.i += 1;
                let mut pairs = Vec::new();
                let mut items = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        let k = self.lit();
                        if self.eat(b':') {
                            pairs.push((k, self.lit()));
                        } else {
                            items.push(k);
                        }
                        if self.eat(b'}') {
                            break;
                        }
                        assert!(self.eat(b','));
                    }
                }
                if pairs.is_empty() {
                    Lit::Set(items)
                } else {
                    Lit::Map(pairs)
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b",)}]:( \n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let w = String::from_utf8(self.s[start..self.i].to_vec()).unwrap();
                if self.peek() == b'(' {
                    self.i += 1;
                    return Lit::Call(w, self.list(b')'));
                }
                if w.parse::<f64>().is_ok() {
                    Lit::Num(w)
                } else {
                    Lit::Word(w)
                }
            }
        }
    }
}

/// (table, column names, values) of every INSERT in a .cql file.
fn inserts(file: &str) -> Vec<(String, Vec<String>, Vec<Lit>)> {
    let text =
        std::fs::read_to_string(shared(&format!("cassandra-3.11-types/cql/{file}"))).unwrap();
    let mut out = Vec::new();
    for stmt in text.split(';') {
        let stmt: String = stmt
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let Some(at) = stmt.find("INSERT INTO") else {
            continue;
        };
        let rest = &stmt[at + "INSERT INTO".len()..];
        let open = rest.find('(').unwrap();
        let table = rest[..open].trim().rsplit('.').next().unwrap().to_string();
        let close = rest.find(')').unwrap();
        let cols = rest[open + 1..close]
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let values_at = rest.find("VALUES").unwrap() + "VALUES".len();
        let mut p = P {
            s: &rest.as_bytes()[values_at..],
            i: 0,
        };
        let Lit::Tuple(values) = p.lit() else {
            panic!("VALUES tuple")
        };
        out.push((table, cols, values));
    }
    out
}

/// Does our JSON `got` show the literal `lit`?
fn matches(lit: &Lit, got: &Value) -> bool {
    match (lit, got) {
        (Lit::Call(f, _), _) if f == "now" => got.is_string(),
        (Lit::Call(f, args), Value::String(s)) if f == "intAsBlob" => {
            let Lit::Num(n) = &args[0] else { return false };
            *s == format!("0x{:08x}", n.parse::<i32>().unwrap())
        }
        (Lit::Num(n), Value::Number(x)) => {
            (n.parse::<f64>().unwrap() - x.as_f64().unwrap()).abs()
                < 1e-6 * n.parse::<f64>().unwrap().abs().max(1.0)
        }
        (Lit::Word(w), Value::Bool(b)) => w.eq_ignore_ascii_case(&b.to_string()),
        (Lit::Word(w), Value::String(s)) => {
            w == s || (w.contains('-') && w.eq_ignore_ascii_case(s))
        }
        (Lit::Str(e), Value::String(s)) => {
            if e == s {
                return true;
            }
            // Timestamps print with milliseconds, times with nanoseconds.
            let ts = |x: &str| {
                chrono::DateTime::parse_from_rfc3339(x)
                    .ok()
                    .map(|t| t.timestamp_millis())
            };
            if let (Some(a), Some(b)) = (ts(e), ts(s)) {
                return a == b;
            }
            if let Ok(a) =
                chrono::DateTime::parse_from_str(&format!("{e} +0000"), "%Y-%m-%dT%H:%M:%S%.3f %z")
            {
                return ts(s) == Some(a.timestamp_millis());
            }
            s.starts_with(e.as_str()) && s[e.len()..].trim_start_matches(['.', '0']).is_empty()
        }
        (Lit::List(items) | Lit::Tuple(items), Value::Array(a)) => {
            items.len() == a.len() && items.iter().zip(a).all(|(l, g)| matches(l, g))
        }
        (Lit::Set(items), Value::Array(a)) => {
            let mut want: Vec<f64> = items
                .iter()
                .map(|l| {
                    if let Lit::Num(n) = l {
                        n.parse().unwrap()
                    } else {
                        f64::NAN
                    }
                })
                .collect();
            want.sort_by(f64::total_cmp);
            let got: Vec<f64> = a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            want == got // sets come back in element order
        }
        (Lit::Map(pairs), Value::Object(m)) => {
            pairs.len() == m.len()
                && pairs.iter().all(|(k, v)| {
                    let key = match k {
                        Lit::Num(n) | Lit::Str(n) | Lit::Word(n) => n.clone(),
                        _ => return false,
                    };
                    m.get(&key).is_some_and(|g| matches(v, g))
                })
        }
        _ => false,
    }
}

fn table_dir(keyspace: &str, table: &str) -> std::path::PathBuf {
    let ks = shared(&format!("cassandra-3.11-types/data/{keyspace}"));
    std::fs::read_dir(&ks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{table}-"))
        })
        .unwrap_or_else(|| panic!("no table dir for {table}"))
}

fn schema(file: &str) -> CqlSchema {
    CqlSchema::read(&shared(&format!("cassandra-3.11-types/cql/{file}"))).unwrap()
}

#[test]
fn one_table_per_type() {
    let schema = schema("testtypes1.cql");
    let statements = inserts("testtypes1.cql");
    assert!(statements.len() >= 24, "{}", statements.len());
    for (table, cols, values) in statements {
        let rows = dump_with(
            &table_dir("testtypes1", &table),
            Some(&schema),
            ReadOptions::default(),
            &[],
        )
        .unwrap();
        assert_eq!(rows.len(), 1, "{table}");
        for (c, v) in cols.iter().zip(&values) {
            assert!(
                matches(v, &rows[0][c]),
                "{table}.{c}: expected {v:?}, got {}",
                rows[0][c]
            );
        }
    }
}

#[test]
fn all_types_in_one_row() {
    let schema = schema("testalltypes.cql");
    let statements = inserts("testalltypes.cql");
    assert_eq!(statements.len(), 1);
    let (_, cols, values) = &statements[0];
    let rows = dump_with(
        &table_dir("testalltypes", "alltypes"),
        Some(&schema),
        ReadOptions::default(),
        &[],
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    for (c, v) in cols.iter().zip(values) {
        assert!(
            matches(v, &rows[0][c]),
            "{c}: expected {v:?}, got {}",
            rows[0][c]
        );
    }
    for c in ["listval", "mapval", "setval", "tupleval"] {
        assert_eq!(rows[0][c], Value::Null, "{c} was left null");
    }
}

#[test]
fn iris_keeps_the_last_insert_per_key() {
    let schema = schema("datasets.cql");
    let mut expected: BTreeMap<String, (Vec<String>, Vec<Lit>)> = BTreeMap::new();
    for (_, cols, values) in inserts("datasets.cql") {
        let key_idx = cols.iter().position(|c| c == "sepal_length").unwrap();
        let Lit::Num(k) = &values[key_idx] else {
            panic!()
        };
        expected.insert(format!("{:.3}", k.parse::<f32>().unwrap()), (cols, values));
    }
    let rows = dump_with(
        &table_dir("datasets", "iris"),
        Some(&schema),
        ReadOptions::default(),
        &[],
    )
    .unwrap();
    assert_eq!(rows.len(), 35);
    assert_eq!(expected.len(), 35);
    for r in &rows {
        let key = format!("{:.3}", r["sepal_length"].as_f64().unwrap());
        let (cols, values) = &expected[&key];
        for (c, v) in cols.iter().zip(values) {
            assert!(
                matches(v, &r[c]),
                "iris {key}.{c}: expected {v:?}, got {}",
                r[c]
            );
        }
    }
}

#[test]
fn key_names_fall_back_to_positions_without_a_schema() {
    let rows = dump_with(
        &table_dir("testtypes1", "int"),
        None,
        ReadOptions::default(),
        &[],
    )
    .unwrap();
    assert_eq!(rows[0]["pk0"], 1);
    assert_eq!(rows[0]["intval"], 420);
}

#[test]
fn projection_decodes_only_the_asked_columns() {
    let schema = schema("testalltypes.cql");
    let cols = vec!["asciival".to_string(), "intval".to_string()];
    let rows = dump_with(
        &table_dir("testalltypes", "alltypes"),
        Some(&schema),
        ReadOptions::default(),
        &cols,
    )
    .unwrap();
    let obj = rows[0].as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["asciival", "intval"]);
    assert_eq!(rows[0]["intval"], 420);
}
