//! One NIBRS report as a small tree of its elements, and the reading of that tree into a
//! [`Report`]. Names are matched by namespace family (NIEM core, justice, structures, NIBRS,
//! CJIS), not by prefix, since NIEM reuses local names across namespaces.

use super::{Age, NibrsPerson, Offense, Report, some};
use std::collections::HashMap;

/// The namespace families NIBRS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ns {
    Nc,
    J,
    S,
    Nibrs,
    Cjis,
    Other,
}

pub(super) fn family(u: &str) -> Ns {
    if u.contains("niem-core") {
        Ns::Nc
    } else if u.contains("jxdm") {
        Ns::J
    } else if u.contains("/structures/") {
        Ns::S
    } else if u.contains("fbi.gov/cjis/nibrs") && !u.contains("codes") {
        Ns::Nibrs
    } else if u.contains("fbi.gov/cjis") && !u.contains("codes") {
        Ns::Cjis
    } else {
        Ns::Other
    }
}

#[derive(Debug, Default)]
pub(super) struct Node {
    pub(super) ns: Option<Ns>,
    pub(super) name: String,
    pub(super) id: Option<String>,
    pub(super) r#ref: Option<String>,
    pub(super) text: String,
    pub(super) children: Vec<usize>,
}

/// One report's elements, flat, children by index.
#[derive(Debug, Default)]
pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
}

impl Tree {
    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    fn children<'a>(&'a self, i: usize, ns: Ns, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.nodes[i]
            .children
            .iter()
            .copied()
            .filter(move |&c| self.nodes[c].ns == Some(ns) && self.nodes[c].name == name)
    }

    fn child(&self, i: usize, ns: Ns, name: &str) -> Option<usize> {
        self.children(i, ns, name).next()
    }

    /// The text at a path of (namespace, name) steps below `i`.
    fn text(&self, i: usize, path: &[(Ns, &str)]) -> Option<String> {
        let mut at = i;
        for (ns, name) in path {
            at = self.child(at, *ns, name)?;
        }
        some(&self.nodes[at].text)
    }
}

/// Reads one report tree. `Ok(None)` for a zero report.
pub(super) fn read_report(t: &Tree) -> Result<Option<Report>, String> {
    use Ns::*;
    let root = 0;
    let header = t
        .child(root, Nibrs, "ReportHeader")
        .ok_or("the report has no nibrs:ReportHeader")?;
    let category = t
        .text(header, &[(Nibrs, "NIBRSReportCategoryCode")])
        .unwrap_or_default();
    if category.to_ascii_uppercase().contains("ZERO") {
        return Ok(None);
    }
    if category.to_ascii_uppercase().contains("GROUP B") {
        return Err("a Group B arrest report is not an incident".into());
    }
    let action = t
        .text(header, &[(Nibrs, "ReportActionCategoryCode")])
        .ok_or("the report header has no ReportActionCategoryCode")?;
    let ori = t
        .text(
            header,
            &[
                (Nibrs, "ReportingAgency"),
                (J, "OrganizationAugmentation"),
                (J, "OrganizationORIIdentification"),
                (Nc, "IdentificationID"),
            ],
        )
        .unwrap_or_default();
    let incident = t
        .child(root, Nc, "Incident")
        .ok_or("the report has no nc:Incident")?;
    let number = t
        .text(
            incident,
            &[(Nc, "ActivityIdentification"), (Nc, "IdentificationID")],
        )
        .ok_or("the incident has no nc:ActivityIdentification/nc:IdentificationID")?;
    let mut r = Report {
        ori,
        incident_number: number,
        action,
        ..Report::default()
    };
    if let Some(ad) = t.child(incident, Nc, "ActivityDate") {
        let dt = t.text(ad, &[(Nc, "DateTime")]);
        r.date = dt
            .as_ref()
            .and_then(|d| d.get(..10))
            .map(str::to_string)
            .or_else(|| t.text(ad, &[(Nc, "Date")]));
        r.hour = dt.as_ref().and_then(|d| d.get(11..13)).map(str::to_string);
    }
    r.report_date_indicator = t
        .text(
            incident,
            &[
                (Cjis, "IncidentAugmentation"),
                (Cjis, "IncidentReportDateIndicator"),
            ],
        )
        .is_some_and(|v| v == "true");
    r.cleared_exceptionally = t.text(
        incident,
        &[
            (J, "IncidentAugmentation"),
            (J, "IncidentExceptionalClearanceCode"),
        ],
    );

    // Offenses, with the location type through OffenseLocationAssociation.
    let mut location_of: HashMap<String, String> = HashMap::new();
    let locations: HashMap<String, String> = t
        .children(root, Nc, "Location")
        .filter_map(|l| {
            Some((
                t.node(l).id.clone()?,
                t.text(l, &[(Nibrs, "LocationCategoryCode")])?,
            ))
        })
        .collect();
    for a in t.children(root, J, "OffenseLocationAssociation") {
        let off = t
            .child(a, J, "Offense")
            .and_then(|o| t.node(o).r#ref.clone());
        let loc = t
            .child(a, Nc, "Location")
            .and_then(|l| t.node(l).r#ref.clone());
        if let (Some(o), Some(l)) = (off, loc.and_then(|l| locations.get(&l).cloned())) {
            location_of.insert(o, l);
        }
    }
    for o in t.children(root, J, "Offense") {
        let Some(code) = t.text(o, &[(Nibrs, "OffenseUCRCode")]) else {
            continue;
        };
        r.offenses.push(Offense {
            code,
            attempted: t
                .text(o, &[(J, "OffenseAttemptedIndicator")])
                .is_some_and(|v| v == "true"),
            suspected_of_using: t
                .children(o, J, "OffenseFactor")
                .filter_map(|f| t.text(f, &[(J, "OffenseFactorCode")]))
                .collect(),
            location_type: t
                .node(o)
                .id
                .as_ref()
                .and_then(|id| location_of.get(id).cloned()),
            bias: t.text(o, &[(J, "OffenseFactorBiasMotivationCode")]),
        });
    }
    for s in t.children(root, Nc, "Substance") {
        if let Some(d) = t.text(s, &[(J, "DrugCategoryCode")])
            && !r.drug_categories.contains(&d)
        {
            r.drug_categories.push(d);
        }
    }

    // Persons by id, then their roles through nc:RoleOfPerson s:ref.
    let persons: HashMap<String, usize> = t
        .children(root, Nc, "Person")
        .filter_map(|p| Some((t.node(p).id.clone()?, p)))
        .collect();
    let person = |role: usize, seq_name: &str| -> NibrsPerson {
        let p = t
            .child(role, Nc, "RoleOfPerson")
            .and_then(|x| t.node(x).r#ref.clone())
            .and_then(|id| persons.get(&id).copied());
        let mut out = NibrsPerson {
            seq: t.text(role, &[(J, seq_name)]).unwrap_or_default(),
            ..NibrsPerson::default()
        };
        if let Some(p) = p {
            out.age = age(t, p);
            out.sex = t.text(p, &[(J, "PersonSexCode")]);
            out.race = t
                .text(p, &[(J, "PersonRaceNDExCode")])
                .or_else(|| t.text(p, &[(J, "PersonRaceCode")]));
            out.ethnicity = t.text(p, &[(J, "PersonEthnicityCode")]);
            out.resident = t.text(p, &[(J, "PersonResidentCode")]);
        }
        out
    };
    for v in t.children(root, J, "Victim") {
        let mut p = person(v, "VictimSequenceNumberText");
        p.victim_type = t.text(v, &[(J, "VictimCategoryCode")]);
        r.victims.push(p);
    }
    for s in t.children(root, J, "Subject") {
        r.subjects.push(person(s, "SubjectSequenceNumberText"));
    }
    // Arrests by id, linked to arrestees through ArrestSubjectAssociation.
    let arrests: HashMap<String, usize> = t
        .children(root, J, "Arrest")
        .filter_map(|a| Some((t.node(a).id.clone()?, a)))
        .collect();
    let mut arrest_of: HashMap<String, usize> = HashMap::new();
    for a in t.children(root, J, "ArrestSubjectAssociation") {
        let arrest = t
            .child(a, Nc, "Activity")
            .and_then(|x| t.node(x).r#ref.clone())
            .and_then(|id| arrests.get(&id).copied());
        let subject = t
            .child(a, J, "Subject")
            .and_then(|x| t.node(x).r#ref.clone());
        if let (Some(ar), Some(s)) = (arrest, subject) {
            arrest_of.insert(s, ar);
        }
    }
    for a in t.children(root, J, "Arrestee") {
        let mut p = person(a, "ArrestSequenceID");
        if let Some(ar) = t
            .node(a)
            .id
            .as_ref()
            .and_then(|id| arrest_of.get(id))
            .copied()
        {
            p.arrest_date = t.text(ar, &[(Nc, "ActivityDate"), (Nc, "Date")]);
            p.arrest_type = t.text(ar, &[(J, "ArrestCategoryCode")]);
            p.charge = t.text(ar, &[(J, "ArrestCharge"), (Nibrs, "ChargeUCRCode")]);
        }
        r.arrestees.push(p);
    }
    r.finish();
    Ok(Some(r))
}

/// `nc:PersonAgeMeasure`: an integer, a range, or a text code.
fn age(t: &Tree, p: usize) -> Age {
    use Ns::*;
    let Some(m) = t.child(p, Nc, "PersonAgeMeasure") else {
        return Age::default();
    };
    if let Some(v) = t.text(m, &[(Nc, "MeasureIntegerValue")]) {
        return Age::from_code(&v);
    }
    if let Some(range) = t.child(m, Nc, "MeasureIntegerRange") {
        let n = |name| t.text(range, &[(Nc, name)]).and_then(|v| v.parse().ok());
        return Age {
            age_min: n("RangeMinimumIntegerValue"),
            age_max: n("RangeMaximumIntegerValue"),
            ..Age::default()
        };
    }
    match t.text(m, &[(Nc, "MeasureValueText")]) {
        Some(v) => Age {
            age_text: Some(v),
            ..Age::default()
        },
        None => Age::default(),
    }
}
