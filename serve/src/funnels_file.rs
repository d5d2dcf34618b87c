//! The funnels file as the server reads and rewrites it: its text, its version (a hash of the bytes,
//! sent as the ETag) and its parsed funnels; [`FunnelsFile::save`] adds or replaces funnels posted from
//! the browser — validated first, with `line:column` positions in the posted text — and replaces the file
//! atomically (temporary file + rename, so the scheduler never reads half a file), refusing a save based
//! on an older version (a concurrent edit is reported, not lost). Comments and layout of the rest of the
//! file are kept (`toml_edit`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::StatusCode;
use funnelizer::{DefinitionError, FunnelSet};
use sha2::{Digest, Sha256};
use toml_edit::{ArrayOfTables, DocumentMut, Item};

use crate::error::{ApiError, Error};

/// Where posted definitions are said to come from in `line:column` messages.
pub const POSTED: &str = "definition";

/// The file as read at one moment.
#[derive(Debug, Clone)]
pub struct FileState {
    /// Its text.
    pub text: String,
    /// [`version_of`] the text.
    pub version: String,
    /// Its funnels.
    pub set: FunnelSet,
}

/// A finished save.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The file's new version.
    pub version: String,
    /// The posted funnels alone, with the file's `[source]`: what the background job computes (as
    /// `funnel run` of a file holding only them would).
    pub posted: FunnelSet,
}

/// Why a save was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// The posted definition is not valid (`definition:line:column: message`).
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The posted text holds something other than `[[funnel]]` tables.
    #[error("{0}")]
    NotFunnels(String),
    /// The save was based on another version of the file than the current one.
    #[error("the funnels file changed since version {expected} (now {current}): reload, merge and save again")]
    Stale {
        /// The version the save was based on.
        expected: String,
        /// The file's version now.
        current: String,
    },
    /// Reading, parsing or writing the file failed.
    #[error(transparent)]
    File(#[from] Error),
}

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> ApiError {
        match e {
            SaveError::Definition(d) => Error::Definition(d).into(),
            SaveError::NotFunnels(m) => ApiError::bad_request(m),
            SaveError::Stale { ref current, .. } => {
                let current = current.clone();
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with("version", current)
            }
            SaveError::File(e) => e.into(),
        }
    }
}

/// The version of a file's text: the first 16 hex digits of its SHA-256.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The funnels file of a server.
#[derive(Debug)]
pub struct FunnelsFile {
    path: PathBuf,
    /// Saves of this server one at a time (read, compare, replace).
    saving: Mutex<()>,
}

impl FunnelsFile {
    /// The file at `path`.
    pub fn new(path: PathBuf) -> FunnelsFile {
        FunnelsFile {
            path,
            saving: Mutex::new(()),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses it.
    pub fn read(&self) -> Result<FileState, Error> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| Error::FunnelsFile {
            path: self.path.clone(),
            source,
        })?;
        let set = FunnelSet::parse(&text, &self.path.display().to_string())?;
        Ok(FileState {
            version: version_of(&text),
            text,
            set,
        })
    }

    /// Adds the `[[funnel]]` tables of `posted` to the file, replacing funnels with the same id, if the
    /// file is still at version `expected`.
    pub fn save(&self, expected: &str, posted: &str) -> Result<Saved, SaveError> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read()?;
        if current.version != expected {
            return Err(SaveError::Stale {
                expected: expected.to_string(),
                current: current.version,
            });
        }
        let file_doc = parse_doc(&current.text, &self.path.display().to_string())?;
        let new_tables = posted_funnels(posted, &file_doc)?;
        let posted_set = only(&file_doc, new_tables.clone(), &self.path)?;
        let mut doc = file_doc;
        merge(&mut doc, new_tables);
        let text = doc.to_string();
        // The whole file must still be valid (it is what the scheduler reads).
        FunnelSet::parse(&text, &self.path.display().to_string())?;
        self.replace(&text)?;
        Ok(Saved {
            version: version_of(&text),
            posted: posted_set,
        })
    }

    /// Replaces the file's content at once: a temporary file in the same directory, flushed to disk,
    /// renamed over it.
    fn replace(&self, text: &str) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::FunnelsFile { path, source }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "funnels.toml".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp)(e));
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        // The rename itself survives a crash once the directory is flushed (best effort: not every
        // platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Parses TOML with `toml_edit`; a syntax error is reported by the funnel parser, which names its
/// line and column.
fn parse_doc(text: &str, origin: &str) -> Result<DocumentMut, SaveError> {
    text.parse::<DocumentMut>().map_err(|e| {
        match FunnelSet::parse(text, origin) {
            Err(d) => SaveError::Definition(d),
            // Both parsers read TOML 1.1; should they ever disagree, say what toml_edit found.
            Ok(_) => SaveError::NotFunnels(format!("{origin}: {}", e.message())),
        }
    })
}

/// The `[[funnel]]` tables of a posted text, validated with the file's `[source]` (positions are those
/// of the posted text).
fn posted_funnels(posted: &str, file: &DocumentMut) -> Result<ArrayOfTables, SaveError> {
    let doc = parse_doc(posted, POSTED)?;
    if let Some((key, _)) = doc.iter().find(|(k, _)| *k != "funnel") {
        return Err(SaveError::NotFunnels(format!(
            "only [[funnel]] tables can be posted, found `{key}` (the [source] mapping is the file's)"
        )));
    }
    let tables = match doc.get("funnel") {
        Some(Item::ArrayOfTables(a)) => a.clone(),
        Some(_) => {
            return Err(SaveError::NotFunnels(
                "write funnels as [[funnel]] tables".into(),
            ))
        }
        None => {
            // The parser says it with a position.
            FunnelSet::parse(posted, POSTED)?;
            return Err(SaveError::NotFunnels("no [[funnel]] table posted".into()));
        }
    };
    // The file's [source] goes after the posted text, so positions in the posted text stay as they are.
    let mut checked = posted.to_string();
    if let Some(source) = file.get("source") {
        let mut only_source = DocumentMut::new();
        only_source.insert("source", source.clone());
        checked.push_str("\n\n");
        checked.push_str(&only_source.to_string());
    }
    FunnelSet::parse(&checked, POSTED)?;
    Ok(tables)
}

fn id_of(t: &toml_edit::Table) -> Option<&str> {
    t.get("id").and_then(Item::as_str)
}

/// The file's `[source]` with only `tables` as funnels, parsed.
fn only(file: &DocumentMut, tables: ArrayOfTables, path: &Path) -> Result<FunnelSet, SaveError> {
    let mut doc = DocumentMut::new();
    if let Some(source) = file.get("source") {
        doc.insert("source", source.clone());
    }
    doc.insert("funnel", Item::ArrayOfTables(tables));
    Ok(FunnelSet::parse(
        &doc.to_string(),
        &path.display().to_string(),
    )?)
}

/// The last position (the order tables are written in) of the document's tables.
fn last_position(doc: &DocumentMut) -> isize {
    doc.iter()
        .flat_map(|(_, item)| match item {
            Item::Table(t) => vec![t.position()],
            Item::ArrayOfTables(a) => a.iter().map(toml_edit::Table::position).collect(),
            _ => Vec::new(),
        })
        .flatten()
        .max()
        .unwrap_or(0)
}

/// Replaces the file's funnels that have the id of a posted one, in place; appends the others at the
/// end of the file.
fn merge(doc: &mut DocumentMut, posted: ArrayOfTables) {
    let mut next = last_position(doc) + 1;
    if !matches!(doc.get("funnel"), Some(Item::ArrayOfTables(_))) {
        doc.insert("funnel", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let Some(Item::ArrayOfTables(funnels)) = doc.get_mut("funnel") else {
        return;
    };
    for table in posted.iter() {
        let id = id_of(table);
        let mut table = table.clone();
        let existing = funnels.iter().position(|t| id.is_some() && id_of(t) == id);
        match existing {
            Some(i) => {
                let at = funnels.get(i).and_then(toml_edit::Table::position);
                table.set_position(at);
                funnels.replace(i, table);
            }
            None => {
                table.set_position(Some(next));
                table.decor_mut().set_prefix("\n");
                next += 1;
                funnels.push(table);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# our funnels\n[source]\nevents = { table = \"tracking.events\", app = \"app_id\", actor = \"actor_id\", time = \"ts\", name = \"name\" }\n\n[[funnel]]\nid = \"a\" # first\nwindow = \"1d\"\nsteps = [{ event = \"install\" }, { event = \"open\" }]\n\n[[funnel]]\nid = \"b\"\nwindow = \"1d\"\nsteps = [{ event = \"open\" }]\n";

    fn file() -> (tempfile::TempDir, FunnelsFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("funnels.toml");
        std::fs::write(&path, FILE).unwrap();
        (dir, FunnelsFile::new(path))
    }

    #[test]
    fn a_posted_funnel_is_appended_or_replaces_its_namesake_keeping_comments() {
        let (_dir, f) = file();
        let v0 = f.read().unwrap().version;
        let saved = f
            .save(
                &v0,
                "[[funnel]]\nid = \"c\"\nwindow = \"2d\"\nsteps = [{ event = \"signup\" }]\n\n[[funnel]]\nid = \"a\"\nwindow = \"3d\"\nsteps = [{ event = \"install\" }]\n",
            )
            .unwrap();
        let now = f.read().unwrap();
        assert_eq!(saved.version, now.version);
        assert_ne!(now.version, v0);
        let ids: Vec<&str> = now.set.funnels.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(now.set.funnel("a").unwrap().window_s, 3 * 86_400);
        assert!(now.text.starts_with("# our funnels\n"), "{}", now.text);
        let posted: Vec<&str> = saved.posted.funnels.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(posted, ["c", "a"]);
        assert_eq!(saved.posted.source, now.set.source);
        // The posted funnels have the version they have in the file.
        assert_eq!(
            saved.posted.funnels[0].version,
            now.set.funnel("c").unwrap().version
        );
    }

    #[test]
    fn a_save_based_on_an_old_version_is_refused_and_changes_nothing() {
        let (_dir, f) = file();
        let v0 = f.read().unwrap().version;
        let post = "[[funnel]]\nid = \"c\"\nsteps = [{ event = \"x\" }]\nwindow = 60\n";
        f.save(&v0, post).unwrap();
        let v1 = f.read().unwrap().text;
        let err = f.save(&v0, &post.replace("\"c\"", "\"d\"")).unwrap_err();
        assert!(matches!(err, SaveError::Stale { .. }), "{err}");
        assert_eq!(f.read().unwrap().text, v1);
    }

    #[test]
    fn a_bad_definition_names_its_line_and_column_in_the_posted_text() {
        let (_dir, f) = file();
        let v0 = f.read().unwrap().version;
        let err = f
            .save(
                &v0,
                "[[funnel]]\nid = \"c\"\nwindow = \"7x\"\nsteps = [{ event = \"x\" }]\n",
            )
            .unwrap_err();
        let SaveError::Definition(d) = err else {
            panic!("{err}")
        };
        assert_eq!(
            (d.origin.as_str(), d.line, d.column),
            (POSTED, 3, 10),
            "{d}"
        );
        let err = f.save(&v0, "[[funnel]\nid = 1\n").unwrap_err();
        assert!(
            matches!(&err, SaveError::Definition(d) if d.line == 1),
            "{err}"
        );
        let err = f
            .save(&v0, "[source]\nevents = { table = \"x.y\" }\n")
            .unwrap_err();
        assert!(err.to_string().contains("only [[funnel]]"), "{err}");
        assert_eq!(f.read().unwrap().text, FILE);
    }
}
