//! Strings of incidents already delivered, kept to hold the next record's values.
//!
//! An incident holds about thirty strings; allocating them for each record and freeing them once
//! its JSON line was written was about 12% of `normalize` (malloc, free and their bookkeeping).
//! A sink that is done with an incident may hand it back ([`crate::pipeline::Sink::spare`]); its
//! strings go into a [`Scratch`], and the mapping copies the next record's values into them. The
//! next incident is still built fresh (`Incident::new`): only empty buffers are reused, never a
//! value, so nothing of one record can reach the next.

use crate::model::{Incident, Person, Sensitive};
use std::borrow::Cow;

/// Buffers above this size are dropped, not kept: one huge narrative must not stay in memory.
const MAX_KEPT_CAPACITY: usize = 4096;
/// At most this many buffers are kept (an incident with many persons gives back more).
const MAX_KEPT: usize = 256;

/// Empty string buffers to fill; see the module's comment.
#[derive(Debug, Default)]
pub struct Scratch {
    strings: Vec<String>,
    /// The persons' vector of the last incident, emptied: its room for the next one's persons.
    persons: Vec<Person>,
}

impl Scratch {
    /// `v` as an owned string: an owned value as it is, a borrowed one copied into a kept
    /// buffer when there is one.
    pub fn text(&mut self, v: Cow<str>) -> String {
        match v {
            Cow::Owned(s) => s,
            Cow::Borrowed(b) => self.copy(b),
        }
    }

    /// `v` copied into a kept buffer when there is one.
    pub fn copy(&mut self, v: &str) -> String {
        match self.strings.pop() {
            Some(mut s) => {
                s.push_str(v);
                s
            }
            None => v.to_owned(),
        }
    }

    /// An empty buffer, kept or new.
    pub fn buffer(&mut self) -> String {
        self.strings.pop().unwrap_or_default()
    }

    /// An empty vector for an incident's persons, with the room the last one had.
    pub fn persons(&mut self) -> Vec<Person> {
        std::mem::take(&mut self.persons)
    }

    /// Takes back every string of an incident that has been delivered.
    pub fn recycle(&mut self, inc: Incident) {
        let Incident {
            source,
            incident_id,
            call_type,
            priority,
            location,
            disposition,
            narrative,
            offenses,
            drugs,
            mut persons,
            eligibility,
            ..
        } = inc;
        self.keep(source.adapter);
        self.keep_opt(source.agency_ori);
        self.keep_opt(source.system);
        self.keep(source.record_id);
        self.keep(incident_id);
        self.keep(eligibility.rule);
        for c in [call_type, disposition].into_iter().flatten() {
            self.keep(c.code);
            self.keep_opt(c.text);
        }
        self.keep_opt(priority);
        self.keep_hidden(location.street);
        self.keep_opt(location.city);
        self.keep_opt(location.county);
        self.keep_opt(location.state);
        self.keep_hidden(location.zip);
        self.keep_opt(location.beat);
        self.keep_hidden(narrative);
        for s in offenses.into_iter().chain(drugs) {
            self.keep(s);
        }
        for p in persons.drain(..) {
            self.recycle_person(p);
        }
        if persons.capacity() > self.persons.capacity() {
            self.persons = persons;
        }
    }

    fn recycle_person(&mut self, p: Person) {
        let Person {
            name,
            age_text,
            sex,
            race,
            ethnicity,
            phones,
            emails,
            address,
            identifiers,
            ..
        } = p;
        for s in [name.last, name.first, name.middle, name.suffix] {
            self.keep_hidden(s);
        }
        self.keep_opt(age_text);
        self.keep_opt(sex);
        self.keep_opt(race);
        self.keep_opt(ethnicity);
        for s in phones.into_iter().chain(emails) {
            self.keep(s.into_inner());
        }
        self.keep_hidden(address.street);
        self.keep_hidden(address.city);
        self.keep_opt(address.state);
        self.keep_hidden(address.zip);
        for i in identifiers {
            self.keep(i.value.into_inner());
            self.keep_opt(i.issuer);
        }
    }

    fn keep(&mut self, mut s: String) {
        if s.capacity() > 0 && s.capacity() <= MAX_KEPT_CAPACITY && self.strings.len() < MAX_KEPT {
            s.clear();
            self.strings.push(s);
        }
    }

    fn keep_opt(&mut self, s: Option<String>) {
        if let Some(s) = s {
            self.keep(s);
        }
    }

    fn keep_hidden(&mut self, s: Option<Sensitive<String>>) {
        if let Some(s) = s {
            self.keep(s.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Name, Role};

    /// A kept buffer comes back empty, whatever it held.
    #[test]
    fn buffers_come_back_empty() {
        let mut s = Scratch::default();
        let mut inc = Incident::new("adapter");
        inc.incident_id = "2026-0001".into();
        inc.narrative = Some(Sensitive::new("a long narrative".into()));
        let mut p = Person::new(Role::Subject);
        p.name = Name {
            last: Some("DOE".into()),
            ..Name::default()
        };
        inc.persons.push(p);
        s.recycle(inc);
        assert_eq!(s.strings.len(), 4);
        assert!(s.persons().capacity() >= 1);
        assert_eq!(s.copy("x"), "x");
        assert_eq!(s.text(Cow::Borrowed("WV")), "WV");
        assert_eq!(s.text(Cow::Owned("owned".into())), "owned");
    }
}
