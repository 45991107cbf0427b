//! The markup EIDO carries inside JSON strings: PIDF-LO civic addresses and vCards (XML) and
//! notes (HTML). Each reader is bounded in depth and expands no entity other than XML's
//! predefined ones, because these strings come from the sender unchecked by any schema.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::HashMap;

/// Leaf elements of an XML string by local name (first occurrence wins).
pub(super) fn xml_fields(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut out = HashMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut depth_guard = 0usize;
    loop {
        match r
            .read_event()
            .map_err(|e| format!("XML: {}", crate::formats::xml_error::described(&e)))?
        {
            Event::Start(e) => {
                depth_guard += 1;
                if depth_guard > 64 {
                    return Err("XML nested deeper than 64 levels".into());
                }
                stack.push(e.local_name().as_ref().to_string());
            }
            Event::End(_) => {
                stack.pop();
                depth_guard = depth_guard.saturating_sub(1);
            }
            Event::Text(t) => {
                if let Some(name) = stack.last() {
                    out.entry(name.clone())
                        .or_insert_with(|| t.xml10_content().into_owned());
                }
            }
            Event::GeneralRef(e)
                if e.resolve_char_ref().is_err()
                    || !e.is_char_ref()
                        && !matches!(&*e, "amp" | "lt" | "gt" | "quot" | "apos") =>
            {
                // Its name is not quoted: it stands inside a value.
                return Err("an entity other than XML's predefined ones is not expanded".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Texts of the elements with these local names.
pub(super) fn xml_texts(xml: &str, names: &[&str]) -> Result<Vec<String>, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut inside = 0usize;
    loop {
        match r
            .read_event()
            .map_err(|e| format!("XML: {}", crate::formats::xml_error::described(&e)))?
        {
            Event::Start(e) if names.contains(&e.local_name().as_ref()) => inside += 1,
            Event::End(e) if names.contains(&e.local_name().as_ref()) => {
                inside = inside.saturating_sub(1)
            }
            Event::Text(t) if inside > 0 => out.push(t.xml10_content().into_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Default)]
pub(super) struct VCard {
    pub(super) last: Option<String>,
    pub(super) first: Option<String>,
    pub(super) uris: Vec<String>,
    pub(super) emails: Vec<String>,
}

/// Names, telephone URIs and emails from an additional-data XML string holding a vCard.
pub(super) fn vcard(xml: &str) -> Result<VCard, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut v = VCard::default();
    let mut stack: Vec<String> = Vec::new();
    loop {
        match r
            .read_event()
            .map_err(|e| format!("XML: {}", crate::formats::xml_error::described(&e)))?
        {
            Event::Start(e) => {
                if stack.len() > 64 {
                    return Err("XML nested deeper than 64 levels".into());
                }
                stack.push(e.local_name().as_ref().to_string());
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.xml10_content().into_owned();
                let path: Vec<&str> = stack.iter().map(String::as_str).collect();
                match path.as_slice() {
                    [.., "n", "surname"] => v.last = Some(text),
                    [.., "n", "given"] => v.first = Some(text),
                    [.., "tel", "uri"] => v.uris.push(text),
                    [.., "email", "text"] => v.emails.push(text),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(v)
}

/// Plain text from an HTML note: tags dropped, common entities decoded, whitespace collapsed.
pub(super) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html() {
        assert_eq!(
            html_to_text("<p>Caller&nbsp;says <b>help</b> &amp; more</p>"),
            "Caller says help & more"
        );
    }
}
