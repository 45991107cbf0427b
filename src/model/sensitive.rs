//! A wrapper for identifying values (names, dates of birth, SSNs, phones, addresses, narratives).
//!
//! `Debug` and `Display` print a placeholder, so a value can never reach a log line, an error
//! message or a metric label by accident: `tracing::info!(?person)` or `format!("{person:?}")`
//! show `<redacted>`. The value leaves only through serde (the canonical JSON that downstream
//! stages consume, under a disclosure profile) or an explicit [`Sensitive::expose`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An identifying value. See the module documentation.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sensitive<T>(T);

/// The text shown wherever a [`Sensitive`] value is formatted.
pub const REDACTED: &str = "<redacted>";

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Sensitive(value)
    }

    /// The value itself. Call sites are few and greppable: policy and delivery code only.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Sensitive<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sensitive<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Sensitive)
    }
}

impl From<&str> for Sensitive<String> {
    fn from(s: &str) -> Self {
        Sensitive(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let ssn = Sensitive::new("123-45-6789".to_string());
        assert_eq!(format!("{ssn:?}"), REDACTED);
        assert_eq!(format!("{ssn}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&ssn)), format!("Some({REDACTED})"));
        assert_eq!(serde_json::to_string(&ssn).unwrap(), "\"123-45-6789\"");
    }
}
