//! The report's tables: counts in rows and columns with a total row, suppressed together.
//!
//! A [`Grid`] holds true counts; each cell has a key naming what it counts (measure, month,
//! dimension), so that one count shown in two tables (the month's incidents by category in the
//! funnel and in the 12-month chart) is one unknown for a reader, and the tables of a report are
//! suppressed as one system ([`suppress_all`]): a count hidden in one table cannot be read back
//! from another. What comes out ([`Table`]) holds only shown counts (`None`: suppressed), and is
//! what every format (JSON, CSV, HTML and its SVG charts) and a status page render.

use super::suppress::{Problem, suppress};
use serde::Serialize;
use std::collections::BTreeMap;

/// One cell's truth: what it counts (a key unique across the report) and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub key: String,
    pub value: u64,
}

/// A table before suppression.
#[derive(Debug, Clone)]
pub struct Grid {
    pub id: String,
    pub title: String,
    pub columns: Vec<String>,
    /// (row key, one count per column).
    pub rows: Vec<(String, Vec<Count>)>,
    /// One count per column: the sum of the rows.
    pub total: Vec<Count>,
    /// `(outer, inner)`: in every row and the total, column `inner` counts a subset of what
    /// column `outer` counts (engaged ⊆ eligible): their difference is a count too.
    pub nested: Vec<(usize, usize)>,
    /// Footnotes: what a column means, what is not available yet.
    pub notes: Vec<String>,
}

/// A table as shown: `None` for a suppressed count. Serialized as the report's JSON table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub id: String,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub total: Total,
    #[serde(skip)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: String,
    pub values: Vec<Option<u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Total {
    pub values: Vec<Option<u64>>,
}

impl Table {
    /// The shown count at (row, column), `None` if suppressed or absent.
    pub fn cell(&self, row: &str, column: &str) -> Option<u64> {
        let c = self.columns.iter().position(|x| x == column)?;
        let r = self.rows.iter().find(|r| r.key == row)?;
        r.values[c]
    }

    /// A percentage of two shown counts, never of a suppressed one (it would give it back).
    pub fn percent(part: Option<u64>, whole: Option<u64>) -> Option<f64> {
        match (part, whole) {
            (Some(p), Some(w)) if w > 0 => Some(100.0 * p as f64 / w as f64),
            _ => None,
        }
    }
}

/// Suppresses the grids as one system and returns the shown tables, in order.
pub fn suppress_all(grids: &[Grid], min_cell: u64) -> Vec<Table> {
    let mut p = Problem::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut cell = |p: &mut Problem, c: &Count, visible: bool, margin: bool| -> usize {
        match index.get(&c.key) {
            Some(&i) => {
                debug_assert_eq!(p.values[i], c.value, "one key, one count: {}", c.key);
                p.visible[i] |= visible;
                p.margin[i] |= margin;
                i
            }
            None => {
                let i = p.cell(c.value, visible, margin);
                index.insert(c.key.clone(), i);
                i
            }
        }
    };
    let mut placed: Vec<(Vec<Vec<usize>>, Vec<usize>)> = Vec::new();
    for g in grids {
        let rows: Vec<Vec<usize>> = g
            .rows
            .iter()
            .map(|(_, cs)| cs.iter().map(|c| cell(&mut p, c, true, false)).collect())
            .collect();
        let total: Vec<usize> = g
            .total
            .iter()
            .map(|c| cell(&mut p, c, true, true))
            .collect();
        for (j, &t) in total.iter().enumerate() {
            p.relate(t, rows.iter().map(|r| r[j]).collect());
        }
        let all = g
            .rows
            .iter()
            .map(|(_, cs)| cs)
            .chain(std::iter::once(&g.total));
        for (cs, ids) in all.zip(rows.iter().chain(std::iter::once(&total))) {
            for &(o, i) in &g.nested {
                let diff = Count {
                    key: format!("{} minus {}", cs[o].key, cs[i].key),
                    value: cs[o].value - cs[i].value,
                };
                let d = cell(&mut p, &diff, false, false);
                p.relate(ids[o], vec![ids[i], d]);
            }
        }
        placed.push((rows, total));
    }
    let hidden = suppress(&p, min_cell);
    let shown = |i: usize| (!hidden[i]).then_some(p.values[i]);
    grids
        .iter()
        .zip(placed)
        .map(|(g, (rows, total))| Table {
            id: g.id.clone(),
            title: g.title.clone(),
            columns: g.columns.clone(),
            rows: g
                .rows
                .iter()
                .zip(rows)
                .map(|((key, _), ids)| Row {
                    key: key.clone(),
                    values: ids.into_iter().map(shown).collect(),
                })
                .collect(),
            total: Total {
                values: total.into_iter().map(shown).collect(),
            },
            notes: g.notes.clone(),
        })
        .collect()
}
