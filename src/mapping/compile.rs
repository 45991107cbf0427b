//! Loading a mapping file: every field, person block, table and example checked once, with the
//! file and line of each error (`Mapping::load`), before any record is read.

use super::*;

impl Mapping {
    pub(super) fn compile(
        path: &Path,
        text: &str,
        spec: MappingSpec,
    ) -> Result<Mapping, ConfigErrors> {
        let mut errors = Vec::new();
        let err = |line: usize, field: &str, msg: String| {
            ConfigError::new(path, msg).at(line).field(field)
        };
        let d = &spec.defaults;
        let tz = d
            .timezone
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| datetime::DEFAULT_TIMEZONE.into());
        let ambiguous = d.ambiguous_time.unwrap_or_default();
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dt_formats = d
            .datetime_formats
            .clone()
            .unwrap_or_else(|| owned(datetime::DEFAULT_DATETIME_FORMATS));
        let date_formats = d
            .date_formats
            .clone()
            .unwrap_or_else(|| owned(datetime::DEFAULT_DATE_FORMATS));
        let default_time = match TimeParser::new(&tz, &dt_formats, &date_formats) {
            Ok(t) => t.with_ambiguous(ambiguous),
            Err(e) => {
                let mut e = ConfigError::new(path, e).field("defaults");
                if let Some(t) = &d.timezone
                    && datetime::parse_zone(t.get_ref()).is_err()
                {
                    e = e
                        .at(line_of(text, t.span().start))
                        .field("defaults.timezone");
                }
                errors.push(e);
                TimeParser::default()
            }
        };

        let base = path.parent().unwrap_or(Path::new("."));
        let mut tables = Vec::new();
        for (name, t) in &spec.tables {
            let line = line_of(text, t.span().start);
            match load_table(base, name, t.get_ref()) {
                Ok(table) => tables.push(table),
                Err(e) => errors.push(err(line, &format!("tables.{name}"), e)),
            }
        }
        let table_id = |n: &str| tables.iter().position(|t: &Table| t.name == n);

        let mut sources: Vec<String> = Vec::new();
        let mut compile_field =
            |f: &FieldSpec,
             kind: ValueKind,
             errors: &mut Vec<ConfigError>|
             -> Option<(Vec<usize>, Vec<Transform>, Option<TimeParser>)> {
                let line = line_of(text, f.target.span().start);
                let name = f.target.get_ref();
                let mut ok = true;
                let mut src_ids = Vec::new();
                match (&f.source, &f.value) {
                    (Some(_), Some(_)) => {
                        errors.push(err(line, name, "give `source` or `value`, not both".into()));
                        ok = false;
                    }
                    (None, None) => {
                        errors.push(err(
                            line,
                            name,
                            "needs a `source` (column or JSON pointer) or a constant `value`"
                                .into(),
                        ));
                        ok = false;
                    }
                    (Some(s), None) => {
                        let names = s.names();
                        if names.is_empty() || names.iter().any(|n| n.is_empty()) {
                            errors.push(err(line, name, "`source` names must not be empty".into()));
                            ok = false;
                        }
                        for n in names {
                            let id = match sources.iter().position(|x| *x == n) {
                                Some(i) => i,
                                None => {
                                    sources.push(n);
                                    sources.len() - 1
                                }
                            };
                            src_ids.push(id);
                        }
                    }
                    (None, Some(_)) => {}
                }
                let mut ts = Vec::new();
                for t in &f.transforms {
                    match Transform::compile(t, &table_id) {
                        Ok(t) => ts.push(t),
                        Err(e) => {
                            errors.push(err(line, name, e));
                            ok = false;
                        }
                    }
                }
                let time = if f.formats.is_some() || f.timezone.is_some() {
                    if !matches!(kind, ValueKind::DateTime | ValueKind::Date) {
                        errors.push(err(
                            line,
                            name,
                            "`formats` and `timezone` apply only to date and time fields".into(),
                        ));
                        ok = false;
                        None
                    } else {
                        let fmts = f.formats.clone().unwrap_or_else(|| {
                            if kind == ValueKind::Date {
                                date_formats.clone()
                            } else {
                                dt_formats.clone()
                            }
                        });
                        let (dt, date) = if kind == ValueKind::Date {
                            (dt_formats.clone(), fmts)
                        } else {
                            (fmts, date_formats.clone())
                        };
                        match TimeParser::new(f.timezone.as_deref().unwrap_or(&tz), &dt, &date) {
                            Ok(t) if f.timezone.is_some() => {
                                Some(t.with_ambiguous(ambiguous).fixed_zone())
                            }
                            Ok(t) => Some(t.with_ambiguous(ambiguous)),
                            Err(e) => {
                                errors.push(err(line, name, e));
                                ok = false;
                                None
                            }
                        }
                    }
                } else {
                    None
                };
                if kind == ValueKind::Category
                    && let Some(Transform::Table { table, .. }) = ts
                        .iter()
                        .rev()
                        .find(|t| matches!(t, Transform::Table { .. }))
                {
                    let t = &tables[*table];
                    let mut bad: Vec<&String> = t
                        .map
                        .values()
                        .filter(|v| Category::parse(v).is_none())
                        .collect();
                    bad.sort();
                    bad.dedup();
                    if !bad.is_empty() {
                        errors.push(err(line, name, format!(
                        "table `{}` maps codes to values that are not program categories: {}",
                        t.name,
                        bad.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    )));
                        ok = false;
                    }
                }
                ok.then_some((src_ids, ts, time))
            };

        let mut fields = Vec::new();
        for f in &spec.fields {
            let line = line_of(text, f.target.span().start);
            let name = f.target.get_ref().clone();
            let Some(target) = IncidentField::parse(&name) else {
                let hint = if PersonField::parse(&name).is_some() {
                    " (a person field: put it inside a [[person]] block)".to_string()
                } else {
                    format!(
                        "; known: {}",
                        target::INCIDENT_FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                errors.push(err(
                    line,
                    &name,
                    format!("unknown canonical field `{name}`{hint}"),
                ));
                continue;
            };
            if let Some((srcs, ts, time)) = compile_field(f, target.kind(), &mut errors) {
                fields.push(field(target, name, f, srcs, ts, time));
            }
        }
        let mut persons = Vec::new();
        for p in &spec.persons {
            let mut block = PersonBlock {
                role: p.role,
                each: p.each.clone(),
                fields: Vec::new(),
            };
            for f in &p.fields {
                let line = line_of(text, f.target.span().start);
                let name = f.target.get_ref().clone();
                let Some(target) = PersonField::parse(&name) else {
                    errors.push(err(
                        line,
                        &name,
                        format!(
                            "unknown person field `{name}`; known: {}",
                            target::PERSON_FIELDS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    continue;
                };
                if let Some((srcs, ts, time)) = compile_field(f, target.kind(), &mut errors) {
                    block.fields.push(field(target, name, f, srcs, ts, time));
                }
            }
            persons.push(block);
        }
        if !fields.iter().any(|f| f.target == IncidentField::IncidentId)
            && !spec
                .fields
                .iter()
                .any(|f| f.target.get_ref() == "incident_id")
        {
            errors.push(ConfigError::new(
                path,
                "the mapping has no field with target `incident_id`",
            ));
        }

        let mut examples = Vec::new();
        for (i, ex) in spec.examples.iter().enumerate() {
            let line = line_of(text, ex.span().start);
            let e = ex.get_ref();
            let name = e
                .name
                .clone()
                .unwrap_or_else(|| format!("example {}", i + 1));
            let to_json = |t: &toml::Table| serde_json::to_value(t).unwrap_or(Value::Null);
            if e.expect.is_some() == e.rejected.is_some() {
                errors.push(err(
                    line,
                    &name,
                    "an example needs exactly one of `expect` or `rejected`".into(),
                ));
                continue;
            }
            examples.push(Example {
                name,
                line,
                input: to_json(&e.input),
                expect: e
                    .expect
                    .as_ref()
                    .and_then(|t| to_json(t).as_object().cloned()),
                rejected: e.rejected.clone(),
            });
        }

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let hl7 = sources.iter().map(|s| hl7path::parse(s)).collect();
        let mut m = Mapping {
            path: path.to_owned(),
            fields,
            persons,
            tables,
            sources,
            hl7,
            examples,
        };
        // Every field without its own formats uses the mapping's defaults.
        for f in &mut m.fields {
            f.time.get_or_insert_with(|| default_time.clone());
        }
        for p in &mut m.persons {
            for f in &mut p.fields {
                f.time.get_or_insert_with(|| default_time.clone());
            }
        }
        Ok(m)
    }
}

fn field<T>(
    target: T,
    name: String,
    f: &FieldSpec,
    sources: Vec<usize>,
    transforms: Vec<Transform>,
    time: Option<TimeParser>,
) -> Field<T> {
    Field {
        target,
        name,
        sources,
        constant: f.value.clone(),
        sep: f.sep.clone().unwrap_or_else(|| " ".into()),
        coalesce: f.coalesce,
        transforms,
        time,
        required: f.required,
    }
}

fn load_table(base: &Path, name: &str, t: &TableSpec) -> Result<Table, String> {
    let mut map = CodeMap::default();
    let key_of = |k: &str| {
        if t.ignore_case {
            k.to_ascii_uppercase()
        } else {
            k.to_owned()
        }
    };
    if let Some(file) = &t.file {
        let path = base.join(file);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .map_err(|e| format!("cannot read lookup file {}: {e}", path.display()))?;
        let headers = rdr
            .headers()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .clone();
        let col = |want: &Option<String>, default: usize| -> Result<usize, String> {
            match want {
                None => Ok(default),
                Some(w) => headers
                    .iter()
                    .position(|h| h.trim() == w)
                    .ok_or_else(|| format!("lookup file {} has no column `{w}`", path.display())),
            }
        };
        let (k, v) = (col(&t.key, 0)?, col(&t.value, 1)?);
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
            let (Some(code), Some(val)) = (rec.get(k), rec.get(v)) else {
                continue;
            };
            let code = code.trim();
            if !code.is_empty() {
                // The first entry for a code wins (lookup exports repeat rows).
                map.entry(key_of(code))
                    .or_insert_with(|| val.trim().to_owned());
            }
        }
    } else if t.key.is_some() || t.value.is_some() {
        return Err("`key` and `value` name columns of a lookup `file`".into());
    }
    for (k, v) in &t.entries {
        map.insert(key_of(k), v.clone());
    }
    if map.is_empty() {
        return Err(format!(
            "table `{name}` is empty: give `entries` or a `file`"
        ));
    }
    Ok(Table {
        name: name.to_owned(),
        map,
        ignore_case: t.ignore_case,
        partial: t.partial,
    })
}
