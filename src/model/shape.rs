//! The shape of a code: what the gateway may show of an agency's value (an unmapped code in a
//! message) and send of it to a de-identified recipient (an agency code in a payload). One rule
//! for both, so that what is shown and what is sent cannot drift apart.

/// The most characters a code may have.
pub const MAX_CODE_CHARS: usize = 16;

/// The most digits a code may hold: seven make a phone number (`555-0199`), nine an SSN.
const MAX_CODE_DIGITS: usize = 6;

/// Whether `v` looks like a code and may be shown: at most [`MAX_CODE_CHARS`] characters, no
/// whitespace or control characters, at most six digits (so no phone number, SSN, 8-digit date
/// or other long number), no `@` (an email), and not a date written with separators
/// (`7/4/90`, `1990-07-04`). A single word such as a surname typed alone still passes: the rule
/// cannot tell `SMITH` from `MEDICAL`.
pub fn is_code_shaped(v: &str) -> bool {
    let n = v.chars().count();
    n > 0
        && n <= MAX_CODE_CHARS
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.chars().filter(char::is_ascii_digit).count() <= MAX_CODE_DIGITS
        && !v.contains('@')
        && !is_date_shaped(v)
}

/// Three groups of digits joined by `/`, `-` or `.` (`7/4/90`, `2026-3-1`, `04.07.1990`).
fn is_date_shaped(v: &str) -> bool {
    let groups: Vec<&str> = v.split(['/', '-', '.']).collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| (1..=4).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()))
}
