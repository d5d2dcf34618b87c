//! The output directory: created when missing, refused inside (or around) a data directory and when not
//! writable; files of the format already there are refused unless `--overwrite`, and then only the
//! `part-*` files an earlier export wrote are replaced (other files are never deleted).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::part::{is_temp, Format};

/// The output directory of one export, checked.
#[derive(Debug)]
pub struct OutDir {
    pub dir: PathBuf,
    /// Files of an earlier export to remove when this one publishes.
    pub replaced: Vec<PathBuf>,
}

/// `path` made absolute with symlinks resolved, also when it (or its parents) does not exist yet.
fn resolved(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut missing = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return Ok(missing.iter().rev().fold(real, |p, c| p.join(c)));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                at = parent;
            }
            _ => return Ok(abs),
        }
    }
}

fn refuse(dir: &Path, what: String) -> Error {
    Error::OutDir {
        path: dir.to_path_buf(),
        what,
    }
}

/// Whether `name` is one of the files an export writes (`part-NNNNN-NNNN.<ext>`).
fn is_part(name: &str, ext: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_suffix('.'))
        .is_some_and(|r| r.len() == 10 && r.as_bytes()[5] == b'-')
}

impl OutDir {
    /// Checks `dir` for an export of `format` of tables read from `data`, creating it when missing.
    pub fn prepare(
        dir: &Path,
        data: &[PathBuf],
        format: Format,
        overwrite: bool,
    ) -> Result<OutDir> {
        let mine = resolved(dir)?;
        for d in data {
            let theirs = resolved(d)?;
            let theirs = if theirs.is_file() {
                theirs.parent().map(Path::to_path_buf).unwrap_or(theirs)
            } else {
                theirs
            };
            if mine.starts_with(&theirs) || theirs.starts_with(&mine) {
                let how = if mine.starts_with(&theirs) {
                    "is inside"
                } else {
                    "holds"
                };
                return Err(refuse(
                    dir,
                    format!(
                        "the output directory must be outside the data directories, and this one {how} {}",
                        theirs.display()
                    ),
                ));
            }
        }
        if mine.exists() && !mine.is_dir() {
            return Err(refuse(dir, "not a directory".into()));
        }
        std::fs::create_dir_all(&mine).map_err(|e| Error::io(dir, e))?;
        let probe = mine.join(format!(".funnel-export-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| refuse(dir, format!("the output directory is not writable: {e}")))?;
        let _ = std::fs::remove_file(&probe);
        let ext = format.extension();
        let (mut ours, mut foreign) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(&mine).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temp(&name) || !name.ends_with(&format!(".{ext}")) {
                continue;
            }
            if is_part(&name, ext) {
                ours.push(entry.path());
            } else {
                foreign.push(name);
            }
        }
        ours.sort();
        foreign.sort();
        if !foreign.is_empty() {
            return Err(refuse(
                dir,
                format!(
                    "holds .{ext} files no export wrote ({}); choose an empty directory",
                    foreign.join(", ")
                ),
            ));
        }
        if !ours.is_empty() && !overwrite {
            return Err(refuse(
                dir,
                format!(
                    "holds {} .{ext} files of an earlier export ({} …); pass --overwrite to replace them",
                    ours.len(),
                    ours[0].display()
                ),
            ));
        }
        Ok(OutDir {
            dir: mine,
            replaced: ours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert!(is_part("part-00001-0002.parquet", "parquet"));
        assert!(!is_part("part-00001-0002.parquet", "arrow"));
        assert!(!is_part("part-1-2.parquet", "parquet"));
        assert!(!is_part("events.parquet", "parquet"));
        assert!(!is_part(".part-00001-0002.parquet.tmp-7", "parquet"));
    }

    #[test]
    fn refuses_inside_or_around_data_and_earlier_exports() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir_all(data.join("ks/t-1")).unwrap();
        let datas = [data.clone()];
        let inside = OutDir::prepare(&data.join("ks/out"), &datas, Format::Parquet, true);
        assert!(
            matches!(&inside, Err(Error::OutDir { what, .. }) if what.contains("is inside")),
            "{inside:?}"
        );
        let around = OutDir::prepare(t.path(), &[data.join("ks/t-1")], Format::Arrow, true);
        assert!(
            matches!(&around, Err(Error::OutDir { what, .. }) if what.contains("holds")),
            "{around:?}"
        );

        let out = t.path().join("out");
        let ok = OutDir::prepare(&out, &datas, Format::Parquet, false).unwrap();
        assert!(ok.replaced.is_empty());
        std::fs::write(out.join("part-00000-0000.parquet"), b"x").unwrap();
        let again = OutDir::prepare(&out, &datas, Format::Parquet, false);
        assert!(
            matches!(&again, Err(Error::OutDir { what, .. }) if what.contains("--overwrite")),
            "{again:?}"
        );
        // Another format's files are no obstacle; --overwrite replaces the earlier parts.
        OutDir::prepare(&out, &datas, Format::Arrow, false).unwrap();
        let over = OutDir::prepare(&out, &datas, Format::Parquet, true).unwrap();
        assert_eq!(over.replaced.len(), 1);
        // Files an export did not write are never replaced.
        std::fs::write(out.join("mine.parquet"), b"x").unwrap();
        let foreign = OutDir::prepare(&out, &datas, Format::Parquet, true);
        assert!(
            matches!(&foreign, Err(Error::OutDir { what, .. }) if what.contains("mine.parquet")),
            "{foreign:?}"
        );
    }
}
