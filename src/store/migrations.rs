//! The store's schema, as the migrations that build it: `PRAGMA user_version` is the number
//! applied, and `Store::open` applies the rest in one transaction each. A migration is never
//! changed once released; a new one is appended at the end with a comment saying why.

/// Migrations, in order; `PRAGMA user_version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: ingest ledger, quarantine, staged incidents, mapping gaps.
    "CREATE TABLE ingest_ledger (
        adapter TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        content_hash TEXT,
        byte_offset INTEGER NOT NULL,
        line INTEGER NOT NULL,
        record INTEGER NOT NULL,
        done INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (adapter, path)
    );
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        adapter TEXT NOT NULL,
        file TEXT NOT NULL,
        record INTEGER NOT NULL,
        line INTEGER NOT NULL,
        byte_offset INTEGER NOT NULL,
        kind TEXT NOT NULL,
        field TEXT,
        reason TEXT NOT NULL
    );
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        adapter TEXT NOT NULL,
        file TEXT NOT NULL,
        record INTEGER NOT NULL,
        line INTEGER NOT NULL,
        incident_id TEXT NOT NULL,
        action TEXT NOT NULL,
        category TEXT NOT NULL,
        eligible INTEGER NOT NULL,
        rule TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX incidents_by_source ON incidents (adapter, file, record);
    CREATE TABLE mapping_gaps (
        adapter TEXT NOT NULL,
        code_table TEXT NOT NULL,
        code TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (adapter, code_table, code)
    );",
    // 2: consent registry, engagements, pseudonym vault, audit trail.
    "CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        revoked_on TEXT,
        imported_at TEXT NOT NULL
    );
    CREATE TABLE engagements (
        id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        adapter TEXT,
        provider TEXT NOT NULL,
        consent_id TEXT NOT NULL,
        body TEXT NOT NULL,
        imported_at TEXT NOT NULL
    );
    CREATE INDEX engagements_by_incident ON engagements (incident_id);
    CREATE TABLE vault_persons (
        token TEXT PRIMARY KEY,
        shift_days INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE vault_keys (
        match_key TEXT PRIMARY KEY,
        token TEXT NOT NULL REFERENCES vault_persons (token)
    );
    CREATE TABLE vault_incidents (
        match_key TEXT PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        shift_days INTEGER NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        destination TEXT NOT NULL,
        profile TEXT NOT NULL,
        decision TEXT NOT NULL,
        reasons TEXT NOT NULL,
        person_token TEXT,
        consent_id TEXT,
        fields TEXT NOT NULL,
        payload_digest TEXT,
        mac TEXT NOT NULL
    );
    CREATE INDEX audit_by_person ON audit (person_token);
    CREATE TABLE audit_head (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        seq INTEGER NOT NULL,
        mac TEXT NOT NULL
    );",
    // 3: the durable outbox; incidents remember when they went through the disclosure stage.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        destination TEXT NOT NULL,
        adapter TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        consent_id TEXT,
        person_token TEXT,
        fields TEXT NOT NULL,
        payload BLOB,
        payload_digest TEXT NOT NULL,
        delivered_at TEXT,
        replay_of INTEGER REFERENCES outbox (id)
    );
    CREATE INDEX outbox_due ON outbox (status, destination, next_attempt_at);
    CREATE INDEX outbox_by_incident ON outbox (destination, adapter, incident_id, id);
    ALTER TABLE incidents ADD COLUMN disclosed_at TEXT;",
    // 4: the pending rows in queue order, so that finding the next due rows reads only those
    // (not every pending row, sorted, at each pass).
    "CREATE INDEX outbox_pending ON outbox (destination, id) WHERE status = 'pending';",
    // 5: each pass looks for undisclosed incidents and removes those past their retention;
    // without an index both read every staged incident.
    "CREATE INDEX incidents_disclosed ON incidents (disclosed_at);",
    // 6: the store's own settings (the salt of unmapped values' hashes, see `gaps`). Reasons an
    // older version wrote could quote the value that failed: they are withheld.
    "CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    UPDATE quarantine SET reason = 'the reason an older version wrote is withheld: it could quote the value'
    WHERE kind IN ('bad_date', 'ambiguous_local_time', 'bad_action', 'bad_category', 'bad_boolean', 'unmapped_code')
       OR (kind = 'not_eido' AND (reason LIKE '%lastUpdateTimeStamp `%' OR reason LIKE '%`$ref` `%'))
       OR (kind = 'bad_hl7' AND reason LIKE '%is not a segment name');",
    // 7: the token each scope received for a person, back to the person's vault id,
    // for the accounting of disclosures by the token a recipient holds.
    "CREATE TABLE vault_scoped (
        token TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        person TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 8: an engagement may come before its incident (pending until the incident is read,
    // `joined_at` then); incidents removed after their retention are remembered by id, so that
    // an engagement for one is refused as too late rather than kept pending for ever. Every
    // engagement recorded before this migration named an incident already read.
    "ALTER TABLE engagements ADD COLUMN joined_at TEXT;
    UPDATE engagements SET joined_at = imported_at;
    CREATE TABLE purged_incidents (
        adapter TEXT NOT NULL,
        incident_id TEXT NOT NULL,
        purged_at TEXT NOT NULL,
        PRIMARY KEY (adapter, incident_id)
    );",
    // 9: engagements are matched to staged incidents by incident id (an import checks each one,
    // and marks its incident for the disclosure stage again); without an index each lookup read
    // every staged incident (1,200 engagements against 151,900 incidents took 300 s).
    "CREATE INDEX incidents_by_incident_id ON incidents (incident_id, adapter);
    CREATE INDEX purged_by_incident_id ON purged_incidents (incident_id);",
    // 10: the poison-file guard (see `attempts`): a reading of a file that started and has not
    // finished, and where it started; a file whose reading stopped the process twice at the
    // same place is set aside (`set_aside_at`) until its content changes.
    "CREATE TABLE ingest_attempts (
        adapter TEXT NOT NULL,
        path TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        byte_offset INTEGER NOT NULL,
        record INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        set_aside_at TEXT,
        PRIMARY KEY (adapter, path)
    );",
    // 11: cancellations out (see `cancellations`): a row that tells a destination a referral it
    // received is cancelled names that referral's row (`cancels`); finding the delivered
    // referrals under a revoked consent reads only that consent's rows.
    "ALTER TABLE outbox ADD COLUMN cancels INTEGER REFERENCES outbox (id);
    CREATE INDEX outbox_by_cancels ON outbox (cancels) WHERE cancels IS NOT NULL;
    CREATE INDEX outbox_by_consent ON outbox (consent_id) WHERE consent_id IS NOT NULL;",
    // 12: exports pushed over the API (see `pushes`): one row per client, pipeline and
    // idempotency key, with the answer once the export is read, so that the same key again gets
    // the same answer and nothing is read twice.
    "CREATE TABLE pushes (
        client TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        key TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        spool TEXT NOT NULL,
        at TEXT NOT NULL,
        answer TEXT,
        PRIMARY KEY (client, pipeline, key)
    );",
    // 13: live sources' positions (see `pushes`): an HTTP poll source's cursor, moved in the
    // same transaction as the answer of the page it comes from.
    "CREATE TABLE source_cursors (
        pipeline TEXT PRIMARY KEY,
        cursor TEXT NOT NULL,
        at TEXT NOT NULL
    );",
    // 14: the closed loop (see `referrals`): what providers report of each referral they
    // received (its outbox row's idempotency key), in order.
    "CREATE TABLE referral_events (
        id INTEGER PRIMARY KEY,
        referral TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        reported_at TEXT NOT NULL,
        reported_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX referral_events_by_referral ON referral_events (referral, id);",
    // 15: what the program report counts of each incident (see `facts`), kept after the
    // incident is purged; keyed by the incident's vault token, no identifying value. No index
    // on the day: every incident of the disclosure stage writes a row, a report (monthly) reads
    // them, and a scan is cheaper than an index kept on each write.
    "CREATE TABLE report_facts (
        incident TEXT PRIMARY KEY,
        day TEXT NOT NULL,
        category TEXT NOT NULL,
        county TEXT NOT NULL,
        agency TEXT NOT NULL,
        eligible INTEGER NOT NULL,
        naloxone INTEGER NOT NULL,
        engaged INTEGER NOT NULL,
        consented INTEGER NOT NULL,
        referred TEXT NOT NULL,
        person TEXT
    ) WITHOUT ROWID;",
    // 16: which incident's facts each consented referral (its outbox row) belongs to, and when
    // its call came, so that the report counts the lifecycle's acceptances and completions per
    // incident and times them from the call. Written with the outbox row; no identifying value.
    "CREATE TABLE referral_links (
        outbox_id INTEGER PRIMARY KEY,
        incident TEXT NOT NULL,
        called_at TEXT
    );
    CREATE INDEX referral_links_by_incident ON referral_links (incident);",
    // 17: the follow-up (see `followup`): each overdue referral alerted once, kept so that a
    // restart does not alert again. Ids and times only.
    "CREATE TABLE referral_alerts (
        referral TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        overdue_since TEXT NOT NULL,
        alerted_at TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 18: the closed loop's FHIR channel (`service::fhir_task`): a provider's Task.businessStatus,
    // a code like the reason, so that the Task the gateway answers with shows what was reported.
    "ALTER TABLE referral_events ADD COLUMN business_status TEXT;",
    // 19: an entry may stand for several identical decisions (`count`): the disclosure stage
    // writes a group's withholds that name no person, consent or payload once per destination
    // and reason, instead of once per incident (see `pipeline::disclosure`).
    "ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;",
    // 20: the disclosure stage's queue and marks leave the incidents table. Marking a staged
    // incident disclosed rewrote its page (about 2 KB of body an incident) into the WAL; the
    // queue is a table of row ids that the stage reads in order and empties, and the time of
    // each incident's last disclosure (kept for the purge) a narrow table appended to, indexed
    // by time for the purge. `incidents.disclosed_at` stays, unused: dropping it would rewrite
    // every staged incident at the upgrade, holding the store's lock for as long.
    "CREATE TABLE undisclosed (id INTEGER PRIMARY KEY);
    INSERT INTO undisclosed (id) SELECT id FROM incidents WHERE disclosed_at IS NULL;
    CREATE TABLE disclosed (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
    INSERT INTO disclosed (id, at) SELECT id, disclosed_at FROM incidents WHERE disclosed_at IS NOT NULL;
    CREATE INDEX disclosed_by_time ON disclosed (at);
    DROP INDEX incidents_disclosed;",
    // 21: the FHIR channel's Task ids (see `task_ids`): a Task's logical id is a SHA-256 of its
    // referral's key, which SQL cannot compute, so no migration can fill this and the outbox's
    // writer is not made to; the lookup indexes the referrals queued since it last looked (up to
    // the outbox row id in `meta`), each once, instead of hashing every referral for each id it
    // does not know. Empty here: the first lookup indexes the referrals already queued.
    "CREATE TABLE fhir_task_ids (
        task_id TEXT PRIMARY KEY,
        referral TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 22: whether a failed attempt may have left the payload with its receiver (written, and
    // no answer settled it: `deliver::SendError::may_have_arrived`). A referral withdrawn after
    // one is owed a cancellation as a delivered one is. Rows attempted before this migration
    // are 0: what their attempts left is not known.
    "ALTER TABLE outbox ADD COLUMN may_have_arrived INTEGER NOT NULL DEFAULT 0;",
    // 23: a referral's send under way (`Store::mark_sending`, committed before the request or
    // message is written; cleared by its recorded outcome). One still set afterwards is an
    // attempt whose outcome a stopped run never recorded: it may have arrived.
    "ALTER TABLE outbox ADD COLUMN sending INTEGER NOT NULL DEFAULT 0;",
];

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// A store from before the disclosure queue (migration 20) keeps what its incidents'
    /// marks said: the undisclosed ones are queued, the others keep their time for the purge.
    #[test]
    fn the_disclosure_marks_move_into_the_queue_and_the_times() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("store.db");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..19] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 19).unwrap();
            for (id, at) in [(1, Some("2026-11-01T00:00:00.000Z")), (2, None)] {
                c.execute(
                    "INSERT INTO incidents (id, at, adapter, file, record, line, incident_id, action, category, eligible, rule, body, disclosed_at)
                     VALUES (?1, 'x', 'a', 'f', ?1, ?1, ?1, 'new', 'overdose', 1, 'r', '{}', ?2)",
                    rusqlite::params![id, at],
                )
                .unwrap();
            }
        }
        let store = crate::store::Store::open(&path).unwrap();
        assert_eq!(store.undisclosed_count().unwrap(), 1);
        let q = |sql: &str| -> String { store.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(q("SELECT group_concat(id) FROM undisclosed"), "2");
        assert_eq!(
            q("SELECT group_concat(id || ' ' || at) FROM disclosed"),
            "1 2026-11-01T00:00:00.000Z"
        );
    }
}
