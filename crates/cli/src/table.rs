//! Borderless tables, as every command prints them: aligned columns that `grep` and `awk`
//! handle as well as people do.

use comfy_table::{CellAlignment, Table, presets};

/// A table with a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.to_vec());
    pad(&mut t);
    t
}

/// Two columns, name and value, without a header.
pub fn fields(rows: Vec<(&str, String)>) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    pad(&mut t);
    t
}

fn pad(t: &mut Table) {
    t.discover_columns();
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
}

pub fn right_align(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` on one line, cut to `max` characters with an ellipsis when cut.
pub fn cut(s: &str, max: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_the_cut() {
        assert_eq!(cut("disk  full\non db1", 40), "disk full on db1");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
