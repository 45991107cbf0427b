//! The hand-written JSON must be serde_json's text, byte for byte.

use super::*;
use crate::model::{Action, Category, IdentifierKind, Role};
use chrono::TimeZone;

fn esc(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The word test agrees with the byte test for every pair of byte values at every position.
#[test]
fn the_word_test_finds_exactly_the_bytes_to_escape() {
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            for i in 0..8 {
                let mut w = [b; 8];
                w[i] = a;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(w)),
                    esc(a) || esc(b),
                    "{a:#x} at {i} among {b:#x}"
                );
            }
        }
    }
}

const TEXTS: &[&str] = &[
    "",
    "a",
    "plain ascii text",
    "12345678",
    "1234567\"",
    "\"2345678",
    "12345678\\",
    "tab\there, line\nand return\r, bell\x07, \x08 \x0c \x1f \x7f",
    "é, 日本, emoji 🚑 and a \"quote\" after eight bytes",
    "exactly sixteen!",
    "\u{2028}\u{2029} separators pass unescaped",
];

/// A small deterministic generator: each incident sets, leaves out or empties each field.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<T: Copy>(&mut self, l: &[T]) -> T {
        l[self.next() as usize % l.len()]
    }
    fn coin(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }
    fn text(&mut self) -> String {
        self.pick(TEXTS).to_string()
    }
    fn opt(&mut self) -> Option<String> {
        self.coin().then(|| self.text())
    }
    fn sens(&mut self) -> Option<Sensitive<String>> {
        self.opt().map(Sensitive::new)
    }
    fn list(&mut self) -> Vec<String> {
        (0..self.next() % 3).map(|_| self.text()).collect()
    }
    fn num(&mut self) -> Option<Sensitive<f64>> {
        let v = [
            38.3498,
            -81.6326,
            0.0,
            -0.0,
            1e300,
            5e-324,
            0.1 + 0.2,
            f64::NAN,
            f64::INFINITY,
            -12.0,
        ];
        self.coin().then(|| Sensitive::new(self.pick(&v)))
    }
    fn time(&mut self) -> Option<DateTime<FixedOffset>> {
        if !self.coin() {
            return None;
        }
        let off = self.pick(&[0, -4 * 3600, 5 * 3600 + 1800, -(9 * 3600 + 30 * 60 + 17)]);
        let tz = FixedOffset::east_opt(off).unwrap();
        let (y, nanos) = self.pick(&[(2026, 0), (1999, 250_000_000), (10_000, 0), (-3, 0)]);
        let t = tz.with_ymd_and_hms(y, 3, 14, 22, 15, 9).single()?;
        Some(t + chrono::Duration::nanoseconds(nanos))
    }
    fn age(&mut self) -> Option<Sensitive<u16>> {
        self.coin()
            .then(|| Sensitive::new(self.pick(&[0, 7, 42, 130, u16::MAX])))
    }
    fn person(&mut self) -> Person {
        Person {
            role: self.pick(&Role::ALL),
            name: Name {
                last: self.sens(),
                first: self.sens(),
                middle: self.sens(),
                suffix: self.sens(),
            },
            dob: self.coin().then(|| {
                let y = self.pick(&[1990, 0, 10_000, -5, 9999]);
                Sensitive::new(NaiveDate::from_ymd_opt(y, 7, 4).unwrap())
            }),
            age: self.age(),
            age_min: self.age(),
            age_max: self.age(),
            age_text: self.opt(),
            sex: self.opt(),
            race: self.opt(),
            ethnicity: self.opt(),
            phones: self.list().into_iter().map(Sensitive::new).collect(),
            emails: self.list().into_iter().map(Sensitive::new).collect(),
            address: Address {
                street: self.sens(),
                city: self.sens(),
                state: self.opt(),
                zip: self.sens(),
            },
            identifiers: (0..self.next() % 3)
                .map(|_| Identifier {
                    kind: self.pick(&IdentifierKind::ALL),
                    value: Sensitive::new(self.text()),
                    issuer: self.opt(),
                })
                .collect(),
        }
    }
    fn coded(&mut self) -> Option<Coded> {
        self.coin().then(|| Coded {
            code: self.text(),
            text: self.opt(),
        })
    }
    fn flag(&mut self) -> Option<bool> {
        self.pick(&[None, Some(true), Some(false)])
    }
    fn incident(&mut self) -> Incident {
        Incident {
            source: Source {
                adapter: self.text(),
                agency_ori: self.opt(),
                system: self.opt(),
                record_id: self.text(),
            },
            incident_id: self.text(),
            action: self.pick(&Action::ALL),
            call_type: self.coded(),
            category: self.pick(&Category::ALL),
            eligibility: Eligibility {
                eligible: self.coin(),
                rule: self.text(),
            },
            priority: self.opt(),
            times: Times {
                received: self.time(),
                answered: self.time(),
                dispatched: self.time(),
                arrived: self.time(),
                cleared: self.time(),
                ambiguous: self.coin(),
            },
            location: Location {
                street: self.sens(),
                city: self.opt(),
                county: self.opt(),
                state: self.opt(),
                zip: self.sens(),
                lat: self.num(),
                lon: self.num(),
                beat: self.opt(),
            },
            disposition: self.coded(),
            narrative: self.sens(),
            naloxone_administered: self.flag(),
            flags: Flags {
                weapon: self.flag(),
                violence: self.flag(),
                substance_use: self.flag(),
            },
            offenses: self.list(),
            drugs: self.list(),
            persons: (0..self.next() % 3).map(|_| self.person()).collect(),
        }
    }
}

fn ours(inc: &Incident) -> String {
    let mut v = Vec::new();
    write_incident(&mut v, inc);
    String::from_utf8(v).expect("UTF-8")
}

#[test]
fn the_same_text_as_serde_json() {
    // The bare incident (everything optional left out) and a person with nothing but a role.
    let mut bare = Incident::new("a");
    assert_eq!(ours(&bare), serde_json::to_string(&bare).unwrap());
    bare.persons.push(Person::new(Role::Caller));
    assert_eq!(ours(&bare), serde_json::to_string(&bare).unwrap());
    let mut g = Gen(12);
    for _ in 0..5000 {
        let inc = g.incident();
        assert_eq!(ours(&inc), serde_json::to_string(&inc).unwrap());
    }
}

#[test]
fn every_string_escapes_as_serde_json_escapes_it() {
    // Every character below 0x80 at every offset of a string longer than two words.
    for c in 0..0x80u8 {
        for at in 0..20 {
            let mut s = vec![b'x'; 20];
            s[at] = c;
            let s = String::from_utf8(s).unwrap();
            let mut v = Vec::new();
            write_str(&mut v, &s);
            assert_eq!(v, serde_json::to_vec(&s).unwrap(), "{c:#x} at {at}");
        }
    }
}

#[test]
fn escapes_at_every_place_of_every_length() {
    // Lengths around one, two and three words; one or two characters to escape (or not) at
    // every place, among ASCII or two-byte characters, so that the short form, the whole words,
    // the overlapping last word and the byte-by-byte path all meet every case.
    let specials = [
        '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1f}', '\u{7f}', 'é', '🚑',
        '\u{2028}',
    ];
    for fill in ['x', 'é'] {
        for len in 0..=26 {
            for at in 0..len {
                for c in specials {
                    for second in [None, Some(len - 1), Some(0)] {
                        let mut chars = vec![fill; len];
                        chars[at] = c;
                        if let Some(j) = second {
                            chars[j] = '"';
                        }
                        let s: String = chars.into_iter().collect();
                        let mut v = b"prefix".to_vec();
                        write_str(&mut v, &s);
                        let mut want = b"prefix".to_vec();
                        want.extend(serde_json::to_vec(&s).unwrap());
                        assert_eq!(v, want, "{s:?}");
                    }
                }
            }
        }
    }
}
