//! Small-cell suppression (the CMS cell size suppression policy): no count from 1 to `min_cell`
//! is shown, and none can be recovered from what is shown.
//!
//! A table is a set of counts tied by additive relations (`total = part + part + ...`): a
//! column's total row, and a nested stage's drop-out (`eligible = engaged + not engaged`, where
//! "not engaged" is an implicit count the report never prints but a reader could compute).
//! Primary suppression hides every count from 1 to `min_cell`. Complementary suppression then
//! hides more, until no protected count is *determined* by the shown ones: not by one
//! subtraction (a row with one hidden cell and a shown total), and not by any combination of
//! relations either (a reader who solves the equations), which is why the test is linear algebra
//! and not only "each relation hides 0 or at least 2 cells". Zero is shown: zero is never a
//! complement, so a reader can tell a zero from a suppressed cell, which is the rule's intent
//! ("no cell from 1 to 10").

/// The counts and their relations. `visible[i]` is false for an implicit count (never printed):
/// it is protected only when it is itself from 1 to `min_cell`. `margin[i]` marks a total
/// row's cell: hidden as a complement only when no other cell can be.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    pub values: Vec<u64>,
    pub visible: Vec<bool>,
    pub margin: Vec<bool>,
    pub relations: Vec<Relation>,
}

/// `values[total] == sum of values[parts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub total: usize,
    pub parts: Vec<usize>,
}

impl Problem {
    /// A cell; returns its index.
    pub fn cell(&mut self, value: u64, visible: bool, margin: bool) -> usize {
        self.values.push(value);
        self.visible.push(visible);
        self.margin.push(margin);
        self.values.len() - 1
    }

    pub fn relate(&mut self, total: usize, parts: Vec<usize>) {
        debug_assert_eq!(
            self.values[total],
            parts.iter().map(|&p| self.values[p]).sum::<u64>(),
            "a relation must hold"
        );
        self.relations.push(Relation { total, parts });
    }
}

/// Whether a count is small enough to be suppressed on its own.
pub fn is_small(v: u64, min_cell: u64) -> bool {
    (1..=min_cell).contains(&v)
}

/// Which cells are hidden: every implicit cell, every visible count from 1 to `min_cell`, and
/// the complements that keep them from being computed.
pub fn suppress(p: &Problem, min_cell: u64) -> Vec<bool> {
    let n = p.values.len();
    let mut hidden: Vec<bool> = (0..n)
        .map(|i| !p.visible[i] || is_small(p.values[i], min_cell))
        .collect();
    // Every hidden printed cell is protected (a complement too: otherwise solving for it could
    // give its partner back); an implicit one only when it is itself small.
    let protected = |hidden: &[bool], i: usize| {
        if p.visible[i] {
            hidden[i]
        } else {
            is_small(p.values[i], min_cell)
        }
    };
    loop {
        let determined = determined(p, &hidden);
        let Some(at) = (0..n).find(|&i| determined[i] && protected(&hidden, i)) else {
            return hidden;
        };
        match complement(p, &hidden, at) {
            Some(c) => hidden[c] = true,
            // Nothing shown is left that could hide it: every printed non-zero count is hidden,
            // and what remains (zeros) cannot reveal a count.
            None => return hidden,
        }
    }
}

/// The cell to hide next so that `at` is no longer determined: the smallest shown non-zero
/// count in a relation with `at` (a part before a total row's cell), else the smallest shown
/// non-zero count of the table.
fn complement(p: &Problem, hidden: &[bool], at: usize) -> Option<usize> {
    let shown = |i: &usize| p.visible[*i] && !hidden[*i] && p.values[*i] > 0;
    let key = |i: &usize| (p.margin[*i], p.values[*i], *i);
    let near = p
        .relations
        .iter()
        .filter(|r| r.total == at || r.parts.contains(&at))
        .flat_map(|r| std::iter::once(r.total).chain(r.parts.iter().copied()))
        .filter(shown)
        .min_by_key(key);
    near.or_else(|| (0..p.values.len()).filter(shown).min_by_key(key))
}

/// The prime 2^31 - 1: the elimination is exact arithmetic modulo it (a product fits in a
/// u64). The relations' coefficients are 0 and ±1, so a rank that differs modulo P from the
/// rational one would need a minor divisible by P: not for tables of this size and shape.
const P: u64 = (1 << 31) - 1;

fn mul(a: u64, b: u64) -> u64 {
    (a * b) % P
}

fn inv(a: u64) -> u64 {
    // Fermat: a^(P-2).
    let (mut r, mut b, mut e) = (1u64, a, P - 2);
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, b);
        }
        b = mul(b, b);
        e >>= 1;
    }
    r
}

/// For each cell: hidden, and its value follows from the shown cells and the relations. The
/// relations restricted to the hidden cells form a linear system (the shown cells are its
/// constants); a hidden cell is determined when its unit vector is in the system's row space,
/// i.e. in the reduced row echelon form its column has a pivot whose row has no free variable.
pub fn determined(p: &Problem, hidden: &[bool]) -> Vec<bool> {
    let vars: Vec<usize> = (0..p.values.len()).filter(|&i| hidden[i]).collect();
    let mut col = vec![usize::MAX; p.values.len()];
    for (c, &i) in vars.iter().enumerate() {
        col[i] = c;
    }
    let mut rows: Vec<Vec<u64>> = Vec::new();
    for r in &p.relations {
        let mut row = vec![0u64; vars.len()];
        let mut any = false;
        let mut put = |i: usize, plus: bool| {
            if hidden[i] {
                let c = col[i];
                row[c] = if plus {
                    (row[c] + 1) % P
                } else {
                    (row[c] + P - 1) % P
                };
                any = true;
            }
        };
        put(r.total, true);
        for &q in &r.parts {
            put(q, false);
        }
        if any {
            rows.push(row);
        }
    }
    let mut pivots: Vec<(usize, usize)> = Vec::new(); // (row, column)
    let mut next = 0;
    for c in 0..vars.len() {
        let Some(pr) = (next..rows.len()).find(|&r| rows[r][c] != 0) else {
            continue;
        };
        rows.swap(next, pr);
        let f = inv(rows[next][c]);
        for x in rows[next].iter_mut() {
            *x = mul(*x, f);
        }
        let pivot = rows[next].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != next && row[c] != 0 {
                let k = row[c];
                for (x, &y) in row.iter_mut().zip(&pivot) {
                    *x = (*x + P - mul(k, y)) % P;
                }
            }
        }
        pivots.push((next, c));
        next += 1;
        if next == rows.len() {
            break;
        }
    }
    let is_pivot: Vec<bool> = {
        let mut v = vec![false; vars.len()];
        for &(_, c) in &pivots {
            v[c] = true;
        }
        v
    };
    let mut out = vec![false; p.values.len()];
    for &(r, c) in &pivots {
        let alone = (0..vars.len()).all(|j| j == c || is_pivot[j] || rows[r][j] == 0);
        if alone {
            out[vars[c]] = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One column of parts with a total.
    fn column(values: &[u64]) -> (Problem, usize) {
        let mut p = Problem::default();
        let parts: Vec<usize> = values.iter().map(|&v| p.cell(v, true, false)).collect();
        let t = p.cell(values.iter().sum(), true, true);
        p.relate(t, parts);
        (p, t)
    }

    #[test]
    fn one_small_cell_takes_the_next_smallest_with_it() {
        let (p, t) = column(&[5, 40, 12, 0]);
        let h = suppress(&p, 10);
        assert_eq!(h, vec![true, false, true, false, false], "{t}");
    }

    #[test]
    fn two_small_cells_need_no_complement_and_zero_stays_shown() {
        let (p, _) = column(&[5, 40, 3, 0]);
        assert_eq!(suppress(&p, 10), vec![true, false, true, false, false]);
    }

    #[test]
    fn an_implicit_small_difference_is_protected() {
        // eligible 25, engaged 18: "not engaged" (7) would be one subtraction away.
        let mut p = Problem::default();
        let eligible = p.cell(25, true, false);
        let engaged = p.cell(18, true, false);
        let not = p.cell(7, false, false);
        p.relate(eligible, vec![engaged, not]);
        let h = suppress(&p, 10);
        assert!(h[engaged] && !h[eligible], "{h:?}");
    }

    #[test]
    fn a_cell_is_determined_only_when_the_system_pins_it() {
        let mut p = Problem::default();
        let a = p.cell(3, true, false);
        let b = p.cell(4, true, false);
        let t1 = p.cell(7, true, false);
        p.relate(t1, vec![a, b]);
        let h = vec![true, true, false];
        assert_eq!(determined(&p, &h), vec![false, false, false]);
        let h = vec![true, false, false];
        assert_eq!(determined(&p, &h), vec![true, false, false]);
    }
}
