//! A bounded XML element tree over quick-xml, for SOAP requests.
//!
//! Refuses what a SOAP endpoint never needs and an attacker loves: DTDs (and so entity
//! declarations), entity references other than XML's five predefined ones, deep nesting
//! and very many elements.
use quick_xml::events::Event;
use quick_xml::Reader;
use std::borrow::Cow;

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

/// The local part of a qualified name.
fn local(name: &str) -> &str {
    match name.bytes().rposition(|c| c == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// `s` as a borrow of `input` when it lies inside it (quick-xml hands out borrows of its
/// own event, not of the input, even when they point into the input).
fn reborrow<'a>(input: &'a str, s: &str) -> Option<&'a str> {
    let start = (s.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    let end = start.checked_add(s.len())?;
    input.get(start..end)
}

fn reborrow_cow<'a>(input: &'a str, s: &str) -> Cow<'a, str> {
    match reborrow(input, s) {
        Some(b) => Cow::Borrowed(b),
        None => Cow::Owned(s.to_owned()),
    }
}

const NONE: u32 = u32::MAX;

/// Byte classes for [`Doc::parse_plain`].
const TEXT: u8 = 1; // plain character data: no markup, references or control characters
const VALUE_DQ: u8 = 2; // plain attribute values in double quotes (not the quote)
const NAME: u8 = 4; // names, after their first character
const START: u8 = 8; // the first character of a name (or of its local part)
const WS: u8 = 16;
const DECL: u8 = 32; // inside a plain XML declaration
const VALUE_SQ: u8 = 64; // plain attribute values in single quotes (not the quote)

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let ws = matches!(c, b' ' | b'\t' | b'\n' | b'\r');
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let name = alpha || c.is_ascii_digit() || c == b'-' || c == b'.';
        let mut k = 0;
        if (c >= 0x20 || ws) && !matches!(c, b'<' | b'&' | b']') {
            k |= TEXT;
        }
        if c >= 0x20 && !matches!(c, b'<' | b'&' | b'>') {
            if c != b'"' {
                k |= VALUE_DQ;
            }
            if c != b'\'' {
                k |= VALUE_SQ;
            }
        }
        if name {
            k |= NAME;
        }
        if alpha {
            k |= START;
        }
        if ws {
            k |= WS;
        }
        if name || matches!(c, b' ' | b'=' | b'"' | b'\'') {
            k |= DECL;
        }
        t[i] = k;
        i += 1;
    }
    t
}

/// The class bits of the byte at `i`, or 0 past the end.
#[inline(always)]
fn class_at(b: &[u8], i: usize) -> u8 {
    b.get(i).map_or(0, |&c| CLASS[c as usize])
}

/// Where the run of bytes of class `mask` (one bit) that starts at `i` ends, for runs that
/// are mostly short: byte by byte.
#[inline(always)]
fn skip_short(b: &[u8], i: usize, mask: u8) -> usize {
    match b.get(i..) {
        Some(rest) => rest
            .iter()
            .position(|&c| CLASS[c as usize] & mask == 0)
            .map_or(b.len(), |n| i + n),
        None => i,
    }
}

/// [`skip_short`] for runs that may be long (text, attribute values): after the first
/// byte, eight bytes at a time while all eight are of the class.
#[inline(always)]
fn skip_long(b: &[u8], mut i: usize, mask: u8) -> usize {
    if class_at(b, i) & mask == 0 {
        return i;
    }
    i += 1;
    while let Some(chunk) = b.get(i..).and_then(|r| r.first_chunk::<8>()) {
        if chunk.iter().fold(mask, |all, &c| all & CLASS[c as usize]) == 0 {
            break;
        }
        i += 8;
    }
    skip_short(b, i, mask)
}

/// A plain `name` or `prefix:name` at `b[i..]`, each part starting with a letter or `_`:
/// where it ends, and where its local part starts.
#[inline(always)]
fn scan_name(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if class_at(b, i) & START == 0 {
        return None;
    }
    let end = skip_short(b, i + 1, NAME);
    if b.get(end) != Some(&b':') {
        return Some((end, i));
    }
    // One colon, and a local part after it; a second colon ends the name (and so the tag).
    if class_at(b, end + 1) & START == 0 {
        return None;
    }
    Some((skip_short(b, end + 2, NAME), end + 1))
}

/// One element of a [`Doc`]: children and siblings are indices into the same arena.
#[derive(Debug)]
struct Node<'a> {
    name: Cow<'a, str>,
    /// Range in [`Doc::attrs`].
    attrs: (u32, u32),
    text: Cow<'a, str>,
    first_child: u32,
    next_sibling: u32,
}

// The last child of each open element lives on the parser's stack, not in the node.
const _: () = assert!(std::mem::size_of::<Node<'static>>() <= 64);

/// A parsed document that borrows its names and text from the input: one arena, no
/// allocation per element. The same rules as [`parse`] apply; [`parse`] is built on it.
#[derive(Debug)]
pub struct Doc<'a> {
    nodes: Vec<Node<'a>>,
    attrs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    root: u32,
}

/// An element of a [`Doc`].
#[derive(Debug, Clone, Copy)]
pub struct El<'d, 'a> {
    doc: &'d Doc<'a>,
    idx: u32,
}

impl<'a> Doc<'a> {
    /// Parses a whole document (see the module documentation for what is refused).
    pub fn parse(body: &'a [u8]) -> Result<Self, XmlError> {
        let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
        match Self::parse_plain(text) {
            Some(doc) => Ok(doc),
            None => Self::parse_full(text),
        }
    }

    fn empty() -> Self {
        Doc {
            // Room for a typical SOAP request, so that parsing one allocates twice; 16
            // nodes of 64 bytes stay within the allocator's small-object size (1 KiB).
            nodes: Vec::with_capacity(16),
            attrs: Vec::with_capacity(16),
            root: NONE,
        }
    }

    /// The fast path for plain documents, which SOAP requests nearly always are: an
    /// optional XML declaration, then elements whose attribute values and text hold no
    /// references, markup declarations, CDATA, comments, processing instructions or
    /// control characters. `None` for anything else, which [`Doc::parse_full`] then
    /// decides; whatever this accepts, that parses to the same document.
    fn parse_plain(text: &'a str) -> Option<Self> {
        let b = text.as_bytes();
        let mut doc = Self::empty();
        // The open elements, innermost last: [index, last child so far, start and end of
        // the qualified name]. All offsets, so that the array is zeroed in one go.
        let mut stack = [[0u32; 4]; MAX_DEPTH];
        // The current tag's qualified attribute names, as [start, end].
        let mut keys = [[0u32; 2]; 16];
        let mut depth = 0usize;
        let mut i = 0;
        if b.starts_with(b"<?xml ") {
            // Up to the first `?>`: neither byte is a declaration byte.
            let end = skip_long(b, 6, DECL);
            if b.get(end..end + 2) != Some(b"?>") {
                return None;
            }
            i = end + 2;
        }
        loop {
            // Character data up to the next tag.
            let start = i;
            i = skip_long(b, i, TEXT);
            if i > start {
                let run = text.get(start..i)?;
                match depth.checked_sub(1) {
                    Some(d) => doc.push_text(stack[d][0], Cow::Borrowed(run)),
                    None if run.bytes().all(|c| CLASS[c as usize] & WS != 0) => {}
                    None => return None,
                }
            }
            match b.get(i) {
                None => break,
                Some(b'<') if doc.root == NONE => i += 1,
                Some(_) => return None,
            }
            if b.get(i) == Some(&b'/') {
                // `</`, the open element's qualified name, `>`.
                let d = depth.checked_sub(1)?;
                let [_, _, q_start, q_end] = stack[d];
                let qname = b.get(q_start as usize..q_end as usize)?;
                let end = i + 1 + qname.len();
                if b.get(i + 1..end) != Some(qname) || b.get(end) != Some(&b'>') {
                    return None;
                }
                depth = d;
                if d == 0 {
                    doc.root = stack[0][0];
                }
                i = end + 1;
                continue;
            }
            let (name_end, local) = scan_name(b, i)?;
            let q_start = i;
            let name = text.get(local..name_end)?;
            i = name_end;
            let first_attr = doc.attrs.len();
            let mut nkeys = 0;
            let empty = loop {
                let ws_start = i;
                i = skip_short(b, i, WS);
                match b.get(i)? {
                    b'>' => {
                        i += 1;
                        break false;
                    }
                    b'/' if b.get(i + 1) == Some(&b'>') => {
                        i += 2;
                        break true;
                    }
                    _ if i == ws_start => return None,
                    _ => {}
                }
                let (key_end, key_local) = scan_name(b, i)?;
                let key = &b[i..key_end];
                let quote = *b.get(key_end + 1)?;
                let value_class = match quote {
                    b'"' => VALUE_DQ,
                    b'\'' => VALUE_SQ,
                    _ => return None,
                };
                if b.get(key_end) != Some(&b'=') {
                    return None;
                }
                let value_start = key_end + 2;
                let j = skip_long(b, value_start, value_class);
                if b.get(j) != Some(&quote) {
                    return None;
                }
                // A repeated attribute is an error that the full parser reports.
                if nkeys == keys.len()
                    || keys[..nkeys]
                        .iter()
                        .any(|&[s, e]| b.get(s as usize..e as usize) == Some(key))
                {
                    return None;
                }
                keys[nkeys] = [i as u32, key_end as u32];
                nkeys += 1;
                doc.attrs.push((
                    Cow::Borrowed(text.get(key_local..key_end)?),
                    Cow::Borrowed(text.get(value_start..j)?),
                ));
                i = j + 1;
            };
            if doc.nodes.len() >= MAX_ELEMENTS || (!empty && depth >= MAX_DEPTH) {
                return None;
            }
            let parent = depth.checked_sub(1).map(|d| &mut stack[d]);
            let idx = doc.link(Cow::Borrowed(name), first_attr as u32, parent);
            if empty {
                if depth == 0 {
                    doc.root = idx;
                }
            } else {
                stack[depth] = [idx, NONE, q_start as u32, name_end as u32];
                depth += 1;
            }
        }
        if depth != 0 || doc.root == NONE {
            return None;
        }
        Some(doc)
    }

    fn parse_full(text: &'a str) -> Result<Self, XmlError> {
        let mut doc = Self::empty();
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        // The open elements, innermost last: index, last child so far (the rest unused).
        let mut stack = [[0u32; 4]; MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            let ev = reader
                .read_event()
                .map_err(|e| XmlError::Malformed(e.to_string()))?;
            match ev {
                Event::Start(_) | Event::Empty(_) if doc.root != NONE => {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                Event::Start(e) => {
                    if doc.nodes.len() >= MAX_ELEMENTS {
                        return Err(XmlError::TooMany);
                    }
                    if depth >= MAX_DEPTH {
                        return Err(XmlError::TooDeep);
                    }
                    let idx = doc.push(text, &e, depth.checked_sub(1).map(|d| &mut stack[d]))?;
                    stack[depth] = [idx, NONE, 0, 0];
                    depth += 1;
                }
                Event::Empty(e) => {
                    if doc.nodes.len() >= MAX_ELEMENTS {
                        return Err(XmlError::TooMany);
                    }
                    let idx = doc.push(text, &e, depth.checked_sub(1).map(|d| &mut stack[d]))?;
                    if depth == 0 {
                        doc.root = idx;
                    }
                }
                Event::End(_) => {
                    if depth == 0 {
                        return Err(XmlError::Malformed("unbalanced end tag".into()));
                    }
                    depth -= 1;
                    if depth == 0 {
                        doc.root = stack[0][0];
                    }
                }
                Event::Text(t) => {
                    let t = t.into_inner();
                    match stack[..depth].last().map(|s| s[0]) {
                        Some(el) => doc.push_text(el, t),
                        None if t.trim().is_empty() => {}
                        None => {
                            return Err(XmlError::Malformed("text outside the root element".into()))
                        }
                    }
                }
                Event::CData(c) => {
                    if let Some(el) = stack[..depth].last().map(|s| s[0]) {
                        doc.push_text(el, c.into_inner());
                    }
                }
                Event::GeneralRef(r) => {
                    let ch: Option<Cow<'a, str>> = if r.is_char_ref() {
                        r.resolve_char_ref()
                            .map_err(|e| XmlError::Malformed(e.to_string()))?
                            .map(|c| Cow::Owned(String::from(c)))
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
                        Some(Cow::Borrowed(s))
                    };
                    if let (Some(el), Some(ch)) = (stack[..depth].last().map(|s| s[0]), ch) {
                        doc.push_text(el, ch);
                    }
                }
                Event::DocType(_) => return Err(XmlError::Dtd),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if depth != 0 {
            return Err(XmlError::Malformed("unexpected end of document".into()));
        }
        if doc.root == NONE {
            return Err(XmlError::Empty);
        }
        Ok(doc)
    }

    /// Appends an element (as the last child of `parent`) and returns its index.
    fn push(
        &mut self,
        input: &'a str,
        e: &quick_xml::events::BytesStart<'_>,
        parent: Option<&mut [u32; 4]>,
    ) -> Result<u32, XmlError> {
        let first_attr = self.attrs.len() as u32;
        for a in e.attributes() {
            let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| XmlError::Malformed(e.to_string()))?;
            let v = match v {
                Cow::Borrowed(s) => reborrow_cow(input, s),
                Cow::Owned(s) => Cow::Owned(s),
            };
            let k = local(a.key.as_ref());
            self.attrs.push((reborrow_cow(input, k), v));
        }
        let name = e.name();
        let name = reborrow_cow(input, local(name.as_ref()));
        Ok(self.link(name, first_attr, parent))
    }

    /// Appends an element whose attributes are `attrs[first_attr..]` (as the last child
    /// of `parent`, given as its parser stack entry: index, then last child so far) and
    /// returns its index.
    fn link(&mut self, name: Cow<'a, str>, first_attr: u32, parent: Option<&mut [u32; 4]>) -> u32 {
        let idx = self.nodes.len() as u32;
        self.nodes.push(Node {
            name,
            attrs: (first_attr, self.attrs.len() as u32),
            text: Cow::Borrowed(""),
            first_child: NONE,
            next_sibling: NONE,
        });
        if let Some([p, last, ..]) = parent {
            let slot = if *last == NONE {
                &mut self.nodes[*p as usize].first_child
            } else {
                &mut self.nodes[*last as usize].next_sibling
            };
            *slot = idx;
            *last = idx;
        }
        idx
    }

    fn push_text(&mut self, el: u32, t: Cow<'a, str>) {
        let text = &mut self.nodes[el as usize].text;
        if text.is_empty() {
            *text = t;
        } else {
            text.to_mut().push_str(&t);
        }
    }

    pub fn root(&self) -> El<'_, 'a> {
        El {
            doc: self,
            idx: self.root,
        }
    }
}

impl<'d, 'a> El<'d, 'a> {
    fn node(&self) -> &'d Node<'a> {
        &self.doc.nodes[self.idx as usize]
    }

    /// Local name, without any namespace prefix.
    pub fn name(&self) -> &'d str {
        &self.node().name
    }

    /// The element's own character data, concatenated.
    pub fn text(&self) -> &'d str {
        &self.node().text
    }

    /// Attributes by local name, in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&'d str, &'d str)> + 'd {
        let (a, b) = self.node().attrs;
        self.doc.attrs[a as usize..b as usize]
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    pub fn attr(&self, name: &str) -> Option<&'d str> {
        self.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    pub fn children(&self) -> impl Iterator<Item = El<'d, 'a>> + 'd {
        let doc = self.doc;
        let mut next = self.node().first_child;
        std::iter::from_fn(move || {
            if next == NONE {
                return None;
            }
            let el = El { doc, idx: next };
            next = doc.nodes[next as usize].next_sibling;
            Some(el)
        })
    }

    pub fn first_child(&self) -> Option<El<'d, 'a>> {
        self.children().next()
    }

    pub fn child(&self, name: &str) -> Option<El<'d, 'a>> {
        self.children().find(|c| c.name() == name)
    }

    pub fn children_named<'n>(&self, name: &'n str) -> impl Iterator<Item = El<'d, 'a>> + 'n
    where
        'd: 'n,
    {
        self.children().filter(move |c| c.name() == name)
    }

    /// An owned copy of this element and its descendants.
    pub fn to_element(&self) -> Element {
        Element {
            name: self.name().to_owned(),
            attrs: self
                .attrs()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            children: self.children().map(|c| c.to_element()).collect(),
            text: self.text().to_owned(),
        }
    }
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    Ok(Doc::parse(body)?.root().to_element())
}

/// The bytes [`escape_into`] replaces or drops: markup, quotes, and the control
/// characters XML 1.0 cannot carry at all.
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = matches!(c, b'&' | b'<' | b'>' | b'"' | b'\'')
            || (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'));
        i += 1;
    }
    t
};

/// Where the first byte that [`escape_into`] must replace or drop is, looking eight bytes
/// at a time.
fn first_escaped(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        if chunk
            .iter()
            .fold(false, |any, &b| any | ESCAPED[b as usize])
        {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| ESCAPED[b as usize])
        .map(|p| i + p)
}

/// Escapes text for element content and attribute values.
pub fn escape_into(out: &mut String, s: &str) {
    let Some(first) = first_escaped(s.as_bytes()) else {
        out.push_str(s);
        return;
    };
    // Everything escaped or dropped is ASCII, so runs of other bytes are copied whole.
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if !ESCAPED[b as usize] {
            continue;
        }
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => "",
        };
        out.push_str(&s[run..i]);
        out.push_str(rep);
        run = i + 1;
    }
    out.push_str(&s[run..]);
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

    /// The byte-at-a-time fast path before [`skip_long`] and the offset stack, kept as the
    /// reference: the fast path must accept exactly what it accepted, as the same document.
    /// (Adapted only to the arena's `link`, and to the per-quote value classes, which
    /// together are the old class of attribute-value bytes.)
    mod old_plain {
        use super::super::*;

        pub(super) fn old_scan_name(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
            let class = |i: usize| b.get(i).map_or(0, |&c| CLASS[c as usize]);
            let start = i;
            let mut local = i;
            if class(i) & START == 0 {
                return None;
            }
            i += 1;
            loop {
                if class(i) & NAME != 0 {
                    i += 1;
                } else if b.get(i) == Some(&b':') && local == start {
                    if class(i + 1) & START == 0 {
                        return None;
                    }
                    local = i + 1;
                    i += 2;
                } else {
                    break;
                }
            }
            Some((i, local))
        }

        pub(super) fn old_parse_plain(text: &str) -> Option<Doc<'_>> {
            let b = text.as_bytes();
            let class = |i: usize| b.get(i).map_or(0, |&c| CLASS[c as usize]);
            let mut doc = Doc::empty();
            let mut last = [NONE; MAX_DEPTH];
            let mut stack = [0u32; MAX_DEPTH];
            // The open elements' qualified names, and the current tag's attribute names.
            let mut open = [""; MAX_DEPTH];
            let mut keys = [""; 16];
            let mut depth = 0usize;
            let mut i = 0;
            if b.starts_with(b"<?xml ") {
                let end = text.find("?>")?;
                if !b[6..end].iter().all(|&c| CLASS[c as usize] & DECL != 0) {
                    return None;
                }
                i = end + 2;
            }
            loop {
                // Character data up to the next tag.
                let start = i;
                while class(i) & TEXT != 0 {
                    i += 1;
                }
                if i > start {
                    match stack[..depth].last() {
                        Some(&el) => doc.push_text(el, Cow::Borrowed(&text[start..i])),
                        None if b[start..i].iter().all(|&c| CLASS[c as usize] & WS != 0) => {}
                        None => return None,
                    }
                }
                match b.get(i) {
                    None => break,
                    Some(b'<') if doc.root == NONE => i += 1,
                    Some(_) => return None,
                }
                if b.get(i) == Some(&b'/') {
                    let (end, _) = old_scan_name(b, i + 1)?;
                    if b.get(end) != Some(&b'>')
                        || depth == 0
                        || text[i + 1..end] != *open[depth - 1]
                    {
                        return None;
                    }
                    depth -= 1;
                    if depth == 0 {
                        doc.root = stack[0];
                    }
                    i = end + 1;
                    continue;
                }
                let (name_end, local) = old_scan_name(b, i)?;
                let qname = &text[i..name_end];
                let name = &text[local..name_end];
                i = name_end;
                let first_attr = doc.attrs.len();
                let mut nkeys = 0;
                let empty = loop {
                    let ws_start = i;
                    while class(i) & WS != 0 {
                        i += 1;
                    }
                    match b.get(i)? {
                        b'>' => {
                            i += 1;
                            break false;
                        }
                        b'/' if b.get(i + 1) == Some(&b'>') => {
                            i += 2;
                            break true;
                        }
                        _ if i == ws_start => return None,
                        _ => {}
                    }
                    let (key_end, key_local) = old_scan_name(b, i)?;
                    let key = &text[i..key_end];
                    let quote = *b.get(key_end + 1)?;
                    if b.get(key_end) != Some(&b'=') || (quote != b'"' && quote != b'\'') {
                        return None;
                    }
                    let value_start = key_end + 2;
                    let mut j = value_start;
                    while class(j) & (VALUE_DQ | VALUE_SQ) != 0 && b[j] != quote {
                        j += 1;
                    }
                    if b.get(j) != Some(&quote) {
                        return None;
                    }
                    // A repeated attribute is an error that the full parser reports.
                    if nkeys == keys.len() || keys[..nkeys].contains(&key) {
                        return None;
                    }
                    keys[nkeys] = key;
                    nkeys += 1;
                    doc.attrs.push((
                        Cow::Borrowed(&text[key_local..key_end]),
                        Cow::Borrowed(&text[value_start..j]),
                    ));
                    i = j + 1;
                };
                if doc.nodes.len() >= MAX_ELEMENTS || (!empty && depth >= MAX_DEPTH) {
                    return None;
                }
                let mut entry = depth.checked_sub(1).map(|d| [stack[d], last[d], 0, 0]);
                let idx = doc.link(Cow::Borrowed(name), first_attr as u32, entry.as_mut());
                if let Some(d) = depth.checked_sub(1) {
                    last[d] = entry.map_or(NONE, |e| e[1]);
                }
                if empty {
                    if depth == 0 {
                        doc.root = idx;
                    }
                } else {
                    stack[depth] = idx;
                    last[depth] = NONE;
                    open[depth] = qname;
                    depth += 1;
                }
            }
            if depth != 0 || doc.root == NONE {
                return None;
            }
            Some(doc)
        }
    }

    /// Whatever the fast path accepts, the full parser parses to the same document.
    #[test]
    fn the_plain_path_agrees_with_the_full_parser() {
        let seeds: [&str; 6] = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body><Fetch xmlns=\"urn:vim25\"><_this versionId=\"8.0.3.0\" type=\"SessionManager\">SessionManager</_this><prop versionId=\"8.0.3.0\">currentSession</prop></Fetch></soapenv:Body>\n</soapenv:Envelope>",
            "<a x='1' y=\"2\"><b/><c z='3'>t u</c> v <d></d></a>\n",
            "<?xml version='1.0'?><e:A xmlns:e='x'><e:B a:b='c'>&amp;</e:B><C/><![CDATA[x]]><!--c--></e:A>",
            "<r><s><t>deep</t></s><s/>text</r>",
            "<a k='0123456789abcdefghij\"' l=\"0123456789'abcdefghijklmnop\">0123456789 abcdefghij klmnopqrstu\n<p:b/>\t\t\t\t\t\t\t\t\t</a>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone='yes'?>\n\n<x:Envelope xmlns:x=\"http://schemas.xmlsoap.org/soap/envelope/\"><x:Body><Login xmlns=\"urn:vim25\"><userName>administrator@vsphere.local</userName><password>VMware1!VMware1!é€</password></Login></x:Body></x:Envelope>\r\n",
        ];
        let alphabet: &[&str] = &[
            "<",
            ">",
            "/",
            "=",
            "\"",
            "'",
            " ",
            "\t",
            "\n",
            "\r",
            "&",
            "&amp;",
            ";",
            ":",
            "a",
            "_",
            "1",
            "-",
            ".",
            "?",
            "!",
            "[",
            "]",
            "é",
            "\u{1}",
            "<a>",
            "</a>",
            "<b/>",
            "x=\"1\"",
            "<?xml ",
            "?>",
            "<!--",
            "-->",
            "<![CDATA[",
        ];
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1du64);
        let (mut plain, mut total) = (0, 0);
        for seed in seeds {
            assert!(Doc::parse_plain(seed).is_some() || seed.contains("CDATA"));
            for _ in 0..4000 {
                let mut s = seed.to_owned();
                for _ in 0..1 + next(3) {
                    let mut at = next(s.len() + 1);
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    match next(3) {
                        0 => s.insert_str(at, alphabet[next(alphabet.len())]),
                        1 => {
                            let mut end = (at + 1 + next(4)).min(s.len());
                            while !s.is_char_boundary(end) {
                                end += 1;
                            }
                            s.replace_range(at..end, "");
                        }
                        _ => {
                            let mut end = (at + 1).min(s.len());
                            while !s.is_char_boundary(end) {
                                end += 1;
                            }
                            s.replace_range(at..end, alphabet[next(alphabet.len())]);
                        }
                    }
                }
                total += 1;
                let before = old_plain::old_parse_plain(&s).map(|d| d.root().to_element());
                let now = Doc::parse_plain(&s).map(|d| d.root().to_element());
                assert_eq!(now, before, "{s:?}");
                if let Some(fast) = Doc::parse_plain(&s) {
                    plain += 1;
                    let full = Doc::parse_full(&s)
                        .unwrap_or_else(|e| panic!("plain accepted, full refused ({e}): {s:?}"));
                    assert_eq!(fast.root().to_element(), full.root().to_element(), "{s:?}");
                }
            }
        }
        // The mutations exercise both outcomes.
        assert!(plain > total / 20 && plain < total, "{plain} of {total}");
    }

    #[test]
    fn escaping_matches_the_char_by_char_rules() {
        fn slow(s: &str) -> String {
            let mut out = String::new();
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
                    c => out.push(c),
                }
            }
            out
        }
        for s in [
            "",
            "plain",
            "a<b>&\"c'\u{1}",
            "é€😀<\u{0}\t\n\r\u{1f}x",
            "&&",
            "\u{7f}\u{80}",
            "0123456<",
            "01234567<",
            "012345678<",
            "0123456789abcdef",
            "0123456789abcdef&",
            "0123456789abcdef0123456789abcdef\"",
            "é€😀é€😀é€😀'",
        ] {
            assert_eq!(escape(s), slow(s), "{s:?}");
        }
        // Every escaped byte at every offset of strings around the chunk size.
        let specials = [
            "&", "<", ">", "\"", "'", "\u{0}", "\u{1f}", "\t", "\n", "\r", "é",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for sp in specials {
                    let mut s = "a".repeat(len);
                    s.insert_str(at, sp);
                    assert_eq!(escape(&s), slow(&s), "{s:?}");
                    let t = s.clone() + sp + "b";
                    assert_eq!(escape(&t), slow(&t), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn escaping_roundtrips() {
        let s = "a<b>&\"c'\u{1}";
        let xml = format!("<a>{}</a>", escape(s));
        assert_eq!(parse(xml.as_bytes()).unwrap().text, "a<b>&\"c'");
    }

    /// The tree builder before [`Doc`], kept as the reference for [`parse`].
    mod reference {
        use super::super::*;

        fn old_local(name: &str) -> String {
            match name.rsplit_once(':') {
                Some((_, l)) => l.to_owned(),
                None => name.to_owned(),
            }
        }

        fn old_element_from(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
            let mut attrs = Vec::new();
            for a in e.attributes() {
                let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                attrs.push((old_local(a.key.as_ref()), v.into_owned()));
            }
            Ok(Element {
                name: old_local(e.name().as_ref()),
                attrs,
                children: Vec::new(),
                text: String::new(),
            })
        }

        fn old_parse(body: &[u8]) -> Result<Element, XmlError> {
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
                        stack.push(old_element_from(&e)?);
                    }
                    Event::Empty(e) => {
                        count += 1;
                        if count > MAX_ELEMENTS {
                            return Err(XmlError::TooMany);
                        }
                        let el = old_element_from(&e)?;
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
                                return Err(XmlError::Malformed(
                                    "text outside the root element".into(),
                                ))
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

        pub(super) fn parse(body: &[u8]) -> Result<Element, XmlError> {
            old_parse(body)
        }
    }

    #[test]
    fn doc_parses_exactly_like_the_tree_builder_it_replaced() {
        let deep_ok = format!(
            "{}<b/>{}",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        let deep_bad = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let cases: Vec<Vec<u8>> = vec![
            br#"<?xml version="1.0"?><s:A xmlns:s="x"><B t="1&amp;2">a&lt;b&#33;<![CDATA[<c>]]></B><C/></s:A>"#.to_vec(),
            b"<a x='1' y=\"a\tb\nc\" s:x='2'>t<!-- c -->u<?pi x?>v<b>w</b>x</a>".to_vec(),
            b"<a x='1' x='2'/>".to_vec(),
            b"<a x=1/>".to_vec(),
            b"<a x='&bogus;'/>".to_vec(),
            b"<a x='&#x41;&lt;'>&#x1F600;&#0;</a>".to_vec(),
            b"<a>&x;</a>".to_vec(),
            b"<!DOCTYPE a><a/>".to_vec(),
            b"<a/><b/>".to_vec(),
            b"<a></a>trailing".to_vec(),
            b"  <a/>  ".to_vec(),
            b"text<a/>".to_vec(),
            b"<a><b></a>".to_vec(),
            b"</a>".to_vec(),
            b"<a>".to_vec(),
            b"".to_vec(),
            b"<!-- only -->".to_vec(),
            b"<a>\xff</a>".to_vec(),
            b"<a>\xc3\xa9\xe2\x82\xac</a>".to_vec(),
            b"<a><![CDATA[x]]>y<![CDATA[]]></a>".to_vec(),
            b"<a:b:c d:e:f='1'/>".to_vec(),
            deep_ok.into_bytes(),
            deep_bad.into_bytes(),
            format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS - 1)).into_bytes(),
            format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS)).into_bytes(),
            "<a>".to_owned().into_bytes(),
        ];
        for c in &cases {
            assert_eq!(
                parse(c),
                reference::parse(c),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
    }
}
