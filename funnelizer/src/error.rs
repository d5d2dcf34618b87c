//! Errors of this crate: definition errors carry the line and column in the TOML file.

use std::ops::Range;

/// A bad funnel definition file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct DefinitionError {
    /// File name (or `<input>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl DefinitionError {
    /// An error at byte offset `span.start` of `text`.
    pub fn at(text: &str, origin: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, span.start);
        DefinitionError {
            origin: origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.as_bytes()[..offset].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let column = text
        .get(line_start..offset)
        .map(|s| s.chars().count())
        .unwrap_or(offset - line_start)
        + 1;
    (line, column)
}

/// Errors of the batch job.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The row source failed.
    #[error("reading actor timelines: {0}")]
    Source(String),
    /// The fact store failed.
    #[error("fact store: {0}")]
    Store(String),
    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "ab\ncé d\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        let d = text.find('d').unwrap();
        assert_eq!(line_col(text, d), (2, 4));
    }
}
