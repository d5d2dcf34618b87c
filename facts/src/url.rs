//! `StoreUrl`: the `--facts` URL, `sqlite:PATH` or
//! `cql://host:port[,host…]/keyspace?user=..&password=..&tls=true&ca=PATH&rf=N&dc=NAME`.

use std::path::PathBuf;

use crate::error::FactsError;

/// Default CQL port when a node has none.
pub const CQL_DEFAULT_PORT: u16 = 9042;

/// Connection settings of a Cassandra/Scylla fact store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlUrl {
    /// `host:port` of each contact point.
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    /// PEM file of the CA that signed the nodes' certificates (`?ca=PATH`); default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Replication factor used when `init` creates the keyspace (`?rf=N`, default
    /// [`DEFAULT_REPLICATION_FACTOR`]: a keyspace of one replica loses data with one disk and cannot answer
    /// `LOCAL_QUORUM` while a node restarts).
    pub replication_factor: u32,
    /// The client's local datacenter (`?dc=NAME`): requests stay in it (see `docs/CASSANDRA.md`).
    pub local_dc: Option<String>,
}

/// Replication factor of a keyspace `init` creates when the URL names none.
pub const DEFAULT_REPLICATION_FACTOR: u32 = 3;

/// A parsed fact store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH` (also `sqlite://PATH`); `PATH` is a file, created if missing.
    Sqlite(PathBuf),
    /// `cql://…`.
    Cql(CqlUrl),
}

fn bad(url: &str, reason: impl Into<String>) -> FactsError {
    FactsError::BadUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// The URL with any `password=` value replaced by `***` (for messages and logs).
pub fn redact(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}

fn is_valid_cql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 48
}

/// Undo `%XX` escapes (for user names and passwords holding `&`, `=`, `@`…).
fn percent_decode(url: &str, s: &str) -> Result<String, FactsError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(url, "bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(url, "%-escapes are not UTF-8"))
}

impl std::str::FromStr for StoreUrl {
    type Err = FactsError;

    fn from_str(url: &str) -> Result<StoreUrl, FactsError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad(url, "missing path: sqlite:PATH"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("cql://") else {
            return Err(bad(url, "expected sqlite:PATH or cql://host:port/keyspace"));
        };
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, keyspace) = main
            .split_once('/')
            .ok_or_else(|| bad(url, "missing /keyspace"))?;
        if !is_valid_cql_identifier(keyspace) {
            return Err(bad(
                url,
                format!("keyspace {keyspace:?} is not a CQL identifier"),
            ));
        }
        let mut nodes = Vec::new();
        for h in hosts.split(',') {
            if h.is_empty() {
                return Err(bad(url, "empty host"));
            }
            let has_port = h.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok()
            }) && !(h.starts_with('[') && h.ends_with(']'));
            nodes.push(if has_port {
                h.to_string()
            } else {
                format!("{h}:{CQL_DEFAULT_PORT}")
            });
        }
        let mut cql = CqlUrl {
            nodes,
            keyspace: keyspace.to_string(),
            user: None,
            password: None,
            tls: false,
            ca_file: None,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            local_dc: None,
        };
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "user" | "username" => cql.user = Some(percent_decode(url, v)?),
                "password" => cql.password = Some(percent_decode(url, v)?),
                "tls" | "ssl" => {
                    cql.tls = match v {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => return Err(bad(url, "tls must be true or false")),
                    }
                }
                "dc" if v.is_empty() => return Err(bad(url, "dc needs a datacenter name")),
                "dc" => cql.local_dc = Some(percent_decode(url, v)?),
                "ca" => cql.ca_file = Some(PathBuf::from(percent_decode(url, v)?)),
                "rf" => {
                    cql.replication_factor = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(url, "rf must be a positive integer"))?
                }
                _ => return Err(bad(url, format!("unknown option {k:?}"))),
            }
        }
        if cql.ca_file.is_some() && !cql.tls {
            return Err(bad(url, "ca= needs tls=true"));
        }
        if cql.password.is_some() && cql.user.is_none() {
            return Err(bad(url, "password without user"));
        }
        Ok(StoreUrl::Cql(cql))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            "sqlite:facts.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("facts.db".into())
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert!("sqlite:".parse::<StoreUrl>().is_err());
        assert!("postgres://x".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn cql_urls() {
        let u: StoreUrl = "cql://10.0.0.1:9043,node2/funnel?user=bob&password=p%26w&tls=true&rf=3"
            .parse()
            .unwrap();
        let StoreUrl::Cql(c) = u else {
            panic!("not cql")
        };
        assert_eq!(c.nodes, vec!["10.0.0.1:9043", "node2:9042"]);
        assert_eq!(c.keyspace, "funnel");
        assert_eq!(c.user.as_deref(), Some("bob"));
        assert_eq!(c.password.as_deref(), Some("p&w"));
        assert!(c.tls);
        assert_eq!(c.replication_factor, 3);
        assert_eq!(c.local_dc, None);
        let StoreUrl::Cql(c) = "cql://h/ks?dc=eu-west".parse().unwrap() else {
            panic!()
        };
        assert_eq!(c.local_dc.as_deref(), Some("eu-west"));
        // Without rf=, a keyspace is created with 3 replicas, never 1.
        assert_eq!(c.replication_factor, DEFAULT_REPLICATION_FACTOR);
        assert_eq!(DEFAULT_REPLICATION_FACTOR, 3);
        assert!("cql://h/ks?dc=".parse::<StoreUrl>().is_err());
        assert!("cql://h/bad-ks".parse::<StoreUrl>().is_err());
        assert!("cql://h".parse::<StoreUrl>().is_err());
        assert!("cql://h/ks?colour=red".parse::<StoreUrl>().is_err());
        assert!("cql://h/ks?password=x".parse::<StoreUrl>().is_err());
        assert!("cql://h/ks?ca=/etc/ca.pem".parse::<StoreUrl>().is_err());
        let StoreUrl::Cql(c) = "cql://h/ks?tls=true&ca=/etc/ca.pem".parse().unwrap() else {
            panic!()
        };
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = "cql://h/ks?user=u&password=secret&tls=maybe"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("password=***"), "{err}");
    }
}
