//! Coded indicators read from a narrative (pure, no I/O): which substances it says were involved
//! and whether naloxone was given, how many doses. They are codes of a closed set, so the Safe
//! Harbor and aggregate uses may carry them where the narrative itself never goes.
//!
//! Negation in the NegEx way (Chapman et al. 2001): a term is not positive when a negation
//! trigger stands before it in the same clause (`denies heroin use`, `no naloxone`, `negative
//! for cocaine`) or after it (`narcan not needed`, `naloxone was refused`); a clause ends at a
//! sentence mark, a semicolon or a termination word (`but`, `however`, `admits`, `states`), so
//! `denies heroin, admits to smoking crack` is positive for cocaine. A history (`history of
//! opiate use`) is not a current involvement either. Treatment medicines (methadone,
//! buprenorphine, Suboxone, Vivitrol) are not counted as substances: a narrative names them as
//! care, not as use.

use std::collections::BTreeSet;

/// The substances the program reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Substance {
    Fentanyl,
    Heroin,
    /// A named opioid other than fentanyl and heroin (oxycodone, Percocet, morphine, ...).
    OtherOpioid,
    /// `opioid` or `opiate` without saying which.
    OpioidUnspecified,
    Methamphetamine,
    Cocaine,
    Benzodiazepine,
    Alcohol,
    Xylazine,
}

impl Substance {
    pub const ALL: [Substance; 9] = [
        Substance::Fentanyl,
        Substance::Heroin,
        Substance::OtherOpioid,
        Substance::OpioidUnspecified,
        Substance::Methamphetamine,
        Substance::Cocaine,
        Substance::Benzodiazepine,
        Substance::Alcohol,
        Substance::Xylazine,
    ];

    /// The code a payload carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Substance::Fentanyl => "fentanyl",
            Substance::Heroin => "heroin",
            Substance::OtherOpioid => "other_opioid",
            Substance::OpioidUnspecified => "opioid_unspecified",
            Substance::Methamphetamine => "methamphetamine",
            Substance::Cocaine => "cocaine",
            Substance::Benzodiazepine => "benzodiazepine",
            Substance::Alcohol => "alcohol",
            Substance::Xylazine => "xylazine",
        }
    }
}

/// What a narrative says, as codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indicators {
    pub substances: BTreeSet<Substance>,
    /// `Some(true)`: naloxone given; `Some(false)`: the narrative says it was not (`no narcan
    /// given`, `not needed`); `None`: it does not say.
    pub naloxone: Option<bool>,
    /// Doses given, when naloxone was: the counts the sentences give (`x2`, `two doses`,
    /// `2 doses by PD, 1 by EMS`), one for a sentence that gives none.
    pub naloxone_doses: Option<u32>,
}

/// Words (lower case) that name a substance.
const LEXICON: &[(&str, Substance)] = &[
    ("fentanyl", Substance::Fentanyl),
    ("fentanyls", Substance::Fentanyl),
    ("fent", Substance::Fentanyl),
    ("fetty", Substance::Fentanyl),
    ("carfentanil", Substance::Fentanyl),
    ("m30", Substance::Fentanyl),
    ("m30s", Substance::Fentanyl),
    ("heroin", Substance::Heroin),
    ("smack", Substance::Heroin),
    ("oxycodone", Substance::OtherOpioid),
    ("oxycontin", Substance::OtherOpioid),
    ("oxy", Substance::OtherOpioid),
    ("oxys", Substance::OtherOpioid),
    ("percocet", Substance::OtherOpioid),
    ("percocets", Substance::OtherOpioid),
    ("perc", Substance::OtherOpioid),
    ("percs", Substance::OtherOpioid),
    ("roxy", Substance::OtherOpioid),
    ("roxies", Substance::OtherOpioid),
    ("roxicodone", Substance::OtherOpioid),
    ("hydrocodone", Substance::OtherOpioid),
    ("vicodin", Substance::OtherOpioid),
    ("lortab", Substance::OtherOpioid),
    ("lortabs", Substance::OtherOpioid),
    ("dilaudid", Substance::OtherOpioid),
    ("hydromorphone", Substance::OtherOpioid),
    ("morphine", Substance::OtherOpioid),
    ("codeine", Substance::OtherOpioid),
    ("tramadol", Substance::OtherOpioid),
    ("opana", Substance::OtherOpioid),
    ("opioid", Substance::OpioidUnspecified),
    ("opioids", Substance::OpioidUnspecified),
    ("opiate", Substance::OpioidUnspecified),
    ("opiates", Substance::OpioidUnspecified),
    ("meth", Substance::Methamphetamine),
    ("methamphetamine", Substance::Methamphetamine),
    ("methamphetamines", Substance::Methamphetamine),
    ("crank", Substance::Methamphetamine),
    ("cocaine", Substance::Cocaine),
    ("coke", Substance::Cocaine),
    ("crack", Substance::Cocaine),
    ("benzo", Substance::Benzodiazepine),
    ("benzos", Substance::Benzodiazepine),
    ("benzodiazepine", Substance::Benzodiazepine),
    ("benzodiazepines", Substance::Benzodiazepine),
    ("xanax", Substance::Benzodiazepine),
    ("xanaxes", Substance::Benzodiazepine),
    ("alprazolam", Substance::Benzodiazepine),
    ("klonopin", Substance::Benzodiazepine),
    ("clonazepam", Substance::Benzodiazepine),
    ("valium", Substance::Benzodiazepine),
    ("diazepam", Substance::Benzodiazepine),
    ("ativan", Substance::Benzodiazepine),
    ("lorazepam", Substance::Benzodiazepine),
    ("alcohol", Substance::Alcohol),
    ("etoh", Substance::Alcohol),
    ("drunk", Substance::Alcohol),
    ("drinking", Substance::Alcohol),
    ("drank", Substance::Alcohol),
    ("beer", Substance::Alcohol),
    ("beers", Substance::Alcohol),
    ("vodka", Substance::Alcohol),
    ("whiskey", Substance::Alcohol),
    ("liquor", Substance::Alcohol),
    ("wine", Substance::Alcohol),
    ("bac", Substance::Alcohol),
    ("pbt", Substance::Alcohol),
    ("xylazine", Substance::Xylazine),
    ("tranq", Substance::Xylazine),
];

const NALOXONE: &[&str] = &[
    "naloxone",
    "narcan",
    "kloxxado",
    "zimhi",
    "nalmefene",
    "opvee",
];

/// Words before a term that negate it.
const PRE_NEGATION: &[&str] = &[
    "no", "not", "denies", "denied", "deny", "denying", "without", "never", "negative", "neg",
    "none", "nor", "refused", "refuses", "declined", "declines", "absent",
];

/// Words after a term that negate it (`narcan not given`, `was not needed`).
const POST_NEGATION: &[&str] = &[
    "not",
    "negative",
    "refused",
    "declined",
    "unnecessary",
    "unneeded",
];

/// Words that end a negation's scope.
const TERMINATION: &[&str] = &[
    "but",
    "however",
    "although",
    "though",
    "yet",
    "except",
    "admits",
    "admitted",
    "admitting",
    "states",
    "stated",
    "says",
    "said",
    "reports",
    "reported",
    "which",
    "who",
    "whereas",
    "then",
    "after",
    "later",
];

/// Words that make a mention historical, not current.
const HISTORY: &[&str] = &["history", "hx", "formerly", "former", "past", "previously"];

/// Words that say naloxone was given (not a kit handed out).
const GIVEN: &[&str] = &[
    "given",
    "gave",
    "give",
    "giving",
    "administered",
    "administer",
    "admin",
    "admin'd",
    "adm",
    "deployed",
    "used",
    "received",
    "got",
    "dose",
    "doses",
    "x1",
    "x2",
    "x3",
    "x4",
    "x5",
    "times",
    "in",
    "intranasal",
    "im",
    "iv",
    "sprays",
    "spray",
    "revived",
    "responded",
    "response",
];

const KIT: &[&str] = &[
    "kit",
    "kits",
    "distributed",
    "training",
    "trained",
    "leave",
    "leave-behind",
];

fn number(w: &str) -> Option<u32> {
    match w {
        "one" | "once" | "single" => Some(1),
        "two" | "twice" => Some(2),
        "three" => Some(3),
        "four" => Some(4),
        "five" => Some(5),
        "six" => Some(6),
        _ => w.parse().ok().filter(|n| (1..=12).contains(n)),
    }
}

/// The lower-case words of one sentence, clause marks (`,`) kept as words of their own.
fn sentences(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, cur: &mut Vec<String>| {
        if !word.is_empty() {
            cur.push(std::mem::take(word));
        }
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '\'' && !word.is_empty() {
            word.extend(c.to_lowercase());
        } else if c == '.' && !word.is_empty() && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            word.push('.');
        } else {
            flush(&mut word, &mut cur);
            match c {
                '.' | '!' | '?' | ';' | '\n' if !cur.is_empty() => {
                    out.push(std::mem::take(&mut cur));
                }
                ',' | ':' | '(' | ')' => cur.push(",".into()),
                _ => {}
            }
        }
    }
    flush(&mut word, &mut cur);
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether the term at `i` of `words` is negated or historical: a trigger up to five words
/// before it, or up to three after, in its clause.
fn negated(words: &[String], i: usize) -> bool {
    let ends = |w: &str| w == "," || TERMINATION.contains(&w);
    let mut k = i;
    let mut seen = 0;
    while k > 0 && seen < 5 {
        k -= 1;
        let w = words[k].as_str();
        if ends(w)
            && !(w == "," && seen == 0 && k > 0 && PRE_NEGATION.contains(&words[k - 1].as_str()))
        {
            break;
        }
        if PRE_NEGATION.contains(&w) || HISTORY.contains(&w) {
            return true;
        }
        seen += 1;
    }
    for w in words.iter().skip(i + 1).take(4) {
        if ends(w) {
            break;
        }
        if POST_NEGATION.contains(&w.as_str()) {
            return true;
        }
    }
    false
}

/// The indicators of a narrative.
pub fn from_narrative(text: &str) -> Indicators {
    let mut out = Indicators::default();
    let mut doses = 0u32;
    for words in sentences(text) {
        let mut sentence_given = false;
        let mut sentence_doses = 0u32;
        for (i, w) in words.iter().enumerate() {
            if let Some((_, s)) = LEXICON.iter().find(|(t, _)| t == w)
                && !negated(&words, i)
            {
                out.substances.insert(*s);
            }
            if NALOXONE.contains(&w.as_str()) {
                let clause = |range: std::ops::Range<usize>| {
                    words[range]
                        .iter()
                        .take_while(|w| *w != ",")
                        .cloned()
                        .collect::<Vec<_>>()
                };
                let after = clause(i + 1..words.len());
                let mut before = clause(0..i);
                before.reverse();
                let near: Vec<&String> =
                    before.iter().take(6).chain(after.iter().take(8)).collect();
                if negated(&words, i) {
                    out.naloxone.get_or_insert(false);
                } else if near.iter().any(|w| KIT.contains(&w.as_str())) {
                    // A kit handed out says nothing about a dose given.
                } else if near
                    .iter()
                    .any(|w| GIVEN.contains(&w.as_str()) || count(w).is_some())
                    || sentence_doses > 0
                {
                    sentence_given = true;
                }
            }
        }
        if sentence_given {
            // Counts anywhere in the sentence: `x2`, `2 doses`, `3 times`, `1 by EMS`.
            for (i, w) in words.iter().enumerate() {
                let next = words.get(i + 1).map(String::as_str).unwrap_or("");
                if let Some(n) = count(w) {
                    sentence_doses += n;
                } else if let Some(n) = number(w)
                    && matches!(
                        next,
                        "dose" | "doses" | "times" | "sprays" | "spray" | "rounds" | "by" | "more"
                    )
                {
                    sentence_doses += n;
                }
            }
            doses += sentence_doses.max(1);
            out.naloxone = Some(true);
        }
    }
    if out.naloxone == Some(true) {
        out.naloxone_doses = Some(doses);
    }
    out
}

/// `x2`, `X3`: a count written as a multiplier.
fn count(w: &str) -> Option<u32> {
    w.strip_prefix('x').and_then(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Substance::*;

    fn subs(t: &str) -> Vec<Substance> {
        from_narrative(t).substances.into_iter().collect()
    }

    #[test]
    fn substances_and_their_negations() {
        assert_eq!(
            subs("Pt denies heroin use, states he drank a fifth of vodka."),
            vec![Alcohol]
        );
        assert_eq!(
            subs("No Narcan given. Subject admitted using cocaine and alcohol tonight."),
            vec![Cocaine, Alcohol]
        );
        assert_eq!(
            subs("SUSPECTED FENTANYL/XYLAZINE"),
            vec![Fentanyl, Xylazine]
        );
        assert_eq!(
            subs("denies opioid use, admits to smoking crack"),
            vec![Cocaine]
        );
        assert_eq!(subs("negative for benzos; took 3 percs"), vec![OtherOpioid]);
        assert_eq!(subs("he has a history of opiate use"), vec![]);
        assert_eq!(
            subs("interested in the Suboxone program at a methadone clinic"),
            vec![]
        );
        assert_eq!(subs("NO DRUG USE REPORTED. PBT .14"), vec![Alcohol]);
        assert_eq!(
            subs("2 XANAX BARS AND METH"),
            vec![Methamphetamine, Benzodiazepine]
        );
    }

    #[test]
    fn naloxone_given_and_doses() {
        let n = |t: &str| {
            let i = from_narrative(t);
            (i.naloxone, i.naloxone_doses)
        };
        assert_eq!(
            n("NARCAN 4MG IN X2 BY ENGINE 5, PT CAME AROUND"),
            (Some(true), Some(2))
        );
        assert_eq!(
            n("Narcan 2 doses by PD, 1 by EMS. Pt awake."),
            (Some(true), Some(3))
        );
        assert_eq!(
            n("Ofc. Doe administered one dose of naloxone."),
            (Some(true), Some(1))
        );
        assert_eq!(n("GIVEN NARCAN 3 TIMES BY FRIENDS"), (Some(true), Some(3)));
        assert_eq!(
            n("BYSTANDER GAVE NARCAN. MALE LEFT."),
            (Some(true), Some(1))
        );
        assert_eq!(n("No naloxone administered."), (Some(false), None));
        assert_eq!(n("Narcan was not needed."), (Some(false), None));
        assert_eq!(n("NO NALOXONE NEEDED"), (Some(false), None));
        assert_eq!(
            n("she declined services but took a naloxone kit"),
            (None, None)
        );
        assert_eq!(n("Pt stable, talked about treatment."), (None, None));
    }
}
