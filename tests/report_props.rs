//! Small-cell suppression under random tables: no shown count from 1 to `min_cell`, every shown
//! count true, zeros shown, and no suppressed count recoverable by subtraction from what is
//! shown. The recovering reader here is the test's own (repeated subtraction over every
//! relation a reader knows: each column sums to the total row, and each nested stage's
//! drop-out is the difference of two columns), independent of the library's linear algebra.

use pnp_gateway::report::table::{Count, Grid, Table, suppress_all};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A record: its row in table A and in table B, and how far down the stages it went (0: only
/// counted; 1: stage one; 2: stage two).
type Rec = (u8, u8, u8);

/// Two breakdowns (by `a`, by `b`) of the same records, columns `all`, `s1`, `s2` nested: the
/// totals are shared, as the report's tables share theirs.
fn grids(recs: &[Rec], rows_a: u8, rows_b: u8) -> Vec<Grid> {
    let make = |id: &str, n: u8, key: &dyn Fn(&Rec) -> u8| {
        let counts = |filter: &dyn Fn(&Rec) -> bool, dim: String| -> Vec<Count> {
            (0..3)
                .map(|s| Count {
                    key: format!("s{s}|{dim}"),
                    value: recs.iter().filter(|r| filter(r) && r.2 >= s).count() as u64,
                })
                .collect()
        };
        Grid {
            id: id.into(),
            title: id.into(),
            columns: vec!["all".into(), "s1".into(), "s2".into()],
            rows: (0..n)
                .map(|k| {
                    (
                        format!("{k}"),
                        counts(&|r| key(r) == k, format!("{id}={k}")),
                    )
                })
                .collect(),
            total: counts(&|_| true, "all".into()),
            nested: vec![(0, 1), (1, 2)],
            notes: Vec::new(),
        }
    };
    vec![make("a", rows_a, &|r| r.0), make("b", rows_b, &|r| r.1)]
}

/// What a reader knows, by cell key: shown counts; and which keys are suppressed.
fn reader(tables: &[Table], grids: &[Grid]) -> Vec<(Vec<String>, String)> {
    // The relations a reader knows: (parts, total) by key, from the tables' layout.
    let mut rel = Vec::new();
    for (g, _) in grids.iter().zip(tables) {
        for j in 0..g.columns.len() {
            rel.push((
                g.rows.iter().map(|(_, cs)| cs[j].key.clone()).collect(),
                g.total[j].key.clone(),
            ));
        }
        for cs in g
            .rows
            .iter()
            .map(|(_, cs)| cs)
            .chain(std::iter::once(&g.total))
        {
            for &(o, i) in &g.nested {
                let diff = format!("{} minus {}", cs[o].key, cs[i].key);
                rel.push((vec![cs[i].key.clone(), diff], cs[o].key.clone()));
            }
        }
    }
    rel
}

fn check(recs: &[Rec], rows_a: u8, rows_b: u8, min_cell: u64) -> Result<(), TestCaseError> {
    let gs = grids(recs, rows_a, rows_b);
    let tables = suppress_all(&gs, min_cell);
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    let mut known: BTreeMap<String, u64> = BTreeMap::new();
    let mut hidden: Vec<String> = Vec::new();
    for (g, t) in gs.iter().zip(&tables) {
        let cells = g
            .rows
            .iter()
            .map(|(_, cs)| cs)
            .chain(std::iter::once(&g.total));
        let shown = t
            .rows
            .iter()
            .map(|r| &r.values)
            .chain(std::iter::once(&t.total.values));
        for (cs, vs) in cells.zip(shown) {
            for (c, v) in cs.iter().zip(vs) {
                truth.insert(c.key.clone(), c.value);
                match v {
                    Some(n) => {
                        prop_assert_eq!(*n, c.value, "a shown count is true");
                        prop_assert!(!(1..=min_cell).contains(n), "{} shown", n);
                        known.insert(c.key.clone(), *n);
                    }
                    None => {
                        prop_assert!(c.value > 0, "a zero is shown");
                        hidden.push(c.key.clone());
                    }
                }
            }
            for &(o, i) in &g.nested {
                let diff = format!("{} minus {}", cs[o].key, cs[i].key);
                let v = cs[o].value - cs[i].value;
                truth.insert(diff.clone(), v);
                if (1..=min_cell).contains(&v) {
                    hidden.push(diff);
                }
            }
        }
    }
    // Repeated subtraction until nothing more follows.
    let rel = reader(&tables, &gs);
    loop {
        let mut learnt = false;
        for (parts, total) in &rel {
            let unknown: Vec<&String> = parts
                .iter()
                .chain(std::iter::once(total))
                .filter(|k| !known.contains_key(*k))
                .collect();
            if unknown.len() != 1 {
                continue;
            }
            let k = unknown[0].clone();
            let sum: u64 = parts.iter().filter_map(|p| known.get(p)).sum();
            let v = if &k == total { sum } else { known[total] - sum };
            prop_assert_eq!(v, truth[&k], "the reader's arithmetic");
            known.insert(k, v);
            learnt = true;
        }
        if !learnt {
            break;
        }
    }
    for k in &hidden {
        prop_assert!(
            !known.contains_key(k),
            "suppressed {} = {} recovered by subtraction",
            k,
            truth[k]
        );
    }
    Ok(())
}

fn records(max: usize) -> impl Strategy<Value = (Vec<Rec>, u8, u8)> {
    (1u8..6, 1u8..5).prop_flat_map(move |(a, b)| {
        (
            proptest::collection::vec((0..a, 0..b, 0u8..3), 0..max),
            Just(a),
            Just(b),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_suppressed_count_can_be_recovered((recs, a, b) in records(160), min_cell in 1u64..12) {
        check(&recs, a, b, min_cell)?;
    }

    #[test]
    fn small_tables_mostly_suppressed((recs, a, b) in records(40)) {
        check(&recs, a, b, 10)?;
    }
}

/// The reader finds what primary suppression alone leaves: the check can fail.
#[test]
fn the_reader_recovers_a_lone_suppressed_cell() {
    let recs: Vec<Rec> = (0..57)
        .map(|i| {
            (
                if i < 5 {
                    0
                } else if i < 45 {
                    1
                } else {
                    2
                },
                0,
                0,
            )
        })
        .collect();
    let gs = grids(&recs, 3, 1);
    let mut tables = suppress_all(&gs, 10);
    // Undo the complement: show every count of table a's first column but the 5.
    for (r, (_, cs)) in tables[0].rows.iter_mut().zip(&gs[0].rows) {
        r.values[0] = (cs[0].value > 10 || cs[0].value == 0).then_some(cs[0].value);
    }
    tables[0].total.values[0] = Some(57);
    let mut known: BTreeMap<String, u64> = BTreeMap::new();
    for (r, (_, cs)) in tables[0].rows.iter().zip(&gs[0].rows) {
        if let Some(v) = r.values[0] {
            known.insert(cs[0].key.clone(), v);
        }
    }
    let parts: Vec<String> = gs[0].rows.iter().map(|(_, cs)| cs[0].key.clone()).collect();
    let missing: Vec<&String> = parts.iter().filter(|k| !known.contains_key(*k)).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(
        57 - known.values().sum::<u64>(),
        5,
        "one subtraction gives it back"
    );
    // And the library's own output does not allow it.
    let ok = suppress_all(&gs, 10);
    let hidden = ok[0].rows.iter().filter(|r| r.values[0].is_none()).count();
    assert!(hidden >= 2, "{:?}", ok[0].rows);
}
