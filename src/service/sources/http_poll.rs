//! `source = { kind = "http_poll" }`: a GET on a schedule with the cursor in the URL, each page
//! handed to the engine as one push whose answer moves the cursor in the same transaction.
//!
//! The loop: GET the URL with `{cursor}` replaced (URL-encoded) by the stored cursor (or
//! `cursor_start`); an empty page or a 304 means nothing new; a page with records is pushed with
//! the last record's `cursor_field` as the next cursor; a full page (`page_size` records) is
//! followed at once by the next one, a short or empty one by a sleep of `every_secs`. Errors back
//! off exponentially (capped at `every_secs`), with one warning when polling starts failing and
//! one line when it recovers. Nothing of a record, and neither the URL (it holds the cursor) nor
//! the auth header, is ever logged.
//!
//! ## The push key: the cursor the page was asked with
//!
//! A page is pushed under the key `cursor-` + SHA-256 of the cursor it was fetched at (the key
//! is the only thing the ledger keeps of it). The cursor moves only with the page's answer, so a
//! page is asked for at the same cursor again only when its answer was not committed:
//! - a crash after the ingest committed the page's records (all or some) and before the answer:
//!   the next start asks at the same cursor. Same bytes: the push ledger finds the begun push,
//!   and the ingest reads its spool file on from its checkpoint (nothing twice). Different bytes
//!   (records were added since, the short page grew): keying by the body too would read the new
//!   page as a new push, and its records already read before the crash would be staged twice.
//!   Keyed by the cursor, the ledger answers "key reused" instead, and the source finishes the
//!   begun push from its spool file (the bytes the records were read from), whose answer moves
//!   the cursor past them; the records added since come on the next page.
//! - a page answered whose cursor did not move (its last record's value is the cursor itself): a
//!   full page is then a loop, so the source waits `every_secs` with an error (`cursor_stuck`); a
//!   short one is asked again after `every_secs`, the same bytes answered from the ledger.
//!
//! The cursor is the source's own position: with `>` (strictly after) in the query and a
//! `cursor_field` that orders the records and is unique, every record is read once. A field
//! shared by several records at a page boundary loses those after the boundary with `>` and
//! reads them twice with `>=`: the operator picks a field that fits.

use super::Context;
use crate::config::adapter::Format;
use crate::config::source::SourceSpec;
use crate::service::push::PushError;
use crate::service::{Command, ServiceError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::{Duration, Instant};

/// The client the answers' bookkeeping is kept under in the push ledger.
const CLIENT: &str = "poll";

/// The largest page body read (beyond, the page is an error): a page is held in memory.
const MAX_PAGE: u64 = 256 << 20;

/// The first backoff after an error; it doubles up to `every_secs`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

struct Poller {
    ctx: Context,
    client: reqwest::blocking::Client,
    url: String,
    cursor_field: String,
    page_size: usize,
    every: Duration,
    /// The header from `auth_header_file`, sent on every request and never logged.
    auth: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pipeline: String,
    format: Format,
    spool: std::path::PathBuf,
}

/// Validators of the last page that left nothing to do, sent back with the same URL.
#[derive(Default)]
struct Validators {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

enum Fetched {
    NotModified,
    Page {
        body: Vec<u8>,
        validators: Validators,
    },
}

/// An error's kind: what the health board and the logs say (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure(String);

impl Failure {
    fn new(kind: impl Into<String>) -> Failure {
        Failure(kind.into())
    }
}

/// Builds the client and starts the poll thread.
pub(super) fn start(ctx: Context, spec: &SourceSpec) -> Result<(), ServiceError> {
    let SourceSpec::HttpPoll {
        url,
        cursor_field,
        cursor_start,
        page_size,
        every_secs,
        auth_header_file,
        ca_file,
        timeout_ms,
    } = spec
    else {
        return Err(ServiceError::Source("not an http_poll source".into()));
    };
    let p = &ctx.gw.pipelines[ctx.pipeline];
    let pipeline = p.id.clone();
    let err = |m: String| ServiceError::Source(format!("pipeline `{pipeline}`: {m}"));
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(*timeout_ms))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| err(format!("cannot read the CA file {ca}: {}", e.kind())))?;
        for c in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err(format!("the CA file {ca}: {e}")))?
        {
            b = b.add_root_certificate(c);
        }
    }
    let client = b
        .build()
        .map_err(|e| err(format!("cannot build the HTTPS client: {e}")))?;
    let auth = match auth_header_file {
        Some(f) => Some(read_auth_header(std::path::Path::new(f)).map_err(err)?),
        None => None,
    };
    if let Format::Delimited(o) = &p.adapter.format
        && !o.header
        && o.columns.is_none()
    {
        return Err(err(
            "an http_poll source reads CSV pages by their header or `columns`".into(),
        ));
    }
    let cursor = crate::store::Store::open(&ctx.gw.store_path)
        .and_then(|s| s.source_cursor(&pipeline))
        .map_err(|e| err(format!("reading the source's cursor: {e}")))?
        .unwrap_or_else(|| cursor_start.clone());
    let poller = Poller {
        client,
        url: url.clone(),
        cursor_field: cursor_field.clone(),
        page_size: *page_size,
        every: Duration::from_secs(*every_secs),
        auth,
        pipeline: pipeline.clone(),
        format: p.adapter.format.clone(),
        spool: crate::service::push::spool_dir(&ctx.gw),
        ctx,
    };
    poller.ctx.health.source(&pipeline, |s| {
        s.kind = "http_poll";
        s.state = "polling";
        s.cursor = Some(cursor.clone());
    });
    std::thread::Builder::new()
        .name(format!("pnp-poll-{pipeline}"))
        .spawn(move || poller.run(cursor))
        .map_err(|e| err(format!("cannot start the poll thread: {}", e.kind())))?;
    tracing::info!(pipeline = %pipeline, "polling");
    Ok(())
}

/// An `auth_header_file`: one `Name: value` line; neither is ever logged. Shared with the
/// providers' FHIR poller.
pub(crate) fn read_auth_header(
    path: &std::path::Path,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read auth_header_file {shown}: {}", e.kind()))?;
    let bad = || format!("auth_header_file {shown} is not one `Name: value` line");
    let (name, value) = text.trim().split_once(':').ok_or_else(bad)?;
    let name =
        reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let mut value = reqwest::header::HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// `template` with `{cursor}` replaced by `cursor`, percent-encoded (everything but RFC 3986's
/// unreserved characters), so that a cursor with spaces, quotes or `&` stays one query value.
pub fn render_url(template: &str, cursor: &str) -> String {
    let mut enc = String::with_capacity(cursor.len());
    for b in cursor.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    template.replace("{cursor}", &enc)
}

impl Poller {
    fn run(self, mut cursor: String) {
        let mut validators = Validators::default();
        let mut backoff = FIRST_BACKOFF.min(self.every);
        let mut failing: Option<Failure> = None;
        while !self.ctx.stop.is_set() {
            let outcome = self.once(&cursor, &mut validators);
            let wait = match outcome {
                Ok(more) => {
                    if failing.take().is_some() {
                        tracing::info!(pipeline = %self.pipeline, "polling recovered");
                    }
                    backoff = FIRST_BACKOFF.min(self.every);
                    self.ctx.health.source(&self.pipeline, |s| {
                        s.state = "polling";
                        s.cursor = Some(more.1.clone());
                        s.last_error = None;
                    });
                    cursor = more.1;
                    if more.0 { Duration::ZERO } else { self.every }
                }
                // The engine stopped first: not a failure of the peer.
                Err(_) if self.ctx.stop.is_set() => break,
                Err(f) => {
                    if failing.is_none() {
                        tracing::warn!(pipeline = %self.pipeline, error = %f.0, "polling fails; backing off until it recovers");
                    }
                    self.ctx.health.source(&self.pipeline, |s| {
                        s.state = "backing_off";
                        s.failed(f.0.clone());
                    });
                    failing = Some(f);
                    let w = backoff;
                    backoff = (backoff * 2).min(self.every);
                    w
                }
            };
            self.sleep(wait);
        }
        self.ctx
            .health
            .source(&self.pipeline, |s| s.state = "stopped");
    }

    /// Sleeps `d`, waking early when the service stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.ctx.stop.is_set() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// One request and its page: whether the next page should be asked at once, and the cursor.
    fn once(&self, cursor: &str, validators: &mut Validators) -> Result<(bool, String), Failure> {
        let url = render_url(&self.url, cursor);
        let (body, fresh) = match self.fetch(&url, validators)? {
            Fetched::NotModified => return Ok((false, cursor.to_string())),
            Fetched::Page { body, validators } => (body, validators),
        };
        let (records, last) = page_records(&self.format, &body, &self.cursor_field)?;
        if records == 0 {
            *validators = fresh;
            return Ok((false, cursor.to_string()));
        }
        let next = last.ok_or_else(|| Failure::new("no_cursor_field"))?;
        let key = page_key(cursor);
        let next = match self.push(&key, body, &next)? {
            Some(next) => next,
            None => {
                // Keyed by the cursor but other bytes: a begun push from before a crash, finished
                // from its spool file (see the module documentation).
                let file =
                    crate::service::push::spool_path(&self.spool, &self.pipeline, CLIENT, &key);
                let Ok(old) = std::fs::read(&file) else {
                    return Err(Failure::new("page_changed_at_answered_cursor"));
                };
                let (_, last) = page_records(&self.format, &old, &self.cursor_field)?;
                let old_next = last.ok_or_else(|| Failure::new("no_cursor_field"))?;
                tracing::info!(pipeline = %self.pipeline, "finishing a page begun before a restart");
                self.push(&key, old, &old_next)?
                    .ok_or_else(|| Failure::new("page_changed_at_answered_cursor"))?
            }
        };
        *validators = fresh;
        let full = records >= self.page_size;
        if full && next == cursor {
            return Err(Failure::new("cursor_stuck"));
        }
        Ok((full, next))
    }

    fn fetch(&self, url: &str, last: &Validators) -> Result<Fetched, Failure> {
        let mut req = self.client.get(url);
        if let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        if last.url == url {
            if let Some(e) = &last.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e.as_str());
            }
            if let Some(m) = &last.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m.as_str());
            }
        }
        let resp = req.send().map_err(|e| {
            Failure::new(if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            })
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(Failure::new(format!("status_{}", status.as_u16())));
        }
        let header = |h: reqwest::header::HeaderName| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            url: url.to_string(),
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let mut body = Vec::new();
        resp.take(MAX_PAGE + 1)
            .read_to_end(&mut body)
            .map_err(|_| Failure::new("body"))?;
        if body.len() as u64 > MAX_PAGE {
            return Err(Failure::new("page_too_large"));
        }
        Ok(Fetched::Page { body, validators })
    }

    /// Hands the page to the engine and waits for its answer: the next cursor once committed,
    /// `None` when the key was begun with other bytes.
    fn push(&self, key: &str, body: Vec<u8>, next: &str) -> Result<Option<String>, Failure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let cmd = Command::Push {
            pipeline: self.ctx.pipeline,
            client: CLIENT.into(),
            key: key.to_string(),
            body: body.into(),
            cursor: Some(next.to_string()),
            reply,
        };
        self.ctx
            .engine
            .send(cmd)
            .map_err(|_| Failure::new("stopping"))?;
        match answer.blocking_recv() {
            Ok(Ok(_)) => Ok(Some(next.to_string())),
            Ok(Err(PushError::KeyReused)) => Ok(None),
            Ok(Err(e)) => {
                tracing::error!(pipeline = %self.pipeline, error = %e, "a polled page was not stored; it is asked for again");
                Err(Failure::new("store"))
            }
            Err(_) => Err(Failure::new("stopping")),
        }
    }
}

/// The ledger key of a page asked at `cursor`.
fn page_key(cursor: &str) -> String {
    format!(
        "cursor-{}",
        crate::hex::encode(&Sha256::digest(cursor.as_bytes()))
    )
}

/// How many records a page holds and the last one's `field` (a string as it is, a number or a
/// boolean as JSON writes it), read the way the adapter's format reads it: a JSON array (or one
/// object), NDJSON, or a delimited page with a header (or `columns`).
fn page_records(
    format: &Format,
    body: &[u8],
    field: &str,
) -> Result<(usize, Option<String>), Failure> {
    let of = |v: &serde_json::Value| match v.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    };
    let bad = || Failure::new("page_format");
    match format {
        Format::Json { .. } => {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| bad())?;
            match v {
                serde_json::Value::Array(a) => Ok((a.len(), a.last().and_then(of))),
                o @ serde_json::Value::Object(_) => Ok((1, of(&o))),
                _ => Err(bad()),
            }
        }
        Format::Ndjson { .. } => {
            let mut n = 0;
            let mut last = None;
            for line in body.split(|b| *b == b'\n') {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                n += 1;
                last = Some(line);
            }
            let last = match last {
                Some(l) => of(&serde_json::from_slice(l).map_err(|_| bad())?),
                None => None,
            };
            Ok((n, last))
        }
        Format::Delimited(o) => {
            let mut r = csv::ReaderBuilder::new()
                .delimiter(u8::try_from(o.delimiter).map_err(|_| bad())?)
                .quote(u8::try_from(o.quote).map_err(|_| bad())?)
                .has_headers(o.header)
                .flexible(true)
                .from_reader(body);
            let columns: Vec<String> = match &o.columns {
                Some(c) => c.clone(),
                None => r
                    .headers()
                    .map_err(|_| bad())?
                    .iter()
                    .map(|h| h.trim_start_matches('\u{feff}').to_string())
                    .collect(),
            };
            let at = columns.iter().position(|c| c == field);
            let mut n = 0;
            let mut last = None;
            for rec in r.records() {
                let rec = rec.map_err(|_| bad())?;
                n += 1;
                last = at.and_then(|i| rec.get(i)).map(str::to_string);
            }
            Ok((n, last.filter(|s| !s.is_empty())))
        }
        _ => Err(Failure::new("page_format_not_json_ndjson_or_csv")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_encoded_into_the_url() {
        assert_eq!(
            render_url("http://h/r?since={cursor}&limit=5", "2026-01-02T03:04:05"),
            "http://h/r?since=2026-01-02T03%3A04%3A05&limit=5"
        );
        assert_eq!(
            render_url("https://h/x.json?$where=t > '{cursor}'", "a b&c='d'/é"),
            "https://h/x.json?$where=t > 'a%20b%26c%3D%27d%27%2F%C3%A9'"
        );
    }

    #[test]
    fn a_page_names_its_records_and_last_cursor() {
        let json = Format::Json {
            max_record_bytes: 1 << 20,
        };
        assert_eq!(
            page_records(&json, br#"[{"t":"1"},{"t":2}]"#, "t").unwrap(),
            (2, Some("2".into()))
        );
        assert_eq!(page_records(&json, b"[]", "t").unwrap(), (0, None));
        let nd = Format::Ndjson {
            max_record_bytes: 1 << 20,
        };
        assert_eq!(
            page_records(&nd, b"{\"t\":\"a\"}\n\n{\"t\":\"b\"}\n", "t").unwrap(),
            (2, Some("b".into()))
        );
        assert!(page_records(&json, b"{oops", "t").is_err());
    }
}
