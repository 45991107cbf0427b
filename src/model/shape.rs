//! The shape of a code: what the gateway may show of an agency's value (an unmapped code in a
//! message) and send of it to a de-identified recipient (an agency code in a payload). One rule
//! for both, so that what is shown and what is sent cannot drift apart.
//!
//! A shape cannot prove a value is a code: a word typed alone (`SMITH`) looks like `MEDICAL`,
//! and `3-17` like the call type `11-8`. What the rule refuses is every shape that carries a
//! name joined to another, a number long enough to be a phone, an SSN or a date, a month with a
//! day, a house number with its street, an address or a link. A mapping that passes an agency's
//! codes through a code table (`table` with `missing = "empty"`) sends only the table's values.

/// The most characters a code may have.
pub const MAX_CODE_CHARS: usize = 16;

/// The most digits a code may hold: six make a date (`031781`), seven a phone number
/// (`555-0199`), nine an SSN; vehicle-code sections have five (`10851`).
const MAX_CODE_DIGITS: usize = 5;

/// Punctuation a code may hold besides letters and digits (`10-56`, `46A-CIT`, `F11.20`,
/// `W/I`, `M_H`, `#2`, `C+`, an HL7 event `ADT^A31`). Anything else (`,` between a surname and
/// a given name, `:` in a link, `'`, `@`, brackets, letters outside ASCII) is not a code's.
const CODE_PUNCTUATION: &[u8] = b"-._/#+^";

/// Month names as agencies abbreviate them in dates (`17MAR1981`, `MAR17`).
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Labels of an identifier typed before its digits (`SSN4329`, `DOB0317`).
const ID_LABELS: [&str; 5] = ["SSN", "DOB", "DL", "PH", "TEL"];

/// Whether `v` looks like a code and may be shown: at most [`MAX_CODE_CHARS`] ASCII letters,
/// digits and `-._/#+^`, at most five digits, and none of these shapes: a date (`7/4/90`,
/// `03/17`, `1990-07-04`), a month beside digits (`17MAR1981`), an identifier's label beside
/// digits (`SSN4329`), two words of four letters or more joined by punctuation
/// (`RIVERS-TAYLOR`, `TAYLOR.RIVERS`), a house number beside a street name (`4187MAPLE`). A
/// single word such as a surname typed alone still passes: the rule cannot tell `SMITH` from
/// `MEDICAL`.
pub fn is_code_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CODE_CHARS
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || CODE_PUNCTUATION.contains(c))
        && b.iter().filter(|c| c.is_ascii_digit()).count() <= MAX_CODE_DIGITS
        && !is_date_shaped(v)
        && !has_digits_beside(v, 1, |word| {
            MONTHS
                .iter()
                .any(|m| word.starts_with(m) || word.ends_with(m))
        })
        && !has_digits_beside(v, 1, |word| ID_LABELS.iter().any(|l| word.ends_with(l)))
        && !has_digits_beside(v, 2, |word| word.len() >= 4)
        && !joins_two_words(v)
}

/// Whether a de-identified recipient may be sent `v` as the agency code of the canonical field
/// `field`: where the field's values are a known small set, only those; elsewhere
/// [`is_code_shaped`].
pub fn is_sendable_code(field: &str, v: &str) -> bool {
    match field {
        // The canonical values a mapping's sex table gives, in any case, or the one or two
        // letters an agency's system writes (`M`, `NB`).
        "sex" => {
            ["male", "female", "other", "unknown"]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(v))
                || ((1..=2).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_alphabetic()))
        }
        // A USPS state or territory code.
        "location.state" | "address.state" => {
            v.len() == 2 && v.bytes().all(|c| c.is_ascii_alphabetic())
        }
        // NIBRS and agency letters (`W`, `H`, `A/PI`, `W-H`), a short number (`1`), CDC race
        // and ethnicity codes (`2106-3`); not a month and day (`3-17`).
        "race" | "ethnicity" => {
            let digits = v.bytes().filter(u8::is_ascii_digit).count();
            let joined = v.contains(['-', '/', '.']);
            is_code_shaped(v)
                && (v.bytes().all(|c| c.is_ascii_alphabetic())
                    || is_cdc_code(v)
                    || (v.len() <= 4 && (digits == 0 || (digits <= 2 && !joined))))
        }
        _ => is_code_shaped(v),
    }
}

/// The most characters a record's id (a consent's, an engagement's) may have.
pub const MAX_ID_CHARS: usize = 64;

/// What an id must look like, for a reason that refuses one (it never quotes it).
pub const ID_SHAPE: &str =
    "is not an id: at most 64 ASCII letters, digits and `-_.:`, not a phone number, SSN or date";

/// Whether `v` looks like a record's id (`C-2026-0001`, `2026-000101`, a UUID) and may be
/// quoted in a message: at most [`MAX_ID_CHARS`] ASCII letters, digits and `-_.:`, and not an
/// SSN (`219-09-9999`, nine digits alone), a phone number written with its separators
/// (`304-555-0199`, `555-0199`) or a date. A name typed into the id column (`RIVERS, TAYLOR`,
/// `RIVERS 304-555-0199`) is not an id; a word alone, or a number alone, still looks like one.
pub fn is_id_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    let groups: Vec<&str> = v.split(['-', '.']).collect();
    let numeric = groups
        .iter()
        .all(|g| !g.is_empty() && g.bytes().all(|c| c.is_ascii_digit()));
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let ssn_or_phone = numeric
        && matches!(
            lens.as_slice(),
            [9] | [3, 2, 4] | [3, 3, 4] | [3, 4] | [1, 3, 3, 4]
        );
    !b.is_empty()
        && b.len() <= MAX_ID_CHARS
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        && !ssn_or_phone
        && !is_date_shaped(v)
}

/// A CDC Race & Ethnicity code: four digits, `-`, a check digit (`2106-3`, `2135-2`).
fn is_cdc_code(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 6 && b[4] == b'-' && b[..4].iter().all(u8::is_ascii_digit) && b[5].is_ascii_digit()
}

/// Groups of digits joined by `/` (`03/17`, `7/4/90`), or three groups joined by `-` or `.`
/// (`2026-3-1`, `04.07.1990`). Two groups joined by `-` stay: `10-56` and `11-8` are call types.
fn is_date_shaped(v: &str) -> bool {
    let all_digits = |g: &&str| (1..=4).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit());
    let slashed: Vec<&str> = v.split('/').collect();
    if slashed.len() >= 2 && slashed.iter().all(all_digits) {
        return true;
    }
    let groups: Vec<&str> = v.split(['/', '-', '.']).collect();
    groups.len() == 3 && groups.iter().all(all_digits)
}

/// Whether a run of letters for which `word` holds (upper-cased) touches a run of at least
/// `digits` digits (`MAR17`, `17MAR1981`, `SSN4329`, `4187MAPLE`).
fn has_digits_beside(v: &str, digits: usize, word: impl Fn(&str) -> bool) -> bool {
    let runs = runs(v);
    runs.iter().enumerate().any(|(i, r)| {
        r.chars().all(|c| c.is_ascii_alphabetic())
            && word(&r.to_ascii_uppercase())
            && [i.checked_sub(1), Some(i + 1)]
                .into_iter()
                .flatten()
                .filter_map(|j| runs.get(j))
                .any(|n| n.len() >= digits && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Two runs of four letters or more with only punctuation between them (`RIVERS-TAYLOR`).
fn joins_two_words(v: &str) -> bool {
    let words: Vec<&str> = v
        .split(|c: char| CODE_PUNCTUATION.contains(&(c as u8)) && c.is_ascii())
        .collect();
    words.windows(2).any(|w| {
        w.iter()
            .all(|x| x.len() >= 4 && x.bytes().all(|b| b.is_ascii_alphabetic()))
    })
}

/// `v` cut where letters meet digits or punctuation: `17MAR1981` → `17`, `MAR`, `1981`.
fn runs(v: &str) -> Vec<&str> {
    let kind = |c: u8| {
        if c.is_ascii_alphabetic() {
            0
        } else if c.is_ascii_digit() {
            1
        } else {
            2
        }
    };
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=b.len() {
        if i == b.len() || kind(b[i]) != kind(b[i - 1]) {
            if kind(b[start]) != 2 {
                out.push(&v[start..i]);
            } else {
                out.push("");
            }
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes of the test data and the sample exports stay codes.
    #[test]
    fn agency_codes_keep_their_shape() {
        for code in [
            "OD",
            "XQ9",
            "10-56",
            "11-8",
            "245",
            "10851",
            "46A-CIT",
            "emergency",
            "35A",
            "5150",
            "647F",
            "CW",
            "F11.20",
            "W/I",
            "REF",
            "1",
            "WELF",
            "DOMV",
            "SUIC",
            "MH",
            "ODF",
            "2106-3",
            "TRAF2",
            "ADT^A31",
        ] {
            assert!(is_code_shaped(code), "{code}");
        }
    }

    /// What a privacy probe typed into code columns (surname, given name, date of birth, SSN,
    /// street): none of it is a code.
    #[test]
    fn names_dates_and_numbers_are_not_codes() {
        for not in [
            "",
            "ZEBEDIAH QUANTRELL",
            "ZQXALPHA,QWYLLA",
            "QWYLLA.ZQXALPHA",
            "ZQXALPHA-QWYLLA",
            "RIVERS^TAYLOR",
            "219-09-9999",
            "219099999",
            "(304)555-0199",
            "304.555.0199",
            "555-0199",
            "07/04/1990",
            "1990-07-04",
            "7/4/90",
            "03/17",
            "17MAR1981",
            "MAR171981",
            "MAR17",
            "DOB031781",
            "031781",
            "1981-03-17",
            "SSN4329",
            "4187ZQXBRIDGE",
            "https://x",
            "z.q@example.org",
            "O'BRIEN",
            "JOSÉ",
            "ABCDEFGHIJKLMNOPQ",
            "A\tB",
        ] {
            assert!(!is_code_shaped(not), "{not}");
        }
    }

    #[test]
    fn ids_are_quoted_and_names_and_numbers_are_not() {
        for id in [
            "C-2026-0001",
            "E-9001",
            "C-9001",
            "3f2a6c1e-58aa-4c2b-9d7e-0a1b2c3d4e5f",
            "urn:x:1",
            "2026-000101",
            "1234567",
        ] {
            assert!(is_id_shaped(id), "{id}");
        }
        for not in [
            "",
            "RIVERS, TAYLOR",
            "RIVERS 304-555-0199",
            "219-09-9999",
            "219099999",
            "304-555-0199",
            "555-0199",
            "03/17/1981",
            "1981-03-17",
            "O'BRIEN",
        ] {
            assert!(!is_id_shaped(not), "{not}");
        }
    }

    #[test]
    fn fields_with_a_known_set_send_only_its_values() {
        for (field, ok) in [
            ("sex", "male"),
            ("sex", "F"),
            ("sex", "MALE"),
            ("sex", "Unknown"),
            ("sex", "NB"),
            ("race", "1"),
            ("race", "A/PI"),
            ("race", "W-H"),
            ("location.state", "WV"),
            ("race", "W"),
            ("race", "2106-3"),
            ("ethnicity", "H"),
            ("call_type.code", "10-56"),
        ] {
            assert!(is_sendable_code(field, ok), "{field} {ok}");
        }
        for (field, not) in [
            ("sex", "ZQXALPHA"),
            ("sex", "03/17"),
            ("sex", "031781"),
            ("race", "SSN4329"),
            ("race", "17MAR1981"),
            ("race", "3-17"),
            ("location.state", "WVA1"),
            ("address.state", "ZQXFERN"),
        ] {
            assert!(!is_sendable_code(field, not), "{field} {not}");
        }
    }
}
