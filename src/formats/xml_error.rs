//! quick-xml's errors as the reasons and messages may give them: what is wrong, never the
//! names or text it quotes. Its `Display` quotes tag names (`expected `</X>`, but `</Y>` was
//! found`), entity names and prefixes, which stand in the record's text when the markup is
//! broken inside a value (`<nc:Text>Sam <RIVERS></nc:Text>`).

use quick_xml::Error;
use quick_xml::errors::IllFormedError;

/// What is wrong with the markup, in words of our own.
pub fn described(e: &Error) -> &'static str {
    match e {
        Error::Io(_) => "the input could not be read",
        Error::Syntax(_) => "markup the input ended inside",
        Error::IllFormed(i) => match i {
            IllFormedError::MismatchedEndTag { .. } => {
                "an end tag that does not match its start tag"
            }
            IllFormedError::UnmatchedEndTag(_) => "an end tag without a start tag",
            IllFormedError::MissingEndTag(_) => "a start tag that is never closed",
            IllFormedError::DoubleHyphenInComment => "`--` inside a comment",
            IllFormedError::UnclosedReference => "an entity reference without its `;`",
            _ => "a malformed XML declaration or doctype",
        },
        Error::InvalidAttr(_) => "a malformed attribute",
        Error::Encoding(_) => "text that is not valid in the document's encoding",
        Error::Escape(_) => "an unknown or malformed entity or character reference",
        Error::Namespace(_) => "an undeclared or malformed namespace prefix",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broken markup inside a value: quick-xml's own message names it, the reason does not.
    #[test]
    fn a_reason_quotes_nothing_of_the_markup() {
        for xml in [
            "<a><b>Sam <RIVERS></b></a>",
            "<a></RIVERS></a>",
            "<a RIVERS></a>",
        ] {
            let mut r = quick_xml::NsReader::from_str(xml);
            let mut err = None;
            for _ in 0..10 {
                match r.read_resolved_event() {
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                    Ok((_, quick_xml::events::Event::Eof)) => break,
                    Ok((_, quick_xml::events::Event::Start(s))) => {
                        if let Err(e) = s.attributes().try_for_each(|a| a.map(|_| ())) {
                            err = Some(e.into());
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
            let e = err.unwrap_or_else(|| panic!("no error for {xml}"));
            assert!(
                e.to_string().contains("RIVERS") || matches!(e, Error::InvalidAttr(_)),
                "{xml}: {e}"
            );
            assert!(!described(&e).contains("RIVERS"), "{xml}");
        }
    }
}
