//! A well-formedness check for the subset of XML the diagram writes, so that tests (the
//! diagram's own and the command line's) can show that no run's text breaks the document.
//!
//! It depends on nothing else in the harness; it is not a general XML parser.

use std::collections::BTreeSet;

/// Checks that `xml` is well-formed in the subset of XML the diagram writes: an optional
/// `<?xml …?>` declaration, then one root element; elements with attributes in double quotes;
/// text; the five predefined entities and numeric character references; no characters XML 1.0
/// forbids. Tests of the diagram and of the command line use it; it is not a general XML parser
/// (no comments, CDATA, doctypes or processing instructions after the declaration).
pub fn check_well_formed(xml: &str) -> Result<(), String> {
    fn text_ok(t: &str, at: usize) -> Result<(), String> {
        if let Some(c) = t
            .chars()
            .find(|&c| c == '<' || ((c as u32) < 0x20 && !"\t\n\r".contains(c)))
        {
            return Err(format!("character {c:?} in text near byte {at}"));
        }
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            rest = &rest[i + 1..];
            let end = rest
                .find(';')
                .ok_or_else(|| format!("unterminated entity near byte {at}"))?;
            let name = &rest[..end];
            let numeric = name
                .strip_prefix('#')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !numeric && !["amp", "lt", "gt", "quot", "apos"].contains(&name) {
                return Err(format!("unknown entity &{name}; near byte {at}"));
            }
            rest = &rest[end + 1..];
        }
        Ok(())
    }
    fn name_ok(n: &str) -> bool {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
            && !n.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
    }
    let mut rest = xml;
    if let Some(decl) = rest.strip_prefix("<?xml") {
        let end = decl.find("?>").ok_or("unterminated XML declaration")?;
        rest = &decl[end + 2..];
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut pos = xml.len() - rest.len();
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        text_ok(text, pos)?;
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root element near byte {pos}"));
        }
        pos += lt;
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        // A tag: find its end outside attribute values.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == '>' && !quoted
            })
            .map(|(i, _)| i)
            .ok_or_else(|| format!("unterminated tag near byte {pos}"))?;
        let tag = &rest[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => {
                    return Err(format!("</{name}> closes {other:?} near byte {pos}"));
                }
            }
        } else {
            let empty = tag.ends_with('/');
            let body = tag.strip_suffix('/').unwrap_or(tag);
            let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
            let name = &body[..name_end];
            if !name_ok(name) {
                return Err(format!("bad element name {name:?} near byte {pos}"));
            }
            // Attributes: name="value", separated by whitespace.
            let mut attrs = body[name_end..].trim_start();
            let mut seen = BTreeSet::new();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or_else(|| format!("attribute without value in <{name}> near {pos}"))?;
                let attr = &attrs[..eq];
                if !name_ok(attr) || !seen.insert(attr) {
                    return Err(format!(
                        "bad or repeated attribute {attr:?} near byte {pos}"
                    ));
                }
                let value = attrs[eq + 1..]
                    .strip_prefix('"')
                    .ok_or_else(|| format!("unquoted attribute {attr} near byte {pos}"))?;
                let close = value
                    .find('"')
                    .ok_or_else(|| format!("unterminated attribute {attr} near byte {pos}"))?;
                text_ok(&value[..close], pos)?;
                let after = &value[close + 1..];
                if !after.is_empty() && !after.starts_with(char::is_whitespace) {
                    return Err(format!("no space after attribute {attr} near byte {pos}"));
                }
                attrs = after.trim_start();
            }
            if stack.is_empty() {
                roots += 1;
                if roots > 1 {
                    return Err(format!("a second root element near byte {pos}"));
                }
            }
            if !empty {
                stack.push(name);
            }
        }
        pos += end + 1;
        rest = &rest[end + 1..];
    }
    match (stack.last(), roots) {
        (Some(open), _) => Err(format!("<{open}> is never closed")),
        (None, 0) => Err("no root element".into()),
        _ => Ok(()),
    }
}
