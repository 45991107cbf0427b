//! The program report's facts (`report_facts`): one row per incident, written by the disclosure
//! stage in its group's transaction, read by `report`. See [`crate::report::facts`].

use super::{Result, Store, StoreError};
use crate::model::{Category, Service};
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

    /// The facts of incidents received from `from` up to (not including) `to`.
    pub fn facts(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Fact>> {
        let mut st = self.conn.prepare(
            "SELECT incident, day, category, county, agency, eligible, naloxone, engaged, consented, referred, person
             FROM report_facts WHERE day >= ?1 AND day < ?2 ORDER BY day, incident",
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
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let bad = |what: &str| StoreError::Invalid(format!("report_facts: a bad {what}"));
        rows.into_iter()
            .map(
                |(incident, day, category, county, agency, b, referred, person)| {
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
                    })
                },
            )
            .collect()
    }
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
        Ok(crate::report::build(&facts, month, min_cell))
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
