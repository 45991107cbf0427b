//! A generated program: a CAD export (generic-cad-csv) of incidents over 16 months, the PRSS's
//! consents and engagements for some of them, and a gateway config with a provider and an
//! aggregate destination. What was generated is kept, so that a test can count it itself.

use super::{cli, success};
use chrono::{Duration, NaiveDate};
use std::fmt::Write;
use std::path::PathBuf;

/// The categories' call-type codes in the generic mapping, with their weights.
pub const CALLS: [(&str, &str, u32); 8] = [
    ("OD", "overdose", 30),
    ("SUB", "substance_use", 20),
    ("MH", "behavioral_health", 15),
    ("WELF", "welfare_check", 10),
    ("DOMV", "domestic_nonviolent", 8),
    ("ASLT", "violent", 7),
    ("TRAF", "other", 6),
    ("ZZZ", "unmapped", 4),
];
const INCLUDED: [&str; 5] = [
    "overdose",
    "substance_use",
    "behavioral_health",
    "welfare_check",
    "domestic_nonviolent",
];
/// County as exported, the county the report should name, weight.
pub const COUNTIES: [(&str, &str, u32); 8] = [
    ("KANAWHA", "Kanawha", 35),
    ("CABELL", "Cabell", 20),
    ("RALEIGH", "Raleigh", 15),
    ("WOOD", "Wood", 10),
    ("McDowell County", "McDowell", 5),
    ("OHIO", "Ohio", 5),
    ("", "unknown", 5),
    ("SAN DIEGO", "unknown", 5),
];
/// ORI as exported, agency as reported, weight.
pub const AGENCIES: [(&str, &str, u32); 3] = [
    ("WV0200100", "WV0200100", 60),
    ("WV0110000", "WV0110000", 30),
    ("", "generic-cad-csv", 10),
];
pub const SERVICES: [&str; 10] = [
    "sud_treatment",
    "mat",
    "detox",
    "qrt",
    "start",
    "mental_health",
    "housing",
    "family_assistance",
    "cps",
    "veterans",
];
const LAST: [&str; 20] = [
    "HOLLOWAY",
    "PRICEWELL",
    "DUNMORE",
    "KETTERING",
    "ASHCROFT",
    "BRANNIGAN",
    "CALLOWAY",
    "DELACROIX",
    "FAIRWEATHER",
    "GALLOWMERE",
    "HARTWELL",
    "IRONSIDE",
    "JESSAMINE",
    "KILBRIDE",
    "LOCKRIDGE",
    "MARROWBY",
    "NETHERCOTT",
    "OAKENSHAW",
    "PEMBERTHY",
    "QUARRINGTON",
];
const FIRST: [&str; 20] = [
    "ADELINE",
    "BARNABY",
    "CORDELIA",
    "DESMOND",
    "EULALIE",
    "FLETCHER",
    "GWENDOLYN",
    "HORATIO",
    "ISOLDE",
    "JASPERINE",
    "KESTREL",
    "LEOPOLDINE",
    "MORDECAI",
    "NERISSA",
    "OSWALDO",
    "PERPETUA",
    "QUENTINA",
    "ROSALIND",
    "SILVESTER",
    "TAMSIN",
];

/// The engagement a generated incident has.
#[derive(Debug, Clone)]
pub struct Engaged {
    pub service: &'static str,
    /// The consent names the provider and was in force on the engagement's day.
    pub consent_for_provider: bool,
    /// The consent was in force on the engagement's day (another recipient, or the provider).
    pub consent_in_force: bool,
}

/// One generated incident, as the test knows it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub id: String,
    pub day: NaiveDate,
    pub category: &'static str,
    pub county: &'static str,
    pub agency: &'static str,
    pub eligible: bool,
    pub naloxone: bool,
    /// The subject, by index into the person pool (every generated incident has one).
    pub person: usize,
    pub engaged: Option<Engaged>,
}

pub struct Program {
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub incidents: Vec<Generated>,
    /// Every identifying value written into the export and the PRSS files.
    pub identifying: Vec<String>,
}

/// xorshift64*: a fixed sequence for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|i| i.1).sum();
        let mut r = self.below(total as u64) as u32;
        for (t, w) in items {
            if r < *w {
                return *t;
            }
            r -= w;
        }
        items[0].0
    }
}

/// `n` incidents from 2025-07-01 to 2026-10-31 over a pool of `persons` people, imported and
/// decided as of [`super::TODAY`].
pub fn generate(seed: u64, n: usize, persons: usize) -> Program {
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    std::fs::create_dir_all(base.join("exports")).unwrap();
    std::fs::create_dir_all(base.join("prss")).unwrap();
    let cfg = base.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"adapters_dir = "{}"
[store]
path = "state/gateway.db"
[program]
include = ["overdose", "substance_use", "behavioral_health", "welfare_check", "domestic_nonviolent"]
exclude = ["violent"]
exclude_flags = ["weapon"]
[[pipeline]]
adapter = "generic-cad-csv"
folder = "exports"
[keys]
vault_key_file = "state/keys/vault.key"
audit_key_file = "state/keys/audit.key"
outbox_key_file = "state/keys/outbox.key"
[report]
min_cell = 10
[[prss]]
id = "PRSS-01"
certification = "WVCBAPP-PRSS-0101"
certified_until = "2030-06-30"
[[destination]]
id = "provider-a"
profile = "consented-referral"
purpose = "treatment_referral"
deliver = {{ kind = "file", folder = "deliveries/provider-a" }}
[[destination]]
id = "provider-z"
profile = "consented-referral"
purpose = "treatment_referral"
[[destination]]
id = "dhhr-counts"
profile = "aggregate"
purpose = "program_evaluation"
"#,
            super::repo().join("adapters").display()
        ),
    )
    .unwrap();
    let mut identifying = Vec::new();
    let pool: Vec<(String, String, NaiveDate)> = (0..persons)
        .map(|i| {
            let last = format!(
                "{}{}",
                LAST[i % 20],
                ["", "SON", "FORD", "LEY", "WICK"][i / 20 % 5]
            );
            let first = FIRST[(i * 7 + i / 20) % 20].to_string();
            let dob = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap()
                + Duration::days((i as i64 * 97) % 14_000);
            (last, first, dob)
        })
        .collect();
    let cats: Vec<((&str, &str), u32)> = CALLS.iter().map(|c| ((c.0, c.1), c.2)).collect();
    let counties: Vec<((&str, &str), u32)> = COUNTIES.iter().map(|c| ((c.0, c.1), c.2)).collect();
    let agencies: Vec<((&str, &str), u32)> = AGENCIES.iter().map(|c| ((c.0, c.1), c.2)).collect();
    let start = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
    let days = (NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() - start).num_days() as u64;
    let mut csv = String::from(
        "IncidentNumber,ORI,CallType,CallTypeDesc,Priority,ReceivedTime,DispatchedTime,ArrivedTime,ClearedTime,Address,City,County,State,Zip,Latitude,Longitude,Beat,Disposition,NaloxoneGiven,WeaponInvolved,SubjectName,SubjectDOB,SubjectSex,SubjectRace,SubjectPhone,SubjectSSN,SubjectAddress,CallerName,CallerPhone,Narrative\n",
    );
    let mut consents = Vec::new();
    let mut engagements = String::from(
        "id,incident_id,adapter,person_role,prss_id,consent_id,service,provider,engaged_on\n",
    );
    let mut out = Vec::new();
    for k in 0..n {
        let id = format!("2026-{:06}", 400_000 + k);
        let day = start + Duration::days(rng.below(days) as i64);
        let (code, category) = rng.weighted(&cats);
        let (county_raw, county) = rng.weighted(&counties);
        let (ori, agency) = rng.weighted(&agencies);
        let weapon = rng.below(100) < 5;
        let naloxone = category == "overdose" && rng.below(100) < 40;
        let eligible = INCLUDED.contains(&category) && !weapon;
        let person = rng.below(persons as u64) as usize;
        let (last, first, dob) = &pool[person];
        let phone = format!("304555{:04}", rng.below(10_000));
        let ssn = format!(
            "{:03}-{:02}-{:04}",
            100 + rng.below(600),
            10 + rng.below(89),
            1000 + rng.below(9000)
        );
        let street = format!(
            "{} {} HOLLOW RD",
            100 + rng.below(900),
            LAST[rng.below(20) as usize]
        );
        let hour = 9 + rng.below(11);
        let when = format!(
            "{} {hour:02}:{:02}:00",
            day.format("%m/%d/%Y"),
            rng.below(60)
        );
        let narrative = format!("Subject {first} {last} met at {street}; called back at {phone}.");
        let _ = writeln!(
            csv,
            "{id},{ori},{code},CALL,2,{when},,,,{street},CHARLESTON,{county_raw},WV,25301,,,B1,RPT,{},{},\"{last}, {first}\",{},M,W,{phone},{ssn},{street},,,\"{narrative}\"",
            if naloxone { "Y" } else { "N" },
            if weapon { "Y" } else { "N" },
            dob.format("%m/%d/%Y"),
        );
        identifying.extend([
            id.clone(),
            last.clone(),
            first.clone(),
            dob.to_string(),
            dob.format("%m/%d/%Y").to_string(),
            phone,
            ssn,
            street,
        ]);
        let mut engaged = None;
        if eligible && rng.below(100) < 35 {
            let service = SERVICES[rng.below(10) as usize];
            let kind = rng.below(10);
            let (consent_for_provider, consent_in_force) = match kind {
                0 => (false, false), // expired before the engagement
                1 => (false, true),  // names another recipient
                _ => (true, true),
            };
            let cid = format!("C-{k}");
            let (signed, expires) = if consent_in_force {
                (day, NaiveDate::from_ymd_opt(2027, 12, 31).unwrap())
            } else {
                (day - Duration::days(60), day - Duration::days(1))
            };
            consents.push(serde_json::json!({
                "id": cid,
                "patient_name": format!("{last}, {first}"),
                "patient_dob": dob.to_string(),
                "disclosing": "Kanawha County Police and Peers program",
                "information": ["identity", "contact", "referral"],
                "recipients": [if consent_for_provider || !consent_in_force { "provider-a" } else { "provider-z" }],
                "purpose": "treatment_referral",
                "right_to_revoke_statement": "I may revoke this consent in writing at any time.",
                "expires_on": expires.to_string(),
                "signature": format!("{first} {last}"),
                "signed_on": signed.to_string(),
            }));
            let _ = writeln!(
                engagements,
                "E-{k},{id},generic-cad-csv,subject,PRSS-01,{cid},{service},provider-a,{day}"
            );
            engaged = Some(Engaged {
                service,
                consent_for_provider,
                consent_in_force,
            });
        }
        out.push(Generated {
            id,
            day,
            category,
            county,
            agency,
            eligible,
            naloxone,
            person,
            engaged,
        });
    }
    std::fs::write(base.join("exports/cad_generated.csv"), csv).unwrap();
    std::fs::write(
        base.join("prss/consents.json"),
        serde_json::to_string_pretty(&consents).unwrap(),
    )
    .unwrap();
    std::fs::write(base.join("prss/engagements.csv"), engagements).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    let c = base.join("prss/consents.json");
    success(&cli(
        &[
            "consent",
            "import",
            "--accept-incomplete",
            "--today",
            super::TODAY,
            c.to_str().unwrap(),
        ],
        &cfg,
    ));
    let e = base.join("prss/engagements.csv");
    success(&cli(&["engagement", "import", e.to_str().unwrap()], &cfg));
    success(&cli(&["run", "--once"], &cfg));
    Program {
        dir,
        cfg,
        incidents: out,
        identifying,
    }
}
