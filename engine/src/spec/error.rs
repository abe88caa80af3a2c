//! Errors in a pipeline file: each names the file, the line and column, what is wrong, and what to
//! write instead. `ferry validate` collects all of them; `ferry run` stops at the first batch of them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem, at one place in one pipeline file.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based line and column; 0 when the problem concerns the whole file.
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pipeline file.
#[derive(Debug, Clone)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Turns byte offsets in one file's text into line and column, and builds errors there.
/// Its Debug leaves the text out: a pipeline file may hold a secret written in clear.
#[derive(Clone)]
pub struct Locator {
    file: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locator({})", self.file.display())
    }
}

impl Locator {
    /// The pipeline file's text, as written (`${VAR}` not expanded).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn new(file: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file: file.to_path_buf(),
            text: text.to_string(),
            line_starts,
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        (line, offset - start + 1)
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        let (line, column) = self.position(span.start);
        SpecError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
            hint: None,
        }
    }

    /// An error on line `line_offset` (0-based) of the string value at `span`, such as one line of a
    /// multi-line SQL string.
    pub fn error_in(
        &self,
        span: Range<usize>,
        line_offset: usize,
        message: impl Into<String>,
    ) -> SpecError {
        let raw = self.text.get(span.start..).unwrap_or_default();
        // TOML drops the newline right after an opening triple quote.
        let opens_block = ["\"\"\"\n", "\"\"\"\r\n", "'''\n", "'''\r\n"]
            .iter()
            .any(|open| raw.starts_with(open));
        let line_offset = line_offset + usize::from(opens_block);
        let mut e = self.error(span, message);
        if line_offset > 0 {
            e.line += line_offset;
            e.column = 1;
        }
        e
    }

    pub fn whole_file(&self, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            message: message.into(),
            hint: None,
        }
    }
}

impl SpecError {
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo of it.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbb = 2\n\nccc = 3\n";
        let loc = Locator::new(Path::new("p.toml"), text);
        assert_eq!(loc.position(0), (1, 1));
        assert_eq!(loc.position(6), (2, 1));
        assert_eq!(loc.position(11), (2, 6));
        assert_eq!(loc.position(14), (4, 1));
    }

    #[test]
    fn typos_find_their_word() {
        let keys = ["path", "format", "header", "delimiter", "sheet"];
        assert_eq!(did_you_mean("pth", keys), Some("path"));
        assert_eq!(did_you_mean("formt", keys), Some("format"));
        assert_eq!(did_you_mean("zzzzzz", keys), None);
    }
}
