//! The dictionaries compiled into the binary (`data/`, whose PROVENANCE.md names each source and
//! its terms): given names and surnames, places, common English words and the domain's own
//! words. Lookups take a word as [`fold`] made it: lower case, without accents, possessive `'s`
//! dropped. The sets are built once, at the first lookup (about 150,000 words, tens of
//! milliseconds), and are hash sets: a lookup costs a hash, not a scan.

use std::collections::HashSet;
use std::sync::LazyLock;

fn set(data: &'static str) -> HashSet<&'static str> {
    data.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

static GIVEN: LazyLock<HashSet<&str>> = LazyLock::new(|| set(include_str!("data/given_names.txt")));
static SURNAMES: LazyLock<HashSet<&str>> = LazyLock::new(|| set(include_str!("data/surnames.txt")));
/// Places of one word or more, as their folded words joined by one space.
static PLACES: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    let mut s = set(include_str!("data/places.txt"));
    s.extend(set(include_str!("data/places_local.txt")));
    s
});
/// SCOWL's size-35 words: the very common ones, which a name dictionary does not override.
static WORDS_35: LazyLock<HashSet<&str>> = LazyLock::new(|| set(include_str!("data/words_35.txt")));
/// SCOWL's size-50 words beyond size 35.
static WORDS_50: LazyLock<HashSet<&str>> = LazyLock::new(|| set(include_str!("data/words_50.txt")));
static DOMAIN: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set(include_str!("data/domain_terms.txt")));

/// Titles and honorifics: the words after one are a name (`Dr. Nielsen`, `SGT MILLER`).
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "doctor",
    "prof",
    "professor",
    "rev",
    "reverend",
    "fr",
    "father",
    "sr",
    "sister",
    "officer",
    "ofc",
    "ptl",
    "patrolman",
    "sgt",
    "sergeant",
    "cpl",
    "corporal",
    "lt",
    "lieutenant",
    "capt",
    "captain",
    "det",
    "detective",
    "dep",
    "deputy",
    "tpr",
    "trooper",
    "chief",
    "sheriff",
    "judge",
    "nurse",
    "sir",
    "madam",
    "dame",
    "lord",
    "lady",
    "mister",
    "mistress",
    "pastor",
    "coach",
    "agent",
    "inspector",
];

/// Words after which a name follows in a narrative: the roles of a call (`RP JOHN SMITH`,
/// `SUBJ DOE`), relations (`her boyfriend Mike`) and naming phrases (`named`, `aka`).
const CUES: &[&str] = &[
    "rp",
    "r/p",
    "subj",
    "subject",
    "susp",
    "suspect",
    "vict",
    "vic",
    "victim",
    "pt",
    "patient",
    "caller",
    "comp",
    "complainant",
    "wit",
    "witness",
    "named",
    "aka",
    "a/k/a",
    "alias",
    "boyfriend",
    "girlfriend",
    "bf",
    "gf",
    "husband",
    "wife",
    "fiance",
    "fiancee",
    "mother",
    "mom",
    "father",
    "dad",
    "son",
    "daughter",
    "brother",
    "sister",
    "cousin",
    "aunt",
    "uncle",
    "grandmother",
    "grandfather",
    "grandson",
    "granddaughter",
    "nephew",
    "niece",
    "friend",
    "neighbor",
    "neighbour",
    "roommate",
    "partner",
    "stepfather",
    "stepmother",
    "stepson",
    "stepdaughter",
    "landlord",
    "coworker",
    "kid",
    "child",
    "baby",
    "peer",
    "prss",
    "driver",
    "passenger",
    "owner",
    "resident",
    "tenant",
    "occupant",
    "bystander",
    "bro",
    "sis",
    "grandson",
    "ex",
    "exgf",
    "exbf",
    "juvenile",
    "juv",
    "caregiver",
    "babysitter",
];

/// Cues after which the next capitalized word is a name whatever it means otherwise (`named
/// Spider`).
const STRONG_CUES: &[&str] = &["named", "aka", "a/k/a", "alias", "nicknamed", "called"];

/// Words that never start a name after a cue, though a name list has them (`HER HUSBAND WILL
/// BE`, `RP MAY CALL`): auxiliaries and the like.
const NOT_AFTER_CUE: &[&str] = &[
    "will", "may", "can", "said", "says", "is", "was", "has", "had", "and", "or", "to", "at", "in",
    "on", "of", "the", "be", "been", "not", "did", "does", "stated", "states", "advised",
    "advises", "also", "then", "who", "who's", "that", "this", "his", "her", "their", "just",
    "never", "still", "now", "called", "came", "went", "left", "took", "found", "got", "would",
    "could", "should", "might", "must", "arrived", "reports", "reported", "refused", "wants",
    "wanted", "asked", "told", "gave", "given", "admits", "admitted", "denies", "denied", "hit",
    "so", "as", "an", "a", "were", "are", "became", "being", "by", "with", "for", "from", "into",
    "onto", "over", "under", "up", "down", "out", "off", "back", "home",
];

/// Words before a place: `in Hurricane`, `from Nitro`.
const PLACE_CUES: &[&str] = &[
    "in", "at", "from", "to", "near", "of", "outside", "toward", "towards", "into", "via",
    "through", "around",
];

/// `w` folded for lookups: lower case, Latin accents removed (`Ústí` → `usti`, `Muñoz` →
/// `munoz`), the curly apostrophe as the straight one, a possessive `'s` dropped.
pub fn fold(w: &str, out: &mut String) {
    out.clear();
    for c in w.chars() {
        let c = match c {
            '’' | '‘' => '\'',
            _ => c,
        };
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            for l in c.to_lowercase() {
                out.push(strip_accent(l));
            }
        }
    }
    if out.ends_with("'s") {
        out.truncate(out.len() - 2);
    } else if out.ends_with('\'') {
        out.pop();
    }
}

/// The base letter of a lower-case Latin letter with a diacritic; other characters as they are.
fn strip_accent(c: char) -> char {
    const FROM: &str =
        "àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżžð";
    const TO: &str =
        "aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijklllllnnnnooooooooorrrsssstttuuuuuuuuuuwyyyzzzd";
    match FROM.chars().position(|f| f == c) {
        Some(i) => TO.chars().nth(i).unwrap_or(c),
        None => match c {
            'ß' => 's',
            'æ' => 'a',
            'œ' => 'o',
            'þ' => 't',
            _ => c,
        },
    }
}

pub fn given(w: &str) -> bool {
    GIVEN.contains(w)
}

pub fn surname(w: &str) -> bool {
    SURNAMES.contains(w)
}

pub fn name(w: &str) -> bool {
    given(w) || surname(w)
}

/// A place of one or more folded words joined by single spaces.
pub fn place(phrase: &str) -> bool {
    PLACES.contains(phrase)
}

/// A very common English word (SCOWL size 35): a name or place dictionary does not override it
/// without context (`Mark`, `Hunter`, `Hurricane`).
pub fn very_common(w: &str) -> bool {
    WORDS_35.contains(w)
}

/// An English word (SCOWL size 50) or a word of the domain: what the safe-word mode keeps.
pub fn safe(w: &str) -> bool {
    WORDS_35.contains(w) || WORDS_50.contains(w) || DOMAIN.contains(w) || title(w)
}

pub fn domain(w: &str) -> bool {
    DOMAIN.contains(w)
}

pub fn title(w: &str) -> bool {
    TITLES.contains(&w)
}

pub fn cue(w: &str) -> bool {
    CUES.contains(&w)
}

pub fn strong_cue(w: &str) -> bool {
    STRONG_CUES.contains(&w)
}

pub fn not_after_cue(w: &str) -> bool {
    NOT_AFTER_CUE.contains(&w)
}

pub fn place_cue(w: &str) -> bool {
    PLACE_CUES.contains(&w)
}

/// Builds every set now: a server or benchmark pays it at start, not on its first narrative.
pub fn load() {
    for s in [&GIVEN, &SURNAMES, &PLACES, &WORDS_35, &WORDS_50, &DOMAIN] {
        LazyLock::force(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(w: &str) -> String {
        let mut s = String::new();
        fold(w, &mut s);
        s
    }

    #[test]
    fn folding_and_lookups() {
        assert_eq!(f("Ústí"), "usti");
        assert_eq!(f("MUÑOZ’S"), "munoz");
        assert_eq!(f("Sumaya's"), "sumaya");
        assert!(given("jessica") && surname("nguyen") && !surname("the"));
        assert!(place("charleston") && place("west virginia") && place("hurricane"));
        assert!(very_common("brown") && !very_common("jessica"));
        assert!(safe("naloxone") && safe("liftoff") && !safe("shamhan"));
    }
}
