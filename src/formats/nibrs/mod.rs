//! FBI NIBRS: the XML IEPD (2019.1, and 4.2) and the fixed-width flat file. Both readers produce
//! the same normalized report (a JSON object, described below), so that the shipped mapping
//! (`mappings/nibrs.toml`) serves both and the twins of one incident normalize alike.
//!
//! The normalized report:
//! `{ori, incident_number, action (I|A|R|D), date, hour, datetime, report_date_indicator,
//!   cleared_exceptionally, offense_codes[], offenses[{code, attempted, suspected_of_using[],
//!   location_type, bias}], substance_use, drug_categories[], victims[], subjects[],
//!   arrestees[]}`, each person `{seq, age, age_min, age_max, age_text, sex, race, ethnicity,
//!   resident}` (arrestees add `arrest_date`, `arrest_type`, `charge`).

pub mod flat;
pub mod xml;
mod xml_tree;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub ori: String,
    pub incident_number: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    /// `date` and `hour` as a local date-time, when both are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    pub report_date_indicator: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_exceptionally: Option<String>,
    pub offense_codes: Vec<String>,
    pub offenses: Vec<Offense>,
    /// An offender was suspected of using drugs or narcotic equipment (factor `D`).
    pub substance_use: bool,
    pub drug_categories: Vec<String>,
    pub victims: Vec<NibrsPerson>,
    pub subjects: Vec<NibrsPerson>,
    pub arrestees: Vec<NibrsPerson>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Offense {
    pub code: String,
    pub attempted: bool,
    pub suspected_of_using: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NibrsPerson {
    pub seq: String,
    #[serde(flatten)]
    pub age: Age,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethnicity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub victim_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrest_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrest_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
}

/// An age as NIBRS gives it: years, a range, or a code.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Age {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_min: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_max: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_text: Option<String>,
}

impl Age {
    /// Reads the flat file's codes (also used for XML text values): `NN` under 24 hours, `NB`
    /// 1–6 days, `BB` 7–364 days, `00` unknown, `99` over 98, `01`–`98` years, or a range
    /// `2532` (25 to 32).
    pub fn from_code(code: &str) -> Age {
        let c = code.trim();
        let text = |t: &str| Age {
            age_text: Some(t.into()),
            ..Age::default()
        };
        match c {
            "" => Age::default(),
            "NN" => Age {
                age: Some(0),
                ..text("under 24 hours")
            },
            "NB" => Age {
                age: Some(0),
                ..text("1 to 6 days")
            },
            "BB" => Age {
                age: Some(0),
                ..text("7 to 364 days")
            },
            "00" => text("unknown"),
            "99" => Age {
                age_min: Some(99),
                ..text("over 98")
            },
            _ if c.len() == 4 && c.bytes().all(|b| b.is_ascii_digit()) => {
                let (a, b) = (c[..2].parse().ok(), c[2..].parse().ok());
                Age {
                    age_min: a,
                    age_max: b,
                    ..Age::default()
                }
            }
            _ if c.bytes().all(|b| b.is_ascii_digit()) => Age {
                age: c.parse().ok(),
                ..Age::default()
            },
            other => text(other),
        }
    }
}

impl Report {
    /// Derived fields: the offense code list, the substance-use flag, the date-time.
    pub fn finish(&mut self) {
        self.offense_codes = self.offenses.iter().map(|o| o.code.clone()).collect();
        self.substance_use = self
            .offenses
            .iter()
            .any(|o| o.suspected_of_using.iter().any(|s| s == "D"));
        self.datetime = match (&self.date, &self.hour) {
            (Some(d), Some(h)) if !h.is_empty() => Some(format!("{d}T{h:0>2}:00:00")),
            _ => None,
        };
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// `Some(text)` unless blank.
pub(crate) fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}
