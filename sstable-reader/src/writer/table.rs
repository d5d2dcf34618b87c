//! The table a writer writes: a [`TableSchema`] built from a CREATE TABLE statement with its static and
//! regular columns in Data.db order (`ColumnMetadata.compareTo`: simple columns before complex ones, then
//! by name bytes), and the `schema.cql` text that goes next to a snapshot.

use crate::schema::{Column, ColumnKind, CqlSchema, CqlTable, TableSchema};
use crate::types::CqlType;

use super::WriterError;

/// Builds the writer's schema from a parsed CREATE TABLE.
pub fn schema_from_cql(t: &CqlTable) -> Result<TableSchema, WriterError> {
    let find = |name: &str| -> Result<&(String, CqlType, bool), WriterError> {
        t.columns.iter().find(|c| c.0 == name).ok_or_else(|| {
            WriterError::InvalidOption(format!(
                "table {}: key column {name} is not declared",
                t.name
            ))
        })
    };
    let mut partition_key = Vec::new();
    for (index, name) in t.partition_key.iter().enumerate() {
        let c = find(name)?;
        partition_key.push(Column {
            name: c.0.clone(),
            ty: c.1.clone(),
            kind: ColumnKind::PartitionKey,
            index,
            reversed: false,
        });
    }
    let mut clustering = Vec::new();
    for (index, (name, desc)) in t.clustering.iter().enumerate() {
        let c = find(name)?;
        let ty = if *desc {
            CqlType::Reversed(Box::new(c.1.clone()))
        } else {
            c.1.clone()
        };
        clustering.push(Column {
            name: c.0.clone(),
            ty,
            kind: ColumnKind::Clustering,
            index,
            reversed: *desc,
        });
    }
    let is_key = |n: &str| {
        t.partition_key.iter().any(|k| k == n) || t.clustering.iter().any(|(k, _)| k == n)
    };
    let mut statics: Vec<&(String, CqlType, bool)> =
        t.columns.iter().filter(|c| c.2 && !is_key(&c.0)).collect();
    let mut regulars: Vec<&(String, CqlType, bool)> =
        t.columns.iter().filter(|c| !c.2 && !is_key(&c.0)).collect();
    let order = |a: &&(String, CqlType, bool), b: &&(String, CqlType, bool)| {
        (a.1.is_multi_cell(), a.0.as_bytes()).cmp(&(b.1.is_multi_cell(), b.0.as_bytes()))
    };
    statics.sort_by(order);
    regulars.sort_by(order);
    let cols = |v: Vec<&(String, CqlType, bool)>, kind| -> Vec<Column> {
        v.into_iter()
            .enumerate()
            .map(|(index, c)| Column {
                name: c.0.clone(),
                ty: c.1.clone(),
                kind,
                index,
                reversed: false,
            })
            .collect()
    };
    Ok(TableSchema {
        keyspace: t.keyspace.clone(),
        table: Some(t.name.clone()),
        partition_key,
        clustering,
        statics: cols(statics, ColumnKind::Static),
        regulars: cols(regulars, ColumnKind::Regular),
    })
}

/// Parses `cql` and builds the writer's schema of table `name`.
pub fn schema_from_cql_text(cql: &str, name: &str) -> Result<TableSchema, WriterError> {
    let parsed =
        CqlSchema::parse(cql, "schema").map_err(|e| WriterError::InvalidOption(e.to_string()))?;
    let t = parsed.table(Some(name)).ok_or_else(|| {
        WriterError::InvalidOption(format!("no CREATE TABLE {name} in the schema"))
    })?;
    schema_from_cql(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_simple_before_complex_then_by_name() {
        let s = schema_from_cql_text(
            "CREATE TABLE ks.t (k text, c int, z int, props map<text,text>, a text, s int static, \
             PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC);",
            "t",
        )
        .unwrap();
        let names: Vec<&str> = s.regulars.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "z", "props"]);
        assert_eq!(s.statics.len(), 1);
        assert!(s.clustering[0].reversed);
        assert_eq!(
            s.clustering[0].ty,
            CqlType::Reversed(Box::new(CqlType::Int))
        );
    }
}
