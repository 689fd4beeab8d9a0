//! A tiny column-aligned table printer: a header row and data rows, columns
//! separated by two spaces, padded to the widest cell (counted in
//! characters), no trailing whitespace.

use crate::format::one_line;

/// Rows of text cells under a header.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Space between two columns.
const GAP: &str = "  ";

impl Table {
    /// An empty table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; control characters become spaces, missing cells are
    /// blank and extra cells are dropped.
    pub(crate) fn push(&mut self, row: Vec<String>) {
        let mut row: Vec<String> = row.iter().map(|cell| one_line(cell)).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, one line per row, without a final newline.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|col| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|row| {
                let mut line = String::new();
                for (col, cell) in row.iter().enumerate() {
                    if col > 0 {
                        line.push_str(GAP);
                    }
                    line.push_str(cell);
                    let pad = widths[col] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                line.trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(row: &[&str]) -> Vec<String> {
        row.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn aligns_columns_to_the_widest_cell() {
        let mut table = Table::new(&["ID", "STATE", "QUEUE"]);
        table.push(cells(&["1", "running", "default"]));
        table.push(cells(&["12345", "ok", "q"]));
        assert_eq!(
            table.render(),
            "ID     STATE    QUEUE\n\
             1      running  default\n\
             12345  ok       q"
        );
    }

    #[test]
    fn counts_characters_not_bytes_and_never_trails_spaces() {
        let mut table = Table::new(&["A", "B"]);
        table.push(cells(&["é→", ""]));
        table.push(cells(&["x", "y"]));
        let text = table.render();
        assert_eq!(text, "A   B\né→\nx   y");
        assert!(text.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn sanitizes_and_fits_rows_to_the_header() {
        let mut table = Table::new(&["A", "B"]);
        table.push(cells(&["multi\nline"]));
        table.push(cells(&["1", "2", "3"]));
        assert_eq!(table.render(), "A           B\nmulti line\n1           2");
    }
}
