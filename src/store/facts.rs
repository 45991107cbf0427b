//! The program report's facts (`report_facts`): one row per incident, written by the disclosure
//! stage in its group's transaction, read by `report`. See [`crate::report::facts`].

use super::{Result, Store, StoreError};
use crate::model::{Category, Service};
use crate::policy::lifecycle::Status;
use crate::report::Fact;
use chrono::NaiveDate;
use rusqlite::params;

impl Store {
    /// Records (or replaces) an incident's facts.
    pub fn put_fact(&self, f: &Fact) -> Result<()> {
        let referred: Vec<&str> = f.referred.iter().map(|s| s.as_str()).collect();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO report_facts (incident, day, category, county, agency, eligible, naloxone, engaged, consented, referred, person)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                f.incident,
                f.day.to_string(),
                f.category.as_str(),
                f.county,
                f.agency,
                f.eligible,
                f.naloxone,
                f.engaged,
                f.consented,
                referred.join(","),
                f.person
            ])?;
        Ok(())
    }

    /// Forgets an incident's facts (the agency deleted it).
    pub fn delete_fact(&self, incident: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM report_facts WHERE incident = ?1")?
            .execute([incident])?;
        Ok(())
    }

    /// Notes which incident's facts the consented referral in outbox row `outbox_id` belongs to,
    /// and when its call came (RFC 3339), in the disclosure stage's transaction.
    pub fn link_referral(
        &self,
        outbox_id: i64,
        incident: &str,
        called_at: Option<&str>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO referral_links (outbox_id, incident, called_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![outbox_id, incident, called_at])?;
        Ok(())
    }

    /// The facts of incidents received from `from` up to (not including) `to`.
    pub fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>> {
        let mut st = self.conn.prepare(
            &format!(
                "SELECT incident, day, category, county, agency, eligible, naloxone, engaged, consented, referred, person,
                    {}, {}
                 FROM report_facts f WHERE day >= ?1 AND day < ?2 ORDER BY day, incident",
                reached(Status::follows_acceptance),
                reached(|s| s == Status::Completed)
            ),
        )?;
        let rows = st
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                    r.get::<_, String>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    [r.get(11)?, r.get(12)?],
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let bad = |what: &str| StoreError::Invalid(format!("report_facts: a bad {what}"));
        rows.into_iter()
            .map(
                |(incident, day, category, county, agency, b, referred, person, lifecycle)| {
                    Ok(Fact {
                        incident,
                        day: day.parse().map_err(|_| bad("day"))?,
                        category: Category::parse(&category).ok_or_else(|| bad("category"))?,
                        county,
                        agency,
                        eligible: b[0],
                        naloxone: b[1],
                        engaged: b[2],
                        consented: b[3],
                        referred: referred
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| Service::parse(s).ok_or_else(|| bad("service")))
                            .collect::<Result<_>>()?,
                        person,
                        accepted: lifecycle[0],
                        completed: lifecycle[1],
                    })
                },
            )
            .collect()
    }
}

/// Whether any consented referral of the fact's incident (`f`) has a reported status that
/// `which` picks (an SQL condition; the statuses are our own words, no input).
fn reached(which: impl Fn(Status) -> bool) -> String {
    let statuses: Vec<String> = Status::ALL
        .into_iter()
        .filter(|s| which(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let statuses = statuses.join(", ");
    format!(
        "EXISTS (SELECT 1 FROM referral_links l JOIN outbox o ON o.id = l.outbox_id
            JOIN referral_events e ON e.referral = o.idempotency_key
            WHERE l.incident = f.incident AND e.status IN ({statuses}))"
    )
}

impl Store {
    /// The monthly program report of `month`, from the facts it needs (the 12 months to it and
    /// the 90 days before them), suppressed at `min_cell`.
    pub fn report(
        &self,
        month: crate::report::Month,
        min_cell: u64,
    ) -> Result<crate::report::Report> {
        let facts = self.facts(crate::report::build::facts_from(month), month.end())?;
        let mut report = crate::report::build(&facts, month, min_cell);
        let samples = self.referral_times(month.first_day(), month.end())?;
        report.times = crate::report::times::timings(&samples, &month.to_string(), min_cell);
        Ok(report)
    }

    /// The times from the call to acceptance and to first service of the consented referrals
    /// of incidents received from `from` up to `to` (the provider's reported times).
    pub fn referral_times(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<crate::report::times::Sample>> {
        use chrono::DateTime;
        let mut st = self.conn.prepare(
            "SELECT l.outbox_id, l.called_at, e.status, e.reported_at
             FROM referral_links l JOIN report_facts f ON f.incident = l.incident
             JOIN outbox o ON o.id = l.outbox_id
             JOIN referral_events e ON e.referral = o.idempotency_key
             WHERE f.day >= ?1 AND f.day < ?2 AND l.called_at IS NOT NULL
             ORDER BY l.outbox_id",
        )?;
        let rows = st
            .query_map(params![from.to_string(), to.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let hours = |from: &str, to: &str| {
            let (a, b) = (
                DateTime::parse_from_rfc3339(from).ok()?,
                DateTime::parse_from_rfc3339(to).ok()?,
            );
            Some((b - a).num_seconds() as f64 / 3600.0)
        };
        let first = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut out: Vec<crate::report::times::Sample> = Vec::new();
        let mut last = None;
        for (id, called, status, at) in rows {
            if last != Some(id) {
                out.push(Default::default());
                last = Some(id);
            }
            let s = out.last_mut().expect("pushed above");
            let h = hours(&called, &at);
            let Some(status) = Status::parse(&status) else {
                continue;
            };
            if status.follows_acceptance() {
                s.to_acceptance = first(s.to_acceptance, h);
            }
            if status.is_service() {
                s.to_first_service = first(s.to_first_service, h);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Whether the report of `month` has been queued for `destination` (in any state).
    pub fn report_queued(&self, destination: &str, month: &str) -> Result<bool> {
        let n: i64 = self.conn.prepare_cached(
            "SELECT count(*) FROM outbox WHERE destination = ?1 AND adapter = ?2 AND incident_id = ?3",
        )?.query_row(params![destination, crate::deliver::report::ADAPTER, month], |r| r.get(0))?;
        Ok(n > 0)
    }
}

impl Store {
    /// Removes the facts of incidents received before `before`. Returns how many.
    pub fn purge_facts(&self, before: NaiveDate) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM report_facts WHERE day < ?1",
            [before.to_string()],
        )?)
    }
}
