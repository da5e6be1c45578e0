//! A bounded XML element tree over quick-xml, for SOAP requests.
//!
//! Refuses what a SOAP endpoint never needs and an attacker loves: DTDs (and so entity
//! declarations), entity references other than XML's five predefined ones, deep nesting
//! and very many elements.
use quick_xml::events::Event;
use quick_xml::Reader;

pub const MAX_DEPTH: usize = 64;
pub const MAX_ELEMENTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name, without any namespace prefix.
    pub name: String,
    /// Attributes by local name.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's own character data, concatenated.
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the request body is not valid UTF-8")]
    NotUtf8,
    #[error("DTDs and entity declarations are not accepted")]
    Dtd,
    #[error("unknown entity reference '&{0};'")]
    Entity(String),
    #[error("the XML nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the XML has more than {MAX_ELEMENTS} elements")]
    TooMany,
    #[error("the XML has no root element")]
    Empty,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_owned(),
        None => name.to_owned(),
    }
}

fn element_from(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        attrs.push((local(a.key.as_ref()), v.into_owned()));
    }
    Ok(Element {
        name: local(e.name().as_ref()),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match ev {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(XmlError::Malformed("content after the root element".into()));
            }
            Event::Start(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooMany);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element_from(&e)?);
            }
            Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooMany);
                }
                let el = element_from(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let t = t.into_inner();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()))
                    }
                }
            }
            Event::CData(c) => {
                let c = c.into_inner();
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let ch = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?
                        .map(String::from)
                } else {
                    let name = r.into_inner();
                    let s = match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => return Err(XmlError::Entity(other.to_owned())),
                    };
                    Some(s.to_owned())
                };
                if let (Some(el), Some(ch)) = (stack.last_mut(), ch) {
                    el.text.push_str(&ch);
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unexpected end of document".into()));
    }
    root.ok_or(XmlError::Empty)
}

/// Escapes text for element content and attribute values.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_elements_and_entities() {
        let el = parse(br#"<?xml version="1.0"?><s:A xmlns:s="x"><B t="1&amp;2">a&lt;b&#33;<![CDATA[<c>]]></B><C/></s:A>"#).unwrap();
        assert_eq!(el.name, "A");
        let b = el.child("B").unwrap();
        assert_eq!(b.attr("t"), Some("1&2"));
        assert_eq!(b.text, "a<b!<c>");
        assert!(el.child("C").is_some());
    }

    #[test]
    fn refuses_dtds_entities_bad_utf8_and_bombs() {
        assert_eq!(
            parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").unwrap_err(),
            XmlError::Dtd
        );
        assert_eq!(
            parse(b"<a>&x;</a>").unwrap_err(),
            XmlError::Entity("x".into())
        );
        assert_eq!(parse(b"<a>\xff</a>").unwrap_err(), XmlError::NotUtf8);
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()).unwrap_err(), XmlError::TooDeep);
        assert!(matches!(
            parse(b"<a><b></a>").unwrap_err(),
            XmlError::Malformed(_)
        ));
        assert!(matches!(
            parse(b"<a></a><b/>").unwrap_err(),
            XmlError::Malformed(_)
        ));
        assert_eq!(parse(b"  ").unwrap_err(), XmlError::Empty);
    }

    #[test]
    fn escaping_roundtrips() {
        let s = "a<b>&\"c'\u{1}";
        let xml = format!("<a>{}</a>", escape(s));
        assert_eq!(parse(xml.as_bytes()).unwrap().text, "a<b>&\"c'");
    }
}
